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

The librosa anchor (``--skip-librosa`` leaves it out): after tracktiond's pool, each set is
analysed again by ``bench/librosa_anchor.py`` in a subprocess of its own (tempo with
``beat_track``, key from averaged ``chroma_cqt`` against key profiles; no loudness, which librosa
does not measure), pinned to one thread like the worker. Its CPU time and peak RSS come from the
kernel (``wait4``), its per-file figures from the script. It is killed if its RSS passes
``--librosa-memory-limit-mb`` (librosa loads whole files into memory). Both tools' tempo and
key are checked against the generated values, and the report gives tracktiond / librosa ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import anyio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import signals  # the test-signal generators live with the tests
from tracktiond.analysis import AnalysisPool, AnalysisResult, AnalysisSettings
from tracktiond.media.keys import Key

BLOCK_SECONDS = 30.0
TRACK_TEMPI = (122.0, 174.0, 95.0, 128.0, 140.0, 86.0, 110.0, 160.0)
TRACK_KEYS = (("A", "minor"), ("F", "major"), ("C#", "minor"), ("Eb", "major"))
LONG_TEMPI = (118.0, 132.0)  # the long recording's tempo drifts from the first to the second
TEMPO_TOLERANCE = 0.04  # "Accuracy 1" of the tempo-estimation literature: within 4 %
EDGE_SECONDS = 120.0  # a long recording's start / end tempo: over its first / last 2 minutes
ANCHOR = Path(__file__).resolve().with_name("librosa_anchor.py")
# The worker analyses on one core; keep librosa's BLAS, OpenMP and numba to one thread too, so
# wall-clock figures compare. (CPU time counts every thread either way.)
ONE_THREAD = {
    name: "1"
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
}


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
    startup_cpu = _cpu_seconds(pid)  # start-up, imports and the warm-up file
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
        "startup_cpu_s": round(startup_cpu, 1),
        "worker_baseline_mb": round(baseline_mb, 1),
        "worker_peak_rss_mb": round(pool.peak_rss_bytes / 1024**2, 1),
        "rss_samples_mb": samples,
    }


def _tempo_verdict(found: float | None, expected: float) -> str:
    """``ok`` within :data:`TEMPO_TOLERANCE`, ``octave`` at x2 or x1/2 of it, else ``wrong``."""
    if found is None:
        return "none"
    for factor, verdict in ((1.0, "ok"), (2.0, "octave"), (0.5, "octave")):
        if abs(found / (expected * factor) - 1.0) <= TEMPO_TOLERANCE:
            return verdict
    return "wrong"


def _same_key(found: str | None, expected: str) -> bool:
    if not found:
        return False
    return Key.parse(found) == Key.parse(expected)


def _score(measured: dict[str, Any], expected: dict[str, dict[str, Any]]) -> None:
    """Mark each file's tempo and key right or wrong against the generated values, in place.

    A track must have its tempo within 4 % and exactly its key (tonic and mode). The long
    recording (drums only: no key to find) must have its start and end tempo within 4 % of
    118 and 132 BPM.
    """
    tempo_ok = key_ok = keyed = 0
    for record in measured["files"]:
        want = expected[record["file"]]
        if "key" in want:
            record["bpm_error_pct"] = (
                round(100 * (record["bpm"] / want["bpm"] - 1), 2) if record["bpm"] else None
            )
            record["tempo_verdict"] = _tempo_verdict(record["bpm"], want["bpm"])
            record["key_ok"] = _same_key(record["key"], want["key"])
            keyed += 1
            key_ok += record["key_ok"]
        else:
            start = _tempo_verdict(record["bpm_start"], want["bpm_start"])
            end = _tempo_verdict(record["bpm_end"], want["bpm_end"])
            record["tempo_verdict"] = "ok" if start == end == "ok" else f"{start}/{end}"
        tempo_ok += record["tempo_verdict"] == "ok"
    measured["tempo_ok"] = f"{tempo_ok}/{len(measured['files'])}"
    measured["key_ok"] = f"{key_ok}/{keyed}" if keyed else "n/a"


