"""Fingerprinting benchmark: one worker on long recordings, speed and memory, beside its floor.

    python bench/fingerprint_worker.py                     # a 3-hour and a 1-hour set (FLAC)
    python bench/fingerprint_worker.py --hours 0.5 1 --format mp3

What the daemon's fingerprint stage costs per worker on a DJ set (issue 10: index build
≥ 200× real time per worker, worker memory < 400 MB for a 3-hour set). Each recording is a
generated DJ-set-like drum recording (tests.support.signals.drifting_drums: 44.1 kHz stereo,
tempo drifting 118 → 132 BPM, written in 30 s blocks, never held in memory), fingerprinted by
the real worker through the real pool (``AnalysisPool.fingerprint``: decoded once at 8 kHz mono,
block by block, into peaks), in a fresh pool of one worker per recording, so each peak memory
figure is that recording's alone.

The floor, side by side in the same run: the same file only *decoded* the same way
(``tracktiond.analysis.decode.Decoder`` at 8 kHz, mono mix, blocks thrown away) in a
subprocess of its own, its CPU time from the kernel (``wait4``): what any fingerprinter reading
this file at this rate must pay before its first spectrum.

Reported per recording: wall and CPU seconds of the worker, × real time by both, the worker's
peak resident memory (VmHWM, as it reports it at the end of the job), the peaks it returned,
and the decode floor's CPU seconds and × real time; the load average before and after (other
work on the machine slows the wall figures; the CPU figures depend far less on it).
Results go to stdout and ``WORKDIR/results.json``; audio is reused from ``--workdir``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import load_average, machine_info
from tests.support import signals
from tracktiond.analysis import AnalysisPool

# The floor: decode at the fingerprinter's rate, mix to mono, discard.
FLOOR = """
import sys
from tracktiond.analysis.decode import Decoder
from tracktiond.fingerprint.identify import FingerprintSettings
rate = FingerprintSettings().spectrum.rate
with Decoder(sys.argv[1], int(10 * rate), rate=rate) as d:
    for block in d.blocks():
        block.mean(axis=0)
    print(d.decoded_seconds)
"""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _generate(path: Path, hours: float) -> Path:
    if path.exists():
        return path
    partial = path.with_name(path.name + ".part" + path.suffix)
    blocks = signals.drifting_drums(hours * 3600, bpm_start=118.0, bpm_end=132.0, seed=1)
    signals.write_stream(partial, blocks, channels=2)
    partial.replace(path)
    return path


async def _fingerprint(path: Path, memory_limit_mb: int) -> dict[str, Any]:
    async with AnalysisPool(1, memory_limit_bytes=memory_limit_mb * 1024 * 1024) as pool:
        await pool.fingerprint(
            str(path.with_name("warmup.flac"))
        )  # start-up and imports are not the recording's
        (pid,) = pool.worker_pids
        t0, c0 = time.monotonic(), _cpu_seconds(pid)
        made = await pool.fingerprint(str(path))
        wall, cpu = time.monotonic() - t0, _cpu_seconds(pid) - c0
        seconds = float(made["seconds"])
        return {
            "audio_s": round(seconds, 1),
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "rtf_wall": round(seconds / wall, 1),
            "rtf_cpu": round(seconds / cpu, 1) if cpu else None,
            "peak_rss_mb": round(pool.peak_rss_bytes / 1024**2, 1),
            "peaks_bytes": len(base64.b64decode(str(made["peaks"]))),
            "frames": int(made["frames"]),
        }


def _floor(path: Path, warmup: Path | None = None) -> dict[str, Any]:
    """The floor, its CPU time from wait4 (Popen would reap the child before we could ask);
    less that of the same program on ``warmup`` (interpreter start and imports), so that, like
    the worker's figure, it is the recording's alone."""
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: exec the floor, its stdout to a file
        out = os.open(str(path) + ".floor", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out, 1)
        os.execv(sys.executable, [sys.executable, "-c", FLOOR, str(path)])
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - t0
    if status != 0:
        raise SystemExit(f"the decode floor failed on {path} (status {status})")
    seconds = float(Path(str(path) + ".floor").read_text().split()[-1])
    cpu = usage.ru_utime + usage.ru_stime
    if warmup is not None:
        start = _floor(warmup)
        cpu -= start["cpu_s"]
        wall -= start["wall_s"]
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "rtf_cpu": round(seconds / cpu, 1) if cpu else None,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, nargs="+", default=[3.0, 1.0])
    parser.add_argument("--format", default="flac", choices=["flac", "mp3", "ogg", "wav"])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--memory-limit-mb", type=int, default=1024)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tracktiond-fpbench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine": machine_info(workdir),
        "load_before": load_average(),
        "recordings": {},
    }
    warm = workdir / "warmup.flac"
    if not warm.exists():
        signals.write_stream(warm, iter([signals.sine(1.0, -20.0)]), channels=2)
    for hours in args.hours:
        path = workdir / f"set-{hours:g}h.{args.format}"
        _log(f"generating (or reusing) {path} ...")
        _generate(path, hours)
        _log(f"fingerprinting {path.name} in the worker ...")
        worker = anyio.run(_fingerprint, path, args.memory_limit_mb)
        _log(f"  {worker}")
        _log(f"decoding {path.name} only (the floor) ...")
        floor = _floor(path, workdir / "warmup.flac")
        _log(f"  {floor}")
        results["recordings"][path.name] = {
            "hours": hours,
            "worker": worker,
            "decode_floor": floor,
            "worker_cpu_over_floor": round(worker["cpu_s"] / floor["cpu_s"], 2)
            if floor["cpu_s"]
            else None,
        }
    results["load_after"] = load_average()
    (workdir / "results.json").write_text(json.dumps(results, indent=2))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"load before {results['load_before']}, after {results['load_after']}")
    print(
        f"{'recording':<16} {'audio s':>8} {'cpu s':>7} {'x RT cpu':>9} {'x RT wall':>9} "
        f"{'peak MB':>8} {'peaks KB':>9} {'floor cpu s':>11} {'floor x RT':>10}"
    )
    for name, r in results["recordings"].items():
        w, f = r["worker"], r["decode_floor"]
        print(
            f"{name:<16} {w['audio_s']:>8.0f} {w['cpu_s']:>7.1f} {w['rtf_cpu']:>9.1f} "
            f"{w['rtf_wall']:>9.1f} {w['peak_rss_mb']:>8.1f} {w['peaks_bytes'] / 1024:>9.0f} "
            f"{f['cpu_s']:>11.1f} {f['rtf_cpu']:>10.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
