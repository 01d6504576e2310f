"""Acceptance tests: `tracktiond run` as a subprocess, driven the way its users drive it.

Each test starts the real daemon (``python -m tracktiond run --config F``) on a temporary library
with a temporary TOML config, and talks to it only as systemd, Prometheus and a user do: files on
disk, HTTP (/readyz, /status, /metrics), signals and a real NOTIFY_SOCKET. The catalog is read
with tracktiond.catalog.Catalog to check that it agrees with the disk. Nothing sleeps to assert:
every expectation is polled for with a deadline, and a failure shows the daemon's log.

Analysis is switched off in these configs: they test the daemon's lifecycle, watching and the
ingest queue; the analysis stage has its own tests.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import audiogen
from tests.support.pgserver import PostgresServer
from tracktiond.catalog import Catalog

pytestmark = pytest.mark.anyio

TRACKTIOND_RUN = [sys.executable, "-m", "tracktiond", "run", "--config"]
SETTLE = 0.5
GRACE = 5.0  # [daemon] shutdown_grace where a stop during work is tested
# Environment a test runner may itself have been given by systemd; the daemon must not see it.
SYSTEMD_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "INVOCATION_ID", "JOURNAL_STREAM")
# Monkey's Audio is left out: its one sample is a file shipped in tests/data, so every copy would
# be the same recording; every other format is encoded locally, each file different.
LIBRARY_FORMATS = tuple(f for f in audiogen.FORMATS if f != "ape")
JOBS = "tracktiond_jobs_processed_total"

# Opener that never goes through an HTTP proxy from the environment: the daemon is on loopback.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# ---- the daemon as a subprocess -------------------------------------------------------------


class Samples(dict[str, float]):
    """Prometheus samples keyed ``name{label="value",...}`` (labels sorted), with label sums."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.labelled: list[tuple[str, dict[str, str], float]] = []
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = dict(sample.labels)
                self.labelled.append((sample.name, labels, sample.value))
                self[sample_key(sample.name, labels)] = sample.value

    def total(self, name: str, **labels: str) -> float:
        """Sum of every sample called ``name`` whose labels include ``labels``."""
        return sum(
            value
            for sample_name, sample_labels, value in self.labelled
            if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
        )


def sample_key(name: str, labels: Mapping[str, str]) -> str:
    if not labels:
        return name
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


