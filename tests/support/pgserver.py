"""A throw-away PostgreSQL server for tests, started from the machine's PostgreSQL binaries.

    with PostgresServer() as pg:
        pg.create_database("catalog")
        url = pg.dsn("catalog")  # postgresql+asyncpg://postgres@127.0.0.1:PORT/catalog

The cluster lives in a fresh temporary directory (data, Unix socket, log) that ``stop()`` removes.
It listens on 127.0.0.1 on a free port, trusts every local connection, and runs with fsync off.
When the current process is root, initdb and postgres run as the unprivileged user ``nobody``
(PostgreSQL refuses to run as root); the privilege drop is done by ``subprocess.Popen(user=...)``,
so no external tool (runuser, setpriv, sudo) is needed.

``stop_server()`` / ``start_server()`` stop and restart the same cluster on the same port, to
simulate a database outage. Every method is synchronous and safe to call from inside a running
event loop.

``python -m tests.support.pgserver`` starts one, prints its DSN and waits for Ctrl-C.

This module must not import tracktiond.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, Self, TypeVar

import asyncpg

__all__ = ["PgBinaries", "PostgresServer", "find_binaries"]

SUPERUSER = "postgres"
HOST = "127.0.0.1"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
#: Debian/Ubuntu install every major version under here; a module constant so tests can swap it.
DEBIAN_ROOT = Path("/usr/lib/postgresql")
#: The user initdb/postgres run as when this process is root.
ROOT_FALLBACK_USER = "nobody"

_SERVER_PROGRAMS = ("initdb", "postgres")
_INSTALL_HINT = (
    "Install the PostgreSQL server: `apt-get install postgresql` (Debian/Ubuntu), "
    "`dnf install postgresql-server` (Fedora/RHEL), `apk add postgresql` (Alpine) — "
    "or run scripts/test, which installs it."
)
_T = TypeVar("_T")


@dataclass(frozen=True)
class PgBinaries:
    initdb: Path
    postgres: Path


def _server_programs_in(bindir: Path) -> PgBinaries | None:
    paths = [bindir / name for name in _SERVER_PROGRAMS]
    if all(p.is_file() and os.access(p, os.X_OK) for p in paths):
        return PgBinaries(initdb=paths[0], postgres=paths[1])
    return None


def _version_key(bindir: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin; versions look like "15" or "9.6".
    try:
        return tuple(int(part) for part in bindir.parent.name.split("."))
    except ValueError:
        return (-1,)


def find_binaries() -> PgBinaries:
    """Find initdb and postgres: `pg_config --bindir`, /usr/lib/postgresql/*/bin (newest), PATH."""
    looked: list[str] = []
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            if out:
                candidates.append(Path(out))
    # pg_config ships with libpq-dev too, whose --bindir may not hold the server: keep looking.
    candidates.extend(sorted(DEBIAN_ROOT.glob("*/bin"), key=_version_key, reverse=True))
    for bindir in candidates:
        looked.append(str(bindir))
        found = _server_programs_in(bindir)
        if found is not None:
            return found
    initdb, postgres = (shutil.which(name) for name in _SERVER_PROGRAMS)
    looked.append("PATH")
    if initdb is not None and postgres is not None:
        return PgBinaries(initdb=Path(initdb), postgres=Path(postgres))
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, postgres) not found; looked in "
        f"{', '.join(looked) or 'nothing'} (`pg_config --bindir`, {DEBIAN_ROOT}/*/bin, PATH). "
        + _INSTALL_HINT
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _run_async(make_coro: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion on a private event loop in a worker thread.

    A worker thread keeps this usable from synchronous code and from inside a running event loop
    (e.g. an async test that calls ``stop_server()`` to simulate an outage).
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make_coro())).result()


def _traversable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


