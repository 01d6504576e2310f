"""A click group that imports a command's module only when that command is used.

Every command module pulls in what its command needs (the catalog and SQLAlchemy, the analysis
pool, rich, the graph driver): over a second of imports. `tracktiond --version`, `--help` and
`check-config` need none of it, so the group knows its commands by a table of names, each
naming the module and attribute that defines it and its one-line help, and imports a module
the first time its command is looked up. `--help` is written from the table alone.

Commands added with `add_command` (already imported) work as in a plain `click.Group`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click

__all__ = ["LazyCommand", "LazyGroup"]


@dataclass(frozen=True)
class LazyCommand:
    """Where a command is defined, and the line `--help` shows for it without importing it.

    `short_help` must be what the command itself would show (its docstring's first sentence,
    or its `short_help`); tests/unit/test_startup_imports.py holds the table to that.
    """

    module: str  # dotted module path
    attribute: str  # the click.Command (or Group) in that module
    short_help: str


class LazyGroup(click.Group):
    def __init__(
        self,
        *args: Any,
        lazy_commands: Mapping[str, LazyCommand] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, LazyCommand] = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        spec = self.lazy_commands.get(cmd_name)
        if spec is None:
            return None
        command = self.load(cmd_name, spec)
        # Kept, so the module's import (and this check) happen once per process.
        self.add_command(command, cmd_name)
        return command

    @staticmethod
    def load(name: str, spec: LazyCommand) -> click.Command:
        command = getattr(importlib.import_module(spec.module), spec.attribute)
        if not isinstance(command, click.Command):
            raise TypeError(
                f"command {name!r}: {spec.module}.{spec.attribute} is "
                f"{type(command).__name__}, not a click command"
            )
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click's own version looks every command up, which would import them all.
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            loaded = self.commands.get(name)
            if loaded is None:
                # A stand-in carrying only the help, shortened by click's own rule.
                stand_in = click.Command(name, help=self.lazy_commands[name].short_help)
                rows.append((name, stand_in.get_short_help_str(limit)))
            elif not loaded.hidden:
                rows.append((name, loaded.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
