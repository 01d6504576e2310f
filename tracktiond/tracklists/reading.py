"""From a tracklist source to drafts for the recordings it belongs to, matched to the library.

A source is a cue sheet or a pasted list next to the audio (found by the walk), a sheet
embedded in an audio file (found by ingest), or a file given on the command line. Reading it:

1. the bytes (blocking: on a worker thread): at most 1 MiB, decoded by ``media.textcodec``;
2. parsed: ``media.cuesheet`` for sheets (any text that starts like one, whatever its name),
   ``pasted`` for lists;
3. which audio it belongs to: a sheet's ``FILE`` lines, resolved next to the sheet (a file
   that is not there is looked for under the sheet's own name and the FILE's name with another
   audio extension: sets are converted from WAV to FLAC and keep their sheet); a list, or a
   sheet without FILE, belongs to the audio of the same name (``set.txt``, ``set.cue`` →
   ``set.flac``; ``set.flac.cue`` → ``set.flac``);
4. checked against each recording's duration and matched (``match``).

The outcome is one of: read (drafts per recording), waiting (the audio is not cataloged yet: it
may be arriving), failed (the reason names the file: not text, not a sheet, impossible times, a
FILE that does not exist), or retired (the source is gone).
"""

from __future__ import annotations

import ntpath
import os
import uuid
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from tracktiond.catalog.tracklistvalues import EntryMatch, SourceJob, TracklistDraft
from tracktiond.errors import BadInput, TransientFileError
from tracktiond.media.cuesheet import CueSheet, CueSheetError, parse_cue
from tracktiond.media.formats import AUDIO_EXTENSIONS, extension
from tracktiond.media.sidecar import MAX_SIDECAR_BYTES, sidecar_kind, stem
from tracktiond.media.textcodec import decode_text
from tracktiond.tracklists.match import Library, match_entries
from tracktiond.tracklists.pasted import parse_pasted
from tracktiond.tracklists.sheets import drafts_from_sheet


class Catalog(Library, Protocol):
    """What reading asks of the catalog (``tracktiond.catalog.Catalog`` provides it)."""

    async def audio_in_dir(self, directory: str) -> dict[str, uuid.UUID]: ...

    async def recording_duration(self, recording_id: uuid.UUID) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Parsed:
    """A source's text as read: a sheet, or a list (``sheet`` None)."""

    text: str
    encoding: str | None
    sheet: CueSheet | None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Target:
    recording_id: uuid.UUID
    draft: TracklistDraft
    matches: tuple[EntryMatch, ...]


@dataclass(frozen=True, slots=True)
class SourceRead:
    state: str  # "done", "waiting", "failed", "retired"
    targets: tuple[Target, ...] = ()
    error: str | None = None
    encoding: str | None = None
    retry: bool = False  # a failure that may pass (the file changed or vanished while read)
    recording_id: uuid.UUID | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)


# ---- the text ----------------------------------------------------------------------------


