"""The command line: `tracktiond COMMAND`. The only place that picks exit codes.

Modules, in the order a command goes through them: ``lazygroup`` (the group that imports a
command's module only when the command runs), ``common`` (exit codes, shared options,
`handled`), then one module per command family, each listed in `COMMANDS` below:
``commands`` (check-config, db, scan, run, show), ``status`` (status, duplicates),
``analysis`` (analyze, tag), ``identify`` (identify), ``graph`` (graph rebuild and queries),
``organise`` (organise, organise undo, organise plans), ``tracklist`` (tracklist import, show,
cue, export);
``progress`` draws the bars.

Adding a command is one line in `COMMANDS`: its name, the module and attribute that define it,
and its one-line help (the first sentence of its docstring; a test checks they agree). Do not
import command modules here, nor `main.add_command` them: that would make every `tracktiond`
call, `--version` included, pay for their imports (tests/unit/test_startup_imports.py fails).
"""

from __future__ import annotations

import click

from tracktiond import __version__
from tracktiond.cli.lazygroup import LazyCommand, LazyGroup
from tracktiond.startup import restore_default_signals

_CLI = "tracktiond.cli."

COMMANDS: dict[str, LazyCommand] = {
    "analyze": LazyCommand(
        _CLI + "analysis",
        "analyze",
        "Analyse FILES (tempo, key, loudness, danceability, mood) and print the results.",
    ),
    "check-config": LazyCommand(
        _CLI + "commands",
        "check_config",
        "Validate the configuration and print it as it takes effect (secrets redacted).",
    ),
    "db": LazyCommand(_CLI + "commands", "db", "Catalog database maintenance."),
    "duplicates": LazyCommand(
        _CLI + "status",
        "duplicates",
        "Recordings present at more than one path (identical content).",
    ),
    "graph": LazyCommand(
        _CLI + "graph",
        "graph",
        "The Neo4j mirror of the catalog: rebuild it, or ask it questions.",
    ),
    "identify": LazyCommand(
        _CLI + "identify",
        "identify",
        "Name the library's tracks that SETS play, with times, speed and pitch.",
    ),
    "organise": LazyCommand(
        _CLI + "organise",
        "organise",
        "Rename and move files by the [organise] naming patterns (docs/organise.md).",
    ),
    "run": LazyCommand(
        _CLI + "commands",
        "run",
        "Run the daemon: watch the roots, keep the catalog true, serve health and metrics.",
    ),
    "scan": LazyCommand(
        _CLI + "commands",
        "scan",
        "Catalog every audio file under PATHS (default: the configured roots) and exit.",
    ),
    "show": LazyCommand(
        _CLI + "commands",
        "show",
        "What the catalog knows about one file: state, hashes, recording and metadata.",
    ),
    "status": LazyCommand(
        _CLI + "status",
        "status",
        "What the catalog holds and what the daemon is doing: files by state, duplicates, "
        "queues, recent failures.",
    ),
    "tag": LazyCommand(
        _CLI + "analysis",
        "tag",
        "Write analysis results (BPM, key, ReplayGain) into the tags of cataloged files.",
    ),
    "tracklist": LazyCommand(
        _CLI + "tracklist",
        "tracklist",
        "Tracklists of DJ sets and live recordings: import, show, cue sheets, exports.",
    ),
}


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="tracktiond")
@click.pass_context
def main(ctx: click.Context) -> None:
    """tracktiond keeps a catalog of a large music library true to the disk."""
    # The entry point deferred stop signals while the CLI was imported (tracktiond.startup);
    # the daemon takes them over itself, every other command wants the defaults back.
    if ctx.invoked_subcommand != "run":
        restore_default_signals()


__all__ = ["COMMANDS", "main"]
