"""The command line: `tracktiond COMMAND`. The only place that picks exit codes.

Modules, in the order a command goes through them: ``common`` (exit codes, shared options,
`handled`), then one module per command family, each registered below with ``add_command``:
``commands`` (check-config, db, scan, run, show), ``status`` (status, duplicates),
``analysis`` (analyze, tag), ``graph`` (graph rebuild and queries); ``progress`` draws the bars.
"""

from __future__ import annotations

import click

from tracktiond import __version__
from tracktiond.cli import analysis, commands, graph, status


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tracktiond")
def main() -> None:
    """tracktiond keeps a catalog of a large music library true to the disk."""


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
):
    main.add_command(command)

__all__ = ["main"]
