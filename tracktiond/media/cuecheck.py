"""Checking a cue sheet against itself and against the audio it describes.

Errors make the sheet unusable as a tracklist (the catalog records the reason and keeps the
previous version): tracks out of order or starting together, a track's indexes out of order,
a time past the end of the audio. Warnings are kept with the tracklist: a gap of more than two
seconds before a track (INDEX 00 → 01, or PREGAP), track numbers that skip.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracktiond.media.cuesheet import FRAMES_PER_SECOND, CueSheet, format_time

GAP_WARNING_FRAMES = 2 * FRAMES_PER_SECOND


@dataclass(frozen=True, slots=True)
class Problem:
    severity: str  # "error" or "warning"
    message: str
    track: int | None = None  # the track's number


def check_sheet(
    sheet: CueSheet, *, duration: float | None = None, audio_file: int | None = None
) -> list[Problem]:
    """Problems of ``sheet``; times are checked against ``duration`` (seconds) for the indexes
    in file ``audio_file`` (all files when None: a one-file sheet or one without FILE)."""
    problems: list[Problem] = []
    last_start: dict[int, tuple[int, int]] = {}  # file -> (frames, track number)
    end = round(duration * FRAMES_PER_SECOND) if duration else None
    for track in sheet.tracks:
        if not track.indexes:
            problems.append(Problem("error", f"track {track.number} has no INDEX", track.number))
            continue
        previous = None
        for index in track.indexes:
            if previous is not None and (
                index.number <= previous.number
                or (index.file == previous.file and index.frames < previous.frames)
            ):
                problems.append(
                    Problem(
                        "error",
                        f"track {track.number}: INDEX {index.number:02d} at "
                        f"{format_time(index.frames)} is out of order",
                        track.number,
                    )
                )
            previous = index
            in_audio = audio_file is None or index.file == audio_file
            if end is not None and in_audio and index.frames > end:
                problems.append(
                    Problem(
                        "error",
                        f"track {track.number}: INDEX {index.number:02d} at "
                        f"{format_time(index.frames)} is past the end of the audio "
                        f"({format_time(end)})",
                        track.number,
                    )
                )
        start = track.start
        assert start is not None
        before = last_start.get(start.file)
        if before is not None and start.frames <= before[0]:
            what = "starts together with" if start.frames == before[0] else "starts before"
            problems.append(
                Problem(
                    "error",
                    f"track {track.number} at {format_time(start.frames)} {what} "
                    f"track {before[1]} at {format_time(before[0])}",
                    track.number,
                )
            )
        last_start[start.file] = (start.frames, track.number)
        pre = track.index(0)
        gap = (start.frames - pre.frames) if pre is not None and pre.file == start.file else 0
        gap = max(gap, track.pregap or 0)
        if gap > GAP_WARNING_FRAMES:
            problems.append(
                Problem(
                    "warning",
                    f"track {track.number} has a {gap / FRAMES_PER_SECOND:.1f} s gap before it",
                    track.number,
                )
            )
    return problems
