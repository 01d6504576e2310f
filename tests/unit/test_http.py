"""The daemon's HTTP server, driven over real TCP connections.

Well-formed requests go through the standard library's http.client (in a worker thread, as a
real client would block); malformed, slow and pipelined requests are written by hand on raw
sockets, because no well-behaved client library can be made to misbehave on purpose.
"""

from __future__ import annotations

import errno
import http.client
import json
import logging
import os
import socket
import statistics
import threading
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from tracktiond.service.webserver import Handler, HttpServer, Request, Response

pytestmark = pytest.mark.anyio

LOCALHOST = "127.0.0.1"


async def status_handler(request: Request) -> Response:
    return Response.json({"state": "watching", "roots": 2, "name": "Kollektiv Süd"})


async def healthz_handler(request: Request) -> Response:
    return Response.text("ok\n")


async def readyz_handler(request: Request) -> Response:
    return Response.text("ready\n")


async def slow_handler(request: Request) -> Response:
    await anyio.sleep(0.6)
    return Response.text("late but fine\n")


async def metrics_handler(request: Request) -> Response:
    body = b"# TYPE tracktiond_up gauge\ntracktiond_up 1.0\n"
    return Response(200, body, content_type=CONTENT_TYPE_LATEST)


async def echo_handler(request: Request) -> Response:
    return Response.json(
        {"method": request.method, "path": request.path, "query": request.query},
        indent=2,
    )


async def boom_handler(request: Request) -> Response:
    raise RuntimeError("the cached state is broken")


async def bad_header_handler(request: Request) -> Response:
    return Response(200, b"x", headers=(("X-Evil", "a\r\nInjected: yes"),))


async def hanging_handler(request: Request) -> Response:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


ROUTES: dict[str, Handler] = {
    "/hang": hanging_handler,
    "/status": status_handler,
    "/healthz": healthz_handler,
    "/readyz": readyz_handler,
    "/slow": slow_handler,
    "/metrics": metrics_handler,
    "/echo path": echo_handler,
    "/echo": echo_handler,
    "/boom": boom_handler,
    "/bad-header": bad_header_handler,
}


@asynccontextmanager
async def running(
    routes: Mapping[str, Handler] = ROUTES, host: str = LOCALHOST, **kwargs: Any
) -> AsyncIterator[HttpServer]:
    server = HttpServer(host, 0, routes, **kwargs)
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        yield server
        tg.cancel_scope.cancel()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def _fetch_sync(port: int, method: str, path: str, headers: Mapping[str, str], host: str) -> Reply:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path, headers=dict(headers))
        resp = conn.getresponse()
        body = resp.read()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
    finally:
        conn.close()


async def fetch(
    port: int,
    path: str,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    host: str = LOCALHOST,
) -> Reply:
    return await anyio.to_thread.run_sync(
        partial(_fetch_sync, port, method, path, headers or {}, host)
    )


async def read_until_eof(stream: anyio.abc.ByteReceiveStream, timeout: float = 10.0) -> bytes:
    chunks: list[bytes] = []
    with anyio.fail_after(timeout):
        while True:
            try:
                chunks.append(await stream.receive())
            except anyio.EndOfStream:
                return b"".join(chunks)


async def raw_exchange(port: int, data: bytes) -> bytes:
    """Send `data` on a fresh connection and return everything received until the server closes."""
    async with await anyio.connect_tcp(LOCALHOST, port) as stream:
        await stream.send(data)
        return await read_until_eof(stream)


def parse_replies(data: bytes, *, head: bool = False) -> list[Reply]:
    """Split a byte stream into HTTP/1.1 responses framed by Content-Length."""
    replies = []
    while data:
        head_bytes, sep, data = data.partition(b"\r\n\r\n")
        assert sep, f"incomplete response head: {head_bytes!r}"
        status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head else int(headers["content-length"])
        replies.append(Reply(int(status_line.split()[1]), headers, data[:length]))
        data = data[length:]
    return replies