def _librosa_set(
    paths: list[Path], warmup: Path, limit_mb: int, sample_rss: bool, long_seconds: float
) -> dict[str, Any]:
    """Run ``bench/librosa_anchor.py`` on ``paths`` in a subprocess and measure it.

    RSS is polled every 0.25 s; above ``limit_mb`` the process is killed (so the reported peak
    can pass the limit by what it allocated within one poll) and the files done so far are kept.
    """
    command = [sys.executable, str(ANCHOR), "--warmup", str(warmup)]
    command += ["--long-seconds", str(long_seconds), "--edge-seconds", str(EDGE_SECONDS)]
    command += [str(p) for p in paths]
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=os.environ | ONE_THREAD)
    assert proc.stdout is not None
    events: list[dict[str, Any]] = []

    def read(stream: Any) -> None:
        for line in stream:
            event = json.loads(line)
            events.append(event)
            _log(f"  librosa: {event}")

    reader = threading.Thread(target=read, args=(proc.stdout,), daemon=True)
    reader.start()
    samples: list[tuple[float, float]] = []
    killed: str | None = None
    next_sample = 0.0
    while reader.is_alive():
        elapsed = time.monotonic() - started
        rss = _rss_mb(proc.pid)
        if sample_rss and elapsed >= next_sample:
            samples.append((round(elapsed, 1), round(rss, 1)))
            next_sample += 2.0
        if rss > limit_mb and killed is None:
            done = sum(1 for e in events if e["event"] == "file")
            at = paths[done].name if done < len(paths) else "the end"
            stages = [e["stage"] for e in events if e["event"] == "stage" and e["file"] == at]
            after = f"after its {stages[-1]} stage" if stages else "while loading it"
            killed = (
                f"RSS {rss:.0f} MB > limit {limit_mb} MB after {elapsed:.0f} s, in {at}, {after}"
            )
            _log(f"  librosa: killed: {killed}")
            os.kill(proc.pid, signal.SIGKILL)
        reader.join(0.25)
    # Reap it here rather than through Popen: wait4 gives the child's own rusage.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    ready = next((e for e in events if e["event"] == "ready"), {})
    done_event = next((e for e in events if e["event"] == "done"), None)
    files = [{k: v for k, v in e.items() if k != "event"} for e in events if e["event"] == "file"]
    audio = sum(f["audio_s"] for f in files)
    # Like the worker's: from after the warm-up file to the end of the last file.
    measured_wall = done_event["wall_s"] if done_event else sum(f["wall_s"] for f in files)
    measured_cpu = done_event["cpu_s"] if done_event else sum(f["cpu_s"] for f in files)
    return {
        "files": files,
        "complete": done_event is not None,
        "killed": killed,
        "exit_code": proc.returncode,
        "librosa": ready.get("librosa"),
        # Of the files it finished: after a kill, only those before the one it was killed in.
        "audio_s": round(audio, 1),
        "wall_s": round(measured_wall, 1),
        "cpu_s": round(measured_cpu, 1),
        "rtf_wall": round(audio / measured_wall, 1) if files and measured_wall else None,
        "rtf_cpu": round(audio / measured_cpu, 1) if files and measured_cpu else None,
        "startup_wall_s": ready.get("startup_wall_s"),
        "startup_cpu_s": ready.get("startup_cpu_s"),
        "process_wall_s": round(wall, 1),
        "process_cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "baseline_mb": ready.get("peak_rss_mb"),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # ru_maxrss is in KiB on Linux
        "rss_samples_mb": samples,
    }


async def _run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    audio_dir = workdir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    ext = args.format
    long_seconds = args.hours * 3600
    _log(f"generating a {args.hours} h recording ({ext}) in {audio_dir} ...")
    t0 = time.monotonic()
    expected: dict[str, dict[str, Any]] = {}
    long_paths: list[Path] = []
    if long_seconds > 0:
        long_path = _generate(
            audio_dir / f"set-{args.hours:g}h.{ext}",
            signals.drifting_drums(long_seconds, bpm_start=118.0, bpm_end=132.0, seed=1),
        )
        long_paths.append(long_path)
        expected[long_path.name] = {"bpm_start": LONG_TEMPI[0], "bpm_end": LONG_TEMPI[1]}
    tracks = [
        _generate(audio_dir / f"track-{i:02d}.{ext}", _track_blocks(i, args.track_minutes * 60))
        for i in range(args.tracks)
    ]
    for i, path in enumerate(tracks):
        tonic, mode = TRACK_KEYS[i % len(TRACK_KEYS)]
        expected[path.name] = {"bpm": TRACK_TEMPI[i % len(TRACK_TEMPI)], "key": f"{tonic} {mode}"}
    _log(f"generated (or reused) in {time.monotonic() - t0:.0f} s")
    warmup = _generate(audio_dir / f"warmup.{ext}", iter([signals.sine(1.0, -20.0)]))
    settings = AnalysisSettings()
    results: dict[str, Any] = {}
    limit = args.memory_limit_mb * 1024**2
    for name, paths, sample in (("tracks", tracks, False), ("long", long_paths, True)):
        if not paths:
            continue
        _log(f"analysing {name} with tracktiond ...")
        # A generous timeout: the benchmark measures speed, it must not be cut short by it.
        started = time.monotonic()
        async with AnalysisPool(1, memory_limit_bytes=limit, timeout_factor=1.0) as pool:
            await pool.analyze(str(warmup), settings)  # start the worker, import essentia
            startup_wall = time.monotonic() - started
            results[name] = await _measure(pool, paths, settings, sample)
        results[name]["startup_wall_s"] = round(startup_wall, 1)
        _score(results[name], expected)
        if args.skip_librosa:
            continue
        _log(f"analysing {name} with librosa ...")
        anchor = await anyio.to_thread.run_sync(
            _librosa_set,
            paths,
            warmup,
            args.librosa_memory_limit_mb,
            sample,
            settings.long_recording_seconds,
        )
        _score(anchor, expected)
        results.setdefault("librosa", {})[name] = anchor
    return results


def _machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if "model name" in ln), "")
    except OSError:
        pass
    versions = {}
    for dist in ("essentia", "av", "numpy", "librosa", "scipy", "numba", "soundfile", "soxr"):
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


