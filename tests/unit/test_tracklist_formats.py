"""Pasted lists (trackparse behind the pre-pass), match scores, and the writers: cue flavours,
rekordbox XML (read back with pyrekordbox), Traktor NML and M3U8 (read back with the standard
library's XML parser)."""

from __future__ import annotations

import io
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support import sheets
from tracktiond.catalog.tracklistvalues import (
    EntryDraft,
    EntryMatch,
    LibraryTrack,
    StoredEntry,
    StoredTracklist,
)
from tracktiond.media.cuesheet import parse_cue
from tracktiond.tracklists.cuewrite import CueWriteError, build_cue, encode_cue
from tracktiond.tracklists.exportdata import Export, SetExport
from tracktiond.tracklists.match import score
from tracktiond.tracklists.pasted import parse_pasted
from tracktiond.tracklists.playlists import m3u8_text, playlist_names
from tracktiond.tracklists.rekordbox import location, rekordbox_text
from tracktiond.tracklists.sheets import drafts_from_sheet
from tracktiond.tracklists.traktor import nml_dir, traktor_text


def test_pasted_1001tracklists_shapes() -> None:
    draft = parse_pasted(sheets.pasted_1001(), duration=4000.0)
    got = [
        (e.start, e.artist, e.title, e.version, e.label, e.unknown, e.played_with)
        for e in draft.entries
    ]
    assert got == [
        (0.0, "Artist One", "First Track", "Extended Mix", "DRUMCODE", False, None),
        (270.0, "Artist Two feat. Guest", "Second Track", None, "KOMPAKT", False, None),
        # "02 - 09:15 - …": the position goes, the time is the time
        (555.0, "Artist Three", "Third Track", None, None, False, None),
        # a time at the end of the line
        (842.0, "Artist Four", "Fourth Track", "Someone Remix", None, False, None),
        (1180.0, None, None, None, None, True, None),  # ID - ID
        # "A - X vs. B - Y": two entries, the second played with the first; "w/": with it too
        (1450.0, "Artist Five", "Fifth Track", None, None, False, None),
        (None, "Artist Six", "Sixth Track", None, None, False, 6),
        (None, "Artist Seven", "Acapella Seven", None, None, False, 6),
        (3753.0, "Artist Eight", "Late Track", None, "Afterlife Records", False, None),
    ]
    # each timed entry ends where the next one starts; the last one at the end of the audio
    assert [e.end for e in draft.entries if e.start is not None] == [
        270.0, 555.0, 842.0, 1180.0, 1450.0, 3753.0, 4000.0,
    ]  # fmt: skip
    assert draft.format == "text" and draft.document == sheets.pasted_1001()


def test_pasted_times_out_of_order_are_warned_and_a_non_list_refused() -> None:
    draft = parse_pasted("00:00 A - One\n10:00 B - Two\n05:00 C - Three\n")
    assert any("out of order" in w for w in draft.warnings)
    with pytest.raises(ValueError, match="no line reads as"):
        parse_pasted("\n\nhttps://example.com\n")


def _track(title: str, artist: str, duration: float = 300.0) -> LibraryTrack:
    return LibraryTrack(uuid.uuid4(), f"/m/{title}.mp3", artist, title, duration)


def test_score_prefers_the_right_version_and_tolerates_spelling() -> None:
    entry = EntryDraft(1, 0.0, 240.0, "Ärtist & Friend", "Song", version="Someone Remix")
    remix = _track("Song (Someone Remix)", "Artist")
    original = _track("Song (Original Mix)", "Artist")
    other = _track("Another Song", "Artist")
    assert score(entry, remix) > score(entry, original) > score(entry, other)
    assert score(entry, remix) >= 0.85
    assert score(EntryDraft(1, artist="The Artist", title="Song"), _track("Song", "Artist")) == 1.0
    # the part played is much longer than the track: not that track
    long_played = EntryDraft(1, 0.0, 900.0, "Artist", "Song")
    assert score(long_played, _track("Song", "Artist", 120.0)) < 0.95


# ---- writers ------------------------------------------------------------------------------


