"""The musical key value object (tracktiond.media.keys): notations, the wheel, relations."""

from __future__ import annotations

import dataclasses
import re

import pytest

from tracktiond.media.keys import MODES, NOTATIONS, Key, Notation, parse_mode, pitch_class

# The Camelot chart written out by hand (not derived from the code under test):
# Camelot, Open Key, short name, name, tonic pitch class.
CHART: tuple[tuple[str, str, str, str, int], ...] = (
    ("1A", "6m", "G#m", "G# minor", 8),
    ("2A", "7m", "Ebm", "Eb minor", 3),
    ("3A", "8m", "Bbm", "Bb minor", 10),
    ("4A", "9m", "Fm", "F minor", 5),
    ("5A", "10m", "Cm", "C minor", 0),
    ("6A", "11m", "Gm", "G minor", 7),
    ("7A", "12m", "Dm", "D minor", 2),
    ("8A", "1m", "Am", "A minor", 9),
    ("9A", "2m", "Em", "E minor", 4),
    ("10A", "3m", "Bm", "B minor", 11),
    ("11A", "4m", "F#m", "F# minor", 6),
    ("12A", "5m", "C#m", "C# minor", 1),
    ("1B", "6d", "B", "B major", 11),
    ("2B", "7d", "F#", "F# major", 6),
    ("3B", "8d", "Db", "Db major", 1),
    ("4B", "9d", "Ab", "Ab major", 8),
    ("5B", "10d", "Eb", "Eb major", 3),
    ("6B", "11d", "Bb", "Bb major", 10),
    ("7B", "12d", "F", "F major", 5),
    ("8B", "1d", "C", "C major", 0),
    ("9B", "2d", "G", "G major", 7),
    ("10B", "3d", "D", "D major", 2),
    ("11B", "4d", "A", "A major", 9),
    ("12B", "5d", "E", "E major", 4),
)
ALL_KEYS = [Key(tonic, mode) for mode in MODES for tonic in range(12)]


def test_the_chart_is_the_24_keys() -> None:
    assert len({(row[4], row[3].split()[1]) for row in CHART}) == 24
    assert len(ALL_KEYS) == len(set(ALL_KEYS)) == 24


@pytest.mark.parametrize(("camelot", "open_key", "short", "name", "tonic"), CHART)
def test_every_key_of_the_chart_in_every_notation(
    camelot: str, open_key: str, short: str, name: str, tonic: int
) -> None:
    key = Key(tonic, "minor" if camelot.endswith("A") else "major")
    assert (key.camelot, key.open_key, key.short(), key.name) == (camelot, open_key, short, name)
    assert key.camelot_number == int(camelot[:-1])
    assert key.tonic_name == short.removesuffix("m")
    assert [key.format(n) for n in NOTATIONS] == [short, camelot, open_key]
    readings = [short, name, camelot, open_key, camelot.lower(), open_key.upper(), name.upper()]
    readings += [f"0{camelot}" if len(camelot) == 2 else camelot, name.replace("b", "♭")]
    readings += [name.replace("#", "♯"), f"  {short} ", short.lower(), name.replace("minor", "min")]
    for text in readings:
        assert Key.parse(text) == key, text
    assert Key.from_camelot(int(camelot[:-1]), camelot[-1]) == key
    assert Key.from_open_key(int(open_key[:-1]), open_key[-1]) == key
    assert Key.of(key.tonic_name, key.mode) == key
    assert str(key) == name


@pytest.mark.parametrize("key", ALL_KEYS, ids=str)
@pytest.mark.parametrize("notation", NOTATIONS)
def test_every_key_round_trips_through_every_notation(key: Key, notation: Notation) -> None:
    text = key.format(notation)
    assert Key.parse_notation(text) == (key, notation)
    assert Key.parse(key.name) == key
    assert Key.of(key.tonic_name, key.mode) == key


def test_known_pairs() -> None:
    assert Key.parse("8A") == Key.parse("A minor") == Key.parse("1m") == Key(9, "minor")
    assert Key.parse("8B") == Key.parse("C major") == Key.parse("1d") == Key(0, "major")
    assert Key.parse("A minor").relative() == Key.parse("C major")
    assert Key.parse("C major").relative() == Key.parse("A minor")


@pytest.mark.parametrize("key", ALL_KEYS, ids=str)
def test_relative_and_adjacent_keys_on_the_wheel(key: Key) -> None:
    relative = key.relative()
    assert relative.mode != key.mode and relative.relative() == key
    assert relative.camelot_number == key.camelot_number
    down, up = key.adjacent()
    assert {down.mode, up.mode} == {key.mode}
    assert (up.camelot_number - key.camelot_number) % 12 == 1
    assert (key.camelot_number - down.camelot_number) % 12 == 1
    assert up.tonic == (key.tonic + 7) % 12  # a fifth up
    assert key.neighbours() == (down, up, relative)
    assert key.step(12) == key.step(0) == key
    assert key.step(5).step(-5) == key


def test_the_neighbours_of_8a() -> None:
    key = Key.parse("8A")
    assert [k.camelot for k in key.adjacent()] == ["7A", "9A"]
    assert {k.camelot for k in key.neighbours()} == {"7A", "9A", "8B"}


@pytest.mark.parametrize(
    ("code", "down", "up"),
    [("12A", "11A", "1A"), ("1A", "12A", "2A"), ("12B", "11B", "1B"), ("1B", "12B", "2B")],
)
def test_the_wheel_wraps_around(code: str, down: str, up: str) -> None:
    assert [k.camelot for k in Key.parse(code).adjacent()] == [down, up]


