"""The command line: `tracktiond COMMAND`. The only place that picks exit codes.

Modules, in the order a command goes through them: ``common`` (exit codes, shared options,
`handled`), then one module per command family, each registered below with ``add_command``:
``commands`` (check-config, db, scan, run, show), ``status`` (status, duplicates),
``analysis`` (analyze, tag), ``graph`` (graph rebuild and queries), ``organise`` (organise,
organise undo, organise plans), ``tracklist`` (tracklist import, show, cue, export);
``progress`` draws the bars.
"""

from __future__ import annotations

import click

from tracktiond import __version__
from tracktiond.cli import analysis, commands, graph, organise, status, tracklist
from tracktiond.startup import restore_default_signals


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tracktiond")
@click.pass_context
def main(ctx: click.Context) -> None:
    """tracktiond keeps a catalog of a large music library true to the disk."""
    # The entry point deferred stop signals while the CLI was imported (tracktiond.startup);
    # the daemon takes them over itself, every other command wants the defaults back.
    if ctx.invoked_subcommand != "run":
        restore_default_signals()


for command in (
    commands.check_config,
    commands.db,
    commands.scan,
    commands.run,
    commands.show,
    status.status,
    status.duplicates,
    analysis.analyze,
    analysis.tag,
    graph.graph,
    organise.organise,
    tracklist.tracklist,
):
    main.add_command(command)

__all__ = ["main"]
