"""Benchmark: the daemon (`tracktiond run`) — event-to-catalog latency, idle cost, restart.

One run, each daemon a subprocess with its own config and its own ``XDG_STATE_HOME``:

1. **Event-to-catalog latency.** A daemon watches a nearly empty root. ``--drops`` small real
   audio files (tests/support/audiogen.py) arrive one every 100-200 ms, half written to a temp name
   outside the root and ``os.rename``d in, half written in place. For each, the time from the
   rename (or the close) to the moment the catalog row says ``cataloged`` is measured by a
   thread that polls the catalog database directly (a read-only sqlite3 connection; the catalog
   is in WAL mode, so readers never block the daemon) every 10 ms.
2. **Idle cost of a big watched library.** ``--files`` distinct tiny audio files in ``--dirs``
   directories are generated (copies of a few tagged templates with a per-file title; not
   measured), cataloged with ``tracktiond scan`` (timed), then watched by a daemon. Once it is
   ready and the queue is empty, its CPU time (utime + stime of every thread, and of child
   processes if any, from /proc) is sampled over ``--idle-seconds`` without touching it;
   resident memory (VmRSS, VmHWM) is read at the end.
3. **Reconciliation after a restart** of that unchanged library: SIGTERM, start again, time
   from the start to ``/readyz`` 200 (ready means: the first full reconciliation is done), and
   the daemon's own ``tracktiond_reconcile_last_duration_seconds``.
4. Latency again (``--big-drops`` files) while the daemon watches the big library.

Run from the repository root with the project's venv active::

    python bench/daemon.py                  # 100,000 files in 5,000 directories, 200 drops
    python bench/daemon.py --files 2000 --dirs 100 --drops 20 --idle-seconds 10   # smoke run

Progress goes to stderr; the result table (or, with ``--json``, one JSON document) to stdout.
MB means 10**6 bytes. ``--workdir`` keeps the generated library for the next run (the catalog
is always rebuilt); without it everything lives in a temp directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib
import importlib.metadata
import json
import math
import os
import random
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from machine import load_average, machine_info  # bench/ is on sys.path: run as a script

REPO = Path(__file__).resolve().parent.parent

GOAL_LATENCY_MARGIN_S = 1.0  # p99 under the settle interval plus this
GOAL_IDLE_CPU_PERCENT = 1.0  # of one core
GOAL_RSS_MB = 250.0
GOAL_RESTART_READY_S = 10.0

MB = 1_000_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
CATALOG_POLL_S = 0.010
READY_POLL_S = 0.050

# Library templates: formats whose tag bytes are not covered by a checksum, so a fixed-width
# placeholder in the title can be overwritten per copy (Ogg pages carry a CRC: no ogg/opus here).
LIBRARY_TEMPLATES: dict[str, float] = {"mp3": 0.3, "flac": 0.1, "wav": 0.05, "m4a": 0.2}
PLACEHOLDER = "DAEMONBENCH-00000000"
DIRS_PER_PARENT = 50  # artist/album: the leaf directories are grouped in parents of 50
DROP_FORMATS: tuple[str, ...] = ("mp3", "flac", "ogg", "opus", "m4a", "wav")
DROP_SUBDIRS = 4


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_audiogen() -> ModuleType:
    """tests/support/audiogen.py, the project's generator of real audio files."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module("tests.support.audiogen")


