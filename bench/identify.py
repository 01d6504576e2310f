"""Benchmark: finding indexed tracks inside generated DJ mixes (issue 10).

A library of ``--tracks`` distinct generated tracks (tests/support/mixes.py: drums from seven
kits, chords, bass and a lead line in timbres of their own; every other track with a layer of
noise swells; ``--seconds`` long, 8 kHz mono) is indexed twice: by tracktiond's triplet-ratio
fingerprints and by a plain Shazam-style baseline built here (pairs of peaks hashed by their
absolute frequencies and their time gap, matched by a time-offset histogram at speed 1, as
audfprint/dejavu do). Then ``--mixes`` mixes of 10–20 library tracks each (no track twice in a
mix) are built the way the issue describes a DJ set: crossfades of 8–32 s, drawn per
transition, EQ-swept (the outgoing track low-passed, the incoming high-passed across the fade), a
noise bed of −45…−30 dB, and each track changed by one of: nothing; resampling ±2…±12 % (tempo
and pitch together); time-stretch ±2…±8 % with the pitch kept; pitch ±1 semitone with the tempo
kept (the changes are dealt from a shuffled deck, so each appears about equally often). One more
mix of tracks that are not in the library counts the entries either method invents.

Scores: a played track is *found* when an entry names it and starts within 5 s of its truth;
recall = found / played; precision = entries that are a found track / all entries (over every
mix, the unindexed one included); start error = median |start - truth| of the found. Recall is
also given by speed change (|change| in %, resampled and stretched together; pitched tracks
apart) and by crossfade length (the longer of a track's two fades), ours and the baseline's side
by side. Speed: CPU seconds of this process (``time.process_time``: other work on a shared
machine does not count against it) for the index build (fingerprint + hashes) and the query
(fingerprint of the mix + identification), as × real time; the index's postings per second and
its stored bytes per second (the catalog's packed batch: ``fingerprint.postings.Batch``). The
load average is recorded at the start and the end.

Run from the repository root with the project's venv::

    python bench/identify.py            # 60 tracks of 75 s, 4 mixes of 10-20 (~15 min, 2 cores)
    python bench/identify.py --quick    # 30 tracks of 50 s, 2 mixes (a few minutes)

Results go to stdout as tables (``--json``: one JSON document).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

# One core, as in the daemon's worker processes (analysis.pool.WORKER_ENVIRONMENT): set before
# NumPy loads its BLAS, whose threads would otherwise spin on every core and count as CPU time.
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

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
    settings_id,
)
from tracktiond.fingerprint.index import FingerprintIndex
from tracktiond.fingerprint.matcher import Candidate
from tracktiond.fingerprint.peaks import Peaks
from tracktiond.fingerprint.postings import Batch
from tracktiond.fingerprint.segments import Segment, Window, smooth
from tracktiond.fingerprint.triplets import Hashes, triplet_hashes

# The deck of changes a played track is dealt from.
CHANGES: list[tuple[str, float]] = [
    ("none", 0.0),
    ("none", 0.0),
    *[("resample", s * a) for a in (0.02, 0.04, 0.06, 0.08, 0.10, 0.12) for s in (1, -1)],
    *[("stretch", s * a) for a in (0.02, 0.04, 0.06, 0.08) for s in (1, -1)],
    ("pitch", 1.0),
    ("pitch", -1.0),
]
FADE_BUCKETS = ((8.0, 16.0), (16.0, 24.0), (24.0, 32.01))
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
                            int(c >> 32),
                            off,
                            1.0,
                            0.0,
                            n,
                            int(qt[mine].min()),
                            int(qt[mine].max()),
                            weight=float(n),
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
class Outcome:
    """One played track, as one method did on it."""

    played: mixes.Played
    found: bool
    error: float | None  # |start - truth|, seconds, if found


@dataclass
class Tally:
    outcomes: list[Outcome] = field(default_factory=list)
    entries: int = 0
    right: int = 0
    wrong_entries: list[str] = field(default_factory=list)

    def add(self, label: str, segments: list[Segment], truth: list[mixes.Played]) -> None:
        self.entries += len(segments)
        used: set[int] = set()
        for p in truth:
            hit = None
            for k, seg in enumerate(segments):
                if k not in used and seg.track == p.track and abs(seg.start - p.start) <= TOLERANCE:
                    hit = k
                    break
            if hit is None:
                self.outcomes.append(Outcome(p, False, None))
            else:
                used.add(hit)
                self.outcomes.append(Outcome(p, True, abs(segments[hit].start - p.start)))
        self.right += len(used)
        self.wrong_entries += [
            f"{label}: track {seg.track} at {seg.start:.1f}-{seg.end:.1f} s (aligned {seg.aligned},"
            f" weight {seg.weight}, confidence {seg.confidence}, speed {seg.speed:.3f},"
            f" pitch {seg.pitch:+.2f})"
            for k, seg in enumerate(segments)
            if k not in used
        ]

    def recall(self, which: list[Outcome] | None = None) -> dict[str, Any]:
        rows = self.outcomes if which is None else which
        found = sum(o.found for o in rows)
        return {"played": len(rows), "found": found, "recall": found / len(rows) if rows else None}

    def where(self, keep: Any) -> list[Outcome]:
        return [o for o in self.outcomes if keep(o.played)]

    def total(self) -> dict[str, Any]:
        errors = [o.error for o in self.outcomes if o.error is not None]
        return {
            **self.recall(),
            "entries": self.entries,
            "wrong": self.entries - self.right,
            "precision": self.right / self.entries if self.entries else 1.0,
            "start_error_median_s": round(statistics.median(errors), 2) if errors else None,
            "start_error_p90_s": round(float(np.percentile(errors, 90)), 2) if errors else None,
        }


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _commit() -> str:
    root = Path(__file__).resolve().parents[1]
    git = subprocess.run(
        ["git", "-C", str(root), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return git.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tracks", type=int, default=None, help="library size (60; quick: 30)")
    ap.add_argument("--seconds", type=float, default=None, help="track length (75; quick: 50)")
    ap.add_argument("--mixes", type=int, default=None, help="mixes of library tracks (4; quick: 2)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="a smaller library and fewer mixes")
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--index-fanout", type=int, default=None, help="TripletSettings.index_fanout to measure"
    )
    ap.add_argument(
        "--scale-tracks",
        type=int,
        default=0,
        help="also query 5 min of the first mix against this many synthetic 5-minute tracks",
    )
    args = ap.parse_args()
    args.tracks = args.tracks or (30 if args.quick else 60)
    args.seconds = args.seconds or (50.0 if args.quick else 75.0)
    args.mixes = args.mixes or (2 if args.quick else 4)
    if args.tracks < 20:
        ap.error("--tracks must be at least 20 (a mix plays up to 20 distinct tracks)")
    settings = FingerprintSettings()
    if args.index_fanout is not None:
        triplets = replace(settings.triplets, index_fanout=args.index_fanout)
        settings = replace(settings, triplets=triplets)
    rng = np.random.default_rng(args.seed)
    load_start, wall0 = _load(), time.monotonic()

    progress(f"generating {args.tracks} + 10 tracks of {args.seconds:.0f} s ...")
    library = {n: mixes.track(n, args.seconds, noise=n % 2 == 1) for n in range(args.tracks)}
    outsiders = {n: mixes.track(n, args.seconds, noise=n % 2 == 1) for n in range(10_000, 10_010)}
    ours, base = new_index(settings), FingerprintIndex()
    build_s, audio_s = 0.0, 0.0
    batches: list[Batch] = []
    hashes_of: dict[int, Hashes] = {}
    for n, audio in library.items():
        t0 = time.process_time()
        fp = fingerprint_blocks(mixes.blocks(audio), settings)
        hashes = fp.index_hashes(settings)
        add_track(ours, n, fp, settings)
        build_s += time.process_time() - t0
        audio_s += len(audio) / mixes.RATE
        batches.append(Batch.of(n, hashes))
        hashes_of[n] = hashes
        base.add(n, pair_hashes(fp.peaks), fp.frames)
    keys_blob, postings_blob = Batch.merge(batches).encode()
    stored = len(keys_blob) + len(postings_blob)

    deck: list[tuple[str, float]] = []
    first_mix: Fingerprint | None = None
    tallies = (Tally(), Tally())
    query_s, query_audio = 0.0, 0.0
    plans: list[tuple[str, dict[int, mixes.F32], int]] = [
        (f"mix {m + 1}", library, int(rng.integers(10, 21))) for m in range(args.mixes)
    ]
    plans.append(("unindexed", outsiders, 10))
    for label, pool, count in plans:
        picks = [int(x) for x in rng.choice(sorted(pool), size=count, replace=False)]
        played = []
        for n in picks:
            if label == "unindexed":
                kind, amount = "none", 0.0
            else:
                if not deck:
                    deck = [CHANGES[i] for i in rng.permutation(len(CHANGES))]
                kind, amount = deck.pop()
            played.append((n, pool[n], kind, amount))
        fades = [float(x) for x in rng.uniform(8.0, 32.0, size=count - 1)]
        noise_db = float(rng.uniform(-45.0, -30.0))
        audio, truth = mixes.mix(
            played, fades, noise_db=noise_db, seed=int(rng.integers(1 << 30)), sweeps=True
        )
        if label == "unindexed":
            truth = []
        t0 = time.process_time()
        fp = fingerprint_blocks(mixes.blocks(audio), settings)
        found = identify_set(fp, ours, settings)
        query_s += time.process_time() - t0
        query_audio += len(audio) / mixes.RATE
        first_mix = first_mix or fp
        tallies[0].add(label, found, truth)
        tallies[1].add(label, baseline_identify(fp, base, settings), truth)
        progress(
            f"{label}: {count} tracks, {len(audio) / mixes.RATE / 60:.1f} min, noise {noise_db:.0f}"
            f" dB: ours {sum(o.found for o in tallies[0].outcomes)} found so far,"
            f" {tallies[0].entries - tallies[0].right} wrong"
        )
    report = {
        "commit": _commit(),
        "settings_id": settings_id(settings),
        "index_fanout": settings.triplets.index_fanout,
        "nproc": os.cpu_count(),
        "load_at_start": load_start,
        "load_at_end": _load(),
        "wall_s": round(time.monotonic() - wall0, 1),
        "tracks": args.tracks,
        "seconds": args.seconds,
        "mixes": args.mixes,
        "played": len(tallies[0].outcomes),
        "ours": tallies[0].total(),
        "baseline": tallies[1].total(),
        "by_speed": _by_speed(tallies),
        "by_kind": _by_kind(tallies),
        "by_crossfade": _by_fade(tallies),
        "wrong_entries": tallies[0].wrong_entries,
        "missed": [
            f"track {o.played.track} ({o.played.change} {o.played.amount:+g}) at"
            f" {o.played.start:.1f} s, fades {o.played.fade_in:.0f}/{o.played.fade_out:.0f} s"
            for o in tallies[0].outcomes
            if not o.found
        ],
        "index_build_cpu_s": round(build_s, 1),
        "index_build_x_realtime": round(audio_s / build_s, 1),
        "query_cpu_s": round(query_s, 1),
        "query_audio_s": round(query_audio, 1),
        "query_x_realtime": round(query_audio / query_s, 1),
        "postings_per_second": round(ours.postings / audio_s, 1),
        "stored_bytes_per_posting": round(stored / max(1, ours.postings), 2),
        "stored_bytes_per_second": round(stored / audio_s, 1),
    }
    if args.scale_tracks and first_mix is not None:
        report["scale"] = _scale(first_mix, hashes_of, ours, args.scale_tracks, settings, rng)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _table(report)


def _scale(
    mix: Fingerprint,
    library: dict[int, Hashes],
    real: FingerprintIndex,
    tracks: int,
    settings: FingerprintSettings,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The query cost against a larger index, and its extrapolation to 10,000 tracks.

    The index holds the library's real tracks and ``tracks`` synthetic ones of 5 minutes, each
    with as many postings per second as the library has, every posting a real library posting
    (its key, span and anchor bin together, so the key distribution is the measured one) at a
    random frame. Synthetic tracks share keys at the library's rates but never align on a
    line: they add the chance hits of a larger library, not its shared sounds. The first 5
    minutes of the first mix are queried.
    """
    sec = settings.spectrum.frame_seconds
    pool = Hashes(
        np.concatenate([h.key for h in library.values()]),
        np.concatenate([h.t for h in library.values()]),
        np.concatenate([h.span for h in library.values()]),
        np.concatenate([h.f for h in library.values()]),
    )
    frames = round(300.0 / sec)
    per_track = round(len(pool) / sum(real.frames(n) for n in library) * frames)
    index = FingerprintIndex(max_postings=real.max_postings)
    for n, h in library.items():
        index.add(n, h, real.frames(n))
    for k in range(tracks):
        pick = rng.integers(0, len(pool), size=per_track)
        fake = pool.select(pick)
        t = np.sort(rng.integers(0, frames, size=per_track)).astype(np.int32)
        index.add(1_000_000 + k, Hashes(fake.key, t, fake.span, fake.f), frames)
    index.lookup(pool.select(np.arange(1)))  # sort the index outside the timing
    keep = mix.peaks.t < round(300.0 / sec)
    peaks = Peaks(mix.peaks.t[keep], mix.peaks.f[keep], mix.peaks.level[keep])
    part = Fingerprint(peaks, min(mix.frames, round(300.0 / sec)))
    t0 = time.process_time()
    identify_set(part, index, settings)
    cpu = time.process_time() - t0
    query = triplet_hashes(part.peaks, settings.triplets, fanout=settings.triplets.query_fanout)
    hits = index.lookup(query)
    windows = max(1, round((part.frames * sec - settings.window_seconds) / settings.hop_seconds))
    indexed_s = (len(library) * np.mean([real.frames(n) for n in library]) + tracks * frames) * sec
    per_query_s = cpu / (part.frames * sec)
    factor = 10_000 * 300.0 / indexed_s
    return {
        "what": (
            f"{len(library)} real + {tracks} synthetic 5-minute tracks (real postings at random"
            " frames); 5 minutes of mix 1 queried; 10,000 tracks and a 2-hour set extrapolated"
            " linearly in indexed seconds (hits grow with them)"
        ),
        "indexed_audio_s": round(indexed_s),
        "postings": index.postings,
        "hits_per_query_hash": round(len(hits) / max(1, len(query)), 1),
        "hits_per_window": round(len(hits) * settings.window_seconds / (part.frames * sec)),
        "windows": windows,
        "query_cpu_s": round(cpu, 1),
        "query_x_realtime": round(1 / per_query_s, 2),
        "extrapolated_2h_at_10000_tracks_cpu_s": round(per_query_s * 7200 * factor),
    }


