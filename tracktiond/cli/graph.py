"""`tracktiond graph …`: rebuild the Neo4j mirror of the catalog, or ask it questions."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from tracktiond.catalog.store import Catalog
from tracktiond.cli.common import EXIT_OK, config_option, handled, json_option, load_command_config
from tracktiond.errors import ConfigError, TracktiondError
from tracktiond.graph.registry import QUERIES, GraphQuery, Param


@click.group("graph")
def graph() -> None:
    """The Neo4j mirror of the catalog: rebuild it, or ask it questions."""


async def _with_graph(config_path: Path | None, body: Callable[[Any, Any], Awaitable[Any]]) -> Any:
    from tracktiond.graph import GraphClient, GraphSync, GraphUnavailable

    config = load_command_config(config_path)
    if not config.graph.enabled:
        raise ConfigError(
            f"{config.source or 'built-in defaults'}: [graph] uri is empty: no graph configured"
        )
    client = GraphClient.from_config(config.graph)
    catalog = await Catalog.open(config.database_url)
    try:
        return await body(client, GraphSync(catalog, client))
    except GraphUnavailable as exc:
        raise TracktiondError(f"graph {config.graph.uri} unreachable: {exc}") from None
    finally:
        await client.close()
        await catalog.close()


def _echo_json_or(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        human(data)


@graph.command("rebuild")
@config_option
@json_option
@handled
async def graph_rebuild(config_path: Path | None, as_json: bool) -> int:
    """Recreate the whole graph from the catalog."""
    count = await _with_graph(config_path, lambda _client, sync: sync.rebuild())
    _echo_json_or(
        {"recordings": count},
        as_json,
        lambda d: click.echo(f"graph rebuilt: {d['recordings']} recordings"),
    )
    return EXIT_OK


def _human(data: Any) -> None:
    rows = data.get("suggestions") or data.get("recordings") or data.get("duplicates") or []
    if not rows:
        click.echo("nothing found")
    for row in rows:
        parts = [str(row.get("file_path") or row.get("sha256") or row)]
        for key in ("bpm", "camelot", "key_relation", "tempo", "shared", "copies"):
            if row.get(key) not in (None, ""):
                parts.append(f"{key}={row[key]}")
        click.echo("  ".join(parts))


def _click_param(param: Param) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    if param.required:
        return click.argument(param.name)
    return click.option(
        f"--{param.name}",
        type=click.Choice(param.choices) if param.choices else param.type,
        default=param.default,
        show_default=True,
        help=param.help or None,
    )


def _query_command(query: GraphQuery) -> click.Command:
    """`tracktiond graph <query.name>`: the query's parameters as an argument and options."""

    @config_option
    @json_option
    @handled
    async def command(config_path: Path | None, as_json: bool, **values: Any) -> int:
        found = await _with_graph(config_path, lambda client, _sync: query.run(client, values))
        _echo_json_or(found, as_json, _human)
        return EXIT_OK

    # Applied in the table's order, so the help lists them last to first (then --config, --json).
    for param in query.params:
        command = _click_param(param)(command)
    return click.command(query.name, help=query.help)(command)


for _query in QUERIES:
    graph.add_command(_query_command(_query))
