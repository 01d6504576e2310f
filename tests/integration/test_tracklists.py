"""Tracklists in the catalog, on SQLite and PostgreSQL, from real files: sheets and lists next
to sets found by the walk, read by the tracklist stage (run once, as ``tracklist import`` does),
versioned, matched to the library; bad sheets recorded with their reason; embedded sheets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mutagen.flac import FLAC

from tests.support import audiogen, sheets
from tracktiond.catalog import Catalog
from tracktiond.config import TracklistsConfig
from tracktiond.pipeline.scan import Scanner
from tracktiond.pipeline.tracklisting import read_due_sources

pytestmark = pytest.mark.anyio

CONFIG = TracklistsConfig()


async def scan(catalog: Catalog, *paths: Path) -> None:
    await Scanner(catalog, concurrency=2).scan([str(p) for p in paths])


async def read(catalog: Catalog) -> dict[str, dict[str, Any]]:
    return {r["path"]: r for r in await read_due_sources(catalog, CONFIG)}


async def tracklists_of(catalog: Catalog, path: Path, **kw: Any) -> list[Any]:
    found = await catalog.resolve_recording(str(path))
    assert found is not None, path
    return await catalog.tracklists_of(found[0], **kw)


def tracks(library: Path) -> dict[str, Path]:
    """Library tracks a set plays: tagged, a few seconds long."""
    out = {}
    for i, (artist, title) in enumerate(
        [("Künstler Eins", "Opening"), ("Artist Two", "Middle"), ("Alpha", "First Song")]
    ):
        out[title] = audiogen.make_audio(
            library / "tracks" / f"{i}.mp3",
            seconds=1.0,
            seed=10 + i,
            freq=300.0 + 50 * i,
            tags={"artist": artist, "title": title},
        )
    return out


async def test_a_sheet_next_to_a_set_becomes_its_matched_tracklist(
    catalog: Catalog, library: Path
) -> None:
    mine = tracks(library)
    audiogen.make_audio(library / "sets" / "set.flac", seconds=8.0)
    # Mixxx's shape, with times that fit the 8-second set
    text = sheets.mixxx("set.flac").replace("61:10:37", "00:03:00").replace("125:30:12", "00:06:00")
    (library / "sets" / "set.cue").write_text(text, encoding="utf-8")
    await scan(catalog, library)
    outcome = await read(catalog)
    assert outcome[str(library / "sets" / "set.cue")]["outcome"] == "new"
    [tl] = await tracklists_of(catalog, library / "sets" / "set.flac")
    assert (tl.source, tl.version, tl.encoding, tl.origin) == (
        "cue",
        1,
        "utf-8",
        str(library / "sets" / "set.cue"),
    )
    got = [
        (s.entry.start, s.entry.artist, s.entry.title, s.match.status, s.path) for s in tl.entries
    ]
    assert got == [
        (0.0, "Künstler Eins", "Opening", "matched", str(mine["Opening"])),
        (3.0, "Artist Two", "Middle", "matched", str(mine["Middle"])),
        (6.0, "Artist Three", "Closing", "unmatched", None),
    ]
    assert [s.entry.end for s in tl.entries] == [3.0, 6.0, 8.0]
    # the graph sees the set's tracks and which library recordings they are
    projection = (await catalog.recording_projections([tl.recording_id]))[tl.recording_id]
    assert projection is not None
    [graph_tl] = projection.tracklists
    assert [t["recording"] is not None for t in graph_tl["tracks"]] == [True, True, False]
    # reading it again (nothing changed) adds no version
    (library / "sets" / "set.cue").touch()
    await scan(catalog, library)
    assert (await read(catalog))[str(library / "sets" / "set.cue")]["outcome"] == "unchanged"
    assert [t.version for t in await tracklists_of(catalog, library / "sets" / "set.flac")] == [1]


async def test_versions_history_a_bad_edit_and_a_deleted_sheet(
    catalog: Catalog, library: Path
) -> None:
    set_path = audiogen.make_audio(library / "set.flac", seconds=8.0)
    cue = library / "set.cue"
    cue.write_text('FILE "set.flac" WAVE\nTRACK 01 AUDIO\nTITLE "One"\nINDEX 01 00:00:00\n')
    await scan(catalog, library)
    await read(catalog)
    cue.write_text(
        'FILE "set.flac" WAVE\nTRACK 01 AUDIO\nTITLE "One"\nINDEX 01 00:00:00\n'
        'TRACK 02 AUDIO\nTITLE "Two"\nINDEX 01 00:04:00\n'
    )
    await scan(catalog, library)
    assert (await read(catalog))[str(cue)]["outcome"] == "new"
    history = await tracklists_of(catalog, set_path, history=True)
    assert [(t.version, t.current, len(t.entries)) for t in history] == [
        (2, True, 2),
        (1, False, 1),
    ]

    # an edit that breaks the sheet: recorded with the reason, version 2 stays current
    cue.write_text('FILE "set.flac" WAVE\nTRACK 01 AUDIO\nINDEX 01 00:61:00\n')
    await scan(catalog, library)
    result = (await read(catalog))[str(cue)]
    assert result["outcome"] == "failed"
    assert "line 3: INDEX impossible time '00:61:00'" in result["reason"]
    [current] = await tracklists_of(catalog, set_path)
    assert current.version == 2
    problems = await catalog.source_problems()
    assert [(p["path"], "impossible time" in p["error"]) for p in problems] == [(str(cue), True)]
    [failure] = await catalog.tracklist_failures()  # what `status` lists
    assert (failure.path, failure.error_class) == (str(cue), "bad_input")

    # times past the end of the audio are an error too
    cue.write_text(
        'FILE "set.flac" WAVE\nTRACK 01 AUDIO\nINDEX 01 00:00:00\n'
        "TRACK 02 AUDIO\nINDEX 01 05:00:00\n"
    )
    await scan(catalog, library)
    assert "past the end of the audio" in (await read(catalog))[str(cue)]["reason"]

    # the sheet is deleted: its tracklist is history, not current
    cue.unlink()
    await scan(catalog, library)
    assert (await read(catalog))[str(cue)]["outcome"] == "retired"
    assert await tracklists_of(catalog, set_path) == []
    assert len(await tracklists_of(catalog, set_path, history=True)) == 2


async def test_a_sheet_names_a_missing_file_until_its_audio_arrives(
    catalog: Catalog, library: Path
) -> None:
    (library / "later.cue").write_text(
        'FILE "later.wav" WAVE\nTRACK 01 AUDIO\nTITLE "A"\nINDEX 01 00:00:00\n'
    )
    (library / "ghost.cue").write_text(
        'FILE "nowhere.wav" WAVE\nTRACK 01 AUDIO\nTITLE "A"\nINDEX 01 00:00:00\n'
    )
    (library / "README.txt").write_text("Ripped by me.\n")
    await scan(catalog, library)
    first = await read(catalog)
    assert first[str(library / "ghost.cue")]["outcome"] == "failed"
    assert first[str(library / "ghost.cue")]["reason"] == (
        "FILE 'nowhere.wav' does not exist next to the sheet"
    )
    assert first[str(library / "README.txt")]["reason"] == "no audio file is named like it"
    # not there yet either: failed with the reason, and looked at again when audio arrives
    assert first[str(library / "later.cue")]["reason"] == (
        "FILE 'later.wav' does not exist next to the sheet"
    )
    # the audio arrives, converted to FLAC: found under the sheet's name
    audiogen.make_audio(library / "later.flac", seconds=2.0)
    await scan(catalog, library)
    second = await read(catalog)
    assert second[str(library / "later.cue")]["outcome"] == "new"
    [tl] = await tracklists_of(catalog, library / "later.flac")
    assert [s.entry.title for s in tl.entries] == ["A"]


async def test_pasted_list_rekordbox_sources_and_ambiguous_matches(
    catalog: Catalog, library: Path
) -> None:
    mine = tracks(library)
    # the same song twice in the library (an MP3 and a FLAC of it): ambiguous, both kept
    twin = audiogen.make_audio(
        library / "tracks" / "twin.flac",
        seconds=1.0,
        seed=99,
        tags={"artist": "Artist Two", "title": "Middle"},
    )
    audiogen.make_audio(library / "set.flac", seconds=8.0)
    (library / "set.txt").write_text(
        "Some DJ @ Somewhere\n[00:00] Künstler Eins - Opening [KOMPAKT]\n"
        "[00:03] Artist Two - Middle\n[00:05] ID - ID\n",
        encoding="utf-8",
    )
    audiogen.make_audio(library / "REC001.wav", seconds=8.0)
    rekordbox = (
        sheets.rekordbox()
        .replace("/music/Alpha - First Song.mp3", str(mine["First Song"]))
        .replace("04:12:30", "00:04:00")  # within the 8-second recording
    )
    (library / "REC001.cue").write_text(rekordbox)
    await scan(catalog, library)
    await read(catalog)
    [text] = await tracklists_of(catalog, library / "set.flac")
    assert text.source == "text"
    first, second, unknown = text.entries
    assert (first.entry.label, first.match.status, first.path) == (
        "KOMPAKT",
        "matched",
        str(mine["Opening"]),
    )
    assert second.match.status == "ambiguous"
    assert {c.path for c in second.match.candidates} == {str(mine["Middle"]), str(twin)}
    assert (unknown.entry.unknown, unknown.match.status) == (True, "unknown")
    [rec] = await tracklists_of(catalog, library / "REC001.wav")
    # the nested FILE names a cataloged file: that is the match, by file
    assert rec.entries[0].match.status == "matched" and rec.entries[0].match.score == 1.0
    assert rec.entries[0].path == str(mine["First Song"])
    assert rec.entries[1].entry.source_path == "/music/Beta - Second Song.flac"


async def test_an_embedded_sheet_and_a_cp1252_sheet(catalog: Catalog, library: Path) -> None:
    flac = audiogen.make_audio(library / "album.flac", seconds=6.0)
    audio = FLAC(flac)
    audio["CUESHEET"] = (
        'FILE "whatever.wav" WAVE\nTRACK 01 AUDIO\nTITLE "Side A"\nINDEX 01 00:00:00\n'
        'TRACK 02 AUDIO\nTITLE "Side B"\nINDEX 01 00:03:00\n'
    )
    audio.save()
    audiogen.make_audio(library / "set.mp3", seconds=2.0)
    (library / "set.cue").write_bytes(sheets.cp1252_sheet("set.mp3"))
    await scan(catalog, library)
    await read(catalog)
    [embedded] = await tracklists_of(catalog, flac)
    assert embedded.source == "embedded_cue"
    assert [(s.entry.title, s.entry.start) for s in embedded.entries] == [
        ("Side A", 0.0),
        ("Side B", 3.0),
    ]
    [ansi] = await tracklists_of(catalog, library / "set.mp3")
    assert (ansi.encoding, ansi.performer, ansi.entries[0].entry.title) == (
        "cp1252",
        "Beyoncé & Café",
        "Déjà vu",
    )
    counts = await catalog.tracklist_counts()
    assert counts["tracklists"] == {"cue": 1, "embedded_cue": 1}
    assert sum(counts["entries"].values()) == 3