async def test_get_json_status() -> None:
    async with running() as server:
        reply = await fetch(server.bound_port, "/status")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["server"] == "tracktiond"
    assert "date" in reply.headers
    assert int(reply.headers["content-length"]) == len(reply.body)
    assert json.loads(reply.body) == {"state": "watching", "roots": 2, "name": "Kollektiv Süd"}
    assert b", " not in reply.body and b": " not in reply.body  # compact by default
    assert "Kollektiv Süd".encode() in reply.body  # real UTF-8, not \\u escapes


async def test_metrics_content_type_passes_through() -> None:
    async with running() as server:
        reply = await fetch(server.bound_port, "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"] == CONTENT_TYPE_LATEST
    assert reply.body.endswith(b"tracktiond_up 1.0\n")


async def test_query_and_path_are_decoded() -> None:
    async with running() as server:
        reply = await fetch(server.bound_port, "/echo?roots=2&name=a%20b&flag")
        spaced = await fetch(server.bound_port, "/echo%20path")
    assert reply.status == 200
    assert json.loads(reply.body) == {
        "method": "GET",
        "path": "/echo",
        "query": {"roots": "2", "name": "a b", "flag": ""},
    }
    assert b"\n  " in reply.body  # this handler asked for indented JSON
    assert json.loads(spaced.body)["path"] == "/echo path"


async def test_unknown_path_is_404() -> None:
    async with running() as server:
        reply = await fetch(server.bound_port, "/nope")
    assert reply.status == 404
    assert int(reply.headers["content-length"]) == len(reply.body)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
async def test_other_methods_are_405_with_allow(method: str) -> None:
    async with running() as server:
        reply = await fetch(server.bound_port, "/status", method=method)
    assert reply.status == 405
    assert reply.headers["allow"] == "GET, HEAD"