def _compare(results: dict[str, Any]) -> dict[str, Any]:
    """tracktiond / librosa, per set: speed by CPU and by wall time, and peak memory.

    Speed ratios above 1 mean tracktiond is faster; a memory ratio below 1 means it uses less.
    When librosa did not finish a set (killed at the memory limit) there is no speed ratio, and
    the memory ratio is an upper bound (librosa would have needed more).
    """
    comparison: dict[str, Any] = {}
    for name, anchor in results.get("librosa", {}).items():
        ours = results[name]

        def ratio(a: float | None, b: float | None) -> float | None:
            return round(a / b, 2) if a and b else None

        complete = anchor["complete"]
        comparison[name] = {
            "speed_cpu": ratio(ours["rtf_cpu"], anchor["rtf_cpu"]) if complete else None,
            "speed_wall": ratio(ours["rtf_wall"], anchor["rtf_wall"]) if complete else None,
            "peak_rss": ratio(ours["worker_peak_rss_mb"], anchor["peak_rss_mb"]),
            "peak_rss_is_upper_bound": not complete,
        }
    return comparison


def _cell(value: Any, width: int) -> str:
    """A right-aligned table cell: one decimal for numbers, ``-`` for a figure not measured."""
    if value is None:
        return f"{'-':>{width}s}"
    if isinstance(value, float | int):
        return f"{value:{width}.1f}"
    return f"{value:>{width}s}"


def _print_table(results: dict[str, Any], comparison: dict[str, Any]) -> None:
    print(
        f"{'set':7s}{'tool':11s}{'audio min':>10s}{'wall s':>9s}{'CPU s':>9s}{'x wall':>8s}"
        f"{'x CPU':>8s}{'start CPU s':>12s}{'peak RSS MB':>12s}{'tempo':>7s}{'key':>6s}"
    )
    for name in ("tracks", "long"):
        if name not in results:
            continue
        rows = [("tracktiond", results[name], "worker_peak_rss_mb")]
        if name in results.get("librosa", {}):
            rows.append(("librosa", results["librosa"][name], "peak_rss_mb"))
        for tool, r, peak in rows:
            done = bool(r["files"])
            print(
                f"{name:7s}{tool:11s}{_cell(r['audio_s'] / 60 if done else None, 10)}"
                f"{_cell(r['wall_s'] if done else None, 9)}{_cell(r['cpu_s'] if done else None, 9)}"
                f"{_cell(r['rtf_wall'], 8)}{_cell(r['rtf_cpu'], 8)}{_cell(r['startup_cpu_s'], 12)}"
                f"{_cell(r[peak], 12)}{_cell(r['tempo_ok'] if done else None, 7)}"
                f"{_cell(r['key_ok'] if done else None, 6)}"
            )
            if r.get("killed"):
                print(
                    f"{'':7s}{tool} killed: {r['killed']}; {r['process_cpu_s']} s of CPU "
                    "spent by then (start-up included)"
                )
        if name in comparison:
            c = comparison[name]
            bound = "at most " if c["peak_rss_is_upper_bound"] else ""
            speed = (
                f"speed x{c['speed_cpu']} by CPU, x{c['speed_wall']} by wall"
                if c["speed_cpu"] is not None
                else "speed not comparable (librosa did not finish)"
            )
            print(f"{'':7s}tracktiond / librosa: {speed}; peak RSS {bound}x{c['peak_rss']}")
    if "long" in results:
        rss = [mb for _, mb in results["long"]["rss_samples_mb"]]
        if rss:
            print(f"long   tracktiond RSS while analysing: min {min(rss)} MB, max {max(rss)} MB")
        anchor = results.get("librosa", {}).get("long", {})
        for tool, files in (
            ("tracktiond", results["long"]["files"]),
            ("librosa", anchor.get("files", [])),
        ):
            for f in files:
                print(
                    f"long   {tool} {f['file']}: bpm {f['bpm']}, start {f['bpm_start']}, "
                    f"end {f['bpm_end']}"
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=3.0, help="length of the long recording")
    parser.add_argument("--tracks", type=int, default=8, help="number of generated tracks")
    parser.add_argument("--track-minutes", type=float, default=4.0)
    parser.add_argument("--format", choices=("flac", "mp3"), default="flac")
    parser.add_argument("--memory-limit-mb", type=int, default=1536)
    parser.add_argument("--skip-librosa", action="store_true", help="leave out the librosa anchor")
    parser.add_argument(
        "--librosa-memory-limit-mb",
        type=int,
        default=8192,
        help="kill the librosa process above this RSS (it loads whole files into memory)",
    )
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
        comparison = _compare(results)
        report = {
            "machine": machine,
            "args": vars(args) | {"workdir": str(workdir)},
            **results,
            "comparison": comparison,
        }
        (workdir / "results.json").write_text(json.dumps(report, indent=2, default=str))
        if args.json:
            print(json.dumps(report, indent=2, default=str))
        else:
            print(f"machine: {machine}")
            _print_table(results, comparison)
    finally:
        if temporary and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
