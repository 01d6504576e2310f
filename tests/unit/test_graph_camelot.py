"""The harmonic and tempo rules of the mix suggestions (tracktiond.graph.camelot): unit tests.

Keys themselves are tested in test_keys.py.
"""

from __future__ import annotations

import pytest

from tracktiond.graph.camelot import (
    KeyRelation,
    bpm_windows,
    compatible_keys,
    read_key,
    tempo_match,
)
from tracktiond.media.keys import Key


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Am", "8A"),
        (" 8A ", "8A"),
        ("1m", "8A"),
        ("Am/8A", "8A"),
        (" 8A, Am ", "8A"),
        ("F#/Gb", "2B"),
    ],
)
def test_tag_values_are_read_in_any_notation_first_value_first(text: str, code: str) -> None:
    key = read_key(text)
    assert key is not None and key.camelot == code


@pytest.mark.parametrize("text", ["", None, " ", "/", "13A", "H", "X minor", "Off key", "o", "?"])
def test_values_that_name_no_key_read_as_none(text: str | None) -> None:
    assert read_key(text) is None


def test_compatible_keys_are_same_relative_and_one_step_each_way() -> None:
    assert compatible_keys(Key.parse("8A")) == {
        "8A": KeyRelation.SAME,
        "8B": KeyRelation.RELATIVE,
        "7A": KeyRelation.ADJACENT,
        "9A": KeyRelation.ADJACENT,
    }


def test_the_wheel_wraps_around() -> None:
    assert set(compatible_keys(Key.parse("12B"))) == {"12B", "12A", "11B", "1B"}
    assert set(compatible_keys(Key.parse("1A"))) == {"1A", "1B", "12A", "2A"}


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