# ---------------------------------------------------------------------------------------------
# /proc readings
# ---------------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on; comm may hold spaces


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry))[1])
        except (OSError, ValueError, IndexError):
            continue
        children[ppid].append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid``, of its reaped children, and of live descendants."""
    f = _stat_fields(pid)
    ticks = int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    for child in _descendants(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            c = _stat_fields(child)
            ticks += int(c[11]) + int(c[12])
    return ticks / CLK_TCK


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in bytes, and the thread count, from /proc/PID/status."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
        elif key == "Threads":
            out[key] = int(value)
    return out


def _rss_or_zero(pid: int) -> int:
    try:
        return proc_status(pid).get("VmRSS", 0)
    except OSError:
        return 0


def inotify_watches(pid: int) -> int:
    """How many inotify watches the process holds (one per watched directory)."""
    count = 0
    fdinfo = Path(f"/proc/{pid}/fdinfo")
    for entry in fdinfo.iterdir():
        with contextlib.suppress(OSError):
            count += sum(1 for ln in entry.read_text().splitlines() if ln.startswith("inotify wd:"))
    return count


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def read_sysctl(name: str) -> int | None:
    try:
        return int(Path("/proc/sys", *name.split(".")).read_text())
    except (OSError, ValueError):
        return None


def bench_machine_info(workdir: Path) -> dict[str, Any]:
    info = machine_info(workdir)
    for name in ("max_user_watches", "max_user_instances", "max_queued_events"):
        info[f"inotify_{name}"] = read_sysctl(f"fs.inotify.{name}")
    return info


# ---------------------------------------------------------------------------------------------
# One daemon subprocess
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class DaemonError(RuntimeError):
    pass


class Daemon:
    """``tracktiond run`` with an isolated state directory and config file."""

    def __init__(
        self, home: Path, roots: Sequence[Path], settle: float, extra_config: str = ""
    ) -> None:
        self.home = home
        self.state_home = home / "state"
        self.logs = home / "logs"
        for d in (self.state_home, self.logs, home / "config"):
            d.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config = home / "tracktiond.toml"
        root_list = ", ".join(json.dumps(str(r)) for r in roots)
        self.config.write_text(
            "[library]\n"
            f"roots = [{root_list}]\n"
            f"settle_interval = {settle}\n\n"
            "[http]\n"
            f'listen = "127.0.0.1:{self.port}"\n' + (f"\n{extra_config}\n" if extra_config else "")
        )
        self.db_path = self.state_home / "tracktiond" / "catalog.db"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.runs = 0
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TRACKTIOND_", "NOTIFY_", "WATCHDOG_", "XDG_", "LISTEN_"))
            and k not in ("STATE_DIRECTORY", "CONFIGURATION_DIRECTORY", "INVOCATION_ID")
        }
        self.env["XDG_STATE_HOME"] = str(self.state_home)
        self.env["XDG_CONFIG_HOME"] = str(home / "config")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A one-shot `tracktiond` command against this daemon's config and catalog."""
        cmd = [sys.executable, "-m", "tracktiond", *args, "--config", str(self.config)]
        return subprocess.run(
            cmd, env=self.env, cwd=self.home, capture_output=True, text=True, check=False
        )

    def start(self) -> None:
        self.runs += 1
        log_path = self.logs / f"run-{self.runs}.log"
        out = open(log_path, "wb")  # noqa: SIM115 — handed to the child, closed right after
        cmd = [sys.executable, "-m", "tracktiond", "run", "--config", str(self.config)]
        self.started_at = time.perf_counter()
        try:
            self.proc = subprocess.Popen(
                cmd, env=self.env, cwd=self.home, stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        finally:
            out.close()
        self.log_path = log_path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """(status, body); status 0 when nothing answers."""
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return 0, b""

    def wait_ready(self, timeout: float) -> dict[str, float]:
        """Poll /readyz; seconds from the start to the first HTTP answer and to 200."""
        assert self.proc is not None
        first_answer: float | None = None
        deadline = self.started_at + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise DaemonError(
                    f"the daemon exited with code {self.proc.returncode} before it was ready:\n"
                    + self.log_tail()
                )
            status, _ = self.get("/readyz", timeout=2.0)
            now = time.perf_counter()
            if status and first_answer is None:
                first_answer = now - self.started_at
            if status == 200:
                return {"http_answers_s": first_answer or 0.0, "ready_s": now - self.started_at}
            time.sleep(READY_POLL_S)
        raise DaemonError(f"the daemon was not ready after {timeout:.0f} s:\n" + self.log_tail())

    def status(self) -> dict[str, Any]:
        code, body = self.get("/status")
        if code != 200:
            raise DaemonError(f"/status answered {code}")
        data: dict[str, Any] = json.loads(body)
        return data

    def metric(self, name: str) -> float | None:
        code, body = self.get("/metrics")
        if code != 200:
            return None
        for line in body.decode().splitlines():
            metric, _, value = line.partition(" ")
            if metric == name:
                return float(value)
        return None

    def stop(self, timeout: float = 60.0) -> tuple[float, int | None]:
        """SIGTERM and wait: (seconds to exit, exit code); SIGKILL after ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0, self.proc.returncode if self.proc else None
        started = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        return time.perf_counter() - started, code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------------------------------
# Watching the catalog from outside
# ---------------------------------------------------------------------------------------------


def open_catalog_readonly(db_path: Path, timeout: float = 30.0) -> sqlite3.Connection:
    deadline = time.monotonic() + timeout
    while not db_path.exists():
        if time.monotonic() > deadline:
            raise DaemonError(f"no catalog at {db_path}")
        time.sleep(0.05)
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=1000")
    return conn


def count_states(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT state, count(*) FROM files GROUP BY state").fetchall())


@dataclass
class Drop:
    path: str
    mode: str  # "rename" or "in-place"
    t0: float  # perf_counter right after the rename, or after the close
    done: float | None = None
    state: str | None = None

    @property
    def latency(self) -> float | None:
        return None if self.done is None else self.done - self.t0


class CatalogPoller(threading.Thread):
    """Polls the catalog every CATALOG_POLL_S for the state of the files it was told about."""

    def __init__(self, db_path: Path) -> None:
        super().__init__(name="catalog-poller", daemon=True)
        self.conn = open_catalog_readonly(db_path)
        self.lock = threading.Lock()
        self.waiting: dict[str, Drop] = {}
        self.finished: list[Drop] = []
        self.halt = threading.Event()
        self.polls = 0
        self.poll_seconds = 0.0

    def expect(self, drop: Drop) -> None:
        with self.lock:
            self.waiting[drop.path] = drop

    def run(self) -> None:
        while not self.halt.is_set():
            with self.lock:
                paths = list(self.waiting)
            if paths:
                started = time.perf_counter()
                rows: list[tuple[str, str]] = []
                for i in range(0, len(paths), 500):
                    chunk = paths[i : i + 500]
                    marks = ",".join("?" * len(chunk))
                    rows += self.conn.execute(
                        f"SELECT path, state FROM files WHERE path IN ({marks})", chunk
                    ).fetchall()
                seen = time.perf_counter()
                self.polls += 1
                self.poll_seconds += seen - started
                with self.lock:
                    for path, state in rows:
                        if state in ("cataloged", "failed") and path in self.waiting:
                            drop = self.waiting.pop(path)
                            drop.done, drop.state = seen, state
                            self.finished.append(drop)
            time.sleep(CATALOG_POLL_S)

    def wait_all(self, timeout: float) -> list[Drop]:
        """Wait until every expected file is settled in the catalog; the rest time out."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self.lock:
                if not self.waiting:
                    break
            time.sleep(0.05)
        with self.lock:
            late = list(self.waiting.values())
            self.waiting.clear()
        return late

    def close(self) -> None:
        self.halt.set()
        self.join(5)
        self.conn.close()


def make_drop_files(staging: Path, count: int, seed: int, audiogen: ModuleType) -> list[Path]:
    """``count`` distinct small real audio files, one second each, in every drop format."""
    staging.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for i in range(count):
        fmt = DROP_FORMATS[(i // 2) % len(DROP_FORMATS)]  # both modes get every format
        path = staging / f"drop {seed}-{i:05d}{audiogen.EXTENSIONS[fmt]}"
        audiogen.make_audio(
            path,
            fmt,
            seconds=1.0,
            seed=seed + i,
            freq=180.0 + (i % 40) * 11.0,
            tags={"title": f"Dropped {seed}-{i}", "artist": "Daemon Bench"},
        )
        out.append(path)
    return out


def drop_into(
    root: Path, sources: Sequence[Path], poller: CatalogPoller, rng: random.Random, timeout: float
) -> tuple[list[Drop], list[Drop]]:
    """Drop each source into ``root``: even ones renamed in, odd ones written in place.

    Returns (settled drops, drops that were not cataloged or failed within ``timeout``).
    """
    targets = [root / f"incoming {k}" for k in range(DROP_SUBDIRS)]
    for i, src in enumerate(sources):
        dest = targets[i % DROP_SUBDIRS] / src.name
        if i % 2 == 0:
            os.rename(src, dest)
            drop = Drop(str(dest), "rename", time.perf_counter())
        else:
            data = src.read_bytes()
            with open(dest, "wb") as fh:
                fh.write(data)
            drop = Drop(str(dest), "in-place", time.perf_counter())
            src.unlink()
        poller.expect(drop)
        time.sleep(rng.uniform(0.1, 0.2))
    late = poller.wait_all(timeout)
    with poller.lock:
        done = list(poller.finished)
        poller.finished.clear()
    return done, late


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def latency_stats(drops: Sequence[Drop], late: Sequence[Drop]) -> dict[str, Any]:
    def summary(sel: list[Drop], late_n: int) -> dict[str, Any]:
        ok = [d.latency for d in sel if d.state == "cataloged" and d.latency is not None]
        return {
            "dropped": len(sel) + late_n,
            "cataloged": len(ok),
            "failed": sum(1 for d in sel if d.state == "failed"),
            "not_cataloged_in_time": late_n,
            "p50_s": percentile(ok, 50),
            "p90_s": percentile(ok, 90),
            "p99_s": percentile(ok, 99),
            "max_s": max(ok) if ok else None,
            "min_s": min(ok) if ok else None,
        }

    out = {"all": summary(list(drops), len(late))}
    for mode in ("rename", "in-place"):
        out[mode] = summary(
            [d for d in drops if d.mode == mode], sum(1 for d in late if d.mode == mode)
        )
    out["late_paths"] = [d.path for d in late][:10]
    out["failed_paths"] = [d.path for d in drops if d.state == "failed"][:10]
    return out


def run_drops(
    daemon: Daemon, root: Path, staging: Path, count: int, seed: int, settle: float
) -> dict[str, Any]:
    audiogen = load_audiogen()
    sources = make_drop_files(staging, count, seed, audiogen)
    poller = CatalogPoller(daemon.db_path)
    poller.start()
    busy0, own0, wall0 = machine_busy_seconds(), cpu_seconds(daemon.pid), time.perf_counter()
    try:
        drops, late = drop_into(root, sources, poller, random.Random(seed), timeout=settle + 30)
    finally:
        poller.close()
    wall = time.perf_counter() - wall0
    own = cpu_seconds(daemon.pid) - own0
    stats = latency_stats(drops, late)
    stats["window_s"] = round(wall, 1)
    stats["daemon_cpu_s"] = round(own, 2)
    stats["other_cpu_s"] = round(machine_busy_seconds() - busy0 - own, 2)
    stats["poll_interval_s"] = CATALOG_POLL_S
    stats["mean_poll_query_ms"] = round(1000 * poller.poll_seconds / max(1, poller.polls), 3)
    return stats


# ---------------------------------------------------------------------------------------------
# The big library
# ---------------------------------------------------------------------------------------------


def _make_templates(tdir: Path, audiogen: ModuleType) -> dict[str, bytes]:
    tdir.mkdir(parents=True, exist_ok=True)
    marker = PLACEHOLDER.encode()
    out: dict[str, bytes] = {}
    for n, (fmt, seconds) in enumerate(LIBRARY_TEMPLATES.items()):
        path = tdir / f"template{audiogen.EXTENSIONS[fmt]}"
        audiogen.make_audio(
            path,
            fmt,
            seconds=seconds,
            seed=500 + n,
            channels=1,
            sample_rate=22050,
            tags={"title": PLACEHOLDER, "artist": "Daemon Bench", "album": "Idle Library"},
        )
        data = path.read_bytes()
        if data.count(marker) != 1:
            raise SystemExit(f"{path}: the title placeholder is not found exactly once")
        out[fmt] = data
    return out


def _count_files(root: Path) -> tuple[int, int]:
    files = dirs = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    dirs += 1
                    stack.append(entry.path)
                else:
                    files += 1
    return files, dirs


def make_library(workdir: Path, files: int, dirs: int, audiogen: ModuleType) -> dict[str, Any]:
    """``files`` distinct tagged audio files spread evenly over ``dirs`` leaf directories."""
    root = workdir / "library"
    manifest = workdir / "library.json"
    params = {"files": files, "dirs": dirs, "templates": LIBRARY_TEMPLATES, "v": 1}
    started = time.perf_counter()
    with contextlib.suppress(OSError, ValueError):
        saved = json.loads(manifest.read_text())
        counted, subdirs = _count_files(root)
        if saved["params"] == params and (counted, subdirs + 1) == (files, saved["dirs_total"]):
            log(f"reusing the library of {files:,} files in {root}")
            return {**saved, "root": str(root), "reused": True, "generate_s": 0.0}
    shutil.rmtree(root, ignore_errors=True)
    manifest.unlink(missing_ok=True)
    templates = _make_templates(workdir / "templates", audiogen)
    formats = list(templates)
    marker = PLACEHOLDER.encode()
    log(f"writing {files:,} files in {dirs:,} directories under {root}")
    per_dir, extra = divmod(files, dirs)
    index = 0
    total = 0
    for d in range(dirs):
        directory = root / f"Artist {d // DIRS_PER_PARENT:04d}" / f"Album {d:05d}"
        directory.mkdir(parents=True, exist_ok=True)
        for j in range(per_dir + (1 if d < extra else 0)):
            fmt = formats[index % len(formats)]
            data = templates[fmt].replace(marker, f"DAEMONBENCH-{index:08d}".encode())
            name = f"{j + 1:03d} - Track {index:07d}{audiogen.EXTENSIONS[fmt]}"
            (directory / name).write_bytes(data)
            total += len(data)
            index += 1
        if (d + 1) % 500 == 0:
            log(f"  {d + 1:,}/{dirs:,} directories")
    os.sync()
    counted, dirs_total = _count_files(root)
    info = {
        "params": params,
        "files": counted,
        "dirs_total": dirs_total + 1,  # and the root itself
        "bytes": total,
    }
    manifest.write_text(json.dumps(info))
    return {**info, "root": str(root), "reused": False, "generate_s": time.perf_counter() - started}


def _fully_cataloged(db_path: Path, files: int) -> bool:
    if not db_path.exists():
        return False
    with contextlib.closing(open_catalog_readonly(db_path)) as conn:
        return count_states(conn).get("cataloged") == files


def run_scan(daemon: Daemon, root: Path, expected: int) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = daemon.cli("scan", str(root), "--json", "--no-progress")
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"tracktiond scan failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout)
    if summary["new"] != expected or summary["failed"]:
        raise SystemExit(f"tracktiond scan: expected {expected} new files, got {summary}")
    return {
        "seconds": seconds,
        "files_per_s": expected / seconds,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "peak_rss_mb": after.ru_maxrss * 1024 / MB,  # a floor: see bench/scan.py on ru_maxrss
        "summary": summary,
    }


def wait_queue_empty(conn: sqlite3.Connection, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        states = count_states(conn)
        if not states.get("pending") or time.monotonic() > deadline:
            return states
        time.sleep(0.5)


def measure_idle(pid: int, seconds: float) -> dict[str, Any]:
    """CPU of ``pid`` over ``seconds`` without talking to it: total and per-second samples."""
    start_wall, start_cpu, start_busy = (
        time.perf_counter(),
        cpu_seconds(pid),
        machine_busy_seconds(),
    )
    samples: list[float] = []
    last_wall, last_cpu = start_wall, start_cpu
    while (now := time.perf_counter()) - start_wall < seconds:
        time.sleep(min(1.0, seconds - (now - start_wall)))
        wall, cpu = time.perf_counter(), cpu_seconds(pid)
        samples.append(100 * (cpu - last_cpu) / (wall - last_wall))
        last_wall, last_cpu = wall, cpu
    wall = last_wall - start_wall
    cpu = last_cpu - start_cpu
    busy = machine_busy_seconds() - start_busy
    ordered = sorted(samples)
    return {
        "window_s": round(wall, 2),
        "cpu_s": round(cpu, 3),
        "percent_of_one_core": 100 * cpu / wall,
        "busiest_second_percent": ordered[-1] if ordered else None,
        "median_second_percent": percentile(ordered, 50),
        "other_cpu_s": round(busy - cpu, 2),
        "tick_s": 1 / CLK_TCK,
    }


def py_spy_profile(pid: int, seconds: float, out: Path) -> dict[str, Any] | None:
    """A py-spy profile of the idle daemon (after the measured window: py-spy costs CPU too)."""
    exe = shutil.which("py-spy")
    if exe is None:
        log("py-spy not found: no profile")
        return None
    cmd = [exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200"]
    cmd += ["--format", "raw", "--output", str(out), "--nonblocking", "--threads"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not out.exists():
        log(f"py-spy failed: {proc.stderr.strip()[-500:]}")
        return None
    return summarize_folded(out)


WRAPPERS = ("<module> (", "run_daemon (", "run (tracktiond/cli.py")  # on every main-thread stack


def summarize_folded(path: Path, top: int = 10) -> dict[str, Any]:
    """Where the busy samples are, from py-spy's folded stacks (idle threads are not sampled):
    by thread, by innermost frame, and by tracktiond function (inclusive)."""
    threads: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n_text = line.rpartition(" ")
        if not n_text.isdigit():
            continue
        n = int(n_text)
        total += n
        frames = stack.split(";")
        threads[frames[0].split(": ", 1)[-1]] += n  # --threads: "thread (TID): NAME" first
        leaf[frames[-1]] += n
        for frame in {f for f in frames[1:] if "tracktiond/" in f and not f.startswith(WRAPPERS)}:
            ours[frame] += n
    return {
        "file": str(path),
        "samples": total,
        "by_thread": threads.most_common(top),
        "top_leaf": leaf.most_common(top),
        "top_tracktiond_inclusive": ours.most_common(top),
    }


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@dataclass
class Results:
    args: dict[str, Any]
    machine: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    library: dict[str, Any] = field(default_factory=dict)
    scan: dict[str, Any] = field(default_factory=dict)
    first_start: dict[str, Any] = field(default_factory=dict)
    idle: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    restart: dict[str, Any] = field(default_factory=dict)
    big_latency: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def root_modes(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"path": r["path"], "mode": r["mode"], "reason": r.get("reason")} for r in status["roots"]
    ]


def phase_latency(args: argparse.Namespace, workdir: Path, res: Results) -> None:
    home = workdir / "latency"
    shutil.rmtree(home, ignore_errors=True)
    root = home / "root"
    for k in range(DROP_SUBDIRS):
        (root / f"incoming {k}").mkdir(parents=True)
    audiogen = load_audiogen()
    for i, fmt in enumerate(("mp3", "flac", "wav")):  # empty-ish: a few files already there
        audiogen.make_audio(root / f"already here {i}{audiogen.EXTENSIONS[fmt]}", fmt, seed=90 + i)
    daemon = Daemon(home, [root], args.settle, args.config_extra)
    try:
        daemon.start()
        times = daemon.wait_ready(120)
        log(f"latency daemon ready in {times['ready_s']:.2f} s (pid {daemon.pid})")
        with contextlib.closing(open_catalog_readonly(daemon.db_path)) as conn:
            wait_queue_empty(conn, 60)
        res.latency = {"root_modes": root_modes(daemon.status())}
        log(f"dropping {args.drops} files into {root}, one every 100-200 ms")
        res.latency.update(
            run_drops(daemon, root, home / "staging", args.drops, 10_000, args.settle)
        )
        a = res.latency["all"]
        log(
            f"latency: p50 {_s(a['p50_s'], 3)} s, p99 {_s(a['p99_s'], 3)} s, "
            f"max {_s(a['max_s'], 3)} s"
        )
        seconds, code = daemon.stop()
        res.latency["stop"] = {"seconds": round(seconds, 2), "exit_code": code}
    finally:
        daemon.kill()


def phase_library(args: argparse.Namespace, workdir: Path, res: Results) -> None:
    audiogen = load_audiogen()
    res.library = make_library(workdir, args.files, args.dirs, audiogen)
    root = Path(res.library["root"])
    home = workdir / "big"
    catalog = home / "state" / "tracktiond" / "catalog.db"
    reuse = args.reuse_catalog and res.library["reused"] and _fully_cataloged(catalog, args.files)
    if not reuse:
        shutil.rmtree(home, ignore_errors=True)
    else:  # the library and its catalog from an earlier run: no scan, a fresh config
        shutil.rmtree(home / "logs", ignore_errors=True)
        shutil.rmtree(home / "staging", ignore_errors=True)
    daemon = Daemon(home, [root], args.settle, args.config_extra)
    try:
        if reuse:
            log(f"reusing the catalog of {args.files:,} files in {catalog} (no scan)")
            res.scan = {"reused": True}
        else:
            log(f"cataloging {args.files:,} files with tracktiond scan")
            res.scan = run_scan(daemon, root, res.library["files"])
            log(f"scan: {res.scan['seconds']:.1f} s ({res.scan['files_per_s']:,.0f} files/s)")

        # -- first start on the scanned catalog, then idle ---------------------------------
        daemon.start()
        times = daemon.wait_ready(600)
        cpu_to_ready = cpu_seconds(daemon.pid)
        status = daemon.status()
        res.first_start = {
            **times,
            "cpu_s_to_ready": cpu_to_ready,
            "reconcile_last_duration_s": daemon.metric(
                "tracktiond_reconcile_last_duration_seconds"
            ),
            "root_modes": root_modes(status),
            "inotify_watches": inotify_watches(daemon.pid),
        }
        log(
            f"daemon ready in {times['ready_s']:.2f} s; roots "
            f"{[m['mode'] for m in res.first_start['root_modes']]}; "
            f"{res.first_start['inotify_watches']:,} inotify watches"
        )
        with contextlib.closing(open_catalog_readonly(daemon.db_path)) as conn:
            states = wait_queue_empty(conn, 120)
        res.first_start["catalog_states"] = states
        time.sleep(args.quiet)
        log(f"idle window: {args.idle_seconds:.0f} s without touching the daemon")
        res.idle = measure_idle(daemon.pid, args.idle_seconds)
        mem = proc_status(daemon.pid)
        children = _descendants(daemon.pid)
        res.memory = {
            "rss_mb": mem["VmRSS"] / MB,
            "hwm_mb": mem["VmHWM"] / MB,
            "threads": mem.get("Threads"),
            "children": len(children),
            "children_rss_mb": sum(_rss_or_zero(c) for c in children) / MB,
        }
        log(
            f"idle CPU {res.idle['percent_of_one_core']:.2f} % of one core; "
            f"RSS {res.memory['rss_mb']:.0f} MB, HWM {res.memory['hwm_mb']:.0f} MB"
        )
        # Status after the window (not during it: a scrape costs CPU too).
        res.idle["root_modes"] = root_modes(daemon.status())
        if args.py_spy > 0:
            log(f"py-spy profile of the idle daemon for {args.py_spy:.0f} s")
            res.profile = py_spy_profile(daemon.pid, args.py_spy, home / "idle-profile.txt")

        # -- restart on the unchanged library ----------------------------------------------
        seconds, code = daemon.stop()
        log(f"SIGTERM: exited with {code} after {seconds:.2f} s; starting again")
        daemon.start()
        times = daemon.wait_ready(600)
        cpu_to_ready = cpu_seconds(daemon.pid)
        mem = proc_status(daemon.pid)
        res.restart = {
            "stop_s": seconds,
            "stop_exit_code": code,
            **times,
            "cpu_s_to_ready": cpu_to_ready,
            "reconcile_last_duration_s": daemon.metric(
                "tracktiond_reconcile_last_duration_seconds"
            ),
            "hwm_mb_after_ready": mem["VmHWM"] / MB,
            "root_modes": root_modes(daemon.status()),
        }
        log(
            f"restart: ready in {times['ready_s']:.2f} s, reconcile "
            f"{_s(res.restart['reconcile_last_duration_s'], 2)} s"
        )

        # -- latency with the big library watched ------------------------------------------
        if args.big_drops > 0:
            for k in range(DROP_SUBDIRS):
                (root / f"incoming {k}").mkdir(exist_ok=True)
            time.sleep(args.settle + 1)  # the new directories' events settle first
            log(f"dropping {args.big_drops} files into the watched library")
            res.big_latency = run_drops(
                daemon, root, home / "staging", args.big_drops, 20_000, args.settle
            )
            # Leave the library (and, once the daemon saw it, the catalog) as generated.
            for k in range(DROP_SUBDIRS):
                shutil.rmtree(root / f"incoming {k}", ignore_errors=True)
            with contextlib.closing(open_catalog_readonly(daemon.db_path)) as conn:
                deadline = time.monotonic() + args.settle + 30
                while time.monotonic() < deadline:
                    left = conn.execute(
                        "SELECT count(*) FROM files WHERE state != 'missing' AND dir LIKE ?",
                        (f"{root}/incoming %",),
                    ).fetchone()[0]
                    if not left:
                        break
                    time.sleep(0.2)
        seconds, code = daemon.stop()
        res.restart["final_stop"] = {"seconds": round(seconds, 2), "exit_code": code}
    finally:
        daemon.kill()


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _s(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "MISSED")


def latency_rows(label: str, stats: dict[str, Any], goal: float) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for key, name in (
        ("all", label),
        ("rename", "  renamed in"),
        ("in-place", "  written in place"),
    ):
        s = stats.get(key)
        if not s:
            continue
        p99 = s["p99_s"]
        lost = s["failed"] + s["not_cataloged_in_time"]
        figure = (
            f"p50 {_s(s['p50_s'])} s, p99 {_s(p99)} s, max {_s(s['max_s'])} s "
            f"({s['cataloged']}/{s['dropped']}" + (f", {lost} not cataloged" if lost else "") + ")"
        )
        ok = None if p99 is None else (p99 < goal and lost == 0)
        rows.append((name, figure, f"p99 < {goal:.1f} s", _verdict(ok)))
    return rows


def render(res: Results) -> str:
    m = res.machine
    a = res.args
    goal_latency = a["settle"] + GOAL_LATENCY_MARGIN_S
    out = [
        "tracktiond daemon benchmark",
        f"machine: {m.get('nproc')} CPUs ({m.get('cpu_model')}), {m.get('memory_gib')} GiB RAM, "
        f"{m.get('filesystem')}, Python {m.get('python')}, kernel {m.get('kernel')}",
        f"tracktiond {m.get('tracktiond_version')} from {m.get('tracktiond_source')} "
        f"(git {m.get('tracktiond_commit')}); "
        f"inotify max_user_watches {m.get('inotify_max_user_watches'):,}, "
        f"max_user_instances {m.get('inotify_max_user_instances')}",
        f"load average at start: {m.get('loadavg_at_start')}, at end: {m.get('loadavg_at_end')}",
        "",
    ]
    rows: list[tuple[str, ...]] = [("measure", "figure", "goal", "verdict")]
    if res.latency:
        rows += latency_rows(
            f"event-to-catalog latency, settle {a['settle']} s", res.latency, goal_latency
        )
    lib = res.library
    if lib:
        rows.append(
            (
                "library",
                f"{lib['files']:,} files, {lib['dirs_total']:,} directories, "
                f"{lib['bytes'] / MB:,.0f} MB",
                "",
                "",
            )
        )
    if res.scan.get("reused"):
        rows.append(("tracktiond scan of it (first)", "not run: catalog reused", "", ""))
    elif res.scan:
        rows.append(
            (
                "tracktiond scan of it (first)",
                f"{res.scan['seconds']:,.1f} s ({res.scan['files_per_s']:,.0f} files/s, "
                f"{res.scan['cpu_s']:,.0f} CPU s)",
                "",
                "",
            )
        )
    fs = res.first_start
    if fs:
        modes = ", ".join(r["mode"] for r in fs["root_modes"])
        rows.append(
            (
                "watching: root mode, inotify watches",
                f"{modes}, {fs['inotify_watches']:,} watches",
                "live",
                _verdict(all(r["mode"] == "live" for r in fs["root_modes"])),
            )
        )
        rows.append(
            (
                "first daemon start on that catalog",
                f"ready in {fs['ready_s']:.2f} s "
                f"(reconcile {_s(fs['reconcile_last_duration_s'])} s)",
                "",
                "",
            )
        )
    if res.idle:
        pct = res.idle["percent_of_one_core"]
        rows.append(
            (
                f"idle CPU over {res.idle['window_s']:.0f} s",
                f"{pct:.2f} % of one core ({res.idle['cpu_s']:.2f} CPU s; "
                f"busiest second {_s(res.idle['busiest_second_percent'], 1)} %)",
                f"< {GOAL_IDLE_CPU_PERCENT:g} %",
                _verdict(pct < GOAL_IDLE_CPU_PERCENT),
            )
        )
    if res.memory:
        rows.append(
            (
                f"resident memory, {lib.get('files', 0):,} files cataloged",
                f"VmRSS {res.memory['rss_mb']:.0f} MB, VmHWM {res.memory['hwm_mb']:.0f} MB",
                f"< {GOAL_RSS_MB:g} MB",
                _verdict(max(res.memory["rss_mb"], res.memory["hwm_mb"]) < GOAL_RSS_MB),
            )
        )
    r = res.restart
    if r:
        rows.append(
            (
                "restart: SIGTERM to exit",
                f"{r['stop_s']:.2f} s, exit code {r['stop_exit_code']}",
                "exit 0",
                _verdict(r["stop_exit_code"] == 0),
            )
        )
        rows.append(
            (
                "restart: start to /readyz 200",
                f"{r['ready_s']:.2f} s (HTTP answers after {r['http_answers_s']:.2f} s)",
                f"< {GOAL_RESTART_READY_S:g} s",
                _verdict(r["ready_s"] < GOAL_RESTART_READY_S),
            )
        )
        rows.append(
            (
                "  reconcile_last_duration_seconds",
                f"{_s(r['reconcile_last_duration_s'])} s "
                f"(CPU to ready {r['cpu_s_to_ready']:.1f} s, "
                f"VmHWM {r['hwm_mb_after_ready']:.0f} MB)",
                "",
                "",
            )
        )
    if res.big_latency:
        rows += latency_rows(
            f"latency with {lib.get('files', 0):,} files watched", res.big_latency, goal_latency
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for i, row in enumerate(rows):
        out.append("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    if res.profile:
        p = res.profile
        out += ["", f"py-spy of the idle daemon: {p['samples']} busy samples; by thread:"]
        out += [f"  {n:6d}  {name}" for name, n in p["by_thread"]]
        out += ["tracktiond functions (inclusive):"]
        out += [f"  {n:6d}  {frame}" for frame, n in p["top_tracktiond_inclusive"]]
    if res.notes:
        out += ["", *[f"note: {n}" for n in res.notes]]
    return "\n".join(out)


def add_notes(res: Results) -> None:
    needed = res.library.get("dirs_total", 0)
    limit = res.machine.get("inotify_max_user_watches")
    if limit is not None and needed and limit < needed + 100:
        res.notes.append(
            f"fs.inotify.max_user_watches is {limit:,}, below the {needed:,} directories "
            "to watch: expect the polling fallback"
        )
    for phase, data in (("first start", res.first_start), ("restart", res.restart)):
        for root in data.get("root_modes", []):
            if root["mode"] != "live":
                res.notes.append(
                    f"{phase}: root {root['path']} is in {root['mode']} mode ({root['reason']})"
                )
    for name, data in (("latency", res.latency), ("latency (big library)", res.big_latency)):
        if data and data.get("other_cpu_s", 0) > 0.2 * data.get("window_s", 1):
            res.notes.append(
                f"{name}: other processes used {data['other_cpu_s']:.0f} CPU s during the "
                f"{data['window_s']:.0f} s window: figures may be inflated"
            )
    if res.idle and res.idle["other_cpu_s"] > 0.2 * res.idle["window_s"]:
        res.notes.append(
            f"other processes used {res.idle['other_cpu_s']:.0f} CPU s during the idle window"
        )


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark tracktiond run: latency, idle CPU and memory, restart."
    )
    p.add_argument("--files", type=int, default=100_000, help="library files (default 100000)")
    p.add_argument("--dirs", type=int, default=5000, help="library leaf directories (default 5000)")
    p.add_argument("--drops", type=int, default=200, help="files dropped for latency (default 200)")
    p.add_argument(
        "--settle", type=float, default=1.0, help="[library] settle_interval, s (default 1.0)"
    )
    p.add_argument("--workdir", type=Path, help="keep the generated library here for reuse")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument(
        "--idle-seconds", type=float, default=60.0, help="idle CPU window, s (default 60)"
    )
    p.add_argument(
        "--quiet", type=float, default=5.0, help="wait after ready before the idle window (5 s)"
    )
    p.add_argument(
        "--big-drops",
        type=int,
        default=20,
        help="files dropped into the watched big library after the restart (default 20; 0: skip)",
    )
    p.add_argument(
        "--py-spy",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="after the idle window, profile the idle daemon with py-spy for this long",
    )
    p.add_argument("--skip-latency", action="store_true", help="skip the latency phase")
    p.add_argument(
        "--reuse-catalog",
        action="store_true",
        help="with --workdir: reuse the big library's catalog from an earlier run (no scan)",
    )
    p.add_argument(
        "--config-extra",
        default="",
        metavar="TOML",
        help="more TOML appended to every daemon's config (e.g. another section)",
    )
    args = p.parse_args(argv)
    if args.files < 1 or args.dirs < 1 or args.dirs > args.files or args.drops < 0:
        p.error("need --files >= --dirs >= 1 and --drops >= 0")
    return args


@contextlib.contextmanager
def workdir_for(args: argparse.Namespace) -> Iterator[Path]:
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        yield args.workdir.resolve()
        return
    tmp = Path(tempfile.mkdtemp(prefix="tracktiond-bench-daemon-"))
    try:
        yield tmp.resolve()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    res = Results(args={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()})
    with workdir_for(args) as workdir:
        res.machine = bench_machine_info(workdir)
        log(f"work directory {workdir}")
        try:
            if not args.skip_latency and args.drops > 0:
                phase_latency(args, workdir, res)
            phase_library(args, workdir, res)
        except DaemonError as exc:
            raise SystemExit(f"benchmark failed: {exc}") from None
        res.machine["loadavg_at_end"] = load_average()
        add_notes(res)
        if args.workdir is not None:
            (workdir / "results.json").write_text(json.dumps(res.__dict__, indent=2, default=str))
    if args.json:
        print(json.dumps(res.__dict__, indent=2, default=str))
    else:
        print(render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
