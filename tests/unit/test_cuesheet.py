"""The cue-sheet reader and writer on the sheets real software writes, and on generated ones.

Round trip (parse → render → parse gives the same sheet) over sheets generated from the grammar
(hypothesis), a fuzz test (any text: a sheet or a CueSheetError, never another exception), and
the shapes that break the PyPI libraries: Mixxx minutes past 99, rekordbox's FILE nested in each
TRACK (tab-indented), CUETools multi-file with INDEX 00 in the previous file, cp1252, a BOM,
150 tracks over three hours.
"""

from __future__ import annotations

import codecs

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import sheets
from tracktiond.errors import BadInput
from tracktiond.media.cuecheck import check_sheet
from tracktiond.media.cuesheet import (
    CueFile,
    CueIndex,
    CueSheet,
    CueSheetError,
    CueTrack,
    Rem,
    format_time,
    parse_cue,
    parse_time,
    render_cue,
)
from tracktiond.media.textcodec import decode_text


def roundtrip(sheet: CueSheet) -> CueSheet:
    return parse_cue(render_cue(sheet)).sheet


def test_mixxx_minutes_past_99_are_kept_exactly() -> None:
    sheet = parse_cue(sheets.mixxx()).sheet
    starts = [t.start.frames for t in sheet.tracks if t.start]
    assert starts == [0, (61 * 60 + 10) * 75 + 37, (125 * 60 + 30) * 75 + 12]
    assert sheet.tracks[0].performer == "Künstler Eins"
    assert "125:30:12" in render_cue(sheet)
    assert roundtrip(sheet) == sheet


def test_rekordbox_nested_file_is_the_tracks_source_not_a_new_file() -> None:
    sheet = parse_cue(sheets.rekordbox()).sheet
    assert [f.name for f in sheet.files] == ["REC001.wav"]
    assert [t.source for t in sheet.tracks] == [
        CueFile("/music/Alpha - First Song.mp3", "MP3"),
        CueFile("/music/Beta - Second Song.flac", "FLAC"),
    ]
    assert all(i.file == 0 for t in sheet.tracks for i in t.indexes)
    assert sheet.tracks[1].start == CueIndex(1, (4 * 60 + 12) * 75 + 30, 0)
    assert roundtrip(sheet) == sheet


def test_cuetools_multifile_keeps_each_index_in_its_file() -> None:
    sheet = parse_cue(sheets.cuetools_multifile()).sheet
    assert [f.name for f in sheet.files] == [
        "01 - Intro.flac",
        "02 - Second.flac",
        "03 - Third.flac",
    ]
    second = sheet.tracks[1]
    # The gap before track 2 is at the end of file 1; the track itself starts file 2.
    assert second.indexes == [CueIndex(0, (3 * 60 + 58) * 75 + 40, 0), CueIndex(1, 0, 1)]
    # A FILE line after TRACK whose times start over is a new file, not a source.
    assert sheet.tracks[2].source is None and sheet.tracks[2].start == CueIndex(1, 0, 2)
    assert sheet.tracks[2].pregap == 150 and sheet.tracks[2].postgap == 75
    assert sheet.catalog == "0724384960650"
    assert [r.key for r in sheet.rems] == ["GENRE", "DATE", "DISCID", "COMMENT"]
    assert sheet.tracks[0].isrc == "GBAYE9900001" and sheet.tracks[0].flags == ("DCP",)
    assert check_sheet(sheet) == []
    assert roundtrip(sheet) == sheet


def test_150_tracks_over_three_hours_no_cap_and_rem_bpm() -> None:
    sheet = parse_cue(sheets.long_set()).sheet
    assert len(sheet.tracks) == 150
    assert sheet.tracks[-1].number == 150
    assert sheet.tracks[-1].start is not None and sheet.tracks[-1].start.frames == 149 * 72 * 75
    assert sheet.tracks[10].rems == [Rem("BPM", "121")]
    assert roundtrip(sheet) == sheet


