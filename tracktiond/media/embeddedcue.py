"""Cue sheets inside audio files: a ``CUESHEET`` tag, or a FLAC ``CUESHEET`` metadata block.

foobar2000, EAC and CUETools embed the sheet's text as a ``CUESHEET`` Vorbis comment (FLAC, Ogg)
or APEv2 item (WavPack, Monkey's Audio); ``metaflac --import-cuesheet-from`` writes the binary
FLAC block instead, which has sample offsets and ISRCs but no titles. Both come back as cue-sheet
text, so ``media.cuesheet`` reads every kind of sheet the same way. Only formats that can carry
one are opened; a file that cannot be read has no sheet (its tags are ingest's concern).
"""

from __future__ import annotations

import os
from typing import Any

from tracktiond.media.cuesheet import FRAMES_PER_SECOND, format_time, quote
from tracktiond.media.formats import AudioFormat
from tracktiond.media.tags import TagSystem, opener, tag_system

MAX_EMBEDDED_CHARS = 1 << 20  # as for a sidecar sheet: more is not a cue sheet
_CARRIERS = frozenset(
    {
        AudioFormat.FLAC, AudioFormat.OGG_FLAC, AudioFormat.OGG_VORBIS, AudioFormat.OGG_OPUS,
        AudioFormat.WAVPACK, AudioFormat.APE,
    }
)  # fmt: skip
_LEAD_OUT = {170, 255}  # the lead-out "track" of a CD (170) or any other medium (255)


def embedded_cue_text(path: str, fmt: AudioFormat) -> str | None:
    """The cue sheet embedded in the file at ``path`` as text, or None."""
    if fmt not in _CARRIERS:
        return None
    try:
        audio = opener(fmt)(path)
        text = _tag_text(audio.tags, tag_system(fmt))
        if text is None and fmt is AudioFormat.FLAC:
            block = getattr(audio, "cuesheet", None)
            if block is not None:
                text = _block_text(block, os.path.basename(path), audio.info.sample_rate)
    except Exception:  # mutagen raises anything on malformed files; ingest reports those
        return None
    if text is None or not text.strip() or len(text) > MAX_EMBEDDED_CHARS:
        return None
    return text


def _tag_text(tags: Any, system: TagSystem) -> str | None:
    if tags is None:
        return None
    if system is TagSystem.VORBIS:
        values = tags.get("CUESHEET") or tags.get("cuesheet")
        return str(values[0]) if values else None
    if system is TagSystem.APE:
        for key in tags:
            if str(key).upper() == "CUESHEET":
                return str(tags[key])
    return None


def _block_text(block: Any, name: str, sample_rate: int) -> str | None:
    if not sample_rate:
        return None
    lines = []
    if block.media_catalog_number:
        catalog = block.media_catalog_number
        catalog = catalog.decode("ascii", "replace") if isinstance(catalog, bytes) else catalog
        if catalog.strip("\x00").strip():
            lines.append(f"CATALOG {catalog.strip(chr(0)).strip()}")
    lines.append(f"FILE {quote(name)} WAVE")
    for track in block.tracks:
        if track.track_number in _LEAD_OUT:
            continue
        lines.append(f"  TRACK {track.track_number:02d} AUDIO")
        isrc = (
            track.isrc.decode("ascii", "replace") if isinstance(track.isrc, bytes) else track.isrc
        )
        if isrc and isrc.strip("\x00").strip():
            lines.append(f"    ISRC {isrc.strip(chr(0)).strip()}")
        for index in track.indexes:
            samples = track.start_offset + index.index_offset
            frames = samples * FRAMES_PER_SECOND // sample_rate
            lines.append(f"    INDEX {index.index_number:02d} {format_time(frames)}")
    return "\n".join(lines) + "\n" if len(lines) > 1 else None
