"""A small, read-only HTTP/1.1 server for the daemon's local endpoints.

/healthz, /readyz, /metrics and /status are answered from here. The server is built on the
`h11` protocol state machine and anyio so that it runs inside the daemon's own event loop: it
installs no signal handlers, owns no loop, and stops when the task running `HttpServer.serve`
is cancelled. Handlers run on the event loop and must be cheap (they read cached state).

Robustness rules, because this port is what systemd, Prometheus and users poke at:

- Only GET and HEAD are served (405 with `Allow` otherwise); unknown paths get 404.
- A handler that raises gets a 500, its traceback is logged, and the server carries on.
- Two deadlines. The request head must be complete within `head_timeout` seconds of the server
  starting to wait for it (the first request on a connection, or the next one on a keep-alive
  connection); the whole exchange, head, body and answer, within `request_timeout`. An idle
  connection is closed silently when its head deadline passes; a client that stalls mid-request
  gets 408, then the connection is closed.
- At most `max_connections` connections are open at once, and a connection that is waiting on
  its client does not keep a new one out. When every slot is taken, the next connection takes
  the slot of the one that has waited longest on its client (for a request, or for reading the
  answer): that one is closed without a word. A connection still queued in the kernel's backlog
  with others behind it, that has not sent its whole request head by the time it is accepted, is
  closed at once instead (an accept, a peek and a close: no task, no transport), so a flood of
  idle connections is drained at the speed of the kernel, not of Python. Only when every slot is
  busy running a handler do new connections *wait*: the server stops picking them up (each
  listening socket holds at most two accepted connections waiting; the rest stay in the backlog)
  until a handler finishes or its deadline passes. So idle, slow and stalled clients, however
  many, delay a health probe by no more than draining the backlog queued before it, and neither
  tasks nor file descriptors grow with a flood.
- Request bodies carry no meaning here: a small one is read and discarded (so keep-alive keeps
  working), a large one is refused with 413 and the connection is closed.
- Malformed requests get 400 (or h11's more specific hint, such as 431) and the connection is
  closed. Every response carries `Content-Length` (except 204/304, which must not),
  `Server: tracktiond` and `Date`.
"""

from __future__ import annotations

import json as jsonlib
import logging
import math
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from enum import Enum, auto
from urllib.parse import parse_qsl, unquote, urlsplit

import anyio
import anyio.abc
import anyio.lowlevel
import h11
from anyio.streams.stapled import MultiListener

__all__ = ["Handler", "HttpServer", "Request", "Response"]

log = logging.getLogger(__name__)

SERVER_NAME = "tracktiond"
ALLOWED_METHODS = ("GET", "HEAD")
ALLOW_HEADER = ", ".join(ALLOWED_METHODS)

# Request heads on these endpoints are a few hundred bytes; a 16 KiB cap (h11's own default,
# made explicit) keeps one client from buffering arbitrary amounts of memory before we answer.
MAX_HEADER_BYTES = 16 * 1024
# Bodies are meaningless on a read-only server; this much is drained so a client that sends
# one anyway can keep its connection, anything larger is refused.
MAX_BODY_BYTES = 64 * 1024
RECEIVE_CHUNK = 64 * 1024
# After an error response we half-close and read what the client still sends for this long, so
# the kernel does not answer its unread bytes with a reset that would destroy our response.
LINGER_SECONDS = 1.0
# How long to try to deliver a 408/503 after the request deadline has already passed.
LATE_RESPONSE_SECONDS = 1.0
# Back-off after accept() fails (e.g. out of file descriptors), so the loop does not spin.
ACCEPT_RETRY_SECONDS = 0.5
# Connections taken from the backlog between two turns of the event loop.
ACCEPT_BURST = 32
# A flood closes connections by the hundred a second; one log line a minute says it is happening.
SHED_LOG_INTERVAL = 60.0

# Framing and connection-management headers are the server's business; a handler that set them
# could contradict the body actually sent, so they are refused when the Response is built.
_RESERVED_HEADERS = frozenset(
    {"content-length", "content-type", "transfer-encoding", "connection", "server", "date"}
)
# RFC 9110 §8.6 / §15.3.5 / §15.4.5: these statuses carry no body and 204 no Content-Length.
_BODILESS_STATUSES = frozenset({204, 304})