def _stored(
    draft_entries: list[EntryDraft], matches: list[EntryMatch], **kw: object
) -> StoredTracklist:
    return StoredTracklist(
        id=uuid.uuid4(),
        recording_id=uuid.uuid4(),
        source=str(kw.get("source", "text")),
        version=1,
        created_at=datetime.now(UTC),
        superseded_at=None,
        origin=None,
        format=str(kw.get("format", "text")),
        title=str(kw.get("title", 'Live "at" the Warehouse')),
        performer="DJ Öne",
        encoding="utf-8",
        document=kw.get("document"),  # type: ignore[arg-type]
        warnings=(),
        entries=tuple(StoredEntry(e, m, None) for e, m in zip(draft_entries, matches, strict=True)),
    )


def _set_with(n: int, library: dict[uuid.UUID, LibraryTrack]) -> StoredTracklist:
    entries, matches = [], []
    for i in range(n):
        rec = uuid.uuid4()
        library[rec] = LibraryTrack(
            rec, f"/music/Tr ack {i}.mp3", f"A{i}", f"T{i}", 200.0, 124.0 + i % 3, "Am"
        )
        entries.append(EntryDraft(i + 1, start=i * 71.0, artist=f'A"{i}', title=f"T{i}"))
        matches.append(EntryMatch("matched", rec, 0.95))
    return _stored(entries, matches)


@pytest.mark.parametrize("flavour", ["standard", "cdj", "rekordbox", "kodi"])
def test_cue_flavours_parse_back_to_the_same_entries(flavour: str) -> None:
    library: dict[uuid.UUID, LibraryTrack] = {}
    tracklist = _set_with(120, library)
    written = build_cue(tracklist, "/music/sets/set.flac", library, flavour=flavour)
    sheet = parse_cue(written.text).sheet
    [draft] = drafts_from_sheet(
        sheet, source="cue", origin=None, encoding=None, document=None
    ).values()
    assert [(e.start, e.artist, e.title) for e in draft.entries] == [
        (s.entry.start, s.entry.artist, s.entry.title) for s in tracklist.entries
    ]
    assert sheet.files[0].name == "set.flac" and sheet.title == 'Live "at" the Warehouse'
    assert "100:" in written.text  # minutes past 99, no cap at 99 tracks
    rems = {r.key: r.value for r in sheet.tracks[0].rems}
    if flavour == "standard":
        assert (rems["BPM"], rems["KEY"], rems["CAMELOT"]) == ("124", "Am", "8A")
    elif flavour == "rekordbox":
        assert (rems["BPM"], rems["KEY"]) == ("124", "8A")
    else:
        assert "BPM" not in rems and "KEY" not in rems
    capped = any("at most 99" in w for w in written.warnings)
    assert capped == (flavour in ("cdj", "rekordbox"))
    assert ("\r\n" in written.text) == (flavour in ("cdj", "rekordbox"))


def test_cue_writer_never_invents_times_and_encodes_as_asked() -> None:
    entries = [EntryDraft(1, 0.0, None, "A", "One"), EntryDraft(2, None, None, "B", "Two")]
    matches = [EntryMatch("unmatched"), EntryMatch("unmatched")]
    written = build_cue(_stored(entries, matches), "/s/set.mp3", {})
    assert len(written.sheet.tracks) == 1
    assert written.warnings == ("entry 2 (B - Two) has no start time: left out",)
    assert written.sheet.files[0].type == "MP3"
    assert encode_cue(written.text, "utf-8-bom").startswith(b"\xef\xbb\xbf")
    assert not encode_cue(written.text, "utf-8").startswith(b"\xef\xbb\xbf")
    with pytest.raises(CueWriteError, match="cannot hold"):
        encode_cue('TITLE "Привет"', "legacy", legacy="cp1252")
    with pytest.raises(CueWriteError, match="nothing to write"):
        build_cue(_stored(entries[1:], matches[1:]), "/s/set.mp3", {})


