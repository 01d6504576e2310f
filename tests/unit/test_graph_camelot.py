"""Keys on the Camelot wheel and tempo matching (tracktiond.graph.camelot): pure unit tests."""

from __future__ import annotations

import pytest

from tracktiond.analysis import keys
from tracktiond.graph.camelot import (
    CamelotKey,
    KeyRelation,
    bpm_windows,
    compatible_keys,
    parse_key,
    tempo_match,
)

# The Camelot chart, written out by hand (not derived from the code under test).
CHART = {
    "1A": ("G#m", "G# minor"),
    "2A": ("D#m", "Eb minor"),
    "3A": ("A#m", "Bb minor"),
    "4A": ("Fm", "F minor"),
    "5A": ("Cm", "C minor"),
    "6A": ("Gm", "G minor"),
    "7A": ("Dm", "D minor"),
    "8A": ("Am", "A minor"),
    "9A": ("Em", "E minor"),
    "10A": ("Bm", "B minor"),
    "11A": ("F#m", "F# minor"),
    "12A": ("C#m", "C# minor"),
    "1B": ("B", "B major"),
    "2B": ("F#", "F# major"),
    "3B": ("Db", "Db major"),
    "4B": ("Ab", "Ab major"),
    "5B": ("Eb", "Eb major"),
    "6B": ("Bb", "Bb major"),
    "7B": ("F", "F major"),
    "8B": ("C", "C major"),
    "9B": ("G", "G major"),
    "10B": ("D", "D major"),
    "11B": ("A", "A major"),
    "12B": ("E", "E major"),
}


@pytest.mark.parametrize(("code", "short", "name"), [(c, s, n) for c, (s, n) in CHART.items()])
def test_every_key_of_the_chart_parses_from_each_notation(code: str, short: str, name: str) -> None:
    key = parse_key(short)
    assert key is not None and key.code == code
    assert key.name == name
    assert parse_key(name) == key
    assert parse_key(code) == key
    assert parse_key(code.lower()) == key
    assert parse_key(key.open_key) == key


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Am", "8A"),
        ("A min", "8A"),
        ("Amin", "8A"),
        ("a minor", "8A"),
        ("A Minor", "8A"),
        ("A moll", "8A"),
        ("AM", "11B"),  # a capital M is how some taggers write major
        ("A maj", "11B"),
        ("08A", "8A"),
        ("8 A", "8A"),
        ("1m", "8A"),  # Open Key 1m is A minor
        ("1d", "8B"),
        ("12d", "7B"),
        ("6m", "1A"),
        ("Bbm", "3A"),
        ("B♭ minor", "3A"),
        ("A#m", "3A"),
        ("E♭", "5B"),
        ("Gb", "2B"),  # enharmonic spellings land on the same position
        ("F#", "2B"),
        ("Cb", "1B"),
        ("E#m", "4A"),
        ("bm", "10A"),
        ("Am/8A", "8A"),
        (" 8A, Am ", "8A"),
    ],
)
def test_spellings_found_in_real_tags(text: str, code: str) -> None:
    key = parse_key(text)
    assert key is not None, text
    assert key.code == code, text


@pytest.mark.parametrize("text", ["", None, "13A", "0A", "8C", "H", "X minor", "Off key", "o", "?"])
def test_unrecognisable_keys_are_none(text: str | None) -> None:
    assert parse_key(text) is None


def test_invalid_positions_are_refused() -> None:
    with pytest.raises(ValueError):
        CamelotKey(13, "A")
    with pytest.raises(ValueError):
        CamelotKey(5, "C")


def test_compatible_keys_are_same_relative_and_one_step_each_way() -> None:
    assert compatible_keys(CamelotKey(8, "A")) == {
        "8A": KeyRelation.SAME,
        "8B": KeyRelation.RELATIVE,
        "7A": KeyRelation.ADJACENT,
        "9A": KeyRelation.ADJACENT,
    }


def test_the_wheel_wraps_around() -> None:
    assert set(compatible_keys(CamelotKey(12, "B"))) == {"12B", "12A", "11B", "1B"}
    assert set(compatible_keys(CamelotKey(1, "A"))) == {"1A", "1B", "12A", "2A"}


def test_relations_rank_same_then_relative_then_adjacent() -> None:
    assert KeyRelation.SAME < KeyRelation.RELATIVE < KeyRelation.ADJACENT


def test_bpm_windows_cover_same_half_and_double_tempo() -> None:
    windows = bpm_windows(128.0, 0.06)
    assert windows == [
        pytest.approx((120.32, 135.68)),
        pytest.approx((60.16, 67.84)),
        pytest.approx((240.64, 271.36)),
    ]
    with pytest.raises(ValueError):
        bpm_windows(0.0, 0.06)


@pytest.mark.parametrize(
    ("bpm", "tempo", "distance"),
    [
        (128.0, "same", 0.0),
        (135.0, "same", 7 / 128),
        (121.0, "same", 7 / 128),
        (64.0, "half", 0.0),
        (66.0, "half", 2 / 64),
        (256.0, "double", 0.0),
        (250.0, "double", 6 / 256),
    ],
)
def test_tempo_match_finds_the_closest_multiple(bpm: float, tempo: str, distance: float) -> None:
    match = tempo_match(128.0, bpm, 0.06)
    assert match is not None
    assert match.tempo == tempo
    assert match.distance == pytest.approx(distance)


@pytest.mark.parametrize("bpm", [136.0, 120.0, 100.0, 70.0, 59.0, 200.0, 280.0])
def test_tempo_outside_every_window_does_not_match(bpm: float) -> None:
    assert tempo_match(128.0, bpm, 0.06) is None


def test_window_boundaries_are_inclusive_and_agree_with_the_windows() -> None:
    low, high = bpm_windows(100.0, 0.05)[0]
    assert tempo_match(100.0, low, 0.05) is not None
    assert tempo_match(100.0, high, 0.05) is not None
    assert tempo_match(100.0, high + 1e-9, 0.05) is None


@pytest.mark.parametrize("mode", ["major", "minor"])
@pytest.mark.parametrize("tonic", ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"])
def test_agrees_with_the_analysis_key_notation(tonic: str, mode: str) -> None:
    # Analysis writes analysis.key / key_camelot / key_openkey with tracktiond.analysis.keys;
    # the graph must read each of them back to the same position and name.
    name = keys.key_name(tonic, mode)
    key = parse_key(name)
    assert key is not None
    assert key.code == keys.camelot(tonic, mode)
    assert key.open_key == keys.open_key(tonic, mode)
    assert key.name == name
    assert parse_key(keys.short_key(tonic, mode)) == key
    assert parse_key(keys.open_key(tonic, mode)) == key
