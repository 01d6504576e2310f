"""The Ogg audio identity computed during the single streamed read equals the one a separate
read computes (catalogs made before the streamed hasher keep their identities)."""

from __future__ import annotations

import random
from pathlib import Path

import audiogen
import mutagen
import pytest

from tracktiond.audiohash import OggBodyHasher, ogg_audio_hash
from tracktiond.formats import SNIFF_BYTES
from tracktiond.ingest import ingest_file


def _ogg(tmp_path: Path, fmt: str, comment_bytes: int) -> Path:
    path = audiogen.make_audio(tmp_path / f"a.{fmt}", seconds=1.5, seed=7)
    if comment_bytes:
        # A comment packet this big spans many Ogg pages, as embedded cover art does.
        audio = mutagen.File(str(path))
        audio["comment"] = "x" * comment_bytes
        audio.save()
    return path


def _streamed(path: Path, rng: random.Random) -> str | None:
    data = path.read_bytes()
    hasher = OggBodyHasher.from_head(data[:SNIFF_BYTES])
    assert hasher is not None
    offset = 0
    while offset < len(data):  # chunks of every size, so page headers straddle chunk ends
        n = rng.choice((1, 7, 27, 28, 300, 4096, 65536))
        hasher.update(memoryview(data)[offset : offset + n], offset)
        offset += n
    return hasher.hexdigest()


@pytest.mark.parametrize("fmt", ["ogg", "opus"])
@pytest.mark.parametrize("comment_bytes", [0, 150_000])
def test_streamed_ogg_identity_equals_the_separate_read(
    tmp_path: Path, fmt: str, comment_bytes: int
) -> None:
    path = _ogg(tmp_path, fmt, comment_bytes)
    reference = ogg_audio_hash(str(path))
    assert reference is not None
    assert _streamed(path, random.Random(comment_bytes)) == reference
    assert ingest_file(str(path)).audio_hash == f"a:{reference}"


def test_streamed_ogg_identity_ignores_the_tags(tmp_path: Path) -> None:
    plain = ingest_file(str(_ogg(tmp_path / "a", "opus", 0))).audio_hash
    tagged = ingest_file(str(_ogg(tmp_path / "b", "opus", 150_000))).audio_hash
    assert plain == tagged and plain.startswith("a:")


def test_a_damaged_ogg_page_gives_no_audio_identity(tmp_path: Path) -> None:
    path = _ogg(tmp_path, "ogg", 0)
    data = bytearray(path.read_bytes())
    second_page = data.index(b"OggS", 4)
    data[second_page : second_page + 4] = b"XXXX"
    hasher = OggBodyHasher.from_head(bytes(data[:SNIFF_BYTES]))
    assert hasher is not None
    hasher.update(memoryview(bytes(data)), 0)
    assert hasher.hexdigest() is None