def _both(tallies: tuple[Tally, Tally], keep: Any) -> dict[str, Any]:
    ours, base = (t.recall(t.where(keep)) for t in tallies)
    return {"played": ours["played"], "ours": ours["recall"], "baseline": base["recall"]}


def _by_speed(tallies: tuple[Tally, Tally]) -> dict[str, Any]:
    out = {}
    for pct in (0, 2, 4, 6, 8, 10, 12):

        def keep(p: mixes.Played, pct: int = pct) -> bool:
            change = abs(p.amount) if p.change in ("resample", "stretch") else 0.0
            return p.change != "pitch" and round(change * 100) == pct

        out[f"{pct}%"] = _both(tallies, keep)
    return out


def _by_kind(tallies: tuple[Tally, Tally]) -> dict[str, Any]:
    return {
        kind: _both(tallies, lambda p, kind=kind: p.change == kind)
        for kind in ("none", "resample", "stretch", "pitch")
    }


def _by_fade(tallies: tuple[Tally, Tally]) -> dict[str, Any]:
    return {
        f"{lo:.0f}-{hi:.0f} s": _both(
            tallies, lambda p, lo=lo, hi=hi: lo <= max(p.fade_in, p.fade_out) < hi
        )
        for lo, hi in FADE_BUCKETS
    }


