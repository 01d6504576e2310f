"""A cue sheet as tracklist drafts: one per audio file it describes.

A one-file sheet (a DJ set, a live recording, a Mixxx or rekordbox recording) gives one draft.
A multi-file sheet (CUETools / EAC "one file per track") gives one per FILE, each with the
tracks that start in it, times relative to that file. A sheet without FILE lines describes
the audio it is named after. Titles keep what the sheet says; the version ("Someone Remix")
is split off for matching only, by trackparse.
"""

from __future__ import annotations

import trackparse

from tracktiond.catalog.tracklistvalues import EntryDraft, TracklistDraft
from tracktiond.media.cuecheck import check_sheet
from tracktiond.media.cuesheet import CueSheet, frames_to_seconds


def version_of(artist: str | None, title: str | None) -> str | None:
    if not title:
        return None
    parsed = trackparse.parse(f"{artist} - {title}" if artist else title)
    return parsed.versions[0].raw if parsed.versions else None


def drafts_from_sheet(
    sheet: CueSheet,
    *,
    source: str,
    origin: str | None,
    encoding: str | None,
    document: str | None,
    warnings: tuple[str, ...] = (),
    durations: dict[int, float | None] | None = None,
) -> dict[int, TracklistDraft]:
    """Drafts keyed by the position of their FILE in ``sheet.files`` (-1: the sheet has none).

    ``durations`` (per FILE, seconds) are the audio's lengths where known: times past them and
    tracks out of order make a file's draft fail (ValueError naming the problem)."""
    durations = durations or {}
    groups: dict[int, list[int]] = {}
    for i, track in enumerate(sheet.tracks):
        start = track.start
        groups.setdefault(start.file if start is not None else -1, []).append(i)
    out: dict[int, TracklistDraft] = {}
    for file_no, members in groups.items():
        problems = check_sheet(
            sheet, duration=durations.get(file_no), audio_file=file_no if file_no >= 0 else None
        )
        errors = [p.message for p in problems if p.severity == "error"]
        if errors:
            raise ValueError("; ".join(errors[:3]) + (" …" if len(errors) > 3 else ""))
        entries = []
        for position, i in enumerate(members, start=1):
            track = sheet.tracks[i]
            start = track.start
            following = sheet.tracks[members[position]] if position < len(members) else None
            end_index = following.index(0) or following.start if following else None
            artist = track.performer if track.performer is not None else sheet.performer
            extra: dict[str, object] = {"number": track.number}
            if track.rems:
                extra["rems"] = [[r.key, r.value] for r in track.rems]
            for name in ("isrc", "songwriter"):
                if getattr(track, name):
                    extra[name] = getattr(track, name)
            if track.flags:
                extra["flags"] = list(track.flags)
            pre = track.index(0)
            if pre is not None and start is not None and pre.file == start.file:
                extra["pregap_start"] = frames_to_seconds(pre.frames)
            entries.append(
                EntryDraft(
                    position=position,
                    start=frames_to_seconds(start.frames) if start is not None else None,
                    end=frames_to_seconds(end_index.frames)
                    if end_index is not None and start is not None and end_index.file == start.file
                    else durations.get(file_no),
                    artist=artist,
                    title=track.title,
                    version=version_of(artist, track.title),
                    confidence=1.0,
                    source_path=track.source.name if track.source is not None else None,
                    extra=extra,
                )
            )
        sheet_warnings = warnings + tuple(p.message for p in problems if p.severity == "warning")
        out[file_no] = TracklistDraft(
            source=source,
            format="cue",
            entries=tuple(entries),
            title=sheet.title,
            performer=sheet.performer,
            origin=origin,
            encoding=encoding,
            document=document,
            warnings=sheet_warnings,
        )
    return out
