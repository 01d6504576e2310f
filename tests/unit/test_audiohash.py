"""The Ogg audio identity computed during the single streamed read equals the one a page-by-page
read computes (the algorithm catalogs were built with before the streamed hasher), whatever the
chunk boundaries; the tag writer's own read gets the same identity."""

from __future__ import annotations

import random
from pathlib import Path

import mutagen
import pytest
import xxhash

from tests.support import audiogen
from tracktiond.media.audiohash import OggBodyHasher, audio_hash_of, ogg_header_packets
from tracktiond.media.formats import SNIFF_BYTES, AudioFormat
from tracktiond.media.probe import ingest_file


def _ogg(tmp_path: Path, fmt: str, comment_bytes: int) -> Path:
    path = audiogen.make_audio(tmp_path / f"a.{fmt}", seconds=1.5, seed=7)
    if comment_bytes:
        # A comment packet this big spans many Ogg pages, as embedded cover art does.
        audio = mutagen.File(str(path))
        audio["comment"] = "x" * comment_bytes
        audio.save()
    return path


def _pagewise(path: Path) -> str | None:
    """The reference: walk the pages one by one, skip the header packets, hash page bodies."""
    h = xxhash.xxh3_128()
    needed: int | None = None
    packets = 0
    first = bytearray()
    with open(path, "rb") as fh:
        while len(header := fh.read(27)) == 27:
            if not header.startswith(b"OggS"):
                return None
            lacing = fh.read(header[26])
            body = fh.read(sum(lacing))
            if needed is None or packets < needed:
                offset = 0
                for seg in lacing:
                    if packets == 0:
                        first += body[offset : offset + seg]
                    offset += seg
                    if seg < 255:
                        packets += 1
                        if packets == 1:
                            needed = ogg_header_packets(bytes(first[:128]))
                continue
            h.update(body)
    return h.hexdigest() if needed is not None and packets >= needed else None


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
    reference = _pagewise(path)
    assert reference is not None
    assert _streamed(path, random.Random(comment_bytes)) == reference
    assert ingest_file(str(path)).audio_hash == f"a:{reference}"
    fmt = AudioFormat.OGG_OPUS if fmt == "opus" else AudioFormat.OGG_VORBIS
    with open(path, "rb") as f:  # the tag writer's check reads the file on its own
        assert audio_hash_of(f.fileno(), fmt) == reference


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
