"""Trivial commands start fast: `tracktiond --version`, `--help` and `check-config` import
nothing heavy (issue 14, defect 7; docs/benchmarks.md, "Start-up").

Each command runs as `python -X importtime -m tracktiond …` in a fresh interpreter, and the
modules it imported are read from the import-time report on stderr: the real entry point, the
real import graph, nothing mocked. The lazy command table is held to the commands it names.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tracktiond.cli import COMMANDS, main
from tracktiond.cli.lazygroup import LazyCommand, LazyGroup

# What the trivial commands must not import: the ORM and migrations, analysis and its numeric
# stack, the graph driver, the progress bars, tag reading, the metrics client.
HEAVY = (
    "sqlalchemy.orm",
    "alembic",
    "essentia",
    "numpy",
    "neo4j",
    "rich",
    "mutagen",
    "prometheus_client",
)
# --version and --help read no configuration: not even its model or SQLAlchemy's URL parser.
NO_CONFIG = (*HEAVY, "pydantic", "sqlalchemy")

# `python -m tracktiond ARGS`, then the names of every module it imported, as JSON, to the file
# $MODULES_OUT. (-X importtime would not do: it misses modules loaded by importlib, which is
# how the lazy group loads commands.)
RUNNER = """
import atexit, json, os, runpy, sys
atexit.register(lambda: open(os.environ["MODULES_OUT"], "w").write(json.dumps(sorted(sys.modules))))
runpy.run_module("tracktiond", run_name="__main__", alter_sys=True)
"""


def _run(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    out = cwd / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKTIOND_")}
    env["TRACKTIOND_CONFIG"] = str(cwd / "absent.toml")  # never the machine's own config
    env["MODULES_OUT"] = str(out)
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )
    return done, set(json.loads(out.read_text()))


def _heavy(imported: set[str], banned: tuple[str, ...]) -> list[str]:
    return sorted(m for m in imported if any(m == b or m.startswith(b + ".") for b in banned))


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["check-config", "--help"]])
def test_trivial_commands_import_nothing_heavy(args: list[str], tmp_path: Path) -> None:
    done, imported = _run(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "tracktiond.cli" in imported  # the list is read right: the CLI was imported
    assert _heavy(imported, NO_CONFIG) == []
    # no command module but the one asked for
    loaded = {m for m in imported if m.startswith("tracktiond.cli.")}
    wanted = {"tracktiond.cli.lazygroup"}
    if args[0] == "check-config":
        wanted |= {"tracktiond.cli.commands", "tracktiond.cli.common"}
    assert loaded == wanted


def test_check_config_loads_the_configuration_model_and_nothing_heavier(tmp_path: Path) -> None:
    config = tmp_path / "tracktiond.toml"
    config.write_text(f'[library]\nroots = ["{tmp_path}"]\n')
    done, imported = _run("check-config", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "valid" in done.stdout
    assert "pydantic" in imported  # it validated for real
    assert _heavy(imported, HEAVY) == []


# What a scan of an up-to-date catalog must not import: migrations, the analysis engine and its
# numeric stack (the fingerprint index's SciPy filters among them), the graph driver.
NOT_FOR_A_SCAN = ("alembic", "essentia", "numpy", "scipy", "neo4j")


def test_a_scan_of_an_up_to_date_catalog_imports_no_migration_nor_numeric_stack(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "music"
    empty.mkdir()
    config = tmp_path / "tracktiond.toml"
    db = tmp_path / "state" / "catalog.db"
    config.write_text(
        f'[library]\nroots = ["{empty}"]\n[database]\nurl = "sqlite+aiosqlite:///{db}"\n'
    )
    first, _ = _run("scan", "--config", str(config), "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr  # creates and migrates the catalog
    done, imported = _run("scan", "--config", str(config), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "tracktiond.catalog.store" in imported  # it opened the catalog for real
    assert _heavy(imported, NOT_FOR_A_SCAN) == []


def test_the_console_entry_point_says_the_version(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tracktiond", "--version"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"tracktiond, version \S+\n", done.stdout)


def _commands_help(group: click.Group, width: int) -> str:
    result = CliRunner().invoke(group, ["--help"], terminal_width=width, max_content_width=width)
    assert result.exit_code == 0, result.output
    return result.output[result.output.index("Commands:") :]


@pytest.mark.parametrize("width", [50, 80, 160])
def test_help_lists_every_command_as_the_commands_themselves_would(width: int) -> None:
    lazy = LazyGroup("tracktiond", lazy_commands=COMMANDS)
    loaded = LazyGroup("tracktiond", lazy_commands=COMMANDS)
    ctx = click.Context(loaded)
    for name in COMMANDS:
        loaded.get_command(ctx, name)
    lazy_help = _commands_help(lazy, width)
    assert not lazy.commands  # writing the help loaded no command
    # ...and it reads exactly as click's own rendering from the commands themselves.
    assert lazy_help == _commands_help(loaded, width)
    for name in COMMANDS:
        assert f"\n  {name} " in lazy_help


def test_the_real_help_names_every_command(tmp_path: Path) -> None:
    done, _ = _run("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listed = re.findall(r"^  (\S+)  ", done.stdout[done.stdout.index("Commands:") :], re.M)
    assert listed == sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_table_names_each_command_where_it_is_defined(name: str) -> None:
    spec = COMMANDS[name]
    command = LazyGroup.load(name, spec)
    assert command.name == name
    assert not command.hidden
    # The line --help shows without importing the command is the command's own.
    for width in (30, 60, 200):
        stand_in = click.Command(name, help=spec.short_help)
        assert stand_in.get_short_help_str(width) == command.get_short_help_str(width)


def test_a_subcommand_still_runs_through_the_lazy_group() -> None:
    result = CliRunner().invoke(main, ["db", "--help"])
    assert result.exit_code == 0
    assert "upgrade" in result.output


@click.command("extra")
def extra() -> None:
    """An eagerly added command."""


NOT_A_COMMAND = object()


def test_lazy_group_keeps_add_command_and_refuses_what_is_not_a_command() -> None:
    group = LazyGroup(
        "toy",
        lazy_commands={
            "broken": LazyCommand(__name__, "NOT_A_COMMAND", "Not a command."),
            "extra-lazy": LazyCommand(__name__, "extra", "An eagerly added command."),
        },
    )
    group.add_command(extra)
    ctx = click.Context(group)
    assert group.list_commands(ctx) == ["broken", "extra", "extra-lazy"]
    assert group.get_command(ctx, "extra") is extra
    assert group.get_command(ctx, "nope") is None
    with pytest.raises(TypeError, match="NOT_A_COMMAND"):
        group.get_command(ctx, "broken")