def test_cp1252_is_decoded_by_rule_not_by_guess() -> None:
    decoded = decode_text(sheets.cp1252_sheet())
    assert decoded.encoding == "cp1252" and not decoded.guessed
    sheet = parse_cue(decoded.text).sheet
    assert sheet.performer == "Beyoncé & Café" and sheet.title == "Señor – Noël"
    assert sheet.tracks[0].title == "Déjà vu"
    assert sheet.files == [CueFile("set.mp3", "MP3")]


def test_a_bom_says_utf8_and_the_legacy_page_is_configurable() -> None:
    decoded = decode_text(sheets.bom_sheet())
    assert (decoded.encoding, decoded.bom) == ("utf-8", True)
    assert parse_cue(decoded.text).sheet.title == "Ünïcödé"
    cyrillic = 'TITLE "Привет"\nTRACK 01 AUDIO\nINDEX 01 00:00:00\n'.encode("cp1251")
    assert decode_text(cyrillic, legacy="cp1251").text.startswith('TITLE "Привет"')
    assert decode_text(cyrillic, override="koi8_r").encoding == "koi8-r"
    with pytest.raises(BadInput, match="NUL"):
        decode_text(b"TITLE \x00\x00")
    with pytest.raises(BadInput, match="unknown encoding"):
        decode_text(b"x", override="no-such-codec")
    utf16 = codecs.BOM_UTF16_LE + 'TITLE "x"'.encode("utf-16-le")
    assert decode_text(utf16).text == 'TITLE "x"'


def test_tolerated_input() -> None:
    text = (
        "; a comment\n"
        "// another\n"
        "rem genre House\n"
        "\tfile set.wav wave\n"
        "  track 1 audio\n"
        '\ttitle "Say \\"Hi\\" now"\n'
        '\tperformer "The "Quoted" Ones"\n'
        "\t\tindex 1 00:02:00\r\n"
        "\tREM\n"
        "\tSOMETHING new here\n"
    )
    sheet = parse_cue(text).sheet
    track = sheet.tracks[0]
    assert sheet.rems == [Rem("genre", "House")]
    assert sheet.files == [CueFile("set.wav", "wave")]
    assert track.title == 'Say "Hi" now'
    assert track.performer == 'The "Quoted" Ones'
    assert track.rems == [Rem("", "")]
    assert track.other == [("SOMETHING", "new here")]
    assert roundtrip(sheet) == sheet


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("TRACK 01 AUDIO\nINDEX 01 1:2\n", "line 2: INDEX time '1:2' is not MM:SS:FF"),
        ("TRACK 01 AUDIO\nINDEX 01 00:60:00\n", "line 2: INDEX impossible time"),
        ("TRACK 01 AUDIO\nINDEX 01 00:00:75\n", "line 2: INDEX impossible time"),
        ("INDEX 01 00:00:00\n", "line 1: INDEX before any TRACK"),
        ("TRACK xx AUDIO\n", "line 1: TRACK number 'xx' is not a number"),
        ('TITLE "x"\nFILE "a.wav" WAVE\n', "not a cue sheet: it has no TRACK line"),
        ("00:00 Artist - Title\n", "not a cue sheet: line 1 starts with '00:00'"),
        ("TRACK 01 AUDIO\nINDEX 100 00:00:00\n", "line 2: INDEX number '100' is not 00-99"),
    ],
)
def test_what_is_refused_names_the_line_and_the_reason(text: str, reason: str) -> None:
    with pytest.raises(CueSheetError) as info:
        parse_cue(text)
    assert str(info.value).startswith(reason)


