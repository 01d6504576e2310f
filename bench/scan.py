"""Benchmark: tracktiond's first scan and rescan against the hashing floor and beets.

One run generates a library of real audio files (not measured), then measures, on a warm page
cache and side by side:

* ``sha256sum`` over every file (``xargs -0 sha256sum``, one process): the classic floor;
* ``bench/hashfloor.py``: sha256 + xxh3-128 of every byte on every CPU (hashlib, OpenSSL), and
  nothing else: the real floor for a tool that hashes what tracktiond hashes;
* ``tracktiond scan`` of the library into a fresh, isolated catalog (first scan);
* ``beet import -A -q`` of the same library into a fresh beets library (tags only, no hashing);
* ``tracktiond scan`` again with nothing changed (rescan: a ``stat`` per file);
* the small-file case: a first scan and a rescan of >= 50,000 tiny audio files.

Run from the repository root with the project's venv active::

    python bench/scan.py                    # 2,000 files of 1-10 MB, 50,000 small files
    python bench/scan.py --files 200 --small-files 5000 --skip-beets   # a quick smoke run

Progress goes to stderr; the result table (or, with ``--json``, one JSON document) to stdout.
MB means 10**6 bytes throughout, as in ``tracktiond scan --json``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.metadata
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from machine import load_average, machine_info  # bench/ is on sys.path: run as a script

REPO = Path(__file__).resolve().parent.parent

# The formats of the large library (audiogen's names; "ape" is left out: it cannot be encoded
# here and audiogen's .ape file is a few KB of silence).
LIBRARY_FORMATS: tuple[str, ...] = ("mp3", "flac", "ogg", "opus", "m4a", "wav", "aiff", "wma", "wv")
# Target sizes of the base files of each format: every library file is a retagged copy of one
# of them, so the library spreads over 1-10 MB.
BASE_TARGET_MB: tuple[float, ...] = (1.3, 3.6, 6.3, 9.0)
SIZE_MIN = 1_000_000
SIZE_MAX = 10_000_000
FILES_PER_ALBUM = 12
ALBUMS_PER_ARTIST = 4

SMALL_FORMATS: tuple[str, ...] = ("mp3", "flac", "wav")
SMALL_SECONDS: dict[str, float] = {"mp3": 0.5, "flac": 0.2, "wav": 0.1}
SMALL_FILES_PER_DIR = 10
SMALL_DIRS_PER_ARTIST = 10
# A fixed-width title in the small templates; each copy gets its own digits in its place.
SMALL_PLACEHOLDER = "SMALLBENCH-0000000"

GOAL_SCAN_VS_SHA256SUM = 0.70
GOAL_SCAN_VS_BEETS = 2.0
GOAL_RESCAN_FILES_PER_S = 20_000.0

READ_CHUNK = 1 << 20
MB = 1_000_000
TIME_BIN = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_audiogen() -> ModuleType:
    """tests/support/audiogen.py, the project's generator of real audio files."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module("tests.support.audiogen")


# ---------------------------------------------------------------------------------------------
# Measuring one process
# ---------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    cmd: list[str]
    returncode: int
    seconds: float
    peak_rss_bytes: int
    peak_rss_exact: bool  # False: os.wait4's figure, floored at this script's own RSS
    stdout: Path
    stderr: Path
    cpu_seconds: float = 0.0  # user + system of the measured process (and its children)
    other_cpu_seconds: float = 0.0  # CPU the rest of the machine used meanwhile

    def check(self, what: str) -> None:
        if self.returncode != 0:
            tail = self.stderr.read_text(errors="replace")[-3000:]
            raise SystemExit(f"{what} failed with exit code {self.returncode}:\n{tail}")


def run_measured(
    cmd: Sequence[str], *, env: Mapping[str, str], out: Path, err: Path, cwd: Path | None = None
) -> RunResult:
    """Run ``cmd`` once: wall time by perf_counter around the process, and its peak RSS.

    The peak RSS comes from wait4's rusage of the measured process, taken by GNU time (a small
    process that forks it and waits for it with wait4). os.wait4 from here would be wrong by a
    floor: Linux carries the parent's RSS high-water mark over fork and exec into the child's
    ru_maxrss, so every child of this ~100 MB Python process would report at least ~100 MB.
    Without /usr/bin/time, os.wait4's figure is used and marked as such.
    """
    rss_file = err.with_suffix(".maxrss")
    full = list(cmd)
    if TIME_BIN is not None:
        full = [TIME_BIN, "-f", "%M", "-o", str(rss_file), *full]
    with out.open("wb") as fo, err.open("wb") as fe:
        busy_before = machine_busy_seconds()
        start = time.perf_counter()
        proc = subprocess.Popen(
            full, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, env=dict(env), cwd=cwd
        )
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # ^C / SIGTERM: do not leave the measured process running
            proc.terminate()
            proc.wait()
            raise
        seconds = time.perf_counter() - start
        busy = machine_busy_seconds() - busy_before
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, tell Popen
    peak_kib = usage.ru_maxrss
    exact = False
    if TIME_BIN is not None:
        lines = rss_file.read_text().split() if rss_file.exists() else []
        if lines and lines[-1].isdigit():
            peak_kib, exact = int(lines[-1]), True
    cpu = usage.ru_utime + usage.ru_stime
    return RunResult(
        list(cmd),
        proc.returncode,
        seconds,
        peak_kib * 1024,
        exact,
        out,
        err,
        cpu_seconds=cpu,
        other_cpu_seconds=max(0.0, busy - cpu),
    )


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs have spent busy since boot (/proc/stat), to spot other load."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return 0.0
    ticks = [int(v) for v in fields]
    # user nice system idle iowait irq softirq steal: everything but idle and iowait
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# Page cache
# ---------------------------------------------------------------------------------------------


