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


def _graph_query_command(name: str, help_text: str, needs_recording: bool) -> None:
    async def run_query(client: Any, recording: str | None, options: dict[str, Any]) -> Any:
        from tracktiond.graph import queries

        if name == "suggest":
            return await queries.mix_suggestions(
                client, recording or "", bpm_tolerance=options["tolerance"], limit=options["limit"]
            )
        if name == "shared":
            return await queries.shared_tracks(client, recording or "", limit=options["limit"])
        if name == "neighbours":
            return await queries.neighbours(
                client, recording or "", by=options["by"], limit=options["limit"]
            )
        return await queries.duplicates(client, limit=options["limit"])

    def human(data: Any) -> None:
        rows = data.get("suggestions") or data.get("recordings") or data.get("duplicates") or []
        if not rows:
            click.echo("nothing found")
        for row in rows:
            parts = [str(row.get("file_path") or row.get("sha256") or row)]
            for key in ("bpm", "camelot", "key_relation", "tempo", "shared", "copies"):
                if row.get(key) not in (None, ""):
                    parts.append(f"{key}={row[key]}")
            click.echo("  ".join(parts))

    @click.option("--limit", default=20, show_default=True)
    @config_option
    @json_option
    @handled
    async def command(config_path: Path | None, as_json: bool, limit: int, **kw: Any) -> int:
        options = {"limit": limit, **kw}
        recording = kw.pop("recording", None)
        found = await _with_graph(
            config_path, lambda client, _sync: run_query(client, recording, options)
        )
        _echo_json_or(found, as_json, human)
        return EXIT_OK

    if name == "suggest":
        command = click.option(
            "--tolerance", default=0.06, show_default=True, help="BPM tolerance (fraction)."
        )(command)
    if name == "neighbours":
        command = click.option(
            "--by", type=click.Choice(["artist", "genre"]), default="artist", show_default=True
        )(command)
    if needs_recording:
        command = click.argument("recording")(command)
    graph.command(name, help=help_text)(command)


_graph_query_command(
    "suggest",
    "What mixes well after RECORDING (uuid or path): same or adjacent Camelot key, BPM within "
    "the tolerance (half and double tempo included), ranked.",
    True,
)
_graph_query_command("shared", "Recordings sharing tracks with RECORDING (via tracklists).", True)
_graph_query_command("neighbours", "Recordings by the same artist or in the same genre.", True)
_graph_query_command("duplicates", "The same content at several paths.", False)
