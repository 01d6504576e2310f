"""The pattern language, safe names and the cue-sheet FILE rewrite: pure functions, no disk
beyond a temporary directory for the move primitives."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

import pytest

from tracktiond.errors import ConfigError
from tracktiond.organise import cuefile
from tracktiond.organise.fields import FileFacts
from tracktiond.organise.moves import TargetExists, move_file, rename_noreplace
from tracktiond.organise.names import NameRules, UnsafeName, clean, file_name, target_path
from tracktiond.organise.patterns import MissingField, PatternError, compile_pattern


def facts(**tags: str) -> FileFacts:
    return FileFacts("/m/in/x.flac", "flac", tags)


# -- patterns -----------------------------------------------------------------------------------


def test_fields_fallbacks_padding_truncation_and_optional_segments() -> None:
    p = compile_pattern('{albumartist|artist}/{album|"Unknown"}/[{disc}-]{track:02} {title:5}')
    tags = {"artist": "A", "title": "Longtitle", "tracknumber": "3/12"}
    assert p.components(facts(**tags)) == ["A", "Unknown", "03 Longt"]
    assert p.components(facts(**tags, discnumber="2/2", album="B")) == ["A", "B", "2-03 Longt"]


def test_a_required_field_without_value_names_the_field() -> None:
    p = compile_pattern("{artist}/{album}/{title}")
    with pytest.raises(MissingField, match=r"\{album\} has no value"):
        p.components(facts(artist="A", title="T"))


def test_modifiers_and_analysis_fields() -> None:
    p = compile_pattern("{artist:initial}/{camelot} {bpm} {key}/{title:upper}")
    meta = {"artist": "björk", "title": "x", "analysis.key": "A minor", "analysis.bpm": "127.6"}
    assert p.components(facts(**meta)) == ["B", "8A 128 Am", "X"]


def test_unknown_field_is_a_config_error_with_the_column() -> None:
    with pytest.raises(PatternError) as err:
        compile_pattern("{artist}/{albm}/{title}", "t.toml: [organise] pattern")
    assert isinstance(err.value, ConfigError)
    assert err.value.column == 11  # where the name starts
    message = str(err.value)
    assert "t.toml: [organise] pattern" in message and "column 11" in message
    assert "{album}" in message  # the suggestion


@pytest.mark.parametrize(
    ("pattern", "column", "fragment"),
    [
        ("{artist", 1, "unclosed {"),
        ("{artist}/[{album}", 17, "unclosed optional"),
        ("{artist:9x}", 9, "unknown modifier"),
        ("/x/{title}", 1, "cannot start with /"),
        ("{title}/", 8, "cannot end with /"),
        ("a//{title}", 3, "empty directory level"),
        ("{title}}", 8, "unmatched }"),
        ("[abc]{title}", 1, "needs a {field}"),
        ("{__class__}", 2, "unknown field"),
        ("{title.__dict__}", 2, "unknown field"),
    ],
)
def test_syntax_errors_name_their_column(pattern: str, column: int, fragment: str) -> None:
    with pytest.raises(PatternError) as err:
        compile_pattern(pattern)
    assert err.value.column == column and fragment in str(err.value)


def test_literal_braces_and_brackets() -> None:
    assert compile_pattern("[[{title}]] {{x}}").components(facts(title="T")) == ["[T] {x}"]


# -- names --------------------------------------------------------------------------------------


def test_transliteration_happens_before_sanitising() -> None:
    rules = NameRules(transliterate=True)
    assert clean("½ Björk: 東京", rules) == "1_2 Bjork: DongJing"
    assert clean("AC/DC", NameRules()) == "AC_DC"


def test_nfc_control_characters_leading_dot_and_whitespace() -> None:
    assert clean("e\u0301t\u00e9", NameRules()) == "\u00e9t\u00e9"
    assert clean("  .hidden\tname\n ", NameRules()) == "_hidden name"


def _clean_by_character(text: str) -> str:
    """Step 3 spelled out a character at a time (what clean's fast path must agree with)."""
    text = unicodedata.normalize("NFC", text)
    out = [
        " "
        if ch.isspace()
        else "_"
        if ch == "/" or ch == "\0" or unicodedata.category(ch) in ("Cc", "Cs")
        else ch
        for ch in text
    ]
    text = re.sub(r"\s+", " ", "".join(out)).strip()
    return ("_" + text[1:] if text.startswith(".") else text) or "_"


@pytest.mark.parametrize(
    "text",
    [
        "Plain Title",
        "  spaced   out  ",
        "AC/DC / Live",
        "/leading slash",
        ".hidden",
        " .hidden after a space",
        "tab\there",
        "no\u00a0break space",  # white space that is not printable: the slow path
        "line\u2028separator",
        "nul\0byte",
        "bell\x07",
        "surrogate \udce9",
        "e\u0301 accent",
        "東京 2001 ½",
        "",
        "   ",
    ],
)
def test_cleaning_agrees_with_the_rules_character_by_character(text: str) -> None:
    assert clean(text, NameRules()) == _clean_by_character(text)


def test_target_path_under_the_filesystem_root_or_a_root_with_a_slash() -> None:
    rules = NameRules()
    assert target_path("/", ["A", "t"], "flac", rules) == "/A/t.flac"
    assert target_path("/lib/", ["A", "B/C", "t"], "flac", rules) == "/lib/A/B_C/t.flac"


def test_portable_profile_reserved_names_and_characters() -> None:
    rules = NameRules(portable=True)
    assert clean('What? "Yes": <no>|*', rules) == "What_ _Yes__ _no___"
    assert file_name("CON", "flac", rules) == "CON_.flac"
    assert file_name("trailing dot. ", "mp3", rules) == "trailing dot.mp3"


def test_only_the_stem_is_cut_in_bytes_and_the_extension_stays() -> None:
    rules = NameRules(max_name_bytes=255)
    name = file_name("é" * 300, "flac", rules)
    assert name.endswith(".flac")
    assert len(name.encode()) <= 255 - len(".accurip") + len(".flac")
    # room for the longest sidecar suffix: the .accurip beside it still fits
    assert len((name[: -len(".flac")] + ".accurip").encode()) <= 255


def test_a_cut_never_separates_a_letter_from_its_accent() -> None:
    # q + combining dot below has no precomposed form: NFC keeps it as two code points
    name = file_name("ab" + "q\u0323" * 20, "m", NameRules(max_name_bytes=20))
    stem = name[: -len(".m")]
    assert len(name.encode()) <= 20
    assert not stem.endswith("q") and stem.endswith("\u0323")


def test_long_paths_are_shortened_level_by_level_and_refused_when_impossible() -> None:
    rules = NameRules(portable=True)  # 255 characters for the whole path
    path = target_path("/lib", ["A" * 200, "B" * 200, "T" * 200], "flac", rules)
    assert len(path) <= 255 and path.endswith(".flac")
    with pytest.raises(UnsafeName, match="too long"):
        target_path("/" + "r" * 250, ["a" * 50, "b"], "flac", rules)


def test_collision_number_goes_before_the_extension() -> None:
    assert file_name("Song", "flac", NameRules(), number=2) == "Song (2).flac"


# -- cue sheets ---------------------------------------------------------------------------------


def test_file_lines_rewritten_and_every_other_byte_kept() -> None:
    raw = (
        b'\xef\xbb\xbfREM X\r\nFILE "old name.wav" WAVE\r\n  TRACK 01 AUDIO\r\nFILE other.flac WAVE'
    )
    out = cuefile.rewrite(raw, {"old name.wav": "01 New.wav", "other.flac": "sub/Other.flac"})
    assert out == (
        b'\xef\xbb\xbfREM X\r\nFILE "01 New.wav" WAVE\r\n  TRACK 01 AUDIO\r\n'
        b'FILE "sub/Other.flac" WAVE'
    )
    assert cuefile.file_references(raw) == ["old name.wav", "other.flac"]


def test_cp1252_sheet_keeps_its_encoding_and_refuses_what_it_cannot_hold() -> None:
    raw = 'FILE "Björk.wav" WAVE\n'.encode("cp1252")
    assert cuefile.rewrite(
        raw, {"Björk.wav": "Sigur Rós.wav"}
    ) == 'FILE "Sigur Rós.wav" WAVE\n'.encode("cp1252")
    with pytest.raises(cuefile.CueError, match="cp1252"):
        cuefile.rewrite(raw, {"Björk.wav": "東京.wav"})


# -- moves --------------------------------------------------------------------------------------


def test_no_replace_rename_never_overwrites(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"A")
    b.write_bytes(b"B")
    with pytest.raises(TargetExists):
        rename_noreplace(str(a), str(b))
    assert a.read_bytes() == b"A" and b.read_bytes() == b"B"
    assert rename_noreplace(str(a), str(tmp_path / "c")) in ("rename", "link")
    assert not a.exists() and (tmp_path / "c").read_bytes() == b"A"


def test_case_only_rename_goes_through_a_temporary_name(tmp_path: Path) -> None:
    src = tmp_path / "song.flac"
    src.write_bytes(b"x")
    method = move_file(
        str(src), str(tmp_path / "Song.flac"), temporary=str(tmp_path / ".t"), case_only=True
    )
    assert method == "case"
    assert os.listdir(tmp_path) == ["Song.flac"]