def test_open_key_wraps_around_too() -> None:
    assert Key.parse("12d").step(1).open_key == "1d"
    assert Key.parse("1m").step(-1).open_key == "12m"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Am", "8A"),
        ("A min", "8A"),
        ("Amin", "8A"),
        ("a minor", "8A"),
        ("A Minor", "8A"),
        ("A  minor", "8A"),
        ("A moll", "8A"),
        ("C dur", "8B"),
        ("AM", "11B"),  # a capital M is how some taggers write major
        ("A maj", "11B"),
        ("A major", "11B"),
        ("08A", "8A"),
        ("8 A", "8A"),
        ("8a", "8A"),
        ("012B", "12B"),
        ("1m", "8A"),  # Open Key 1m is A minor
        ("1d", "8B"),
        ("01d", "8B"),
        ("12d", "7B"),
        ("6m", "1A"),
        ("Bbm", "3A"),
        ("B♭ minor", "3A"),
        ("A#m", "3A"),
        ("A# minor", "3A"),
        ("A♯m", "3A"),
        ("E♭", "5B"),
        ("Gb", "2B"),  # enharmonic spellings land on the same position
        ("Gb major", "2B"),
        ("F#", "2B"),
        ("Cb", "1B"),
        ("B#", "8B"),
        ("E#m", "4A"),
        ("Fb", "12B"),
        ("bm", "10A"),
        ("bb", "6B"),
        ("EBM", "5B"),  # E flat, and the capital M again
    ],
)
def test_spellings_found_in_real_tags(text: str, code: str) -> None:
    assert Key.parse(text).camelot == code


@pytest.mark.parametrize(
    ("text", "notation"),
    [("Am", "standard"), ("A minor", "standard"), ("8A", "camelot"), ("1m", "openkey")],
)
def test_the_notation_a_key_was_written_in(text: str, notation: Notation) -> None:
    assert Key.parse_notation(text) == (Key(9, "minor"), notation)


@pytest.mark.parametrize(
    "text",
    ["", " ", "H", "Hm", "X minor", "13A", "0A", "8C", "0m", "13d", "Off key", "o", "?", "C##",
     "Am/8A", "8A, Am", "A dorian", "1.0A", "A#b", "Amm", "minor"],
)  # fmt: skip
def test_text_that_is_not_a_key_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        Key.parse(text)


@pytest.mark.parametrize(
    ("a", "b"),
    [("Db", "C#"), ("D♭", "C♯"), ("B#", "C"), ("Cb", "B"), ("E#", "F"), ("Fb", "E"), ("Gb", "F#")],
)
def test_enharmonics_are_one_key(a: str, b: str) -> None:
    for mode in MODES:
        assert Key.of(a, mode) == Key.of(b, mode)
        assert Key.of(a, mode).name == Key.of(b, mode).name


def test_names_use_the_usual_spelling_and_short_can_keep_another() -> None:
    assert Key.of("C#", "major").name == "Db major"
    assert Key.of("Db", "minor").name == "C# minor"
    assert Key.of("ab", "MIN").short() == "G#m"
    assert Key.of(" Bb ", "Minor").name == "Bb minor"
    assert Key.of("Bb", "minor").short("A#") == "A#m"
    assert Key.of("Ab", "minor").short("a♭") == "Abm"
    assert Key.of("Eb", "major").short("E♭") == "Eb"
    with pytest.raises(ValueError, match="does not spell"):
        Key.of("Bb", "minor").short("A")


def test_tonics_and_modes() -> None:
    tonics = {"C": 0, "c#": 1, "Db": 1, "D♭": 1, "Cb": 11, "B#": 0, " E ": 4}
    assert {t: pitch_class(t) for t in tonics} == tonics
    for bad in ("H", "", "C$", "Cx", "C##", "A #", "AB"):
        with pytest.raises(ValueError, match="not a note name"):
            pitch_class(bad)
    modes = {"major": "major", "MAJ": "major", " minor ": "minor", "Min": "minor"}
    assert {m: parse_mode(m) for m in modes} == modes
    for bad in ("dorian", "", "m", "moll"):
        with pytest.raises(ValueError, match="mode must be"):
            parse_mode(bad)
    with pytest.raises(ValueError):
        Key.of("A", "dorian")
    with pytest.raises(ValueError):
        Key.of("H", "minor")


def test_invalid_values_are_refused() -> None:
    for tonic, mode in ((12, "minor"), (-1, "major"), (1, "dorian"), (True, "major")):
        with pytest.raises(ValueError):
            Key(tonic, mode)  # type: ignore[arg-type]
    for number, letter in ((13, "A"), (0, "B"), (5, "C")):
        with pytest.raises(ValueError, match="not a Camelot key"):
            Key.from_camelot(number, letter)
    for number, letter in ((13, "m"), (0, "d"), (5, "A")):
        with pytest.raises(ValueError, match="not an Open Key code"):
            Key.from_open_key(number, letter)
    with pytest.raises(ValueError, match="notation"):
        Key(0, "major").format("traktor")  # type: ignore[arg-type]


def test_keys_are_values() -> None:
    assert len({Key.parse("Am"), Key.parse("8A"), Key.parse("1m"), Key(9, "minor")}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        Key(0, "major").tonic = 1  # type: ignore[misc]