class DaemonProcess:
    """One `tracktiond run` subprocess; its stdout and stderr go to ``log_path``."""

    def __init__(self, config: Path, env: Mapping[str, str], port: int, log_path: Path) -> None:
        self.config = config
        self.env = dict(env)
        self.port = port
        self.log_path = log_path
        self.name = log_path.stem
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> DaemonProcess:
        assert self.proc is None, "a DaemonProcess is started once"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in kill()/wait())
        self.proc = subprocess.Popen(
            [*TRACKTIOND_RUN, str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env=self.env,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """The exit code (negative: killed by that signal); fails if it runs past ``timeout``."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} still running after {timeout} s{self.report()}")
        self._close_log()
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- HTTP --------------------------------------------------------------------------------

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, str]:
        """(status, body); raises OSError when nothing answers."""
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with _HTTP.open(url, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def get_json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, f"GET {path}: {status} {body}{self.report()}"
        return json.loads(body)

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = self.get_json("/status")
        return data

    def metrics(self) -> Samples:
        status, body = self.get("/metrics")
        assert status == 200, f"GET /metrics: {status}{self.report()}"
        return Samples(body)

    def jobs(self, stage: str = "ingest") -> float:
        """tracktiond_jobs_processed_total for ``stage``, summed over outcomes."""
        return self.metrics().total(JOBS, stage=stage)

    def ready(self) -> bool:
        try:
            return self.get("/readyz", timeout=2.0)[0] == 200
        except OSError:  # not listening yet
            return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if not self.running:
                code = self.proc.poll() if self.proc else None
                pytest.fail(f"{self.name} exited with {code}{self.report()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name} not ready after {timeout} s{self.report()}")
            time.sleep(0.1)

    # -- the log -----------------------------------------------------------------------------

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a traceback printed by the interpreter itself
            if isinstance(record, dict):
                out.append(record)
        return out

    def logged(self, fragment: str) -> bool:
        return any(fragment in str(r.get("msg", "")) for r in self.log_records())

    def report(self, lines: int = 60) -> str:
        tail = "\n".join(self.log().splitlines()[-lines:])
        return f"\n--- {self.name} log ({self.log_path}), last {lines} lines ---\n{tail}"


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    timeout: float,
    message: str | Callable[[], str],
    *daemons: DaemonProcess,
) -> None:
    """Poll ``predicate`` every 0.1 s; fail with ``message`` and the daemons' logs on timeout."""
    deadline = time.monotonic() + timeout
    error: OSError | None = None
    while True:
        try:
            result = predicate()
            if inspect.isawaitable(result):
                result = await result
        except OSError as exc:  # an HTTP request that timed out on a busy machine: poll again
            result, error = False, exc
        if result:
            return
        for d in daemons:
            if not d.running:
                pytest.fail(f"{d.name} exited while waiting: {_text(message)}{d.report()}")
        if time.monotonic() > deadline:
            logs = "".join(d.report() for d in daemons)
            last = f" (last request error: {error})" if error else ""
            pytest.fail(f"after {timeout} s: {_text(message)}{last}{logs}")
        await anyio.sleep(0.1)


def _text(message: str | Callable[[], str]) -> str:
    if not callable(message):
        return message
    try:
        return message()
    except Exception as exc:  # the message asks the daemon, which may be gone
        return f"(could not describe the state: {exc!r})"


# ---- configs, environments, libraries -------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_config(
    path: Path,
    *,
    roots: Sequence[Path],
    port: int,
    workers: int = 2,
    grace: float = 10.0,
    listen: str | None = None,
    analysis: bool = False,
    tagging: bool = False,
    analysis_workers: int = 1,
    extra: str = "",
) -> Path:
    """Write the config atomically (as editors do), so a reload never reads half a file.

    ``extra`` is TOML appended as it is: sections the parameters do not cover."""
    roots_toml = ", ".join(json.dumps(str(r)) for r in roots)
    text = f"""\
[library]
roots = [{roots_toml}]
settle_interval = {SETTLE}
poll_interval = 60

[http]
listen = {json.dumps(listen or f"127.0.0.1:{port}")}

[workers]
count = {workers}

[daemon]
shutdown_grace = {grace}
log_level = "info"

[analysis]
enabled = {"true" if analysis else "false"}
workers = {analysis_workers}

[tagging]
write = {"true" if tagging else "false"}
{extra}"""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def daemon_env(tmp_path: Path, db_url: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TRACKTIOND_") and k not in SYSTEMD_VARS
    }
    env["XDG_STATE_HOME"] = str(tmp_path / "xdg-state")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg-config")
    env["TRACKTIOND_DATABASE_URL"] = db_url
    env.update(extra)
    return env


class Daemons:
    """Starts daemons for one test and kills whatever still runs when the test ends."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[DaemonProcess] = []

    def start(
        self, config: Path, env: Mapping[str, str], port: int, name: str = "daemon"
    ) -> DaemonProcess:
        log_path = self.tmp_path / f"{name}-{len(self.started) + 1}.log"
        d = DaemonProcess(config, env, port, log_path).start()
        self.started.append(d)
        return d

    def kill_all(self) -> None:
        for d in self.started:
            d.kill()


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    pool = Daemons(tmp_path)
    try:
        yield pool
    finally:
        pool.kill_all()


@pytest.fixture(scope="session")
def library_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """300 tiny tagged files, distinct content, made once: tests copy what they need."""
    root = tmp_path_factory.mktemp("library-cache")
    paths = audiogen.make_library(root, 300, seconds=0.2, formats=LIBRARY_FORMATS)
    return root, [p.relative_to(root) for p in paths]


def copy_library(cache: tuple[Path, list[Path]], dest: Path, start: int, stop: int) -> list[Path]:
    """Copy files ``start:stop`` of the cached library (Artist/Album/NN - Title.ext) to dest."""
    root, rel = cache
    out = []
    for r in rel[start:stop]:
        target = dest / r
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / r, target)
        out.append(target)
    return out


@pytest.fixture
async def pg_catalog(pg_server: PostgresServer) -> AsyncIterator[tuple[str, Catalog]]:
    """A fresh database on the session's PostgreSQL server, and the catalog on it."""
    name = f"d_{uuid.uuid4().hex[:12]}"
    url = pg_server.create_database(name)
    catalog = await Catalog.open(url)
    try:
        yield url, catalog
    finally:
        await catalog.close()
        pg_server.drop_database(name)


# ---- what the disk and the catalog say ------------------------------------------------------


def files_on_disk(roots: Sequence[Path]) -> list[Path]:
    return sorted(p for root in roots for p in root.rglob("*") if p.is_file())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


FILE_STATES = ("pending", "cataloged", "failed", "missing")


async def disagreements(
    daemons: Sequence[DaemonProcess],
    catalog: Catalog,
    roots: Sequence[Path],
    *,
    missing: int,
    recordings: int,
) -> list[str]:
    """What keeps the catalog and /status from agreeing with the disk (empty: they agree)."""
    on_disk = files_on_disk(roots)
    st = await catalog.status()
    counts = {s: st.files_by_state.get(s, 0) for s in FILE_STATES}
    expected = {"pending": 0, "cataloged": len(on_disk), "failed": 0, "missing": missing}
    problems = []
    if counts != expected:
        problems.append(f"catalog files {counts}, disk says {expected}")
    if st.recordings != recordings:
        problems.append(f"catalog has {st.recordings} recordings, expected {recordings}")
    for d in daemons:
        status = d.status()
        shown = {s: status["files"].get(s, 0) for s in FILE_STATES}
        if shown != counts or status["recordings"] != st.recordings:
            problems.append(
                f"{d.name} /status files {shown} recordings {status['recordings']}, "
                f"catalog {counts} {st.recordings}"
            )
        if status["queue"]["pending"] != 0:
            problems.append(f"{d.name} /status queue {status['queue']}")
    if not problems:  # counts agree: now every file on disk, one by one
        for path in on_disk:
            row = await catalog.recording_for_path(str(path))
            if row is None or row["state"] != "cataloged":
                problems.append(f"{path}: {row['state'] if row else 'not in the catalog'}")
    return problems


async def wait_agree(
    d: DaemonProcess | Sequence[DaemonProcess],
    catalog: Catalog,
    roots: Sequence[Path],
    *,
    missing: int = 0,
    recordings: int,
    timeout: float = 30.0,
) -> None:
    ds = [d] if isinstance(d, DaemonProcess) else list(d)
    problems: list[str] = ["not checked yet"]

    async def agree() -> bool:
        problems[:] = await disagreements(
            ds, catalog, roots, missing=missing, recordings=recordings
        )
        return not problems

    await wait_until(agree, timeout, lambda: f"catalog and /status vs disk: {problems}", *ds)


async def wait_jobs(d: DaemonProcess, expected: float, what: str, timeout: float = 15.0) -> None:
    """Wait for the ingest jobs counter to reach ``expected``, then require exactly that."""
    await wait_until(
        lambda: d.jobs() >= expected,
        timeout,
        lambda: f"{what}: ingest jobs {d.jobs()}, expected {expected}",
        d,
    )
    assert d.jobs() == expected, f"{what}: processed more than once{d.report()}"


async def row(catalog: Catalog, path: Path) -> dict[str, Any]:
    data = await catalog.recording_for_path(str(path))
    assert data is not None, f"{path} is not in the catalog"
    return data


async def check_rows_whole(
    catalog: Catalog, files: Sequence[Path], *, leases_released: bool
) -> dict[str, int]:
    """Every row is pending, or cataloged with the file's own content, or failed with a reason.

    Returns how many files are in each state ("absent": not discovered yet)."""
    states: dict[str, int] = {}
    for path in files:
        data = await catalog.recording_for_path(str(path))
        state = data["state"] if data else "absent"
        states[state] = states.get(state, 0) + 1
        if data is None:
            continue
        assert state in ("pending", "cataloged", "failed"), (path, data)
        if state == "cataloged":
            assert data["recording_id"] is not None, data
            assert data["sha256_hash"] == sha256(path), (path, data)
            assert data["size"] == path.stat().st_size, (path, data)
        elif state == "pending":
            assert data["recording_id"] is None, data
        else:
            assert data["last_error"], data
        if leases_released:
            assert data["lease_owner"] is None, data
    st = await catalog.status()
    # A half-applied result would leave a recording without its file, or a file without it.
    assert st.recordings == states.get("cataloged", 0), (st, states)
    assert await catalog.duplicates() == []
    return states


# ---- 1. the catalog follows the disk ------------------------------------------------------


async def test_catalog_follows_the_disk(
    tmp_path: Path,
    db_url: str,
    catalog: Catalog,
    library: Path,
    library_cache: tuple[Path, list[Path]],
    daemons: Daemons,
) -> None:
    paths = copy_library(library_cache, library, 0, 12)  # 3 albums of 4 tracks, one artist
    album0, album1, album2 = paths[0].parent, paths[4].parent, paths[8].parent
    assert len({album0, album1, album2}) == 3
    port = free_port()
    config = write_config(tmp_path / "etc" / "tracktiond.toml", roots=[library], port=port)
    d = daemons.start(config, daemon_env(tmp_path, db_url), port)
    d.wait_ready()
    recordings = len(paths)
    await wait_agree(d, catalog, [library], recordings=recordings)
    await wait_jobs(d, len(paths), "initial library")
    jobs = d.jobs()
    status = d.status()
    assert [r["path"] for r in status["roots"]] == [str(library)]
    assert status["roots"][0]["mode"] == "live", status

    # A new file dropped in.
    dropped = audiogen.make_audio(
        library / "dropped.flac", seconds=0.3, seed=1001, tags={"title": "Dropped"}
    )
    recordings += 1
    await wait_agree(d, catalog, [library], recordings=recordings)
    jobs += 1
    await wait_jobs(d, jobs, "dropped file")
    assert (await row(catalog, dropped))["metadata"]["title"] == "Dropped"

    # A file copied in slowly: chunks over ~3 s, each flushed to disk; processed once, after.
    source = audiogen.make_audio(tmp_path / "source.flac", seconds=2.0, seed=1002)
    data = source.read_bytes()
    slow = library / "slow copy.flac"
    chunks = 16
    step = -(-len(data) // chunks)
    with open(slow, "wb") as fh:
        for i in range(chunks):
            fh.write(data[i * step : (i + 1) * step])
            fh.flush()
            os.fsync(fh.fileno())
            time.sleep(0.18)  # well under the settle interval: the copy never looks finished
    recordings += 1
    await wait_agree(d, catalog, [library], recordings=recordings)
    jobs += 1
    await wait_jobs(d, jobs, "slowly copied file")
    slow_row = await row(catalog, slow)
    assert slow_row["state"] == "cataloged"
    assert slow_row["size"] == len(data)
    assert slow_row["sha256_hash"] == hashlib.sha256(data).hexdigest()

    # Content modified in place: same recording, new hashes, metadata read again.
    edited = paths[0]
    before = await row(catalog, edited)
    audiogen.make_audio(edited, seconds=0.3, seed=1003, tags={"title": "Edited"})
    new_sha = sha256(edited)

    async def edited_cataloged() -> bool:
        data = await row(catalog, edited)
        return bool(data["state"] == "cataloged" and data["sha256_hash"] == new_sha)

    await wait_until(edited_cataloged, 30, f"{edited} re-cataloged with its new content", d)
    await wait_agree(d, catalog, [library], recordings=recordings)
    jobs += 1
    await wait_jobs(d, jobs, "modified file")
    after = await row(catalog, edited)
    assert after["recording_id"] == before["recording_id"]
    assert after["metadata"]["title"] == "Edited"
    assert before["metadata"]["title"] != "Edited"

    # A rename and a directory moved as a whole: same recordings, nothing read again.
    renamed_from = paths[1]
    renamed_to = renamed_from.with_name("renamed " + renamed_from.name)
    rec_renamed = (await row(catalog, renamed_from))["recording_id"]
    album1_recs = {p.name: (await row(catalog, p))["recording_id"] for p in paths[4:8]}
    moved_album = library / "Sorted" / "Album moved"
    moved_album.parent.mkdir()
    renamed_from.rename(renamed_to)
    album1.rename(moved_album)
    await wait_agree(d, catalog, [library], recordings=recordings)
    assert (await row(catalog, renamed_to))["recording_id"] == rec_renamed
    for name, rec in album1_recs.items():
        assert (await row(catalog, moved_album / name))["recording_id"] == rec
    assert await catalog.recording_for_path(str(renamed_from)) is None
    for p in paths[4:8]:
        assert await catalog.recording_for_path(str(p)) is None
    assert d.jobs() == jobs, f"a move was processed as new work{d.report()}"

    # A file and a directory deleted: their rows are kept as missing, recordings stay.
    deleted = paths[2]
    deleted.unlink()
    shutil.rmtree(album2)
    await wait_agree(d, catalog, [library], recordings=recordings, missing=5)
    for p in [deleted, *paths[8:12]]:
        assert (await row(catalog, p))["state"] == "missing"
    assert d.jobs() == jobs, f"a deletion was processed as new work{d.report()}"
    assert d.running


# ---- 2. reload ------------------------------------------------------------------------------


async def test_sighup_adds_a_root_and_a_bad_config_is_rejected(
    tmp_path: Path,
    db_url: str,
    catalog: Catalog,
    library: Path,
    library_cache: tuple[Path, list[Path]],
    daemons: Daemons,
) -> None:
    second = tmp_path / "music2"
    copy_library(library_cache, library, 0, 3)
    second_files = copy_library(library_cache, second, 12, 15)
    port = free_port()
    config = write_config(tmp_path / "etc" / "tracktiond.toml", roots=[library], port=port)
    d = daemons.start(config, daemon_env(tmp_path, db_url), port)
    d.wait_ready()
    await wait_agree(d, catalog, [library], recordings=3)
    for p in second_files:
        assert await catalog.recording_for_path(str(p)) is None

    write_config(config, roots=[library, second], port=port)
    d.signal(signal.SIGHUP)
    await wait_until(
        lambda: d.logged("configuration reloaded (SIGHUP)"), 15, "SIGHUP reload logged", d
    )
    await wait_agree(d, catalog, [library, second], recordings=6)
    roots = {r["path"]: r["mode"] for r in d.status()["roots"]}
    assert roots == {str(library): "live", str(second): "live"}
    assert d.status()["config"]["last_reload"]["ok"] is True
    assert d.metrics()["tracktiond_config_last_reload_successful"] == 1

    # An invalid config: rejected with the file and the key named, the running one stays.
    write_config(config, roots=[library, second], port=port, listen="nowhere")
    d.signal(signal.SIGHUP)
    await wait_until(
        lambda: d.logged("configuration reload (SIGHUP) rejected"),
        15,
        "the SIGHUP reload of a bad config rejected in the log",
        d,
    )
    assert d.status()["config"]["last_reload"]["ok"] is False
    error = d.status()["config"]["last_reload"]["error"]
    assert str(config) in error and "[http] listen" in error, error
    m = d.metrics()
    assert m["tracktiond_config_last_reload_successful"] == 0
    assert m.total("tracktiond_config_reloads_total", result="failure") >= 1
    assert d.running
    roots = {r["path"]: r["mode"] for r in d.status()["roots"]}
    assert roots == {str(library): "live", str(second): "live"}
    # Both roots are still watched under the old configuration.
    audiogen.make_audio(library / "after bad reload.mp3", seconds=0.3, seed=2001)
    audiogen.make_audio(second / "after bad reload.ogg", seconds=0.3, seed=2002)
    await wait_agree(d, catalog, [library, second], recordings=8)

    # Fixed again: the next reload succeeds and says so.
    write_config(config, roots=[library, second], port=port)
    d.signal(signal.SIGHUP)
    await wait_until(
        lambda: d.status()["config"]["last_reload"]["ok"] is True, 15, "a good reload again", d
    )
    assert d.metrics()["tracktiond_config_last_reload_successful"] == 1


async def test_editing_the_config_file_reloads_it(
    tmp_path: Path,
    library: Path,
    library_cache: tuple[Path, list[Path]],
    daemons: Daemons,
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'state' / 'catalog.db'}"
    second = tmp_path / "music2"
    copy_library(library_cache, library, 0, 2)
    copy_library(library_cache, second, 12, 14)
    port = free_port()
    config = write_config(tmp_path / "etc" / "tracktiond.toml", roots=[library], port=port)
    d = daemons.start(config, daemon_env(tmp_path, db_url), port)
    d.wait_ready()
    catalog = await Catalog.open(db_url)
    try:
        await wait_agree(d, catalog, [library], recordings=2)
        # No signal: the edit alone reloads. The first root is dropped, the second added.
        write_config(config, roots=[second], port=port, workers=1)
        await wait_until(
            lambda: d.logged("configuration reloaded (config file changed)"),
            15,
            "a reload after the config file was edited",
            d,
        )
        await wait_until(
            lambda: [r["path"] for r in d.status()["roots"]] == [str(second)],
            15,
            lambda: f"/status roots {d.status()['roots']} after the edit",
            d,
        )
        await wait_agree(d, catalog, [library, second], recordings=4)
        assert d.status()["workers"]["count"] == 1
        assert d.metrics()["tracktiond_workers"] == 1
    finally:
        await catalog.close()


# ---- 3 and 4. stopping during work: SIGTERM, kill -9 ----------------------------------------


async def start_on_big_library(
    tmp_path: Path,
    db_url: str,
    library: Path,
    library_cache: tuple[Path, list[Path]],
    daemons: Daemons,
    count: int = 200,
) -> tuple[list[Path], Path, dict[str, str], int, DaemonProcess]:
    files = copy_library(library_cache, library, 0, count)
    port = free_port()
    config = write_config(
        tmp_path / "etc" / "tracktiond.toml", roots=[library], port=port, grace=GRACE
    )
    env = daemon_env(tmp_path, db_url)
    d = daemons.start(config, env, port)
    return files, config, env, port, d


async def wait_work_started(d: DaemonProcess) -> None:
    await wait_until(lambda: d.jobs() >= 1, 30, "the first file processed", d)


async def test_sigterm_during_work_stops_cleanly_and_a_restart_finishes(
    tmp_path: Path,
    db_url: str,
    catalog: Catalog,
    library: Path,
    library_cache: tuple[Path, list[Path]],
    daemons: Daemons,
) -> None:
    files, config, env, port, d = await start_on_big_library(
        tmp_path, db_url, library, library_cache, daemons
    )
    await wait_work_started(d)
    stopped_at = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=GRACE + 5) == 0, d.report()
    took = time.monotonic() - stopped_at
    assert d.logged("received SIGTERM"), d.report()
    states = await check_rows_whole(catalog, files, leases_released=True)
    done = states.get("cataloged", 0)
    print(f"SIGTERM after the first job: exit 0 in {took:.1f} s, states {states}")
    assert done < len(files), (
        "every file was cataloged before SIGTERM arrived: the library is too small to stop "
        f"the daemon during work ({states})"
    )

    again = daemons.start(config, env, port, name="restarted")
    again.wait_ready()
    await wait_agree(again, catalog, [library], recordings=len(files), timeout=60)
    # Exactly the files not cataloged before the stop were processed after it.
    await wait_jobs(again, len(files) - done, "after the restart")
    await check_rows_whole(catalog, files, leases_released=True)


async def test_kill_9_during_work_then_restart_completes_exactly_once(
    tmp_path: Path,
    db_url: str,
    catalog: Catalog,
    library: Path,
    library_cache: tuple[Path, list[Path]],
    daemons: Daemons,
) -> None:
    files, config, env, port, d = await start_on_big_library(
        tmp_path, db_url, library, library_cache, daemons
    )
    await wait_work_started(d)
    d.signal(signal.SIGKILL)
    assert d.wait(timeout=10) == -signal.SIGKILL
    states = await check_rows_whole(catalog, files, leases_released=False)
    done = states.get("cataloged", 0)
    leased = [
        data["lease_owner"]
        for p in files
        if (data := await catalog.recording_for_path(str(p))) and data["lease_owner"]
    ]
    print(f"kill -9 after the first job: states {states}, {len(leased)} rows leased")
    assert done < len(files), f"everything was done before kill -9 landed ({states})"
    assert all(f":{d.pid}:" in owner for owner in leased), leased

    again = daemons.start(config, env, port, name="restarted")
    again.wait_ready()
    # Leases expire after minutes; finishing well before proves the restart released them.
    await wait_agree(again, catalog, [library], recordings=len(files), timeout=60)
    await wait_jobs(again, len(files) - done, "after the restart")
    if leased:
        assert again.logged("leases left by an earlier run"), again.report()
    await check_rows_whole(catalog, files, leases_released=True)
    assert len({(await row(catalog, p))["recording_id"] for p in files}) == len(files)


# ---- 5. PostgreSQL outage -------------------------------------------------------------------


async def test_postgres_outage_daemon_stays_up_and_catches_up(
    tmp_path: Path,
    pg_server: PostgresServer,
    pg_catalog: tuple[str, Catalog],
    library: Path,
    library_cache: tuple[Path, list[Path]],
    daemons: Daemons,
) -> None:
    db_url, catalog = pg_catalog
    copy_library(library_cache, library, 0, 3)
    port = free_port()
    config = write_config(tmp_path / "etc" / "tracktiond.toml", roots=[library], port=port)
    d = daemons.start(config, daemon_env(tmp_path, db_url), port)
    d.wait_ready()
    await wait_agree(d, catalog, [library], recordings=3)
    assert d.metrics()["tracktiond_catalog_up"] == 1

    pg_server.stop_server()
    try:
        await wait_until(
            lambda: d.get("/readyz")[0] == 503, 20, "/readyz 503 while PostgreSQL is down", d
        )
        status, body = d.get("/readyz")
        assert status == 503 and "catalog" in body, body
        assert d.get("/healthz")[0] == 200
        assert d.metrics()["tracktiond_catalog_up"] == 0
        st = d.status()
        assert st["catalog"]["up"] is False and st["ready"] is False, st
        # Files arriving during the outage: noticed, and their reconciliation waits it out.
        added = [
            audiogen.make_audio(library / "during outage 1.flac", seconds=0.3, seed=3001),
            audiogen.make_audio(library / "during outage 2.mp3", seconds=0.3, seed=3002),
        ]
        await wait_until(
            lambda: d.status()["reconciling"] == "watcher",
            20,
            lambda: f"the new files' reconciliation retrying: {d.status()}",
            d,
        )
        assert d.running and d.get("/healthz")[0] == 200
    finally:
        pg_server.start_server()

    await wait_until(lambda: d.ready(), 60, "/readyz 200 after PostgreSQL is back", d)
    await wait_until(lambda: d.metrics()["tracktiond_catalog_up"] == 1, 30, "catalog_up 1 again", d)
    await wait_agree(d, catalog, [library], recordings=5, timeout=60)
    for p in added:
        assert (await row(catalog, p))["state"] == "cataloged"
    assert d.logged("reachable again"), d.report()


# ---- 6. two daemons share one PostgreSQL catalog --------------------------------------------


async def test_two_daemons_share_the_work_on_postgres(
    tmp_path: Path,
    pg_catalog: tuple[str, Catalog],
    library: Path,
    library_cache: tuple[Path, list[Path]],
    daemons: Daemons,
) -> None:
    db_url, catalog = pg_catalog
    files = copy_library(library_cache, library, 0, 300)
    pair = []
    for name in ("a", "b"):
        port = free_port()
        # One worker each: the work interleaves, and a second instance has time to join.
        config = write_config(
            tmp_path / f"etc-{name}" / "tracktiond.toml", roots=[library], port=port, workers=1
        )
        env = daemon_env(tmp_path / name, db_url)
        pair.append(daemons.start(config, env, port, name=f"daemon-{name}"))
    for d in pair:
        d.wait_ready(60)
    await wait_agree(pair, catalog, [library], recordings=len(files), timeout=120)

    def total() -> float:
        return sum(d.jobs() for d in pair)

    await wait_until(
        lambda: total() >= len(files),
        15,
        lambda: f"jobs {[d.jobs() for d in pair]}",
        *pair,
    )
    split = [d.jobs() for d in pair]
    print(f"two daemons, {len(files)} files: ingest jobs split {split}")
    assert total() == len(files), f"some file was processed twice: {split}"
    assert all(n > 0 for n in split), f"one daemon did all the work: {split}"
    assert await catalog.duplicates() == []


# ---- 7. systemd notify ----------------------------------------------------------------------


class NotifySocket:
    """The systemd side of sd_notify: a bound datagram socket collecting what arrives."""

    def __init__(self, directory: Path) -> None:
        path = directory / "notify.sock"
        self._short_dir: Path | None = None
        if len(str(path)) > 100:  # sockaddr_un holds 108 bytes
            self._short_dir = Path(tempfile.mkdtemp(prefix="td-notify-"))
            path = self._short_dir / "notify.sock"
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[dict[str, str]] = []

    def drain(self) -> list[dict[str, str]]:
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return self.messages
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
            self.messages.append(fields)

    def index(self, key: str, start: int = 0) -> int | None:
        self.drain()
        for i, m in enumerate(self.messages[start:], start):
            if key in m:
                return i
        return None

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)
        if self._short_dir is not None:
            self._short_dir.rmdir()


