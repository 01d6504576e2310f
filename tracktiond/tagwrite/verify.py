"""Verifying the written copy before it may replace the original: same format, our values read
back, every other tag as before, audio payload and decoder headers unchanged."""

from __future__ import annotations

import os
import struct
from typing import Any

from tracktiond.media.formats import SNIFF_BYTES, sniff
from tracktiond.media.tags import TagSystem, lookup, short_reason
from tracktiond.tagwrite.apply import _load
from tracktiond.tagwrite.audiocheck import _audio_fingerprint, _xxh
from tracktiond.tagwrite.model import _Failure, _Plan


def _frame_fingerprint(frame: Any) -> tuple[Any, ...]:
    # The frame's fields without its text encoding, which mutagen may legitimately change
    # (a UTF-8 frame in a v2.3 tag is saved as UTF-16, as v2.3 requires).
    parts = []
    for spec in [*frame._framespec, *frame._optionalspec]:
        if spec.name == "encoding":
            continue
        value = getattr(frame, spec.name, None)
        parts.append((spec.name, _xxh(value) if isinstance(value, bytes) else repr(value)))
    return tuple(parts)


def _other_tags(audio: Any, system: TagSystem, ours: set[str]) -> Any:
    """Every tag tracktiond does not write, comparable before and after the write."""
    tags = audio.tags
    if tags is None:
        return []
    if system is TagSystem.ID3:
        return sorted(
            (key, _frame_fingerprint(frame))
            for key, frame in tags.items()
            if key.lower() not in ours
        )
    if system is TagSystem.VORBIS:
        return [(k.lower(), v) for k, v in tags if k.lower() not in ours]
    return sorted(
        (k, [_mp4_fingerprint(item) for item in v])
        for k, v in tags.items()
        if k.lower() not in ours
    )


def _mp4_fingerprint(item: Any) -> str:
    # Cover art and freeform atoms are bytes (with a data type): hashed, not spelled out in full.
    if isinstance(item, bytes):
        kind = getattr(item, "imageformat", getattr(item, "dataformat", None))
        return f"{type(item).__name__}:{kind!r}:{_xxh(item)}"
    return repr(item)


def _ours(plan: _Plan) -> set[str]:
    # ID3 frame keys are "TBPM" or "TXXX:DESC"; matched case-insensitively like the readers do.
    return {c.native.lower() for c in plan.changes}


def _verify_tags(before: Any, tmp_path: str, plan: _Plan) -> None:
    after, version = _load(tmp_path, plan.fmt, plan.system)
    if plan.system is TagSystem.ID3 and version != plan.id3_version:
        raise _Failure(f"the ID3 version changed to 2.{version}")
    if getattr(after.info, "length", 0) <= 0:
        raise _Failure("the written file holds no audio")
    for change in plan.changes:
        got = lookup(after.tags, plan.system, change.native) if after.tags is not None else []
        if got != [change.new]:
            raise _Failure(f"{change.native} reads back as {got!r}, not {change.new!r}")
    ours = _ours(plan)
    if _other_tags(before, plan.system, ours) != _other_tags(after, plan.system, ours):
        raise _Failure("the write would have changed other tags")


def _verify_copy(
    fd: int, tmp: str, plan: _Plan, reference: Any, fingerprint: tuple[str, Any]
) -> None:
    try:
        if sniff(os.pread(fd, SNIFF_BYTES, 0)) is not plan.fmt:
            raise _Failure("the written file is no longer recognised as the same format")
        _verify_tags(reference, tmp, plan)
        payload, headers = _audio_fingerprint(fd, plan.fmt)
        if payload != fingerprint[0]:
            raise _Failure("the audio payload would have changed")
        if headers != fingerprint[1]:
            raise _Failure("the audio stream headers would have changed")
    except _Failure as f:
        raise _Failure(f"verification failed, original kept: {f.reason}") from None
    except (OSError, struct.error, ValueError, IndexError) as exc:
        raise _Failure(
            f"verification failed, original kept: {type(exc).__name__}: {short_reason(exc)}"
        ) from None
