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
import socket
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
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


async def test_connections_beyond_the_limit_wait_for_a_slot() -> None:
    async with running(max_connections=1, request_timeout=1.0) as server:
        port = server.bound_port
        async with await anyio.connect_tcp(LOCALHOST, port) as hog:
            await anyio.sleep(0.1)  # let the server accept it and give it the only slot
            started = time.monotonic()
            reply = await fetch(port, "/healthz")
            waited = time.monotonic() - started
            assert await read_until_eof(hog, timeout=5) == b""
    assert reply.status == 200
    # The second client could only be served once the first one's idle timeout freed the slot.
    assert waited >= 0.5


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
    with pytest.raises(ValueError):
        HttpServer(LOCALHOST, 70000, ROUTES)
    with pytest.raises(RuntimeError):
        HttpServer(LOCALHOST, 0, ROUTES).bound_port  # noqa: B018