def warm_cache(paths: Iterable[Path]) -> float:
    """Read every file once so the measured run finds it in the page cache; returns seconds."""
    start = time.perf_counter()
    buf = bytearray(READ_CHUNK)
    for path in paths:
        with path.open("rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass
    return time.perf_counter() - start


def resident_fraction(list_file: Path) -> float | None:
    """Share of the files' bytes in the page cache (util-linux fincore), None if unavailable."""
    if shutil.which("fincore") is None:
        return None
    proc = subprocess.run(
        [
            "xargs",
            "-0",
            "-a",
            str(list_file),
            "fincore",
            "--bytes",
            "--raw",
            "--noheadings",
            "-o",
            "RES,SIZE",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    page = os.sysconf("SC_PAGE_SIZE")
    resident = total = 0
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            resident += int(parts[0])
            total += -(-int(parts[1]) // page) * page  # the cache holds whole pages
    return resident / total if total else None


# ---------------------------------------------------------------------------------------------
# The large library: a few encoded bases per format, retagged copies of them
# ---------------------------------------------------------------------------------------------


def _encode_base(path: str, fmt: str, seconds: float, seed: int) -> int:
    """Worker-process entry point: encode one base file, return its size."""
    audiogen = load_audiogen()
    tmp = Path(path).with_name(".partial-" + Path(path).name)
    audiogen.make_audio(tmp, fmt, seconds=seconds, seed=seed, freq=220.0 + 37.0 * (seed % 11))
    tmp.replace(path)
    return Path(path).stat().st_size


def make_bases(bases_dir: Path, audiogen: ModuleType) -> dict[str, list[Path]]:
    """len(BASE_TARGET_MB) base files per format, durations chosen for the target sizes.

    Encoding is the slow part (MP3 runs ~12x real time here), so it is spread over the CPUs and
    the bases are kept in the work directory and reused when it is kept (--keep).
    """
    bases_dir.mkdir(parents=True, exist_ok=True)
    probe_seconds = 5.0
    jobs: list[tuple[str, str, float, int]] = []
    plan: dict[str, list[Path]] = {}
    for f_index, fmt in enumerate(LIBRARY_FORMATS):
        ext = audiogen.EXTENSIONS[fmt]
        probe = bases_dir / f"probe-{fmt}{ext}"
        if not probe.exists():
            _encode_base(str(probe), fmt, probe_seconds, 999)
        rate = probe.stat().st_size / probe_seconds  # bytes per second of audio
        plan[fmt] = []
        for b_index, target_mb in enumerate(BASE_TARGET_MB):
            seconds = round(target_mb * MB / rate, 1)
            path = bases_dir / f"base-{fmt}-{b_index}-{seconds:.1f}s{ext}"
            plan[fmt].append(path)
            if not path.exists():
                jobs.append((str(path), fmt, seconds, 1000 * f_index + b_index))
    if jobs:
        total = sum(j[2] for j in jobs)
        log(
            f"encoding {len(jobs)} base files ({total / 60:.0f} min of audio) on "
            f"{os.cpu_count()} processes"
        )
        # The longest first, so the two processes finish together.
        jobs.sort(key=lambda j: -j[2])
        with ProcessPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            futures = [pool.submit(_encode_base, *job) for job in jobs]
            for fut in futures:
                fut.result()
    return plan


def _library_tags(index: int) -> dict[str, str]:
    album = index // FILES_PER_ALBUM
    artist = album // ALBUMS_PER_ARTIST
    return {
        "title": f"Bench Track {index:06d}",
        "artist": f"Bench Artist {artist:04d}",
        "albumartist": f"Bench Artist {artist:04d}",
        "album": f"Bench Album {album:05d}",
        "tracknumber": f"{index % FILES_PER_ALBUM + 1}/{FILES_PER_ALBUM}",
    }


def write_tags(path: Path, fmt: str, tags: Mapping[str, str], audiogen: ModuleType) -> None:
    """Write generic tags with mutagen into the format's usual fields (audiogen's table)."""
    from mutagen.id3 import Frames
    from mutagen.mp4 import MP4FreeForm

    freeform: Any = MP4FreeForm

    scheme: str = audiogen.TAG_SCHEME[fmt]
    fields: dict[str, str] = audiogen.TAG_FIELDS[scheme]
    audio: Any = audiogen.MUTAGEN_TYPES[fmt](path)
    if audio.tags is None:
        audio.add_tags()
    for key, value in tags.items():
        native = fields[key]
        if scheme == "id3":
            audio.tags.add(Frames[native](encoding=3, text=[value]))
        elif scheme == "mp4":
            if native in ("trkn", "disk"):
                number, _, total = value.partition("/")
                audio.tags[native] = [(int(number), int(total or 0))]
            elif native.startswith("----:"):
                audio.tags[native] = [freeform(value.encode())]
            else:
                audio.tags[native] = [value]
        elif scheme == "apev2":
            audio.tags[native] = value
        else:  # vorbis comments, ASF attributes
            audio.tags[native] = [value]
    audio.save()


@dataclass
class Library:
    root: Path
    files: list[Path]
    total_bytes: int
    generated_seconds: float
    reused: bool


def _manifest_matches(manifest: Path, params: dict[str, Any], root: Path) -> list[Path] | None:
    """The file list of a previously generated library, if it is complete and unchanged."""
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    if data.get("params") != params:
        return None
    files: list[Path] = []
    for rel, size in data.get("files", []):
        path = root / rel
        try:
            if path.stat().st_size != size:
                return None
        except OSError:
            return None
        files.append(path)
    return files


def _write_manifest(manifest: Path, params: dict[str, Any], root: Path, files: list[Path]) -> None:
    entries = [[str(p.relative_to(root)), p.stat().st_size] for p in files]
    manifest.write_text(json.dumps({"params": params, "files": entries}))


def make_library(workdir: Path, count: int, audiogen: ModuleType) -> Library:
    root = workdir / "library"
    manifest = workdir / "library.json"
    params: dict[str, Any] = {
        "count": count,
        "formats": list(LIBRARY_FORMATS),
        "targets": list(BASE_TARGET_MB),
        "per_album": FILES_PER_ALBUM,
    }
    start = time.perf_counter()
    reused = _manifest_matches(manifest, params, root)
    if reused is not None:
        log(f"reusing the library of {count} files in {root}")
        return Library(root, reused, sum(p.stat().st_size for p in reused), 0.0, True)
    shutil.rmtree(root, ignore_errors=True)
    manifest.unlink(missing_ok=True)
    bases = make_bases(workdir / "bases", audiogen)
    log(f"writing {count} retagged copies under {root}")
    files: list[Path] = []
    for i in range(count):
        album = i // FILES_PER_ALBUM
        fmt = LIBRARY_FORMATS[album % len(LIBRARY_FORMATS)]  # one format per album, as usual
        base = bases[fmt][i % len(BASE_TARGET_MB)]
        tags = _library_tags(i)
        number = i % FILES_PER_ALBUM + 1
        path = (
            root
            / tags["artist"]
            / tags["album"]
            / f"{number:02d} - {tags['title']}{audiogen.EXTENSIONS[fmt]}"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(base, path)
        write_tags(path, fmt, tags, audiogen)
        files.append(path)
        if (i + 1) % 500 == 0:
            log(f"  {i + 1}/{count}")
    sizes = [p.stat().st_size for p in files]
    bad = [(p, s) for p, s in zip(files, sizes, strict=True) if not SIZE_MIN <= s <= SIZE_MAX]
    if bad:
        raise SystemExit(f"{len(bad)} files outside 1-10 MB, e.g. {bad[0][0]}: {bad[0][1]} bytes")
    os.sync()  # no writeback running under the measurements
    _write_manifest(manifest, params, root, files)
    return Library(root, files, sum(sizes), time.perf_counter() - start, False)


def make_small_library(workdir: Path, count: int, audiogen: ModuleType) -> Library:
    """``count`` tiny, distinct audio files, SMALL_FILES_PER_DIR per directory.

    One tagged template per format (made by audiogen: real encoder, real tagger) holds a
    fixed-width title placeholder; each copy replaces its digits with the file's index, so every
    file is still a valid tagged file and has its own content hash, at the cost of one write.
    """
    root = workdir / "small"
    manifest = workdir / "small.json"
    params: dict[str, Any] = {"count": count, "formats": list(SMALL_FORMATS), "v": 1}
    start = time.perf_counter()
    reused = _manifest_matches(manifest, params, root)
    if reused is not None:
        log(f"reusing the small-file library of {count} files in {root}")
        return Library(root, reused, sum(p.stat().st_size for p in reused), 0.0, True)
    shutil.rmtree(root, ignore_errors=True)
    manifest.unlink(missing_ok=True)
    templates: dict[str, bytes] = {}
    tdir = workdir / "bases"
    tdir.mkdir(parents=True, exist_ok=True)
    marker = SMALL_PLACEHOLDER.encode()
    for n, fmt in enumerate(SMALL_FORMATS):
        path = tdir / f"small-template{audiogen.EXTENSIONS[fmt]}"
        audiogen.make_audio(
            path,
            fmt,
            seconds=SMALL_SECONDS[fmt],
            seed=7000 + n,
            tags={"title": SMALL_PLACEHOLDER, "artist": "Small Bench", "album": "Samples"},
        )
        data = path.read_bytes()
        if data.count(marker) != 1:
            raise SystemExit(f"{path}: the title placeholder is not found exactly once")
        templates[fmt] = data
    log(f"writing {count} small files under {root}")
    files: list[Path] = []
    digests: set[bytes] = set()
    total = 0
    for i in range(count):
        d, j = divmod(i, SMALL_FILES_PER_DIR)
        artist = d // SMALL_DIRS_PER_ARTIST
        fmt = SMALL_FORMATS[i % len(SMALL_FORMATS)]
        data = templates[fmt].replace(marker, f"SMALLBENCH-{i:07d}".encode())
        directory = root / f"Sampler {artist:05d}" / f"Pack {d:06d}"
        if j == 0:
            directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{j:02d} - sample {i:07d}{audiogen.EXTENSIONS[fmt]}"
        path.write_bytes(data)
        digests.add(hashlib.sha256(data).digest())
        files.append(path)
        total += len(data)
    if len(digests) != count:
        raise SystemExit(f"small files are not distinct: {len(digests)} digests for {count}")
    os.sync()
    _write_manifest(manifest, params, root, files)
    return Library(root, files, total, time.perf_counter() - start, False)


def write_list(files: Sequence[Path], path: Path) -> Path:
    path.write_bytes(b"".join(os.fsencode(p) + b"\0" for p in files))
    return path


# ---------------------------------------------------------------------------------------------
# The tools
# ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One measured run, as a line of the table."""

    tool: str
    files: int
    megabytes: float  # data covered (rescans read none of it)
    seconds: float
    peak_rss_mb: float | None = None
    reads_data: bool = True
    note: str = ""
    cpu_seconds: float | None = None
    other_cpu_seconds: float | None = None

    @property
    def mb_per_s(self) -> float | None:
        return self.megabytes / self.seconds if self.reads_data and self.seconds > 0 else None

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mb_per_s"] = self.mb_per_s
        data["files_per_s"] = self.files_per_s
        return data


@dataclass
class Results:
    machine: dict[str, Any]
    params: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    scans: dict[str, dict[str, Any]] = field(default_factory=dict)  # tracktiond's own JSON
    checks: list[str] = field(default_factory=list)
    cache: dict[str, float | None] = field(default_factory=dict)
    ratios: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    aborted: str | None = None  # why the run stopped early; the figures so far are kept


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus anything that could point tracktiond at a real catalog."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TRACKTIOND_")
        and k not in ("STATE_DIRECTORY", "CONFIGURATION_DIRECTORY", "BEETSDIR")
    }
    env.update(extra)
    return env


def run_sha256sum(lib: Library, list_file: Path, run_dir: Path, res: Results) -> dict[str, str]:
    out = run_dir / "sha256sum.out"
    run = run_measured(
        ["xargs", "-0", "-a", str(list_file), "sha256sum"],
        env=clean_env(LC_ALL="C"),
        out=out,
        err=run_dir / "sha256sum.err",
    )
    run.check("sha256sum")
    digests: dict[str, str] = {}
    for line in out.read_text().splitlines():
        digest, _, name = line.partition("  ")
        digests[name] = digest
    res.rows.append(
        Row(
            "sha256sum (xargs -0, 1 process)",
            len(digests),
            lib.total_bytes / MB,
            run.seconds,
            run.peak_rss_bytes / MB,
            cpu_seconds=run.cpu_seconds,
            other_cpu_seconds=run.other_cpu_seconds,
        )
    )
    if len(digests) != len(lib.files):
        raise SystemExit(f"sha256sum hashed {len(digests)} files, expected {len(lib.files)}")
    distinct = len(set(digests.values()))
    if distinct != len(lib.files):
        raise SystemExit(f"library files are not distinct: {distinct} sha256 for {len(lib.files)}")
    res.checks.append(f"sha256sum: {len(digests)} files, {distinct} distinct sha256 (all distinct)")
    return digests


def run_hash_floor(lib: Library, list_file: Path, run_dir: Path) -> Row:
    """bench/hashfloor.py: sha256 + xxh3-128 of every byte on nproc threads, nothing else."""
    out = run_dir / "hashfloor.out"
    run = run_measured(
        [sys.executable, str(Path(__file__).with_name("hashfloor.py")), str(list_file)],
        env=clean_env(),
        out=out,
        err=run_dir / "hashfloor.err",
    )
    run.check("hash floor")
    done = json.loads(out.read_text())
    if (done["files"], done["bytes"]) != (len(lib.files), lib.total_bytes):
        raise SystemExit(f"hash floor covered {done}, expected {len(lib.files)} files")
    return Row(
        f"hash floor: sha256 + xxh3-128, {done['threads']} threads (hashlib)",
        done["files"],
        lib.total_bytes / MB,
        run.seconds,
        run.peak_rss_bytes / MB,
        cpu_seconds=run.cpu_seconds,
        other_cpu_seconds=run.other_cpu_seconds,
    )


@dataclass
class Tracktiond:
    """tracktiond with its own state directory and config: nothing outside the work dir."""

    name: str
    root: Path
    run_dir: Path

    def __post_init__(self) -> None:
        self.state = self.run_dir / f"{self.name}-state"
        self.state.mkdir(parents=True, exist_ok=True)
        self.config = self.run_dir / f"{self.name}-tracktiond.toml"
        self.config.write_text(f"[library]\nroots = [{json.dumps(str(self.root))}]\n")
        self.env = clean_env(
            XDG_STATE_HOME=str(self.state), XDG_CONFIG_HOME=str(self.run_dir / "xdg-config")
        )

    def scan(self, label: str) -> tuple[RunResult, dict[str, Any]]:
        run = run_measured(
            [
                "tracktiond",
                "scan",
                str(self.root),
                "--config",
                str(self.config),
                "--json",
                "--no-progress",
            ],
            env=self.env,
            out=self.run_dir / f"{self.name}-{label}.json",
            err=self.run_dir / f"{self.name}-{label}.err",
        )
        run.check(f"tracktiond scan ({self.name}, {label})")
        try:
            summary: dict[str, Any] = json.loads(run.stdout.read_text())
        except ValueError as exc:
            raise SystemExit(f"tracktiond scan printed no JSON ({run.stdout}): {exc}") from None
        return run, summary

    def show_sha256(self, path: Path) -> str | None:
        proc = subprocess.run(
            ["tracktiond", "show", str(path), "--config", str(self.config), "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            return None
        value = json.loads(proc.stdout).get("sha256_hash")
        return str(value) if value is not None else None


def _expect(summary: dict[str, Any], **counts: int) -> list[str]:
    problems = []
    for key, want in counts.items():
        got = summary.get(key)
        if got != want:
            problems.append(f"{key} = {got}, expected {want}")
    return problems


def scan_rows(
    tool: str, lib: Library, run: RunResult, summary: dict[str, Any], *, reads_data: bool
) -> list[Row]:
    files = int(summary.get("files_seen", 0))
    return [
        Row(
            f"{tool}",
            files,
            lib.total_bytes / MB,
            run.seconds,
            run.peak_rss_bytes / MB,
            reads_data,
            "wall clock around the process",
            cpu_seconds=run.cpu_seconds,
            other_cpu_seconds=run.other_cpu_seconds,
        ),
        Row(
            f"{tool}, as reported",
            files,
            lib.total_bytes / MB,
            float(summary.get("elapsed_seconds", 0.0)),
            None,
            reads_data,
            "the scan's own elapsed_seconds (no interpreter start-up)",
        ),
    ]


def run_beets(lib: Library, run_dir: Path, res: Results) -> Row:
    beetsdir = run_dir / "beets"
    shutil.rmtree(beetsdir, ignore_errors=True)
    (beetsdir / "music").mkdir(parents=True)
    db = beetsdir / "library.db"
    (beetsdir / "config.yaml").write_text(
        f"directory: {json.dumps(str(beetsdir / 'music'))}\n"
        f"library: {json.dumps(str(db))}\n"
        "import:\n"
        "  copy: no\n"
        "  move: no\n"
        "  write: no\n"
        "  autotag: no\n"
        "plugins: []\n"
    )
    env = clean_env(BEETSDIR=str(beetsdir), XDG_CONFIG_HOME=str(run_dir / "xdg-config"))
    run = run_measured(
        ["beet", "import", "-A", "-q", str(lib.root)],
        env=env,
        out=run_dir / "beets.out",
        err=run_dir / "beets.err",
    )
    run.check("beet import")
    with sqlite3.connect(db) as conn:
        items = int(conn.execute("SELECT COUNT(*) FROM items").fetchone()[0])
        albums = int(conn.execute("SELECT COUNT(*) FROM albums").fetchone()[0])
    if items != len(lib.files):
        raise SystemExit(f"beets imported {items} items, expected {len(lib.files)}")
    res.checks.append(f"beets: {items} items in {albums} albums imported")
    return Row(
        "beet import -A -q",
        items,
        lib.total_bytes / MB,
        run.seconds,
        run.peak_rss_bytes / MB,
        cpu_seconds=run.cpu_seconds,
        other_cpu_seconds=run.other_cpu_seconds,
    )


# ---------------------------------------------------------------------------------------------
# Machine information
# ---------------------------------------------------------------------------------------------


def bench_machine_info(workdir: Path) -> dict[str, Any]:
    info = machine_info(workdir, dists=("tracktiond", "beets", "mutagen"), env=clean_env())
    ver = subprocess.run(["sha256sum", "--version"], capture_output=True, text=True, check=False)
    info["sha256sum_version"] = ver.stdout.splitlines()[0] if ver.stdout else None
    return info


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def render(res: Results) -> str:
    m = res.machine
    out = [
        "tracktiond scan benchmark",
        f"machine: {m.get('nproc')} CPUs ({m.get('cpu_model')}, sha_ni={m.get('cpu_sha_ni')}), "
        f"{m.get('memory_gib')} GiB RAM, {m.get('filesystem')}, Python {m.get('python')}, "
        f"kernel {m.get('kernel')}",
        f"versions: tracktiond {m.get('tracktiond_version')} ({m.get('tracktiond_commit')}, "
        f"{m.get('tracktiond_source')}), "
        f"beets {m.get('beets_version')}, {m.get('sha256sum_version')}",
        f"load average at start: {m.get('loadavg_at_start')}, at end: {m.get('loadavg_at_end')}",
        "",
    ]
    header = (
        "tool",
        "files",
        "MB",
        "seconds",
        "MB/s",
        "files/s",
        "peak RSS MB",
        "CPU s",
        "others' CPU s",
    )
    table = [header]
    for r in res.rows:
        table.append(
            (
                r.tool,
                f"{r.files:,}",
                _fmt(r.megabytes),
                _fmt(r.seconds, 2),
                _fmt(r.mb_per_s),
                _fmt(r.files_per_s),
                _fmt(r.peak_rss_mb),
                _fmt(r.cpu_seconds),
                _fmt(r.other_cpu_seconds),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for n, row in enumerate(table):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        out.append("  ".join(cells))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    out.append("")
    out.append("ratios against the goals:")
    for ratio in res.ratios:
        if ratio["goal"] is None:
            out.append(f"  {ratio['name']}: {ratio['value']:,.2f} ({ratio['goal_text']})")
            continue
        verdict = "met" if ratio["met"] else "MISSED"
        out.append(
            f"  {ratio['name']}: {ratio['value']:,.2f} (goal {ratio['goal_text']}) -> {verdict}"
        )
    out.append("")
    out.append("page cache before each measured run (share of the files' bytes resident):")
    for name, frac in res.cache.items():
        out.append(f"  {name}: {'unknown' if frac is None else f'{frac:.1%}'}")
    out.append("")
    out.append("checks:")
    out.extend(f"  {c}" for c in res.checks)
    if res.notes:
        out.append("")
        out.append("notes:")
        out.extend(f"  {n}" for n in res.notes)
    if res.aborted:
        out.append("")
        out.append(f"ABORTED, the figures above are incomplete: {res.aborted}")
    return "\n".join(out)


def add_ratio(res: Results, name: str, value: float, goal: float | None, goal_text: str) -> None:
    """A ratio judged against a goal; goal None: shown for information only."""
    met = None if goal is None else value >= goal
    res.ratios.append(
        {"name": name, "value": value, "goal": goal, "goal_text": goal_text, "met": met}
    )


def add_cpu_ratio(res: Results, name: str, numerator: Row, denominator: Row) -> None:
    """CPU seconds of one run over another's: unlike wall time, barely moved by other load."""
    if numerator.cpu_seconds and denominator.cpu_seconds:
        add_ratio(
            res,
            name,
            numerator.cpu_seconds / denominator.cpu_seconds,
            None,
            "CPU seconds, informational: unaffected by other load on the machine",
        )


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark tracktiond scan against sha256sum and beets (see bench/README.md)."
    )
    p.add_argument("--files", type=int, default=2000, help="files of 1-10 MB (default 2000)")
    p.add_argument(
        "--small-files",
        type=int,
        default=50000,
        help="tiny files for the small-file case; 0 skips it (default 50000)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where to generate libraries and state (default: a new temp directory)",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the work directory; a later run with the same --workdir reuses "
        "the generated libraries",
    )
    p.add_argument("--skip-beets", action="store_true", help="do not run beets")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)
    if args.files < 1 or args.small_files < 0:
        p.error("--files must be >= 1 and --small-files >= 0")
    return args


def check_tools(skip_beets: bool) -> None:
    missing = [t for t in ("tracktiond", "sha256sum", "xargs") if shutil.which(t) is None]
    if missing:
        raise SystemExit(
            f"not on PATH: {', '.join(missing)} (activate the venv: . .venv/bin/activate)"
        )
    if not skip_beets and shutil.which("beet") is None:
        raise SystemExit("beets is not installed: pip install -e '.[bench]' (or pass --skip-beets)")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    check_tools(args.skip_beets)
    audiogen = load_audiogen()
    made_temp = args.workdir is None
    workdir: Path = (
        Path(tempfile.mkdtemp(prefix="tracktiond-bench-")) if made_temp else args.workdir
    )
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    run_dir = workdir / "run"
    shutil.rmtree(run_dir, ignore_errors=True)  # state of an earlier run: never reused
    run_dir.mkdir()
    res = Results(
        machine=bench_machine_info(workdir),
        params={
            "files": args.files,
            "small_files": args.small_files,
            "workdir": str(workdir),
            "skip_beets": args.skip_beets,
        },
    )
    # SIGTERM (a CI timeout, kill) ends the run like ^C: the figures so far are still printed.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        execute(args, audiogen, workdir, run_dir, res)
    except (SystemExit, KeyboardInterrupt) as exc:
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc.code)
        res.aborted = reason
        log(f"ABORTED: {reason}")
    finally:
        res.machine["loadavg_at_end"] = load_average()
        if args.keep:
            log(f"kept {workdir}")
        elif made_temp:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            for name in ("library", "small", "bases", "run", "library.json", "small.json"):
                target = workdir / name
                if target.is_dir():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)
    document = json.dumps(
        {
            "machine": res.machine,
            "params": res.params,
            "rows": [r.as_dict() for r in res.rows],
            "ratios": res.ratios,
            "tracktiond_reported": res.scans,
            "page_cache_resident": res.cache,
            "checks": res.checks,
            "notes": res.notes,
            "aborted": res.aborted,
        },
        indent=2,
    )
    if args.keep:
        (run_dir / "results.json").write_text(document + "\n")
        (run_dir / "results.txt").write_text(render(res) + "\n")
    if args.json:
        print(document)
    else:
        print(render(res))
    return 1 if res.aborted else 0


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def execute(
    args: argparse.Namespace, audiogen: ModuleType, workdir: Path, run_dir: Path, res: Results
) -> None:
    res.notes.extend(
        [
            "warm page cache: every file was read once right before sha256sum, the first scans and "
            "beets (see the resident shares above); cold-cache (disk-bound) figures will be lower.",
            "'wall' rows time the whole process with time.perf_counter (interpreter start-up, "
            "imports and catalog open included); 'as reported' rows use the scan's own "
            "elapsed_seconds from tracktiond scan --json.",
            "sha256sum is one process on one core; tracktiond hashes on several threads "
            f"(nproc = {res.machine.get('nproc')}) and computes xxh128 too.",
            "beets runs with -A (no autotagging), copy/move/write off, no plugins: it reads tags "
            "and builds its library, it does not hash.",
            "CPU s: user + system CPU of the measured process (and its children), from "
            "wait4; others' CPU s: CPU the rest of the machine used during that run "
            "(from /proc/stat), i.e. interference from other work.",
            "peak RSS: wait4 rusage of the measured process, via GNU time -f %M "
            "(sha256sum: the largest of xargs and its sha256sum children)."
            if TIME_BIN is not None
            else "peak RSS: os.wait4 of the child; /usr/bin/time is missing, so the figures "
            "include this script's own RSS as a floor (Linux carries it over fork/exec).",
            "MB = 10^6 bytes; generating the libraries is not measured.",
        ]
    )

    # ---- large library ---------------------------------------------------------------------
    lib = make_library(workdir, args.files, audiogen)
    sizes = [p.stat().st_size for p in lib.files]
    res.params.update(
        library_bytes=lib.total_bytes,
        library_min_bytes=min(sizes),
        library_max_bytes=max(sizes),
        library_generation_seconds=round(lib.generated_seconds, 1),
        library_reused=lib.reused,
    )
    log(
        f"library: {len(lib.files)} files, {lib.total_bytes / MB:,.0f} MB "
        f"({min(sizes) / MB:.2f}-{max(sizes) / MB:.2f} MB each)"
    )
    list_file = write_list(lib.files, run_dir / "library.list")

    log("warm-up read, then sha256sum")
    warm_cache(lib.files)
    res.cache["sha256sum"] = resident_fraction(list_file)
    digests = run_sha256sum(lib, list_file, run_dir, res)
    sha_row = res.rows[-1]

    log("warm-up read, then the hash floor (hashlib on every CPU)")
    warm_cache(lib.files)
    res.cache["hash floor"] = resident_fraction(list_file)
    floor_row = run_hash_floor(lib, list_file, run_dir)
    res.rows.append(floor_row)

    log("warm-up read, then tracktiond first scan")
    tt = Tracktiond("library", lib.root, run_dir)
    warm_cache(lib.files)
    res.cache["tracktiond first scan"] = resident_fraction(list_file)
    run, first = tt.scan("first")
    res.scans["first_scan"] = first
    n = len(lib.files)
    first_rows = scan_rows("tracktiond scan (first)", lib, run, first, reads_data=True)
    res.rows.extend(first_rows)
    wall, reported = first_rows
    add_ratio(
        res,
        "first scan / hash floor throughput (wall)",
        floor_row.seconds / wall.seconds,
        None,
        "informational: how close the scan gets to hashing alone",
    )
    add_ratio(
        res,
        "first scan / sha256sum throughput (wall)",
        sha_row.seconds / wall.seconds,
        GOAL_SCAN_VS_SHA256SUM,
        ">= 0.70",
    )
    add_ratio(
        res,
        "first scan / sha256sum throughput (scan's own elapsed)",
        sha_row.seconds / reported.seconds,
        GOAL_SCAN_VS_SHA256SUM,
        ">= 0.70",
    )
    add_cpu_ratio(res, "sha256sum CPU / first scan CPU", sha_row, wall)
    problems = _expect(first, new=n, failed=0, files_seen=n)
    if problems:
        raise SystemExit(f"first scan: {'; '.join(problems)} ({run.stdout})")
    res.checks.append(f"first scan: new = {n}, failed = 0")
    for path in (lib.files[0], lib.files[n // 2], lib.files[-1]):
        ours = tt.show_sha256(path)
        if ours != digests.get(str(path)):
            raise SystemExit(f"{path}: tracktiond sha256 {ours} != sha256sum {digests[str(path)]}")
    res.checks.append("tracktiond's sha256 equals sha256sum's for 3 sampled files")

    if not args.skip_beets:
        log("warm-up read, then beet import")
        warm_cache(lib.files)
        res.cache["beets"] = resident_fraction(list_file)
        beets_row = run_beets(lib, run_dir, res)
        res.rows.append(beets_row)
        add_ratio(
            res,
            "first scan speed-up over beets (wall)",
            beets_row.seconds / wall.seconds,
            GOAL_SCAN_VS_BEETS,
            ">= 2x",
        )
        add_cpu_ratio(res, "beets CPU / first scan CPU", beets_row, wall)
        add_ratio(
            res,
            "hash floor speed-up over beets (wall)",
            beets_row.seconds / floor_row.seconds,
            None,
            "informational: the most any tool that hashes every byte could reach",
        )

    log("tracktiond rescan of the unchanged library")
    run, rescan = tt.scan("rescan")
    res.scans["rescan"] = rescan
    res.rows.extend(scan_rows("tracktiond rescan (unchanged)", lib, run, rescan, reads_data=False))
    problems = _expect(rescan, unchanged=n, new=0, changed=0, failed=0, bytes_read=0)
    if problems:
        raise SystemExit(f"rescan: {'; '.join(problems)} ({run.stdout})")
    res.checks.append(f"rescan: unchanged = {n}, bytes_read = 0")

    # ---- small files ----------------------------------------------------------------------
    if args.small_files:
        small = make_small_library(workdir, args.small_files, audiogen)
        res.params.update(
            small_bytes=small.total_bytes,
            small_generation_seconds=round(small.generated_seconds, 1),
            small_reused=small.reused,
        )
        log(f"small files: {len(small.files)} files, {small.total_bytes / MB:,.0f} MB")
        small_list = write_list(small.files, run_dir / "small.list")
        ts = Tracktiond("small", small.root, run_dir)
        log("warm-up read, then tracktiond first scan of the small files")
        warm_cache(small.files)
        res.cache["tracktiond first scan (small files)"] = resident_fraction(small_list)
        run, sfirst = ts.scan("first")
        res.scans["small_first_scan"] = sfirst
        k = len(small.files)
        res.rows.extend(scan_rows("small files: first scan", small, run, sfirst, reads_data=True))
        problems = _expect(sfirst, new=k, failed=0, files_seen=k)
        if problems:
            raise SystemExit(f"small first scan: {'; '.join(problems)} ({run.stdout})")
        res.checks.append(f"small files first scan: new = {k}, failed = 0")
        log("tracktiond rescan of the unchanged small files")
        run, srescan = ts.scan("rescan")
        res.scans["small_rescan"] = srescan
        swall, sreported = scan_rows("small files: rescan", small, run, srescan, reads_data=False)
        res.rows.extend([swall, sreported])
        add_ratio(
            res,
            f"rescan files/s, {k:,} small files (wall)",
            swall.files_per_s,
            GOAL_RESCAN_FILES_PER_S,
            ">= 20,000 files/s",
        )
        add_ratio(
            res,
            f"rescan files/s, {k:,} small files (scan's own elapsed)",
            sreported.files_per_s,
            GOAL_RESCAN_FILES_PER_S,
            ">= 20,000 files/s",
        )
        problems = _expect(srescan, unchanged=k, new=0, changed=0, failed=0, bytes_read=0)
        if problems:
            raise SystemExit(f"small rescan: {'; '.join(problems)} ({run.stdout})")
        res.checks.append(f"small files rescan: unchanged = {k}, bytes_read = 0")


if __name__ == "__main__":
    sys.exit(main())