class PostgresServer:
    """One throw-away PostgreSQL cluster. ``start()`` creates it, ``stop()`` destroys it."""

    def __init__(self, *, binaries: PgBinaries | None = None, run_as: str | None = None) -> None:
        self._binaries = binaries
        self._run_as = run_as
        self._user: pwd.struct_passwd | None = None
        self._base: Path | None = None
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- public API --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("PostgresServer is not started")
        return self._port

    @property
    def base_dir(self) -> Path:
        if self._base is None:
            raise RuntimeError("PostgresServer is not started")
        return self._base

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "socket"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "postgres.log"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs, else None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def dsn(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL for the asyncpg driver."""
        return f"postgresql+asyncpg://{SUPERUSER}@{HOST}:{self.port}/{dbname}"

    def libpq_dsn(self, dbname: str = "postgres") -> str:
        """Plain libpq URL, as ``asyncpg.connect()`` and psql take it."""
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{dbname}"

    def start(self) -> Self:
        """Create a fresh cluster and start it; wait until it accepts connections."""
        if self._base is not None:
            return self
        try:
            binaries = self._binaries or find_binaries()
            self._binaries = binaries
            self._user = self._pick_user()
            self._base = self._make_base_dir()
            self.socket_dir.mkdir()
            self._chown(self.socket_dir)
            self._initdb(binaries)
            self._start_on_free_port()
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Stop the server and remove its directory. Idempotent."""
        atexit.unregister(self.stop)
        self.stop_server()
        if self._base is not None:
            shutil.rmtree(self._base, ignore_errors=True)
        self._base = None
        self._port = None

    def stop_server(self) -> None:
        """Stop the postmaster (fast shutdown: clients are disconnected), keep the cluster."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            for sig, timeout in (
                (signal.SIGINT, STOP_TIMEOUT),  # fast shutdown
                (signal.SIGQUIT, 10.0),  # immediate shutdown
                (signal.SIGKILL, 10.0),
            ):
                proc.send_signal(sig)
                try:
                    proc.wait(timeout=timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._log is not None:
            self._log.close()
            self._log = None

    def start_server(self) -> None:
        """Start the cluster again, on the same port, and wait until it accepts connections."""
        if self._base is None or self._port is None:
            raise RuntimeError("PostgresServer.start_server() needs a cluster: call start() first")
        if self.is_running:
            return
        self._launch()
        self._wait_ready()

    def create_database(self, name: str, template: str | None = None) -> str:
        """CREATE DATABASE name [TEMPLATE template]; returns its DSN (see ``dsn()``)."""
        sql = f"CREATE DATABASE {_quote_ident(name)}"
        if template is not None:
            sql += f" TEMPLATE {_quote_ident(template)}"
        self.execute(sql)
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE IF EXISTS, disconnecting its clients first (PostgreSQL 13+)."""
        sql = f"DROP DATABASE IF EXISTS {_quote_ident(name)}"

        async def run() -> None:
            conn = await self._connect("postgres")
            try:
                version: int = await conn.fetchval(
                    "SELECT current_setting('server_version_num')::int"
                )
                await conn.execute(sql + " WITH (FORCE)" if version >= 130000 else sql)
            finally:
                await conn.close()

        _run_async(run)

    def execute(self, sql: str, dbname: str = "postgres") -> str:
        """Run one SQL statement as the superuser; returns the status string."""

        async def run() -> str:
            conn = await self._connect(dbname)
            try:
                status: str = await conn.execute(sql)
                return status
            finally:
                await conn.close()

        return _run_async(run)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, RuntimeError):
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<PostgresServer {state} port={self._port} base={self._base}>"

    # -- internals ---------------------------------------------------------------------------

    def _pick_user(self) -> pwd.struct_passwd | None:
        name = self._run_as
        if name is None and os.geteuid() == 0:
            name = ROOT_FALLBACK_USER
        if name is None:
            return None
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            raise RuntimeError(
                f"PostgreSQL refuses to run as root and there is no user {name!r} to run it as; "
                f"create one (e.g. `useradd --system {name}`) or pass run_as=<user>"
            ) from None
        if user.pw_uid == 0:
            raise RuntimeError(f"run_as={name!r} is root; PostgreSQL refuses to run as root")
        return user if user.pw_uid != os.geteuid() else None

    def _make_base_dir(self) -> Path:
        parent = Path(tempfile.gettempdir())
        # Another user must be able to reach it, and the Unix socket path must stay < 108 bytes.
        if (self._user is not None and not _traversable_by_others(parent)) or len(str(parent)) > 60:
            parent = Path("/tmp")
        base = Path(tempfile.mkdtemp(prefix="pgserver-", dir=parent))
        self._chown(base)
        return base

    def _chown(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _popen_kwargs(self) -> dict[str, Any]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        kwargs: dict[str, Any] = {"env": env, "cwd": self.base_dir, "stdin": subprocess.DEVNULL}
        if self._user is not None:
            env["HOME"] = str(self.base_dir)
            env["USER"] = env["LOGNAME"] = self._user.pw_name
            kwargs.update(user=self._user.pw_uid, group=self._user.pw_gid, extra_groups=[])
        return kwargs

    def _initdb(self, binaries: PgBinaries) -> None:
        cmd = [
            str(binaries.initdb),
            "--pgdata",
            str(self.data_dir),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ]
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=120, check=False, **self._popen_kwargs()
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"initdb failed with exit code {result.returncode}: {' '.join(cmd)}\n"
                f"{result.stdout}{result.stderr}"
            )

    def _start_on_free_port(self) -> None:
        # The port is free when probed but another process may take it before postgres binds it.
        for attempt in range(5):
            self._port = _free_port()
            self._launch()
            try:
                self._wait_ready()
                return
            except RuntimeError:
                bind_race = not self.is_running and "could not bind" in self.log_tail(200)
                self.stop_server()
                if not bind_race or attempt == 4:
                    raise

    def _launch(self) -> None:
        assert self._binaries is not None and self._port is not None
        cmd = [
            str(self._binaries.postgres),
            "-D",
            str(self.data_dir),
            "-p",
            str(self._port),
            "-h",
            HOST,
            "-k",
            str(self.socket_dir),
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "synchronous_commit=off",
        ]
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (closed by stop_server)
        self._log.write(f"=== {time.strftime('%F %T')} {' '.join(cmd)}\n".encode())
        self._log.flush()
        self._proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C at the terminal goes to us; we stop it cleanly
            **self._popen_kwargs(),
        )

    async def _connect(self, dbname: str, connect_timeout: float = 10.0) -> Any:
        return await asyncpg.connect(
            host=HOST,
            port=self.port,
            user=SUPERUSER,
            database=dbname,
            timeout=connect_timeout,
            ssl=False,
        )

    def _wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        proc = self._proc
        assert proc is not None

        async def poll() -> str | None:
            deadline = time.monotonic() + timeout
            last_error = "none"
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    return f"postgres exited with code {proc.returncode} during startup"
                try:
                    conn = await self._connect("postgres", connect_timeout=2.0)
                    try:
                        await conn.fetchval("select 1")
                    finally:
                        await conn.close()
                    return None
                except Exception as exc:
                    last_error = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(0.1)
            return (
                f"postgres did not accept connections within {timeout:.0f} s (last: {last_error})"
            )

        problem = _run_async(poll)
        if problem is not None:
            raise RuntimeError(
                f"{problem}; port {self._port}, data {self.data_dir}\n"
                f"--- server log ({self.log_path}) ---\n{self.log_tail()}"
            )


def main() -> int:
    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # Explicit, so Ctrl-C works even when started in the background (SIGINT inherited as ignored).
    signal.signal(signal.SIGINT, terminate)
    signal.signal(signal.SIGTERM, terminate)
    with PostgresServer() as pg:
        print(pg.dsn("postgres"))
        print(
            f"# psql -h {HOST} -p {pg.port} -U {SUPERUSER}    data: {pg.data_dir}    "
            f"log: {pg.log_path}\n# Ctrl-C stops it and removes the data.",
            file=sys.stderr,
            flush=True,
        )
        sys.stdout.flush()
        try:
            while pg.is_running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            return 0
        print(f"postgres died\n{pg.log_tail()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