def test_a_sheet_is_written_from_its_own_sheet_keeping_rems_and_sources() -> None:
    text = sheets.rekordbox()
    sheet = parse_cue(text).sheet
    [draft] = drafts_from_sheet(
        sheet, source="cue", origin=None, encoding=None, document=text
    ).values()
    tracklist = _stored(
        list(draft.entries), [EntryMatch("unmatched")] * 2, format="cue", document=text
    )
    written = build_cue(tracklist, "/rec/REC001 renamed.wav", {})
    again = parse_cue(written.text).sheet
    assert again.files[0].name == "REC001 renamed.wav"
    assert [t.source for t in again.tracks] == [t.source for t in sheet.tracks]


def _export(tmp_path: Path) -> Export:
    library: dict[uuid.UUID, LibraryTrack] = {}
    tracklist = _set_with(3, library)
    set_rec = LibraryTrack(
        tracklist.recording_id, str(tmp_path / "sets/My Set & Co.flac"), None, None, 3600.0
    )
    library[set_rec.recording_id] = set_rec
    return Export(library, [SetExport(set_rec, tracklist)])


def test_rekordbox_xml_reads_back_with_locations_bpm_keys_and_a_playlist(tmp_path: Path) -> None:
    from pyrekordbox.rbxml import RekordboxXml

    export = _export(tmp_path)
    path = tmp_path / "rekordbox.xml"
    path.write_text(rekordbox_text(export), encoding="utf-8")
    xml = RekordboxXml(str(path))
    tracks = {t["Location"]: t for t in xml.get_tracks()}
    # pyrekordbox gives Location without "file://localhost/"
    assert "music/Tr ack 0.mp3" in tracks
    first = tracks["music/Tr ack 0.mp3"]
    assert (first["AverageBpm"], first["Tonality"], first["Artist"]) == (124.0, "Am", "A0")
    raw = {t.get("Location") for t in ET.parse(path).getroot().iter("TRACK") if t.get("Location")}
    assert "file://localhost/music/Tr%20ack%200.mp3" in raw
    assert location("/a/ü b.mp3") == "file://localhost/a/%C3%BC%20b.mp3"
    # (pyrekordbox looks playlists up by an XPath that a quote in the name breaks)
    [node] = [n for n in ET.parse(path).getroot().iter("NODE") if n.get("Type") == "1"]
    assert node.get("Name") == 'Live "at" the Warehouse'
    ids = {t["Location"]: t["TrackID"] for t in xml.get_tracks()}
    assert [int(t.get("Key", "0")) for t in node] == [
        ids[f"music/Tr ack {i}.mp3"] for i in range(3)
    ]
    marks = [m for m in ET.parse(path).getroot().iter("POSITION_MARK")]
    assert [m.get("Start") for m in marks] == ["0.000", "71.000", "142.000"]


def test_traktor_nml_and_m3u8(tmp_path: Path) -> None:
    export = _export(tmp_path)
    root = ET.fromstring(traktor_text(export))
    entries = root.findall("./COLLECTION/ENTRY")
    assert len(entries) == 4
    loc = next(e for e in entries if e.get("TITLE") == "T1").find("LOCATION")
    assert loc is not None and (loc.get("DIR"), loc.get("FILE")) == ("/:music/:", "Tr ack 1.mp3")
    keyed = next(e for e in entries if e.get("TITLE") == "T1")
    tempo, key = keyed.find("TEMPO"), keyed.find("MUSICAL_KEY")
    assert tempo is not None and float(tempo.get("BPM", "0")) == 125.0
    assert key is not None and key.get("VALUE") == "21"  # A minor: 9 + 12
    cues = [c.get("START") for c in root.iter("CUE_V2")]
    assert cues == ["0.000000", "71000.000000", "142000.000000"]
    keys = [k.get("KEY") for k in root.iter("PRIMARYKEY")]
    assert keys == [f"/:music/:Tr ack {i}.mp3" for i in range(3)]
    assert nml_dir("/a/b/c.mp3") == "/:a/:b/:"
    text = m3u8_text(export, export.sets[0])
    assert text.splitlines()[:4] == ["#EXTM3U", '#PLAYLIST:Live "at" the Warehouse',
                                     "#EXTINF:200,A0 - T0", "/music/Tr ack 0.mp3"]  # fmt: skip
    assert playlist_names(export) == ["Live _at_ the Warehouse.m3u8"]
    buffer = io.StringIO(text)
    assert sum(1 for line in buffer if line.startswith("/")) == 3