def _table(r: dict[str, Any]) -> None:
    print(
        f"{r['tracks']} tracks of {r['seconds']:.0f} s, {r['mixes']} mixes + 1 unindexed,"
        f" {r['played']} tracks played; commit {r['commit']}, settings {r['settings_id']}"
        f" (index fan-out {r['index_fanout']});"
        f" load {r['load_at_start']} -> {r['load_at_end']} on {r['nproc']} CPUs,"
        f" {r['wall_s']} s wall"
    )
    for title, key in (
        ("speed change", "by_speed"),
        ("change", "by_kind"),
        ("crossfade", "by_crossfade"),
    ):
        print(f"{title:<14} {'played':>6} {'ours':>6} {'baseline':>9}")
        for label, row in r[key].items():
            print(
                f"{label:<14} {row['played']:>6} {_pct(row['ours']):>6} {_pct(row['baseline']):>9}"
            )
    for line in r["wrong_entries"]:
        print(f"  ours, wrong: {line}")
    for line in r["missed"]:
        print(f"  ours, missed: {line}")
    for who in ("ours", "baseline"):
        t = r[who]
        print(
            f"{who}: recall {t['recall']:.1%} ({t['found']} of {t['played']}),"
            f" precision {t['precision']:.1%} ({t['wrong']} wrong of {t['entries']}),"
            f" start error median {t['start_error_median_s']} s, p90 {t['start_error_p90_s']} s"
        )
    print(
        f"index build {r['index_build_x_realtime']}x real time ({r['index_build_cpu_s']} CPU s),"
        f" query {r['query_x_realtime']}x ({r['query_cpu_s']} CPU s for"
        f" {r['query_audio_s']} s of mixes); {r['postings_per_second']} postings/s of indexed"
        f" audio, {r['stored_bytes_per_posting']} B/posting stored,"
        f" {r['stored_bytes_per_second']} B/s"
    )
    if "scale" in r:
        print("scale:", json.dumps(r["scale"], indent=2))


if __name__ == "__main__":
    main()