@dataclass(frozen=True)
class Response:
    """What a handler returns; the server adds framing and connection headers."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # Checked here, in the handler's task, so a mistake is a clear error (and a 500)
        # instead of a malformed response on the wire.
        if not 200 <= self.status <= 599:
            raise ValueError(f"HTTP status {self.status} is not a final status (200-599)")
        if self.status in _BODILESS_STATUSES and self.body:
            raise ValueError(f"HTTP status {self.status} must not have a body")
        for name, _value in self.headers:
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by the server, not by handlers")

    @classmethod
    def json(cls, data: object, status: int = 200, *, indent: int | None = None) -> Response:
        """`data` as UTF-8 JSON: compact by default, indented when `indent` is given.

        NaN and infinities are refused (ValueError): they are not JSON and would break the
        scripts that read /status.
        """
        if indent is None:
            text = jsonlib.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        else:
            text = jsonlib.dumps(data, ensure_ascii=False, allow_nan=False, indent=indent) + "\n"
        # RFC 8259: JSON is UTF-8 and application/json defines no charset parameter.
        return cls(status, text.encode("utf-8"), "application/json")

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode("utf-8"))


@dataclass(frozen=True)
class Request:
    """A parsed request head. Header names are lower-case; repeated headers are joined by ", "."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


Handler = Callable[[Request], Awaitable[Response]]


def _under_route(routes: dict[str, Handler], path: str) -> Handler | None:
    """A route ending in "/" also serves the paths under it (``/tracklists/{recording}``)."""
    owners = [r for r in routes if r.endswith("/") and path.startswith(r) and len(path) > len(r)]
    return routes[max(owners, key=len)] if owners else None