async def test_systemd_notify_protocol(
    tmp_path: Path,
    library: Path,
    library_cache: tuple[Path, list[Path]],
    daemons: Daemons,
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'state' / 'catalog.db'}"
    copy_library(library_cache, library, 0, 5)
    port = free_port()
    config = write_config(tmp_path / "etc" / "tracktiond.toml", roots=[library], port=port)
    notify = NotifySocket(tmp_path)
    try:
        env = daemon_env(tmp_path, db_url, NOTIFY_SOCKET=str(notify.path))
        d = daemons.start(config, env, port)
        await wait_until(
            lambda: notify.index("READY") is not None,
            30,
            lambda: f"READY=1 on NOTIFY_SOCKET; got {notify.messages}",
            d,
        )
        ready_at = notify.index("READY")
        assert ready_at is not None
        ready = notify.messages[ready_at]
        # READY comes after the first reconciliation, and the daemon says so at once.
        assert ready["READY"] == "1"
        assert any(
            "reconciled" in str(r.get("msg")) and "(startup)" in str(r.get("msg"))
            for r in d.log_records()
        ), d.report()
        assert d.ready()
        # One root, and the pending count of what the walk just queued (read after the walk).
        assert re.fullmatch(r"watching 1 root, [\d,]+ pending", ready.get("STATUS", "")), (
            notify.messages
        )
        before_ready = [m["STATUS"] for m in notify.messages[:ready_at] if "STATUS" in m]
        assert before_ready, f"no STATUS= before READY=1: {notify.messages}"

        d.signal(signal.SIGHUP)
        await wait_until(
            lambda: (
                (i := notify.index("RELOADING", ready_at + 1)) is not None
                and notify.index("READY", i + 1) is not None
            ),
            15,
            lambda: f"RELOADING=1 then READY=1 after SIGHUP; got {notify.messages}",
            d,
        )
        reloading = notify.messages[notify.index("RELOADING", ready_at + 1) or 0]
        assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0

        mark = len(notify.drain())
        d.signal(signal.SIGTERM)
        assert d.wait(15) == 0, d.report()
        stopping = notify.index("STOPPING", mark)
        assert stopping is not None, notify.messages
        assert notify.messages[stopping]["STOPPING"] == "1"
        statuses = [m["STATUS"] for m in notify.messages if "STATUS" in m]
        assert len(statuses) >= 2, statuses
    finally:
        notify.close()


