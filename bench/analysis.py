"""Analysis benchmark: speed (realtime factor) and worker memory, on generated music.

    python bench/analysis.py                       # 3-hour set + 8 x 4-minute tracks (FLAC)
    python bench/analysis.py --hours 0.5 --tracks 2 --format mp3     # a quick run

Two measurements, each in a fresh :class:`AnalysisPool` of one worker (what one worker does on
one core):

* a generated DJ-set-like recording (``--hours``, default 3): a drum loop whose tempo drifts from
  118 to 132 BPM and whose kit changes every 4 minutes, 44.1 kHz stereo, generated and encoded
  in 30 s blocks straight to disk (never held in memory);
* ``--tracks`` 4-minute "tracks" (drums plus a chord progression, different tempi and keys).

Reported: wall time, the worker's CPU time (user + system, from /proc), the realtime factor
(seconds of audio per second, by wall and by CPU time: the CPU figure does not depend on what
else the machine is doing), the worker's resident memory after start-up and its peak (VmHWM, as
the worker reports it at the end of the job), and RSS samples taken while the long recording is
analysed, which show whether memory grows with the position in the file. The machine's load
average before and after is printed, since other work on the machine slows the wall-clock
figures. Results go to stdout and to ``WORKDIR/results.json``; generated audio is reused from
``--workdir`` when present (``--keep`` keeps a temporary work directory).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import anyio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import signals  # the test-signal generators live with the tests

from tracktiond.analysis import AnalysisPool, AnalysisResult, AnalysisSettings

BLOCK_SECONDS = 30.0
TRACK_TEMPI = (122.0, 174.0, 95.0, 128.0, 140.0, 86.0, 110.0, 160.0)
TRACK_KEYS = (("A", "minor"), ("F", "major"), ("C#", "minor"), ("Eb", "major"))


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _track_blocks(index: int, seconds: float) -> Iterator[signals.Signal]:
    bpm = TRACK_TEMPI[index % len(TRACK_TEMPI)]
    kit = signals.KITS[index % len(signals.KITS)]
    tonic, mode = TRACK_KEYS[index % len(TRACK_KEYS)]
    timbre = ("saw", "piano", "organ")[index % 3]
    done = 0.0
    while done < seconds:
        length = min(BLOCK_SECONDS, seconds - done)
        drums = signals.drum_pattern(bpm, kit, seconds=length, seed=index * 1000 + int(done))
        # One chord per bar and melody notes on the beats: harmony in time with the drums.
        chords = signals.chord_progression(
            tonic, mode, timbre, seconds=length, seed=index, chord_seconds=240.0 / bpm
        )
        yield (0.6 * drums + 0.4 * chords).astype(np.float32)
        done += length


def _generate(path: Path, blocks: Iterator[signals.Signal]) -> Path:
    if path.exists():
        return path
    partial = path.with_name(path.name + ".part" + path.suffix)
    signals.write_stream(partial, blocks, channels=2)
    partial.replace(path)
    return path


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the stat line (1-based), in clock ticks.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _rss_mb(pid: int) -> float:
    try:
        return _status_kb(pid, "VmRSS") / 1024
    except OSError:
        return 0.0


async def _measure(
    pool: AnalysisPool, paths: list[Path], settings: AnalysisSettings, sample_rss: bool
) -> dict[str, Any]:
    (pid,) = pool.worker_pids
    baseline_mb = _status_kb(pid, "VmHWM") / 1024
    samples: list[tuple[float, float]] = []
    per_file: list[dict[str, Any]] = []
    started = time.monotonic()
    cpu_start = _cpu_seconds(pid)

    async def sampler() -> None:
        while True:
            samples.append((round(time.monotonic() - started, 1), round(_rss_mb(pid), 1)))
            await anyio.sleep(2.0)

    async with anyio.create_task_group() as tg:
        if sample_rss:
            tg.start_soon(sampler)
        for path in paths:
            t0, c0 = time.monotonic(), _cpu_seconds(pid)
            result: AnalysisResult = await pool.analyze(str(path), settings)
            wall, cpu = time.monotonic() - t0, _cpu_seconds(pid) - c0
            per_file.append(
                {
                    "file": path.name,
                    "audio_s": result.duration,
                    "wall_s": round(wall, 2),
                    "cpu_s": round(cpu, 2),
                    "rtf_wall": round(result.duration / wall, 1),
                    "rtf_cpu": round(result.duration / cpu, 1) if cpu else None,
                    "bpm": result.bpm,
                    "bpm_start": result.bpm_start,
                    "bpm_end": result.bpm_end,
                    "key": result.key,
                    "lufs": result.loudness_integrated,
                    "curve_points": len(result.tempo_curve),
                }
            )
            _log(f"  {path.name}: {per_file[-1]}")
        tg.cancel_scope.cancel()
    wall = time.monotonic() - started
    cpu = _cpu_seconds(pid) - cpu_start
    audio = sum(f["audio_s"] for f in per_file)
    return {
        "files": per_file,
        "audio_s": round(audio, 1),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "rtf_wall": round(audio / wall, 1),
        "rtf_cpu": round(audio / cpu, 1) if cpu else None,
        "worker_baseline_mb": round(baseline_mb, 1),
        "worker_peak_rss_mb": round(pool.peak_rss_bytes / 1024**2, 1),
        "rss_samples_mb": samples,
    }


async def _run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    audio_dir = workdir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    ext = args.format
    long_seconds = args.hours * 3600
    _log(f"generating a {args.hours} h recording ({ext}) in {audio_dir} ...")
    t0 = time.monotonic()
    long_path = _generate(
        audio_dir / f"set-{args.hours:g}h.{ext}",
        signals.drifting_drums(long_seconds, bpm_start=118.0, bpm_end=132.0, seed=1),
    )
    tracks = [
        _generate(audio_dir / f"track-{i:02d}.{ext}", _track_blocks(i, args.track_minutes * 60))
        for i in range(args.tracks)
    ]
    _log(f"generated (or reused) in {time.monotonic() - t0:.0f} s")
    warmup = _generate(audio_dir / f"warmup.{ext}", iter([signals.sine(1.0, -20.0)]))
    settings = AnalysisSettings()
    results: dict[str, Any] = {}
    limit = args.memory_limit_mb * 1024**2
    for name, paths, sample in (("tracks", tracks, False), ("long", [long_path], True)):
        if not paths:
            continue
        _log(f"analysing {name} ...")
        # A generous timeout: the benchmark measures speed, it must not be cut short by it.
        async with AnalysisPool(1, memory_limit_bytes=limit, timeout_factor=1.0) as pool:
            await pool.analyze(str(warmup), settings)  # start the worker, import essentia
            results[name] = await _measure(pool, paths, settings, sample)
    return results


def _machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if "model name" in ln), "")
    except OSError:
        pass
    versions = {}
    for dist in ("essentia", "av", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "missing"
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        **versions,
        "load_average_before": os.getloadavg(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=3.0, help="length of the long recording")
    parser.add_argument("--tracks", type=int, default=8, help="number of generated tracks")
    parser.add_argument("--track-minutes", type=float, default=4.0)
    parser.add_argument("--format", choices=("flac", "mp3"), default="flac")
    parser.add_argument("--memory-limit-mb", type=int, default=1536)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep a temporary work directory")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    temporary = args.workdir is None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tracktiond-analysis-bench-"))
    try:
        machine = _machine()
        results = anyio.run(_run, args, workdir)
        machine["load_average_after"] = os.getloadavg()
        report = {"machine": machine, "args": vars(args) | {"workdir": str(workdir)}, **results}
        (workdir / "results.json").write_text(json.dumps(report, indent=2, default=str))
        if args.json:
            print(json.dumps(report, indent=2, default=str))
        else:
            print(f"machine: {machine}")
            for name in ("tracks", "long"):
                if name not in results:
                    continue
                r = results[name]
                print(
                    f"{name:6s} audio {r['audio_s'] / 60:7.1f} min  wall {r['wall_s']:7.1f} s  "
                    f"cpu {r['cpu_s']:7.1f} s  realtime x{r['rtf_wall']} (wall) "
                    f"x{r['rtf_cpu']} (cpu)  worker RSS baseline {r['worker_baseline_mb']} MB, "
                    f"peak {r['worker_peak_rss_mb']} MB"
                )
            if "long" in results:
                rss = [mb for _, mb in results["long"]["rss_samples_mb"]]
                if rss:
                    print(f"long   RSS while analysing: min {min(rss)} MB, max {max(rss)} MB")
    finally:
        if temporary and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