def _normalize_host(host: str) -> str | None:
    """Accept "[::1]" as well as "::1" (config files and URLs bracket IPv6 literals)."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    # An empty host means "all interfaces", which is how anyio spells None.
    return host or None


def _format_address(host: str | None, port: int) -> str:
    if host is None:
        return f"*:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parse_request(event: h11.Request) -> Request:
    # h11 has already checked that the method is a token and the target visible ASCII.
    method = event.method.decode("ascii")
    target = event.target.decode("ascii")
    if target.startswith("/"):
        # origin-form; split by hand because urlsplit reads "//x/y" as a host name.
        raw_path, _, raw_query = target.partition("?")
    else:
        # absolute-form ("http://host/path?q", allowed by RFC 9112 §3.2.2) or "*".
        parts = urlsplit(target)
        raw_path, raw_query = (parts.path or "/", parts.query) if parts.scheme else (target, "")
    headers: dict[str, str] = {}
    for raw_name, raw_value in event.headers:
        name = raw_name.decode("ascii")
        # latin-1 maps every byte, so obs-text in a header value cannot fail the request.
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return Request(
        method=method,
        path=unquote(raw_path),
        query=dict(parse_qsl(raw_query, keep_blank_values=True)),
        headers=headers,
    )


class _Head(Enum):
    """What a just-accepted connection has sent so far."""

    READY = auto()  # a whole request head (or more than a head may hold: h11 will say 431)
    NOT_YET = auto()  # nothing, or part of a head
    GONE = auto()  # closed or reset before we got to it


def _buffered_head(sock: socket.socket) -> _Head:
    """Peek, without reading or waiting, at what the client has already sent."""
    try:
        data = sock.recv(MAX_HEADER_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return _Head.NOT_YET
    except OSError:
        return _Head.GONE
    if not data:
        return _Head.GONE
    # h11 also accepts bare LF line endings, so a blank line is either form.
    if b"\n\r\n" in data or b"\n\n" in data or len(data) >= MAX_HEADER_BYTES:
        return _Head.READY
    return _Head.NOT_YET


class _PeerGone(Exception):
    """The client reset or closed the connection; there is nobody left to answer."""


class _Cycle(Enum):
    """How one request/response cycle ended."""

    KEEP_ALIVE = auto()
    CLOSE = auto()
    HEAD_TIMEOUT = auto()


class _Connection:
    """One client connection: a loop of h11 request/response cycles.

    `waiting_since` is what the connection cap evicts by: the loop time at which the connection
    began its current wait on the client (for a request, or for it to take the answer), None
    while a handler runs for it. It is set when a wait begins, not at each byte, so a client
    that trickles a byte a second ages like one that sends nothing.
    """

    def __init__(self, server: HttpServer, stream: anyio.abc.SocketStream, slots: _Slots) -> None:
        self._server = server
        self._stream = stream
        self._slots = slots
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self._linger = False
        self.waiting_since: float | None = anyio.current_time()
        # Created now, entered by the connection's task: an eviction may come before it runs.
        self.scope = anyio.CancelScope()
        self.evicted = False

    def evict(self) -> None:
        self.evicted = True
        self.scope.cancel()

    def _waiting_on_client(self) -> None:
        self.waiting_since = anyio.current_time()
        # A new connection may be waiting for a slot that only a waiting connection can give.
        self._slots.changed()

    async def serve(self) -> None:
        """Serve the connection until it is done, closing the stream in any case."""
        with self.scope:
            async with self._stream:
                await self._run()

    async def _run(self) -> None:
        try:
            while True:
                with anyio.move_on_after(self._server.request_timeout) as deadline:
                    outcome = await self._cycle()
                if deadline.cancelled_caught or outcome is _Cycle.HEAD_TIMEOUT:
                    await self._on_timeout()
                    break
                if outcome is _Cycle.CLOSE:
                    break
                self._conn.start_next_cycle()
            if self._linger:
                await self._lingering_close()
        except _PeerGone:
            pass

    async def _cycle(self) -> _Cycle:
        """Serve one request; say whether the connection can carry another one."""
        self._waiting_on_client()
        try:
            event: h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED] | None = None
            # The head gets its own, shorter deadline: sending nothing (or a byte now and then)
            # must not hold a connection for the whole exchange's time.
            with anyio.move_on_after(self._server.head_timeout):
                event = await self._next_event()
            if event is None:
                return _Cycle.HEAD_TIMEOUT
            if not isinstance(event, h11.Request):
                # ConnectionClosed between requests: the client is done with us.
                return _Cycle.CLOSE
            request = _parse_request(event)
            if not await self._drain_body(request):
                return _Cycle.CLOSE
        except h11.RemoteProtocolError as exc:
            await self._send_error(exc.error_status_hint, f"bad request: {exc}\n")
            return _Cycle.CLOSE

        self.waiting_since = None  # our turn: a running handler is not evicted
        response = await self._server.dispatch(request)
        self._waiting_on_client()
        await self._send_response(response, head=request.method == "HEAD")
        if self._conn.our_state is h11.DONE and self._conn.their_state is h11.DONE:
            return _Cycle.KEEP_ALIVE
        return _Cycle.CLOSE

    async def _next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        while True:
            event = self._conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await self._stream.receive(RECEIVE_CHUNK)
            except anyio.EndOfStream:
                data = b""  # h11 turns this into ConnectionClosed, or an error mid-request
            except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                raise _PeerGone from exc
            self._conn.receive_data(data)

    async def _drain_body(self, request: Request) -> bool:
        """Read and discard a request body; False (after a 413) if it is too large."""
        declared = request.headers.get("content-length")
        # h11 has validated Content-Length as digits (and rejected conflicting framing).
        if declared is not None and int(declared) > MAX_BODY_BYTES:
            await self._send_error(413, "request bodies are not accepted\n")
            return False
        if self._conn.they_are_waiting_for_100_continue:
            # Otherwise a polite client would sit out its own timeout before sending the body.
            await self._send_bytes(
                self._conn.send(h11.InformationalResponse(status_code=100, headers=[]))
            )
        received = 0
        while True:
            event = await self._next_event()
            if isinstance(event, h11.EndOfMessage):
                return True
            if isinstance(event, h11.Data):
                received += len(event.data)
                if received > MAX_BODY_BYTES:  # chunked bodies declare no length up front
                    await self._send_error(413, "request bodies are not accepted\n")
                    return False

    async def _send_response(
        self, response: Response, *, head: bool = False, close: bool = False
    ) -> None:
        try:
            event = _h11_response(response, close=close)
        except Exception:
            # A header value h11 refuses (say, a newline in it) is a handler bug: same as a raise.
            log.exception("HTTP handler returned an invalid response (status %s)", response.status)
            response = Response.text("internal server error\n", 500)
            event = _h11_response(response, close=close)
        data = self._conn.send(event) or b""
        if response.body and not head:
            data += self._conn.send(h11.Data(data=response.body)) or b""
        data += self._conn.send(h11.EndOfMessage()) or b""
        await self._send_bytes(data)

    async def _send_error(self, status: int, message: str) -> None:
        # h11 allows an error response as long as we have not started one ourselves.
        if self._conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            await self._send_response(Response.text(message, status), close=True)
            self._linger = True

    async def _send_bytes(self, data: bytes | None) -> None:
        if not data:
            return
        try:
            await self._stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise _PeerGone from exc

    async def _on_timeout(self) -> None:
        pending, _closed = self._conn.trailing_data
        if self._conn.their_state is h11.IDLE and not pending:
            return  # an idle connection: just close it
        if self._conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return  # stuck mid-response on a client that does not read: nothing left to say
        # The deadline has passed, so the late answer gets its own short one: a client that
        # does not read must not hold the slot any longer. Waiting on the client again, so
        # evictable (a stalled request keeps the age it has).
        if self.waiting_since is None:
            self._waiting_on_client()
        with anyio.move_on_after(LATE_RESPONSE_SECONDS):
            if self._conn.their_state is h11.DONE:
                log.warning("HTTP handler did not answer within %ss", self._server.request_timeout)
                await self._send_error(503, "the handler did not answer in time\n")
            else:
                await self._send_error(408, "request not received in time\n")

    async def _lingering_close(self) -> None:
        await self._stream.send_eof()
        with anyio.move_on_after(LINGER_SECONDS):
            try:
                while await self._stream.receive(RECEIVE_CHUNK):
                    pass
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass


def _h11_response(response: Response, *, close: bool) -> h11.Response:
    headers = [("content-type", response.content_type)]
    if response.status not in _BODILESS_STATUSES:
        headers.append(("content-length", str(len(response.body))))
    headers += [("server", SERVER_NAME), ("date", formatdate(usegmt=True)), *response.headers]
    if close:
        # h11 reads this header and moves the connection to MUST_CLOSE after the response.
        headers.append(("connection", "close"))
    return h11.Response(status_code=response.status, headers=headers)


class _Slots:
    """The connection cap: admits connections, evicting the one waiting longest on its client.

    Belongs to one serving loop. `changed()` wakes an admission waiting for room; it is called
    when a connection leaves and when one starts waiting on its client (becomes evictable).
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: set[_Connection] = set()
        self._changed = anyio.Event()
        self._admitting = 0  # admissions waiting for room (one per listening socket at most)
        self.shed_total = 0
        self._last_logged = -math.inf

    def __len__(self) -> int:
        return len(self._open)

    def full(self) -> bool:
        return len(self._open) >= self._limit

    def shed(self, address: str) -> None:
        """Count (and now and then log) a connection closed unserved to make room."""
        self.shed_total += 1
        now = anyio.current_time()
        if now - self._last_logged >= SHED_LOG_INTERVAL:
            self._last_logged = now
            log.warning(
                "HTTP on %s: all %d connections taken; closing idle ones to serve new ones "
                "(%d so far)",
                address,
                self._limit,
                self.shed_total,
            )

    async def admit(self, conn: _Connection, address: str) -> None:
        """Wait until `conn` has a slot, closing the idlest connection when all are taken."""
        self._admitting += 1
        try:
            while len(self._open) >= self._limit:
                # Evicted connections keep their slot (and descriptor) until their task has
                # closed the socket, so the count stays true. One eviction per admission: a
                # wake-up before the victim has left must not cost another connection.
                leaving = sum(1 for c in self._open if c.evicted)
                victim = self._idlest() if leaving < self._admitting else None
                if victim is not None:
                    victim.evict()
                    self.shed(address)
                changed = self._changed
                await changed.wait()
        finally:
            self._admitting -= 1
        self._open.add(conn)

    def release(self, conn: _Connection) -> None:
        self._open.discard(conn)
        self.changed()

    def changed(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _idlest(self) -> _Connection | None:
        waiting = [c for c in self._open if not c.evicted and c.waiting_since is not None]
        return min(waiting, key=lambda c: c.waiting_since or 0.0, default=None)


class HttpServer:
    """Serves `routes` (exact path → handler) on host:port until the serving task is cancelled.

    `routes` is copied: the set of endpoints is fixed for the server's lifetime, so handlers
    should read changing state rather than the routes changing.
    """

    def __init__(
        self,
        host: str,
        port: int,
        routes: Mapping[str, Handler],
        *,
        max_connections: int = 64,
        head_timeout: float = 5.0,
        request_timeout: float = 10.0,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} is out of range (0-65535)")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        for name, value in (("head_timeout", head_timeout), ("request_timeout", request_timeout)):
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number of seconds")
        self._host = _normalize_host(host)
        self._port = port
        self._routes: dict[str, Handler] = dict(routes)
        self._max_connections = max_connections
        self._head_timeout = head_timeout
        self._request_timeout = request_timeout
        self._bound_port: int | None = None
        self._serving = False
        self._slots: _Slots | None = None

    @property
    def head_timeout(self) -> float:
        return self._head_timeout

    @property
    def request_timeout(self) -> float:
        return self._request_timeout

    @property
    def open_connections(self) -> int:
        """Connections holding a slot now (evicted ones until their socket is closed)."""
        return len(self._slots) if self._slots is not None else 0

    @property
    def shed_connections(self) -> int:
        """Connections closed unanswered to make room since serving began: idle ones evicted
        from a slot, or turned away at accept while every slot was taken."""
        return self._slots.shed_total if self._slots is not None else 0

    @property
    def address(self) -> str:
        """host:port as configured (port 0 until bound), bracketed for IPv6; for log lines."""
        return _format_address(self._host, self._bound_port or self._port)

    @property
    def bound_port(self) -> int:
        """The port actually listened on (useful with port 0); only while serving."""
        if self._bound_port is None:
            raise RuntimeError("the HTTP server is not listening")
        return self._bound_port

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen, report `task_status.started()`, and serve until cancelled.

        Raises OSError naming host:port when the address cannot be bound (in use, not local,
        unresolvable); the original error is chained and its errno kept.
        """
        if self._serving:
            raise RuntimeError("this HTTP server is already serving")
        self._serving = True
        try:
            try:
                listener = await anyio.create_tcp_listener(
                    local_host=self._host, local_port=self._port
                )
            except OSError as exc:
                message = f"cannot listen for HTTP on {self.address}: {exc.strerror or exc}"
                if exc.errno is None:
                    raise OSError(message) from exc
                raise OSError(exc.errno, message) from exc
            try:
                await self._serve_listener(listener, task_status)
            finally:
                self._bound_port = None
                # Shielded so that cancellation (the normal way to stop) still frees the port.
                with anyio.CancelScope(shield=True):
                    await listener.aclose()
        finally:
            self._serving = False

    async def _serve_listener(
        self,
        listener: MultiListener[anyio.abc.SocketStream],
        task_status: anyio.abc.TaskStatus[None],
    ) -> None:
        sockets: list[anyio.abc.SocketListener] = []
        for sub in listener.listeners:
            if not isinstance(sub, anyio.abc.SocketListener):  # create_tcp_listener's contract
                raise TypeError(f"unexpected listener type {type(sub).__name__}")
            sockets.append(sub)
        # anyio binds every address of a host name to the same port, so the first one is it.
        self._bound_port = sockets[0].extra(anyio.abc.SocketAttribute.local_port)
        # Created here, not in __init__, because it belongs to the running event loop.
        slots = self._slots = _Slots(self._max_connections)
        log.info("HTTP server listening on %s", self.address)
        async with anyio.create_task_group() as tg:
            for sock in sockets:
                tg.start_soon(self._accept_loop, sock, tg, slots)
            task_status.started()

    async def _accept_loop(
        self,
        listener: anyio.abc.SocketListener,
        tg: anyio.abc.TaskGroup,
        slots: _Slots,
    ) -> None:
        # Accepting on the raw socket keeps a flood cheap: a connection turned away at the cap
        # costs an accept, a peek and a close, no transport or task (see _place).
        raw = listener.extra(anyio.abc.SocketAttribute.raw_socket)
        held: socket.socket | None = None
        placed = 0
        try:
            while True:
                if held is None:
                    await anyio.wait_readable(raw)
                    held = await self._accept_next(raw)
                    continue
                # One ahead: whether another connection is queued behind this one decides how
                # a connection that has sent no request yet is treated when all slots are taken.
                sock, held = held, await self._accept_next(raw)
                await self._place(sock, tg, slots, queued_behind=held is not None)
                placed += 1
                if placed % ACCEPT_BURST == 0:
                    # Turning connections away never waits: under a flood that never lets up,
                    # this is what lets the connections already served have their turn.
                    await anyio.lowlevel.checkpoint()
        finally:
            if held is not None:
                held.close()

    async def _accept_next(self, raw: socket.socket) -> socket.socket | None:
        """The next connection in the kernel's backlog, or None when there is none."""
        try:
            sock, _address = raw.accept()
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            # Out of file descriptors, or a client that reset before we got to it: the
            # server must outlive both, so wait a little and keep accepting.
            log.warning("HTTP accept on %s failed: %s", self.address, exc)
            await anyio.sleep(ACCEPT_RETRY_SECONDS)
            return None
        return sock

    async def _place(
        self,
        sock: socket.socket,
        tg: anyio.abc.TaskGroup,
        slots: _Slots,
        *,
        queued_behind: bool,
    ) -> None:
        """Serve an accepted connection, or turn it away when it is not worth a slot."""
        try:
            if slots.full():
                head = _buffered_head(sock)
                # At the cap, a connection behind which others wait and that has not sent its
                # request is idle, like those ahead of it that fill the slots: it does not get
                # one. The last in the queue does (by eviction), so a client that connects
                # and then writes is served once the queue is drained.
                if head is _Head.GONE or (head is _Head.NOT_YET and queued_behind):
                    sock.close()
                    slots.shed(self.address)
                    return
            sock.setblocking(False)
            # Answers are one small write each; Nagle would hold a keep-alive one back.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stream = await anyio.abc.SocketStream.from_socket(sock)
        except (OSError, ValueError):
            sock.close()  # reset before it could be wrapped: nobody to serve
            return
        except BaseException:
            sock.close()
            raise
        conn = _Connection(self, stream, slots)
        try:
            # Waits only when every slot runs a handler: the backlog holds the rest meanwhile.
            await slots.admit(conn, self.address)
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise
        tg.start_soon(self._handle_connection, conn, slots)

    async def _handle_connection(self, conn: _Connection, slots: _Slots) -> None:
        try:
            await conn.serve()
        except Exception:
            # A bug in this module must cost one connection, never the server.
            log.exception("HTTP connection failed unexpectedly")
        finally:
            slots.release(conn)

    async def dispatch(self, request: Request) -> Response:
        """Route one request to its handler, turning failures into 404/405/500."""
        handler = self._routes.get(request.path) or _under_route(self._routes, request.path)
        if handler is None:
            return Response.text("not found\n", 404)
        if request.method not in ALLOWED_METHODS:
            return Response(405, b"method not allowed\n", headers=(("Allow", ALLOW_HEADER),))
        try:
            response = await handler(request)
            if not isinstance(response, Response):
                raise TypeError(f"handler returned {type(response).__name__}, not Response")
        except Exception:
            log.exception("HTTP handler for %s %s failed", request.method, request.path)
            return Response.text("internal server error\n", 500)
        return response