def read_bytes(path: str) -> bytes:
    """The file's bytes, at most MAX_SIDECAR_BYTES (BadInput beyond; Transient if it vanished)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_SIDECAR_BYTES + 1)
    except FileNotFoundError:
        raise TransientFileError("vanished while being read") from None
    except IsADirectoryError:
        raise BadInput("is a directory, not a sheet or list") from None
    except PermissionError:
        raise BadInput("permission denied") from None
    except OSError as exc:
        raise TransientFileError(f"cannot read: {exc.strerror}") from None
    if len(raw) > MAX_SIDECAR_BYTES:
        raise BadInput(f"larger than {MAX_SIDECAR_BYTES // 1024} KiB: not a sheet or a list")
    if not raw.strip():
        raise BadInput("empty file")
    return raw


def looks_like_cue(text: str) -> bool:
    """A cue sheet whatever its name: its first command is one a sheet starts with."""
    for line in text.splitlines():
        word = line.strip().lstrip("\ufeff").split(" ", 1)[0].split("\t", 1)[0].upper()
        if word:
            return word in {"REM", "FILE", "TITLE", "PERFORMER", "CATALOG", "CDTEXTFILE", "TRACK"}
    return False


def parse_text(text: str, *, kind: str, encoding: str | None) -> Parsed:
    """Parse decoded text as a sheet (kind "cue" or "embedded", or a list that reads like one)
    or as a list. BadInput with the reason when it is neither."""
    if kind in ("cue", "embedded") or looks_like_cue(text):
        try:
            parsed = parse_cue(text)
        except CueSheetError as exc:
            raise BadInput(f"not a usable cue sheet: {exc}") from None
        return Parsed(text, encoding, parsed.sheet, parsed.warnings)
    return Parsed(text, encoding, None)


def read_file(path: str, *, kind: str, legacy: str, override: str | None = None) -> Parsed:
    """Read and parse a source file (blocking)."""
    decoded = decode_text(read_bytes(path), legacy=legacy, override=override)
    return parse_text(decoded.text, kind=kind, encoding=decoded.encoding)


# ---- which audio -------------------------------------------------------------------------


def file_candidates(sheet_path: str, name: str) -> list[str]:
    """Where a FILE line's audio may be: as named (relative to the sheet; a Windows path by its
    name), then under another audio extension, then named after the sheet."""
    directory = os.path.dirname(sheet_path)
    if "\\" in name or ntpath.isabs(name):
        name = ntpath.basename(name)
    named = os.path.normpath(os.path.join(directory, name))
    out = [named]
    base = os.path.splitext(named)[0]
    out += [f"{base}.{ext}" for ext in sorted(AUDIO_EXTENSIONS)]
    return out


def _stem_matches(source_path: str, audio: dict[str, uuid.UUID]) -> list[str]:
    own = stem(source_path)
    return sorted(
        p for p in audio if p == own or (stem(p) == own and extension(p) in AUDIO_EXTENSIONS)
    )


async def _targets_of_sheet(
    catalog: Catalog, source_path: str, sheet: CueSheet
) -> tuple[dict[int, uuid.UUID], list[int], str | None]:
    """(FILE position → recording, FILE positions not cataloged yet, an error)."""
    found: dict[int, uuid.UUID] = {}
    waiting: list[int] = []
    used = {t.start.file for t in sheet.tracks if t.start is not None}
    in_dir = await catalog.audio_in_dir(os.path.dirname(source_path))
    for number in sorted(used):
        if number < 0:
            matches = _stem_matches(source_path, in_dir)
            if matches:
                found[number] = in_dir[matches[0]]
            else:
                waiting.append(number)
            continue
        name = sheet.files[number].name
        candidates = file_candidates(source_path, name)
        cataloged = await catalog.audio_at(candidates)
        hit = next((c for c in candidates if c in cataloged), None)
        if hit is None and len(used) == 1:  # a one-file sheet may name the audio as it was
            matches = _stem_matches(source_path, in_dir)
            hit = matches[0] if matches else None
            cataloged = in_dir
        if hit is not None:
            found[number] = cataloged[hit]
        elif await anyio.to_thread.run_sync(_exists_any, candidates) or (
            len(used) == 1 and await anyio.to_thread.run_sync(_stem_on_disk, source_path)
        ):
            waiting.append(number)
        else:
            return found, waiting, f"FILE {name!r} does not exist next to the sheet"
    return found, waiting, None


def _exists_any(paths: list[str]) -> bool:
    return any(os.path.isfile(p) for p in paths)


def _stem_on_disk(source_path: str) -> bool:
    own = stem(source_path)
    return any(os.path.isfile(f"{own}.{ext}") for ext in AUDIO_EXTENSIONS) or os.path.isfile(own)


# ---- the whole read ----------------------------------------------------------------------


async def read_source(
    catalog: Catalog, job: SourceJob, parsed: Parsed | None, *, error: BadInput | None = None
) -> SourceRead:
    """What reading ``job``'s source came to, given its parsed text (read on a thread)."""
    if job.state == "gone":
        return SourceRead("retired")
    if parsed is None:
        assert error is not None
        return SourceRead("failed", error=error.reason)
    source = "embedded_cue" if job.kind == "embedded" else ("cue" if parsed.sheet else "text")
    origin = job.path
    if parsed.sheet is None:
        in_dir = await catalog.audio_in_dir(os.path.dirname(job.path))
        hits = _stem_matches(job.path, in_dir)
        if not hits:
            on_disk = await anyio.to_thread.run_sync(_stem_on_disk, job.path)
            if sidecar_kind(job.path) == "text" and not on_disk:
                return SourceRead("waiting", error="no audio file is named like it")
            return SourceRead("waiting", error="its audio is not cataloged yet")
        rec = in_dir[hits[0]]
        duration = await catalog.recording_duration(rec)
        try:
            draft = parse_pasted(
                parsed.text, source=source, origin=origin, encoding=parsed.encoding,
                duration=duration,
            )  # fmt: skip
        except ValueError as exc:
            return SourceRead("failed", error=str(exc), encoding=parsed.encoding)
        return await _matched(catalog, {rec: draft}, parsed.encoding)
    sheet = parsed.sheet
    if job.kind == "embedded":
        assert job.recording_id is not None
        # An embedded sheet describes the file it is in, whatever its FILE lines say.
        for track in sheet.tracks:
            track.indexes = [type(i)(i.number, i.frames, -1) for i in track.indexes]
        found: dict[int, uuid.UUID] = {-1: job.recording_id}
        waiting: list[int] = []
        problem = None
    else:
        found, waiting, problem = await _targets_of_sheet(catalog, job.path, sheet)
    if problem is not None:
        return SourceRead("failed", error=problem, encoding=parsed.encoding)
    if not found:
        return SourceRead(
            "waiting", error="its audio is not cataloged yet", encoding=parsed.encoding
        )
    durations = {n: await catalog.recording_duration(r) for n, r in found.items()}
    try:
        drafts = drafts_from_sheet(
            sheet,
            source=source,
            origin=origin,
            encoding=parsed.encoding,
            document=parsed.text,
            warnings=parsed.warnings,
            durations=durations,
        )
    except ValueError as exc:
        return SourceRead("failed", error=str(exc), encoding=parsed.encoding)
    by_recording = {found[n]: d for n, d in drafts.items() if n in found}
    read = await _matched(catalog, by_recording, parsed.encoding)
    if waiting:  # read what is there; the rest is read when it arrives (the source waits)
        return SourceRead(
            "waiting", read.targets, "some of its audio is not cataloged yet", parsed.encoding
        )
    return read


async def _matched(
    catalog: Catalog, drafts: dict[uuid.UUID, TracklistDraft], encoding: str | None
) -> SourceRead:
    targets = []
    for rec, draft in drafts.items():
        matches = await match_entries(catalog, draft.entries, exclude=rec)
        targets.append(Target(rec, draft, tuple(matches)))
    first = targets[0].recording_id if targets else None
    return SourceRead("done", tuple(targets), encoding=encoding, recording_id=first)