# ---- 8. start-up failures -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "line", "key"),
    [
        ("http", 'listen = "nowhere"', "[http] listen"),
        ("library", "setle_interval = 1", "[library] setle_interval"),
        ("workers", "count = -1", "[workers] count"),
    ],
)
def test_config_error_at_start_exits_78_naming_file_and_key(
    tmp_path: Path, section: str, line: str, key: str
) -> None:
    config = tmp_path / "etc" / "tracktiond.toml"
    config.parent.mkdir()
    config.write_text(f"[{section}]\n{line}\n")
    env = daemon_env(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}")
    proc = subprocess.run(
        [*TRACKTIOND_RUN, str(config)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 78, proc.stderr
    assert str(config) in proc.stderr and key in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


async def test_second_daemon_on_the_same_sqlite_catalog_exits_1(
    tmp_path: Path,
    library: Path,
    library_cache: tuple[Path, list[Path]],
    daemons: Daemons,
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'state' / 'catalog.db'}"
    copy_library(library_cache, library, 0, 2)
    env = daemon_env(tmp_path, db_url)
    port = free_port()
    first = daemons.start(
        write_config(tmp_path / "etc-1" / "tracktiond.toml", roots=[library], port=port),
        env,
        port,
    )
    first.wait_ready()
    other_port = free_port()
    second_config = write_config(
        tmp_path / "etc-2" / "tracktiond.toml", roots=[library], port=other_port
    )
    proc = subprocess.run(
        [*TRACKTIOND_RUN, str(second_config)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "lock" in proc.stderr and "another tracktiond daemon" in proc.stderr, proc.stderr
    assert first.running and first.ready(), first.report()


def _catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (the SigCgt mask of /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) >> (sig - 1) & 1)


@pytest.mark.parametrize("delay", [0.3, 0.8, 1.5])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_while_starting_is_a_clean_stop(
    tmp_path: Path, library: Path, daemons: Daemons, delay: float, sig: signal.Signals
) -> None:
    """A stop that arrives while the daemon is still importing or connecting exits 0 after a
    clean stop, not by the default signal action (status -15 / -2). (Before the interpreter
    runs the entry point's first line, nothing can handle a signal: the delays start later.)"""
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'state' / 'catalog.db'}"
    port = free_port()
    config = write_config(tmp_path / "etc" / "tracktiond.toml", roots=[library], port=port)
    d = daemons.start(config, daemon_env(tmp_path, db_url), port)
    # The delays count from the entry point's first line, when the stop handlers are in (on a
    # loaded machine the interpreter alone can take longer than the shortest delay). SIGTERM is
    # the witness for both: Python catches SIGINT itself before any of our code runs.
    deadline = time.monotonic() + 30
    while not _catches(d.pid, signal.SIGTERM):
        assert d.running and time.monotonic() < deadline, f"no stop handler in 30 s{d.report()}"
        time.sleep(0.01)
    time.sleep(delay)
    assert d.running, f"exited before the signal{d.report()}"
    d.signal(sig)
    code = d.wait(30)
    assert code == 0, f"{sig.name} {delay} s after start: exit {code}{d.report()}"