async def test_head_has_no_body_but_the_get_content_length() -> None:
    async with running() as server:
        port = server.bound_port
        get = await fetch(port, "/status")
        # Raw socket: http.client knows not to read a HEAD body, so it could hide a stray one.
        raw = await raw_exchange(
            port, b"HEAD /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
    (reply,) = parse_replies(raw, head=True)
    assert reply.status == 200
    assert raw.endswith(b"\r\n\r\n")  # nothing after the head
    assert reply.headers["content-length"] == str(len(get.body))
    assert reply.headers["content-type"] == "application/json"


async def test_keep_alive_serves_two_requests_on_one_connection() -> None:
    def two_requests(port: int) -> tuple[Reply, Reply, bool]:
        conn = http.client.HTTPConnection(LOCALHOST, port, timeout=10)
        try:
            conn.request("GET", "/healthz")
            first = conn.getresponse()
            first_reply = Reply(first.status, dict(first.getheaders()), first.read())
            sock = conn.sock
            conn.request("GET", "/status")
            second = conn.getresponse()
            second_reply = Reply(second.status, dict(second.getheaders()), second.read())
            # http.client silently reconnects if the server closed; same socket = same connection
            return first_reply, second_reply, sock is not None and conn.sock is sock
        finally:
            conn.close()

    async with running() as server:
        first, second, same_connection = await anyio.to_thread.run_sync(
            two_requests, server.bound_port
        )
    assert (first.status, first.body) == (200, b"ok\n")
    assert second.status == 200
    assert same_connection


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with running() as server:
        raw = await raw_exchange(
            server.bound_port,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    replies = parse_replies(raw)
    assert [r.status for r in replies] == [200, 404, 200]
    assert replies[-1].headers["connection"] == "close"


async def test_connection_close_is_honoured() -> None:
    async with running() as server:
        # read_until_eof fails on timeout if the server kept the connection open
        raw = await raw_exchange(
            server.bound_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
    (reply,) = parse_replies(raw)
    assert reply.status == 200
    assert reply.headers["connection"] == "close"


async def test_http_1_0_client_gets_closed_after_the_response() -> None:
    async with running() as server:
        raw = await raw_exchange(server.bound_port, b"GET /healthz HTTP/1.0\r\n\r\n")
    (reply,) = parse_replies(raw)
    assert (reply.status, reply.body) == (200, b"ok\n")


async def test_handler_exception_is_500_logged_and_the_server_keeps_going(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="tracktiond.service.webserver")
    async with running() as server:
        port = server.bound_port
        async with await anyio.connect_tcp(LOCALHOST, port) as stream:
            await stream.send(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
            await stream.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            raw = await read_until_eof(stream)
        after = await fetch(port, "/status")
    boom, same_connection = parse_replies(raw)
    assert boom.status == 500
    assert b"the cached state is broken" not in boom.body  # internals stay in the log
    assert same_connection.status == 200
    assert after.status == 200
    failures = [r for r in caplog.records if r.exc_info]
    assert len(failures) == 1
    assert "/boom" in failures[0].getMessage()
    assert isinstance(failures[0].exc_info[1], RuntimeError)  # type: ignore[index]


async def test_invalid_response_from_handler_is_500() -> None:
    async with running() as server:
        reply = await fetch(server.bound_port, "/bad-header")
        after = await fetch(server.bound_port, "/healthz")
    assert reply.status == 500
    assert "injected" not in reply.headers
    assert after.status == 200


@pytest.mark.parametrize(
    "garbage",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nbroken header line\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n\r\n",  # HTTP/1.1 requires Host
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    ],
)
async def test_malformed_request_is_400_and_closed(garbage: bytes) -> None:
    async with running() as server:
        raw = await raw_exchange(server.bound_port, garbage)
        after = await fetch(server.bound_port, "/healthz")
    (reply,) = parse_replies(raw)
    assert reply.status == 400
    assert reply.headers["connection"] == "close"
    assert after.status == 200


async def test_oversized_request_head_is_refused() -> None:
    async with running() as server:
        raw = await raw_exchange(
            server.bound_port,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        )
    (reply,) = parse_replies(raw)
    assert reply.status == 431


async def test_small_request_body_is_ignored_and_large_one_refused() -> None:
    async with running() as server:
        port = server.bound_port
        raw = await raw_exchange(
            port,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        big = await raw_exchange(
            port,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n"
            + b"x" * 200_000,
        )
    assert [r.status for r in parse_replies(raw)] == [200, 200]
    (refused,) = parse_replies(big)
    assert refused.status == 413


async def test_expect_100_continue_gets_the_go_ahead() -> None:
    async with (
        running() as server,
        await anyio.connect_tcp(LOCALHOST, server.bound_port) as stream,
    ):
        await stream.send(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        with anyio.fail_after(5):
            interim = await stream.receive()
        assert interim.startswith(b"HTTP/1.1 100 ")
        await stream.send(b"hello")
        raw = await read_until_eof(stream)
    (reply,) = parse_replies(raw)
    assert reply.status == 200


async def test_handler_that_never_answers_gets_503(caplog: pytest.LogCaptureFixture) -> None:
    async with running(request_timeout=0.5) as server:
        reply = await fetch(server.bound_port, "/hang")
        after = await fetch(server.bound_port, "/healthz")
    assert reply.status == 503
    assert after.status == 200
    assert any("did not answer" in r.getMessage() for r in caplog.records)


async def test_slow_client_times_out_and_is_closed() -> None:
    async with running(request_timeout=0.5) as server:
        port = server.bound_port
        async with await anyio.connect_tcp(LOCALHOST, port) as stream:
            started = time.monotonic()
            await stream.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
            raw = await read_until_eof(stream, timeout=5)
            elapsed = time.monotonic() - started
        async with await anyio.connect_tcp(LOCALHOST, port) as idle:
            silent = await read_until_eof(idle, timeout=5)
        after = await fetch(port, "/healthz")
    (reply,) = parse_replies(raw)
    assert reply.status == 408
    assert 0.4 <= elapsed < 5
    assert silent == b""  # an idle connection is closed without a word
    assert after.status == 200


async def test_keep_alive_connection_is_closed_when_idle() -> None:
    async with (
        running(request_timeout=0.5) as server,
        await anyio.connect_tcp(LOCALHOST, server.bound_port) as stream,
    ):
        await stream.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = await read_until_eof(stream, timeout=5)
    (reply,) = parse_replies(raw)
    assert reply.status == 200


async def test_the_request_head_has_its_own_shorter_deadline() -> None:
    async with running(head_timeout=0.3, request_timeout=30) as server:
        port = server.bound_port
        async with await anyio.connect_tcp(LOCALHOST, port) as stream:
            started = time.monotonic()
            await stream.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
            raw = await read_until_eof(stream, timeout=5)
            stalled = time.monotonic() - started
        async with await anyio.connect_tcp(LOCALHOST, port) as idle:
            started = time.monotonic()
            silent = await read_until_eof(idle, timeout=5)
            idled = time.monotonic() - started
        # The head deadline covers the head only: a handler may take longer than it.
        slow = await fetch(port, "/slow")
    (reply,) = parse_replies(raw)
    assert reply.status == 408
    assert 0.25 <= stalled < 5  # the head deadline, far short of the 30 s request deadline
    assert silent == b"" and idled < 5
    assert slow.status == 200


async def test_an_idle_connection_gives_up_its_slot_to_a_new_one() -> None:
    # Deadlines far longer than the test: only eviction can free the slot in time.
    async with running(max_connections=1, head_timeout=30, request_timeout=60) as server:
        port = server.bound_port
        async with await anyio.connect_tcp(LOCALHOST, port) as hog:
            await anyio.sleep(0.1)  # let the server accept it and give it the only slot
            started = time.monotonic()
            reply = await fetch(port, "/healthz")
            waited = time.monotonic() - started
            assert await read_until_eof(hog, timeout=5) == b""  # closed without a word
        assert server.shed_connections == 1
    assert reply.status == 200
    assert waited < 5


async def test_the_connection_waiting_longest_on_its_client_is_evicted_first() -> None:
    async with (
        running(max_connections=2, head_timeout=30, request_timeout=60) as server,
        await anyio.connect_tcp(LOCALHOST, server.bound_port) as trickler,
    ):
        port = server.bound_port
        await trickler.send(b"G")
        await anyio.sleep(0.2)
        async with await anyio.connect_tcp(LOCALHOST, port) as idle:
            await anyio.sleep(0.2)
            # A byte now does not make the older connection look fresh: its wait for this
            # request began first.
            await trickler.send(b"E")
            await anyio.sleep(0.1)
            reply = await fetch(port, "/healthz")
            assert await read_until_eof(trickler, timeout=5) == b""
            with pytest.raises(TimeoutError):
                await read_until_eof(idle, timeout=0.3)  # still open, still served
            await idle.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            (kept,) = parse_replies(await read_until_eof(idle))
    assert reply.status == 200
    assert kept.status == 200


async def test_at_the_limit_queued_idle_connections_are_turned_away_and_requests_served() -> None:
    async with running(max_connections=2, head_timeout=30, request_timeout=60) as server:
        port = server.bound_port
        # Blocking connects and sends, no await: the server runs only once all are queued.
        holders = [socket.create_connection((LOCALHOST, port)) for _ in range(2)]
        await anyio.sleep(0.2)  # both slots taken by connections that send nothing
        idle = [socket.create_connection((LOCALHOST, port)) for _ in range(20)]
        probe = socket.create_connection((LOCALHOST, port))
        probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        last = socket.create_connection((LOCALHOST, port))  # connects, then writes a moment later
        try:
            await anyio.sleep(0.2)
            last.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            async with await anyio.abc.SocketStream.from_socket(probe) as stream:
                (answered,) = parse_replies(await read_until_eof(stream))
            async with await anyio.abc.SocketStream.from_socket(last) as stream:
                (served_last,) = parse_replies(await read_until_eof(stream))
            closed = [await anyio.to_thread.run_sync(_closed_within, sock, 5) for sock in idle]
        finally:
            for sock in (*holders, *idle):
                sock.close()
    assert answered.status == 200
    assert served_last.status == 200  # the end of the queue keeps its chance to write
    assert all(closed)  # idle with others behind them: closed on accept
    # 20 turned away, and the two holders evicted for the probe and the last one
    assert server.shed_connections == 22


def _closed_within(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def test_connections_beyond_the_limit_wait_while_every_slot_runs_a_handler() -> None:
    async with running(max_connections=1, request_timeout=1.0) as server:
        port = server.bound_port
        async with anyio.create_task_group() as tg:
            hung: list[Reply] = []

            async def hang() -> None:
                hung.append(await fetch(port, "/hang"))

            tg.start_soon(hang)
            await anyio.sleep(0.2)  # the only slot now runs a handler that never answers
            started = time.monotonic()
            reply = await fetch(port, "/healthz")
            waited = time.monotonic() - started
    assert reply.status == 200
    # A running handler is not evicted: the probe waited in the backlog until the handler's
    # deadline (1 s after its request) turned it into a 503 and freed the slot.
    assert waited >= 0.5
    assert [r.status for r in hung] == [503]


class Flood:
    """Hostile clients on raw sockets, kept up by a thread: `idle` connections that send nothing
    and `slow` ones that send one byte of a never-ending request head a second. A connection the
    server closes is opened again at the next tick, so the flood does not thin out while the
    server is probed: every tick brings a fresh wave of connections to accept."""

    HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "

    def __init__(self, port: int, idle: int, slow: int, tick: float = 1.0) -> None:
        self._port = port
        self._tick = tick
        self._idle: list[socket.socket | None] = [None] * idle
        self._slow: list[socket.socket | None] = [None] * slow
        self._sent = [0] * slow
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="http-flood", daemon=True)
        self.reconnects = 0

    def __enter__(self) -> Flood:
        self._fill()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for sock in (*self._idle, *self._slow):
            if sock is not None:
                sock.close()

    def _connect(self) -> socket.socket:
        # Loopback connects complete in the kernel's backlog, whether or not the server
        # has accepted anything yet.
        sock = socket.create_connection((LOCALHOST, self._port), timeout=5)
        sock.setblocking(False)
        return sock

    def _fill(self) -> None:
        for i, sock in enumerate(self._idle):
            if sock is None:
                self._idle[i] = self._connect()
        for i, sock in enumerate(self._slow):
            if sock is None:
                self._slow[i] = self._connect()
                self._sent[i] = 0  # a new connection starts a new request head

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            for i, sock in enumerate(self._idle):
                if sock is not None and _closed_by_peer(sock):
                    sock.close()
                    self._idle[i] = None
                    self.reconnects += 1
            for i, sock in enumerate(self._slow):
                if sock is None:
                    continue
                n = self._sent[i]
                byte = self.HEAD[n : n + 1] or b"a"
                try:
                    sock.send(byte)
                    self._sent[i] = n + 1
                except OSError:  # reset or closed by the server
                    sock.close()
                    self._slow[i] = None
                    self.reconnects += 1
            self._fill()


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False  # open, nothing to read
    except OSError:
        return True  # reset


def _server_side_sockets(port: int) -> int:
    """This process's open sockets whose local end is `port`, the listener not counted: the
    connections the server holds a descriptor for. Those still in the kernel's backlog have
    no descriptor yet (inode 0) and are not counted either."""
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            ours.add(target[len("socket:[") : -1])
    held = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rpartition(":")[2], 16)
        listening = fields[3] == "0A"
        if local_port == port and not listening and fields[9] in ours:
            # A set: the kernel writes this table in pieces while sockets come and go, so a
            # row can be read twice.
            held.add(fields[9])
    return len(held)


@pytest.mark.slow
async def test_health_answers_within_a_second_under_500_idle_and_500_slow_clients() -> None:
    """Issue 14, defect 10: 150 partial connections used to delay /healthz by ~20 s.

    The server runs with the daemon's settings (the defaults). The bound is a functional
    requirement, not a benchmark: an answer is typically a few tens of milliseconds here, so
    1 s leaves room for a loaded 2-core machine (docs/daemon.md, "The HTTP server").
    """
    async with running() as server:
        port = server.bound_port
        limit = 64  # HttpServer's default max_connections, which the daemon uses
        with Flood(port, idle=500, slow=500) as flood:
            # The first probes queue behind the whole flood in the kernel's backlog; the later
            # ones meet the slow clients mid-head and the waves of reconnections.
            latencies: dict[str, list[float]] = {"/healthz": [], "/readyz": []}
            most_open = most_sockets = 0
            for _ in range(5):
                for path, seen in latencies.items():
                    started = time.monotonic()
                    reply = await fetch(port, path)
                    seen.append(time.monotonic() - started)
                    assert reply.status == 200
                    most_open = max(most_open, server.open_connections)
                    most_sockets = max(most_sockets, _server_side_sockets(port))
                await anyio.sleep(0.7)  # probe at other points of the flood's tick
            reconnects = flood.reconnects
    worst = {path: max(seen) for path, seen in latencies.items()}
    typical = {path: statistics.median(seen) for path, seen in latencies.items()}
    assert all(t < 1.0 for t in worst.values()), (worst, typical)
    # The flood was real: the server kept closing its connections to make room, and the
    # clients kept coming back.
    assert server.shed_connections > 1000 - limit
    assert reconnects > 0
    # ...and neither tasks nor descriptors grew with it: at most `limit` connections with a
    # slot (and a task), plus two accepted and not yet placed on the one listening socket.
    assert most_open <= limit
    assert limit / 2 <= most_sockets <= limit + 2


async def test_port_in_use_raises_oserror_naming_the_address() -> None:
    async with running() as server:
        port = server.bound_port
        second = HttpServer(LOCALHOST, port, ROUTES)
        with pytest.raises(OSError, match=rf"127\.0\.0\.1:{port}") as caught:
            await second.serve()
    assert caught.value.errno == errno.EADDRINUSE
    assert "in use" in str(caught.value)


async def test_cancellation_stops_the_server_and_frees_the_port() -> None:
    server = HttpServer(LOCALHOST, 0, ROUTES)
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        port = server.bound_port
        # An open keep-alive connection must not keep the server from stopping.
        lingering = await anyio.connect_tcp(LOCALHOST, port)
        await lingering.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await lingering.receive()
        tg.cancel_scope.cancel()
    with pytest.raises(RuntimeError):
        server.bound_port  # noqa: B018
    assert await read_until_eof(lingering, timeout=5) == b""
    await lingering.aclose()
    with pytest.raises(OSError):
        await anyio.connect_tcp(LOCALHOST, port)
    # The same port can be bound again right away (a daemon restarting its server).
    restarted = HttpServer(LOCALHOST, port, ROUTES)
    async with anyio.create_task_group() as tg:
        await tg.start(restarted.serve)
        assert restarted.bound_port == port
        reply = await fetch(port, "/healthz")
        tg.cancel_scope.cancel()
    assert reply.status == 200


def _ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback_available(), reason="no IPv6 loopback on this machine")
@pytest.mark.parametrize("host", ["::1", "[::1]"])
async def test_ipv6_host(host: str) -> None:
    async with running(host=host) as server:
        assert server.address == f"[::1]:{server.bound_port}"
        reply = await fetch(server.bound_port, "/healthz", host="::1")
    assert reply.status == 200


def test_response_rejects_server_owned_headers_and_bad_status() -> None:
    with pytest.raises(ValueError, match="Content-Length"):
        Response(200, b"x", headers=(("Content-Length", "3"),))
    with pytest.raises(ValueError, match="status"):
        Response(101, b"")
    with pytest.raises(ValueError):
        Response.json({"rate": float("nan")})
    assert Response.text("é").body == "é".encode()


def test_server_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        HttpServer(LOCALHOST, 0, ROUTES, max_connections=0)
    with pytest.raises(ValueError):
        HttpServer(LOCALHOST, 0, ROUTES, request_timeout=0)
    with pytest.raises(ValueError, match="head_timeout"):
        HttpServer(LOCALHOST, 0, ROUTES, head_timeout=float("nan"))
    with pytest.raises(ValueError):
        HttpServer(LOCALHOST, 70000, ROUTES)
    with pytest.raises(RuntimeError):
        HttpServer(LOCALHOST, 0, ROUTES).bound_port  # noqa: B018
