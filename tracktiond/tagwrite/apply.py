"""The mutagen side of a write: loading a file's tags as they are (its ID3 version, frames
untranslated), applying the planned changes per tag system (ID3 frames, Vorbis comments, MP4
atoms), saving, and putting back an ID3v1 tag mutagen would rebuild."""

from __future__ import annotations

import os
from typing import Any

from mutagen import id3, mp4

from tracktiond.media.formats import AudioFormat
from tracktiond.media.tags import TagSystem, opener, short_reason
from tracktiond.tagwrite.model import _Failure, _os_reason, _Plan


def _load(path: str, fmt: AudioFormat, system: TagSystem) -> tuple[Any, int | None]:
    """The mutagen object for ``path`` and, for ID3, the tag version to keep (3 or 4)."""
    parse = opener(fmt)
    try:
        if system is not TagSystem.ID3:
            return parse(path), None
        # load_v1=False: mutagen would otherwise copy ID3v1 fields into the v2 tag on save.
        # translate=False: frames stay as the file has them (no v2.3 <-> v2.4 conversion, no
        # genre or date rewriting, no dropping of frames the version does not define); the tag
        # is saved back in its own version, so only our frames change.
        audio = parse(path, load_v1=False, translate=False)
        version = audio.tags.version[1] if audio.tags is not None else None
        if version == 2:
            raise _Failure("the ID3v2.2 tag cannot be written back as v2.2; not written", skip=True)
        return audio, version
    except _Failure:
        raise
    except OSError as exc:
        raise _os_reason(exc, "reading its tags") from None
    except Exception as exc:  # mutagen raises arbitrary errors on malformed files
        raise _Failure(
            f"cannot read its tags ({type(exc).__name__}: {short_reason(exc)})"
        ) from None


# mutagen's constructors are untyped; named once here so calls stay type-checked elsewhere.
_TXXX: Any = id3.TXXX
_FREEFORM: Any = mp4.MP4FreeForm


def _id3_encoding(text: str, version: int) -> int:
    # Latin-1 is what every reader understands; otherwise UTF-8 where v2.4 allows it, and
    # UTF-16 for v2.3 (which has no UTF-8).
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return 3 if version == 4 else 1
    return 0


def _apply(audio: Any, plan: _Plan) -> None:
    if audio.tags is None:
        audio.add_tags()
    tags = audio.tags
    for change in plan.changes:
        native, text = change.native, change.new
        if plan.system is TagSystem.ID3:
            enc = _id3_encoding(text, plan.id3_version or 4)
            if native.startswith("TXXX:"):
                desc = native[5:]
                same = [f for f in tags.getall("TXXX") if str(f.desc).lower() == desc.lower()]
                desc = str(same[0].desc) if same else desc  # keep the file's spelling
                for frame in same:
                    del tags[frame.HashKey]
                tags.add(_TXXX(encoding=enc, desc=desc, text=[text]))
            else:
                tags.delall(native)
                tags.add(id3.Frames[native](encoding=enc, text=[text]))
        elif plan.system is TagSystem.VORBIS:
            tags[native] = [text]  # replaces the field whatever the case of its name
        elif native == "tmpo":
            tags["tmpo"] = [int(text)]
        else:  # iTunes freeform atom; names are matched case-insensitively, like readers do
            same = [k for k in tags if k.lower() == native.lower()]
            for k in same:
                del tags[k]
            value = _FREEFORM(text.encode("utf-8"), dataformat=mp4.AtomDataType.UTF8)
            tags[same[0] if same else native] = [value]


def _save(audio: Any, plan: _Plan) -> None:
    if plan.system is TagSystem.ID3:
        audio.save(v2_version=plan.id3_version)
    else:
        audio.save()  # mutagen's default padding: reuse the file's padding when the tags fit


def _id3v1_tail(fd: int, size: int) -> bytes | None:
    tail = os.pread(fd, 128, size - 128) if size >= 128 else b""
    return tail if tail.startswith(b"TAG") else None


def _restore_id3v1(fd: int, tail: bytes) -> None:
    # mutagen rebuilds an existing ID3v1 tag from the v2 frames; the user's v1 tag is theirs,
    # so its original bytes are put back.
    size = os.fstat(fd).st_size
    if size < 128 or os.pread(fd, 3, size - 128) != b"TAG":
        raise _Failure("the ID3v1 tag was lost")
    os.pwrite(fd, tail, size - 128)
