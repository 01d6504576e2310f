"""Planning a write (reads only): which file is really written, its real format, whether it
may be written, and which fields change; ``plan_tag_write`` (the dry run) stops here."""

from __future__ import annotations

import errno
import os
import stat

from tracktiond.media.formats import SNIFF_BYTES, AudioFormat, sniff
from tracktiond.media.tags import (
    ID3V23_FALLBACK,
    TagField,
    TagSystem,
    energy_field,
    lookup,
    write_support,
)
from tracktiond.tagwrite.apply import _load
from tracktiond.tagwrite.audiocheck import _mp4_check_plain
from tracktiond.tagwrite.model import (
    FieldChange,
    TagValues,
    TagWriteOptions,
    TagWriteResult,
    _fail,
    _Failure,
    _os_reason,
    _Plan,
)
from tracktiond.tagwrite.spelling import _number, _render, _same


def _resolve(path: str) -> tuple[str, os.stat_result]:
    # A symlink is written through: the file it points to gets the tags and the link stays a
    # link (the scanner catalogs symlinks by following them, so this is the file it knows).
    target = os.path.realpath(path)
    try:
        st = os.lstat(target)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise _Failure("file does not exist (or is a broken symbolic link)") from None
        raise _os_reason(exc, "stat") from None
    if not stat.S_ISREG(st.st_mode):
        raise _Failure("not a regular file", skip=True)
    if st.st_nlink > 1:
        # Replacing one name of a hard-linked file would split it: the other names would keep
        # the old content without anyone noticing.
        raise _Failure(f"the file has {st.st_nlink} hard links; not written", skip=True)
    return target, st


def _check_writable(target: str, st: os.stat_result) -> None:
    # Write bits are honoured even when running as root: "chmod a-w" is how a user protects a
    # file or folder, and root's access() would ignore it.
    if st.st_mode & 0o222 == 0 or not os.access(target, os.W_OK):
        raise _Failure("the file is read-only")
    directory = os.path.dirname(target)
    try:
        dst = os.stat(directory)
    except OSError as exc:
        raise _os_reason(exc, "stat its directory") from None
    if dst.st_mode & 0o222 == 0 or not os.access(directory, os.W_OK | os.X_OK):
        raise _Failure(
            "its directory is not writable (a safe write puts a temporary copy next to the file)"
        )


def _sniff_path(target: str) -> AudioFormat:
    try:
        with open(target, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError as exc:
        raise _os_reason(exc, "reading it") from None
    fmt = sniff(head)
    if fmt is None:
        raise _Failure("not an audio file tracktiond knows", skip=True)
    if fmt is AudioFormat.WAV and head[:4] != b"RIFF":
        raise _Failure("RF64/BW64 WAV files are not written", skip=True)
    return fmt


def _plan(path: str, values: TagValues, options: TagWriteOptions) -> _Plan:
    target, st = _resolve(path)
    fmt = _sniff_path(target)
    support = write_support(fmt)
    if isinstance(support, str):
        raise _Failure(support, skip=True)
    system, fields = support
    specs: list[tuple[str, TagField]] = [(f.key, f) for f in fields]
    if options.energy_field is not None:
        specs.append(("energy", energy_field(options.energy_field)))
    if fmt is AudioFormat.MP4:
        _mp4_check_plain(target)
    audio, version = _load(target, fmt, system)
    id3_version = (version or options.new_id3_version) if system is TagSystem.ID3 else None
    changes: list[FieldChange] = []
    kept: list[FieldChange] = []
    for key, spec in specs:
        new = _render(key, values, options, system)
        native = spec.name_in(system)
        if id3_version == 3:
            native = ID3V23_FALLBACK.get(native, native)
        if new is None or not native:
            continue
        held = lookup(audio.tags, system, native) if audio.tags is not None else []
        # A BPM of 0 is what some taggers write for "unknown" (MP4 tmpo has no empty value).
        present = [v for v in held if v.strip() and not (key == "bpm" and _number(v) == 0)]
        change = FieldChange(key, native, "; ".join(present) if present else None, new)
        if present and not options.overwrite:
            kept.append(change)
        elif not (present and _same(key, present, new, system)):
            changes.append(change)
    return _Plan(target, st, fmt, system, id3_version, changes, kept)


def plan_tag_write(path: str, values: TagValues, options: TagWriteOptions) -> TagWriteResult:
    """What :func:`write_tags` would change in ``path``; reads the file, never writes."""
    result = TagWriteResult(path=path)
    try:
        plan = _plan(path, values, options)
        _describe(result, plan)
        if plan.changes:
            _check_writable(plan.target, plan.stat)  # say now what the write would run into
    except _Failure as f:
        _fail(result, f)
    return result


def _describe(result: TagWriteResult, plan: _Plan) -> None:
    result.format = plan.fmt
    result.target = plan.target
    result.changes = plan.changes
    result.kept = plan.kept
