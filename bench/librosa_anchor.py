"""The librosa side of ``bench/analysis.py``: tempo and key of each file, the way a librosa user
would compute them, in a process of its own.

    python bench/librosa_anchor.py --warmup WARMUP.flac FILE...

``bench/analysis.py`` starts this script once per set of files, so that librosa's memory and CPU
time are measured apart from tracktiond's analysis worker, like the worker's own. It imports
numpy and librosa only (no tracktiond, no essentia), so its memory is librosa's.

Per file:

* ``librosa.load(path)`` with librosa's defaults: the whole file decoded into memory, mixed to
  mono and resampled to 22,050 Hz (soxr);
* tempo: ``librosa.onset.onset_strength`` (median-aggregated, as ``beat_track`` computes it)
  then ``librosa.beat.beat_track`` on that envelope; for recordings of ``--long-seconds`` or
  more, also ``librosa.feature.tempo`` over the first and the last ``--edge-seconds`` of the
  envelope (tracktiond reports a start and an end tempo for such recordings);
* key: ``librosa.feature.chroma_cqt`` with its defaults, averaged over the file and correlated
  (Pearson) with the 24 rotations of the Krumhansl-Kessler major and minor key profiles; the
  best correlation wins. librosa itself has no key estimator: this is the usual small recipe.

Loudness is not computed: librosa has no EBU R128 / ITU-R BS.1770 meter.

The first file (``--warmup``) imports librosa and compiles its numba code; it is not reported.
Output: one JSON object per line on stdout: ``ready`` after the warm-up (with the process's
memory at that point), ``stage`` records as each file is loaded and its tempo found (memory so
far), one ``file`` record per file, then ``done``. CPU times are this process's
user + system time (all threads) from ``getrusage``; memory is VmRSS / VmHWM from /proc.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 22050  # librosa.load's default
NOTES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# Krumhansl & Kessler (1982) probe-tone ratings, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def _stage(path: Path, stage: str, cpu_start: float) -> None:
    """Progress: if the parent kills this process at its memory limit, it knows where."""
    _emit(
        "stage",
        file=path.name,
        stage=stage,
        cpu_s=round(_cpu() - cpu_start, 2),
        rss_mb=_status_mb("VmRSS"),
        peak_rss_mb=_status_mb("VmHWM"),
    )


def estimate_key(mean_chroma: np.ndarray[Any, Any]) -> tuple[str, str, float]:
    """(tonic, mode, correlation) of the key profile rotation that best matches the chroma."""
    best = ("C", "major", -2.0)
    for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            # np.roll puts the profile's tonic weight on pitch class ``tonic``.
            corr = float(np.corrcoef(mean_chroma, np.roll(profile, tonic))[0, 1])
            if corr > best[2]:
                best = (NOTES[tonic], mode, corr)
    return best


def analyse(path: Path, long_seconds: float, edge_seconds: float) -> dict[str, Any]:
    import librosa

    t0, c0 = time.monotonic(), _cpu()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y, sr = librosa.load(path, sr=SAMPLE_RATE, mono=True)
        c_load = _cpu()
        _stage(path, "load", c0)
        duration = len(y) / sr
        onset = librosa.onset.onset_strength(y=y, sr=sr, aggregate=np.median)
        tempo, _beats = librosa.beat.beat_track(onset_envelope=onset, sr=sr)
        bpm = float(np.atleast_1d(tempo)[0])
        bpm_start = bpm_end = None
        if duration >= long_seconds:
            edge = int(edge_seconds * sr / 512)  # onset frames; 512 is librosa's default hop
            start = librosa.feature.tempo(onset_envelope=onset[:edge], sr=sr)
            end = librosa.feature.tempo(onset_envelope=onset[-edge:], sr=sr)
            bpm_start = round(float(np.atleast_1d(start)[0]), 1)
            bpm_end = round(float(np.atleast_1d(end)[0]), 1)
        del onset
        c_tempo = _cpu()
        _stage(path, "tempo", c0)
        chroma = librosa.feature.chroma_cqt(y=y, sr=sr)
        tonic, mode, corr = estimate_key(chroma.mean(axis=1))
        del chroma, y
        c_key = _cpu()
    wall = time.monotonic() - t0
    return {
        "file": path.name,
        "audio_s": round(duration, 2),
        "wall_s": round(wall, 2),
        "cpu_s": round(c_key - c0, 2),
        "cpu_load_s": round(c_load - c0, 2),
        "cpu_tempo_s": round(c_tempo - c_load, 2),
        "cpu_key_s": round(c_key - c_tempo, 2),
        "bpm": round(bpm, 1),
        "bpm_start": bpm_start,
        "bpm_end": bpm_end,
        "key": f"{tonic} {mode}",
        "key_correlation": round(corr, 3),
        "peak_rss_mb": _status_mb("VmHWM"),
        "warnings": sorted({f"{w.category.__name__}: {w.message}" for w in caught}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--warmup", type=Path, required=True, help="a short file, not reported")
    parser.add_argument("--long-seconds", type=float, default=900.0)
    parser.add_argument("--edge-seconds", type=float, default=120.0)
    parser.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args()

    t0, c0 = time.monotonic(), _cpu()
    analyse(args.warmup, args.long_seconds, args.edge_seconds)
    _emit(
        "ready",
        librosa=metadata.version("librosa"),
        startup_wall_s=round(time.monotonic() - t0, 2),
        startup_cpu_s=round(_cpu() - c0, 2),
        rss_mb=_status_mb("VmRSS"),
        peak_rss_mb=_status_mb("VmHWM"),
    )
    t1, c1 = time.monotonic(), _cpu()
    for path in args.files:
        _emit("file", **analyse(path, args.long_seconds, args.edge_seconds))
    _emit(
        "done",
        wall_s=round(time.monotonic() - t1, 2),
        cpu_s=round(_cpu() - c1, 2),
        peak_rss_mb=_status_mb("VmHWM"),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