def test_validator_errors_and_warnings() -> None:
    text = (
        'FILE "a.wav" WAVE\n'
        "TRACK 01 AUDIO\nINDEX 01 00:00:00\n"
        "TRACK 02 AUDIO\nINDEX 00 01:00:00\nINDEX 01 01:05:00\n"
        "TRACK 03 AUDIO\nINDEX 01 00:30:00\n"
        "TRACK 04 AUDIO\nINDEX 01 09:00:00\n"
    )
    problems = check_sheet(parse_cue(text).sheet, duration=300.0)
    assert [(p.severity, p.track) for p in problems] == [
        ("warning", 2),  # a 5 s gap before track 2
        ("error", 3),  # starts before track 2
        ("error", 4),  # past the end of 5 minutes
    ]
    assert "5.0 s gap" in problems[0].message
    assert "starts before track 2" in problems[1].message
    assert "past the end of the audio (05:00:00)" in problems[2].message


def test_times() -> None:
    assert parse_time("125:30:12") == (125 * 60 + 30) * 75 + 12
    assert format_time((125 * 60 + 30) * 75 + 12) == "125:30:12"
    assert format_time(0) == "00:00:00"
    with pytest.raises(ValueError):
        format_time(-1)


# ---- generated sheets ----------------------------------------------------------------------

# Text a value may hold: printable, no line breaks (the writer turns control characters into
# spaces, so they are left out of the property), quotes and backslashes included.
_text = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\x85"),
    max_size=20,
)
_word = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789"), min_size=1, max_size=10)
_rem = st.builds(Rem, _word, _text.map(str.strip))
_opt = st.none() | _text.map(str.strip)


@st.composite
def generated_sheets(draw: st.DrawFn) -> CueSheet:
    n_files = draw(st.integers(0, 3))
    files = [CueFile(draw(_text.map(str.strip)) or "a.wav", draw(_word)) for _ in range(n_files)]
    sheet = CueSheet(
        rems=draw(st.lists(_rem, max_size=4)),
        catalog=draw(st.none() | _word),
        title=draw(_opt),
        performer=draw(_opt),
        songwriter=draw(_opt),
        files=files,
    )
    file_no = 0 if files else -1
    frames = 0
    for number in range(1, draw(st.integers(1, 25)) + 1):
        if files and file_no < n_files - 1 and draw(st.booleans()):
            file_no, frames = file_no + 1, 0  # a new file starts at 0
        indexes = []
        if draw(st.booleans()):
            frames += 1  # a pregap starts after the track before it
            indexes.append(CueIndex(0, frames, file_no))
            frames += draw(st.integers(0, 300))
        frames += draw(st.integers(1, 75 * 60 * 30))  # up to 30 minutes: minutes pass 99
        indexes.append(CueIndex(1, frames, file_no))
        source = None
        if files and draw(st.integers(0, 4)) == 0:
            source = CueFile(draw(_text.map(str.strip)) or "src.mp3", "MP3")
        sheet.tracks.append(
            CueTrack(
                number,
                title=draw(_opt),
                performer=draw(_opt),
                isrc=draw(st.none() | _word),
                flags=tuple(draw(st.lists(_word, max_size=2))),
                pregap=draw(st.none() | st.integers(0, 10_000)),
                indexes=indexes,
                rems=draw(st.lists(_rem, max_size=3)),
                source=source,
            )
        )
    return sheet


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generated_sheets())
def test_render_then_parse_gives_the_same_sheet(sheet: CueSheet) -> None:
    assert roundtrip(sheet) == sheet


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                ["TRACK 01 AUDIO", "INDEX 01 00:00:00", 'FILE "x" WAVE', "REM A b", 'TITLE "t"']
            ),
            st.text(max_size=40),
        ),
        max_size=30,
    )
)
def test_any_text_is_a_sheet_or_a_clear_refusal(lines: list[str]) -> None:
    text = "\n".join(lines)
    try:
        parsed = parse_cue(text)
    except CueSheetError as exc:
        assert str(exc)
        return
    # A sheet that passes the validator (every track has an INDEX, times in order: the sheets
    # tracklists are made of) renders and reads back to itself.
    if not any(p.severity == "error" for p in check_sheet(parsed.sheet)):
        assert roundtrip(parsed.sheet) == parsed.sheet
