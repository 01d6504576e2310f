"""Benchmark: finding indexed tracks inside generated DJ mixes, per speed change (issue 10).

A library of ``--tracks`` distinct generated tracks (tests/support/mixes.py: drums, chords, bass,
a lead line of its own; ``--seconds`` long, 8 kHz mono) is indexed twice: by tracktiond's
triplet-ratio fingerprints and by a plain Shazam-style baseline built here (pairs of peaks
hashed by their absolute frequencies and their time gap, matched by a time-offset histogram at
speed 1, as audfprint/dejavu do). Then, for each change the issue lists (none; resampling by
±2…±12 %, tempo and pitch together; time-stretch ±2…±8 % with the pitch kept; pitch shift ±1
semitone with the tempo kept) a mix of ``--per-mix`` library tracks, each changed that way, with
crossfades of 8-16 s and a noise bed, is identified by both. One more mix of tracks that are not
in the library counts the entries either invents.

Scores: a played track is *found* when an entry names it and starts within 5 s of its truth;
recall = found / played; precision = entries that are a found track / all entries (over every
mix, the unindexed one included); start error = median |start - truth| of the found. Also the
index build and query speed (× real time, one core) and the index's postings per second.

Run from the repository root with the project's venv::

    python bench/identify.py                 # 30 tracks of 45 s, 4 per mix (~3 min)
    python bench/identify.py --tracks 12 --seconds 30 --quick    # smoke run

Results go to stdout as a table (``--json``: one JSON document).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import mixes
from tracktiond.fingerprint.identify import (
    Fingerprint,
    FingerprintSettings,
    add_track,
    fingerprint_blocks,
    identify_set,
    new_index,
)
from tracktiond.fingerprint.index import FingerprintIndex
from tracktiond.fingerprint.matcher import Candidate
from tracktiond.fingerprint.peaks import Peaks
from tracktiond.fingerprint.segments import Segment, Window, smooth
from tracktiond.fingerprint.triplets import Hashes

CHANGES: list[tuple[str, float]] = [
    ("none", 0.0),
    *[("resample", s * a) for a in (0.02, 0.04, 0.06, 0.08, 0.10, 0.12) for s in (1, -1)],
    *[("stretch", s * a) for a in (0.02, 0.04, 0.06, 0.08) for s in (1, -1)],
    ("pitch", 1.0),
    ("pitch", -1.0),
]
QUICK: list[tuple[str, float]] = [
    ("none", 0.0),
    ("resample", 0.04),
    ("resample", -0.08),
    ("stretch", -0.03),
    ("pitch", 1.0),
]
TOLERANCE = 5.0  # seconds

# ---------------------------------------------------------------------------------------------
# The baseline: absolute-frequency peak pairs, offset histogram at speed 1
# ---------------------------------------------------------------------------------------------

_PAIR_FANOUT, _PAIR_SPAN = 5, 64
_BASE_KEYS = 128 * 128 * 64


def pair_hashes(peaks: Peaks) -> Hashes:
    """(f1, f2, dt) of each peak and its next few: absolute bins, so a pitch shift moves them."""
    t, f = peaks.t.astype(np.int64), np.rint(peaks.f).astype(np.int64)
    keys, anchors = [], []
    n = len(peaks)
    for d in range(1, 4 * _PAIR_FANOUT):
        i = np.arange(max(0, n - d))
        j = i + d
        dt = t[j] - t[i]
        ok = (dt >= 1) & (dt < _PAIR_SPAN)
        keys.append((f[i[ok]] * 128 + f[j[ok]]) * 64 + dt[ok])
        anchors.append(i[ok])
    anchor = np.concatenate(anchors)
    return Hashes(
        np.concatenate(keys).astype(np.uint32),
        peaks.t[anchor].astype(np.int32),
        np.ones(anchor.size, np.int32),
        peaks.f[anchor].astype(np.float32),
    )


def baseline_identify(
    fp: Fingerprint, index: FingerprintIndex, s: FingerprintSettings
) -> list[Segment]:
    sec = s.spectrum.frame_seconds
    query = pair_hashes(fp.peaks)
    order = np.argsort(query.t, kind="stable")
    query = query.select(order)
    win, hop = round(s.window_seconds / sec), round(s.hop_seconds / sec)
    windows: list[Window] = []
    tracks: set[int] = set()
    start = 0
    while True:
        end = start + win
        lo, hi = np.searchsorted(query.t, [start, end])
        mask = np.zeros(len(query), bool)
        mask[lo:hi] = True
        part = query.select(mask)
        hits = index.lookup(part)
        found: list[Candidate] = []
        if len(hits):
            qt = part.t[hits.query].astype(np.int64)
            offset = (qt - hits.t) // 2
            cell = (hits.track.astype(np.int64) << 32) | (offset + (1 << 31))
            cells, counts = np.unique(cell, return_counts=True)
            # Like ours, one candidate per track and window (its best offset): a loop matches
            # itself a bar away, in either scheme.
            seen: set[int] = set()
            for c in cells[np.argsort(counts)[::-1][:16]]:
                mine = cell == c
                n = int(np.unique(hits.query[mine]).size)
                if n >= s.match.min_aligned and int(c >> 32) not in seen and len(seen) < 4:
                    seen.add(int(c >> 32))
                    off = float(((c & 0xFFFFFFFF) - (1 << 31)) * 2)
                    found.append(
                        Candidate(
                            int(c >> 32), off, 1.0, 0.0, n, int(qt[mine].min()), int(qt[mine].max())
                        )
                    )
        tracks.update(c.track for c in found)
        windows.append(Window(start * sec, min(end, fp.frames) * sec, found))
        if end >= fp.frames:
            break
        start += hop
    lengths = {t: index.frames(t) * sec for t in tracks}
    return smooth(windows, sec, s.spectrum.bins_per_octave / 12, lengths, s.segments)


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@dataclass
class Score:
    played: int = 0
    found: int = 0
    entries: int = 0
    right: int = 0
    errors: list[float] | None = None
    wrong_entries: list[str] = field(default_factory=list)

    def add(self, segments: list[Segment], truth: list[mixes.Played]) -> None:
        self.errors = self.errors or []
        self.played += len(truth)
        self.entries += len(segments)
        used: set[int] = set()
        for p in truth:
            for k, seg in enumerate(segments):
                if k not in used and seg.track == p.track and abs(seg.start - p.start) <= TOLERANCE:
                    used.add(k)
                    self.found += 1
                    self.errors.append(abs(seg.start - p.start))
                    break
        self.right += len(used)
        self.wrong_entries += [
            f"track {seg.track} at {seg.start:.1f}-{seg.end:.1f} s (aligned {seg.aligned}, "
            f"confidence {seg.confidence}, speed {seg.speed:.3f}, pitch {seg.pitch:+.2f})"
            for k, seg in enumerate(segments)
            if k not in used
        ]

    def row(self) -> dict[str, Any]:
        return {
            "recall": self.found / self.played if self.played else None,
            "entries": self.entries,
            "wrong": self.entries - self.right,
            "start_error_s": round(statistics.median(self.errors), 2) if self.errors else None,
            "wrong_entries": self.wrong_entries,
        }


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tracks", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=45.0)
    ap.add_argument("--per-mix", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="five changes only")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    settings = FingerprintSettings()
    rng = np.random.default_rng(args.seed)

    progress(f"generating {args.tracks} + {args.per_mix} tracks of {args.seconds:.0f} s ...")
    library = {n: mixes.track(n, args.seconds) for n in range(args.tracks)}
    outsiders = {n: mixes.track(n, args.seconds) for n in range(10_000, 10_000 + args.per_mix)}
    ours, base = new_index(settings), FingerprintIndex()
    build_s, audio_s = 0.0, 0.0
    for n, audio in library.items():
        t0 = time.process_time()
        fp = fingerprint_blocks(mixes.blocks(audio), settings)
        add_track(ours, n, fp, settings)
        build_s += time.process_time() - t0
        audio_s += len(audio) / mixes.RATE
        base.add(n, pair_hashes(fp.peaks), fp.frames)
    changes = QUICK if args.quick else CHANGES
    scores: dict[str, tuple[Score, Score]] = {}
    query_s, query_audio = 0.0, 0.0
    for kind, amount in [*changes, ("unindexed", 0.0)]:
        pool = outsiders if kind == "unindexed" else library
        picks = [int(x) for x in rng.choice(sorted(pool), size=args.per_mix, replace=False)]
        played = [(n, pool[n], "none" if kind == "unindexed" else kind, amount) for n in picks]
        fade = float(rng.uniform(8, 16))
        audio, truth = mixes.mix(played, fade, noise_db=-40.0, seed=int(rng.integers(1 << 30)))
        if kind == "unindexed":
            truth = []
        t0 = time.process_time()
        fp = fingerprint_blocks(mixes.blocks(audio), settings)
        found = identify_set(fp, ours, settings)
        query_s += time.process_time() - t0
        query_audio += len(audio) / mixes.RATE
        label = kind if kind in ("none", "unindexed") else f"{kind} {amount:+g}"
        a, b = scores.setdefault(label, (Score(), Score()))
        a.add(found, truth)
        b.add(baseline_identify(fp, base, settings), truth)
        progress(f"{label}: ours {a.row()}  baseline {b.row()}")
    report = _report(scores, ours, build_s, audio_s, query_s, query_audio, args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _table(report)


def _report(
    scores: dict[str, tuple[Score, Score]],
    ours: FingerprintIndex,
    build_s: float,
    audio_s: float,
    query_s: float,
    query_audio: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    def total(which: int) -> dict[str, Any]:
        s = [pair[which] for pair in scores.values()]
        played, found = sum(x.played for x in s), sum(x.found for x in s)
        entries, right = sum(x.entries for x in s), sum(x.right for x in s)
        errors = [e for x in s for e in (x.errors or [])]
        return {
            "recall": found / played,
            "precision": right / entries if entries else 1.0,
            "start_error_s": round(statistics.median(errors), 2) if errors else None,
        }

    return {
        "tracks": args.tracks,
        "seconds": args.seconds,
        "per_mix": args.per_mix,
        "changes": {k: {"ours": a.row(), "baseline": b.row()} for k, (a, b) in scores.items()},
        "ours": total(0),
        "baseline": total(1),
        "index_build_x_realtime": round(audio_s / build_s, 1),
        "query_x_realtime": round(query_audio / query_s, 1),
        "postings_per_second": round(ours.postings / audio_s, 1),
    }


def _table(r: dict[str, Any]) -> None:
    print(f"{r['tracks']} tracks of {r['seconds']:.0f} s, {r['per_mix']} per mix")
    print(
        f"{'change':<16} {'ours: found':>12} {'wrong':>6} {'start err':>10}"
        f"   {'baseline':>9} {'wrong':>6}"
    )
    for label, row in r["changes"].items():
        o, b = row["ours"], row["baseline"]
        print(
            f"{label:<16} {_pct(o['recall']):>12} {o['wrong']:>6} {o['start_error_s']!s:>9}s"
            f"   {_pct(b['recall']):>9} {b['wrong']:>6}"
        )
    for label, row in r["changes"].items():
        for entry in row["ours"]["wrong_entries"]:
            print(f"  ours, wrong in {label}: {entry}")
    for who in ("ours", "baseline"):
        t = r[who]
        print(
            f"{who}: recall {t['recall']:.1%}, precision {t['precision']:.1%},"
            f" median start error {t['start_error_s']} s"
        )
    print(
        f"index build {r['index_build_x_realtime']}x real time, query {r['query_x_realtime']}x, "
        f"{r['postings_per_second']} postings per second of indexed audio"
    )


if __name__ == "__main__":
    main()
