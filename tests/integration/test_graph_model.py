"""The graph model's pure parts: projection to properties and rows, and when to rebuild."""

from __future__ import annotations

import time
import uuid

import pytest

from tracktiond.catalog.store import RecordingProjection
from tracktiond.graph import model
from tracktiond.graph.client import literal_size
from tracktiond.graph.dialect import FALKORDB, NEO4J, IndexSpec
from tracktiond.graph.sync import _rebuild_reason


def projection(**metadata: str) -> RecordingProjection:
    return RecordingProjection(
        id=uuid.UUID(int=1),
        file_path="/music/a.flac",
        file_name="a.flac",
        sha256="0" * 64,
        format="flac",
        paths=["/music/a.flac", "/backup/a.flac"],
        metadata=dict(metadata),
    )


def test_tags_give_bpm_and_key_when_there_is_no_analysis() -> None:
    props = model.project(projection(bpm="128", initialkey="Am", title="T", duration="61.5"))
    assert (props["bpm"], props["bpm_source"]) == (128.0, "tags")
    assert (props["camelot"], props["key"], props["open_key"]) == ("8A", "A minor", "1m")
    assert props["key_source"] == "tags"
    assert (props["title"], props["duration"], props["copies"]) == ("T", 61.5, 2)


def test_analysis_wins_over_tags() -> None:
    props = model.project(
        projection(
            bpm="128",
            initialkey="Am",
            **{
                "analysis.bpm": "100.0",
                "analysis.key": "C minor",
                "analysis.key_camelot": "5A",
                "analysis.energy": "0.731",
                "analysis.mood": "dark",
            },
        )
    )
    assert (props["bpm"], props["bpm_source"]) == (100.0, "analysis")
    assert (props["camelot"], props["key"], props["key_source"]) == ("5A", "C minor", "analysis")
    assert (props["energy"], props["mood"]) == (0.731, "dark")


def test_analysis_key_name_alone_is_enough() -> None:
    props = model.project(projection(initialkey="Am", **{"analysis.key": "F# minor"}))
    assert (props["camelot"], props["key_source"]) == ("11A", "analysis")


@pytest.mark.parametrize("bpm", ["", "fast", "0", "-5", "2000", "nan"])
def test_unusable_bpm_values_are_left_out(bpm: str) -> None:
    props = model.project(projection(bpm=bpm, initialkey="nonsense"))
    assert "bpm" not in props and "camelot" not in props and "key" not in props


def test_a_tagged_bpm_with_a_comma_or_a_unit_is_read() -> None:
    assert model.project(projection(bpm="127,5"))["bpm"] == 127.5
    assert model.project(projection(bpm="128 BPM"))["bpm"] == 128.0


def test_rows_share_nodes_and_skip_what_does_not_belong_in_the_graph() -> None:
    a = projection(artist="DJ One; MC Two", genre="Techno", comment="x" * 5000)
    b = RecordingProjection(
        id=uuid.UUID(int=2),
        file_path="/music/b.flac",
        file_name="b.flac",
        sha256="1" * 64,
        format="flac",
        paths=["/music/b.flac"],
        metadata={"artist": "dj  one", "genre": "techno"},
        tracklists=[
            {
                "id": "tl",
                "source": "cue",
                "cue_file_path": None,
                "tracks": [
                    {"title": "One", "artist": "X", "start_time": "00:00:00"},
                    {"title": "", "artist": ""},  # nothing to show: skipped
                    "not a track",
                ],
            }
        ],
    )
    batch = model.build_batch({a.id: a, b.id: b, uuid.UUID(int=3): None})
    assert batch.deletes == [str(uuid.UUID(int=3))]
    assert len(batch.uuids) == 3
    assert sorted(batch.artists) == ["dj one", "mc two"], "folded names are one Artist"
    assert batch.artists["dj one"]["name"] == "DJ One", "the first spelling is shown"
    assert list(batch.genres) == ["techno"]
    assert ("comment", "x" * 5000) not in batch.metadata, "long values stay in the catalog"
    assert [loc["path"] for loc in batch.locations.values()] == [
        "/music/a.flac",
        "/backup/a.flac",
        "/music/b.flac",
    ]
    assert [t["position"] for t in batch.track_links] == [1]


def test_schema_statements_per_dialect() -> None:
    specs = (IndexSpec("Recording", "uuid", unique=True), IndexSpec("Metadata", "value"))
    assert NEO4J.schema_statements(specs, set()) == [
        "CREATE CONSTRAINT tracktiond_recording_uuid IF NOT EXISTS "
        "FOR (n:Recording) REQUIRE n.uuid IS UNIQUE",
        "CREATE INDEX tracktiond_metadata_value IF NOT EXISTS FOR (n:Metadata) ON (n.value)",
    ]
    assert FALKORDB.schema_statements(specs, {("Recording", "uuid")}) == [
        "CREATE INDEX FOR (n:Metadata) ON (n.value)"
    ]
    with pytest.raises(ValueError):
        NEO4J.schema_statements((IndexSpec("Bad label", "x"),), set())


def test_literal_size_overestimates_the_cypher_text() -> None:
    value = {"path": "/müsic/it's.flac", "bpm": 128.0, "tags": ["a", "b"], "none": None}
    cypher = "{path: '/müsic/it\\'s.flac', bpm: 128.0, tags: ['a', 'b'], none: null}"
    assert literal_size(value) >= len(cypher.encode())


def marker(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "tracktiond",
        "state": "complete",
        "owner": "someone",
        "model_version": model.MODEL_VERSION,
        # seconds before the test runs: parameters are built at collection time, which can be
        # minutes before the test itself runs
        "heartbeat_age": 0.0,
    }
    base.update(fields)
    return base


@pytest.mark.parametrize(
    ("found", "rebuild"),
    [
        (None, True),  # new or wiped server, or first start with an existing catalog
        (marker(), False),
        (marker(model_version=model.MODEL_VERSION - 1), True),
        (marker(model_version=model.MODEL_VERSION + 1), False),  # a newer tracktiond owns it
        (marker(state="rebuilding"), False),  # another process is at it
        (marker(state="rebuilding", heartbeat_age=3600.0), True),  # ... and died
        (marker(state="rebuilding", owner="me"), True),  # our own, interrupted
        (marker(state="interrupted"), True),
    ],
)
def test_when_the_graph_is_rebuilt(found: dict[str, object] | None, rebuild: bool) -> None:
    if found is not None:
        found = dict(found)
        age = found.pop("heartbeat_age")
        assert isinstance(age, float)
        found["heartbeat"] = time.time() - age
    assert (_rebuild_reason(found, "me") is not None) is rebuild
