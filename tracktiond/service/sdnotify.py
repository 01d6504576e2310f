"""systemd integration: the sd_notify protocol, the watchdog task, and "are we a service?".

The notify protocol is a handful of ``KEY=value`` lines sent as one datagram to the AF_UNIX socket
named by ``$NOTIFY_SOCKET``. It is implemented here directly rather than through systemd-python's
``systemd.daemon.notify``: that wraps libsystemd's ``sd_notify``, which sends with a blocking
``sendmsg`` (a full receive queue in PID 1 would stall the event loop) and is optional anyway, so
the daemon must speak the protocol without it. With the socket path owned here, the path the tests
exercise is the path production runs.

Nothing here raises into the caller: a daemon must never crash because its supervisor went away.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping

import anyio

__all__ = ["Notifier", "under_systemd", "watchdog_loop"]

log = logging.getLogger("tracktiond.service.sdnotify")


def under_systemd() -> bool:
    """True when systemd started this process (it sets these for every service it runs)."""
    return bool(os.environ.get("INVOCATION_ID") or os.environ.get("JOURNAL_STREAM"))


def _socket_address(raw: str) -> str | None:
    """The address to pass to sendto(), or None for an address we cannot speak to.

    A leading '@' names Linux's abstract socket namespace, spelled with a NUL byte on the wire.
    Other forms (relative paths, ``vsock:`` from systemd 254 for VMs) are not sd_notify targets a
    host service is handed, so they disable notification rather than guess.
    """
    if raw.startswith("@"):
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    return None


def _positive_int(raw: str | None) -> int | None:
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value > 0 else None


class Notifier:
    """Sends service state to systemd; every method is a cheap no-op when not run by systemd.

    Built from ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` (read from ``environ``,
    default ``os.environ``). The variables are deliberately left in the environment: the only
    children we start are our own worker processes, which never notify, and unsetting them would
    hide from ``/status`` and the logs how we were started.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw_socket = env.get("NOTIFY_SOCKET", "")
        self._address = _socket_address(raw_socket) if raw_socket else None
        if raw_socket and self._address is None:
            log.warning("ignoring unsupported NOTIFY_SOCKET %r", raw_socket)
        self._watchdog_usec = _positive_int(env.get("WATCHDOG_USEC"))
        watchdog_pid = _positive_int(env.get("WATCHDOG_PID"))
        # systemd sets WATCHDOG_PID so that a process which inherited the variables from its parent
        # (a shell script, a forking wrapper) knows the pings are not its job.
        self._watchdog_for_us = watchdog_pid is None or watchdog_pid == os.getpid()
        self._sock: socket.socket | None = None
        # Notifications may come from worker threads as well as the event loop; the lock only
        # guards creating the socket, datagram sends themselves are atomic.
        self._lock = threading.Lock()
        self._warned = False

    @property
    def enabled(self) -> bool:
        """True when there is a notify socket to talk to."""
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings (half of WatchdogSec), or None when there is no watchdog.

        Half the timeout is what sd_watchdog_enabled(3) recommends: one late ping is tolerated.
        """
        if not self.enabled or self._watchdog_usec is None or not self._watchdog_for_us:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def ready(self, status: str | None = None) -> bool:
        """Start-up is complete (for Type=notify, this is when `systemctl start` returns)."""
        if status is None:
            return self.notify(READY=1)
        return self.notify(READY=1, STATUS=status)

    def status(self, text: str) -> bool:
        """A one-line human description, shown by `systemctl status`."""
        return self.notify(STATUS=text)

    def stopping(self) -> bool:
        """Shutdown has begun: systemd waits up to TimeoutStopSec rather than assume a hang."""
        return self.notify(STOPPING=1)

    def reloading(self) -> bool:
        """A configuration reload has begun; send ``ready()`` again when it is done.

        MONOTONIC_USEC lets systemd 253+ (Type=notify-reload) tell this reload apart from an
        earlier one; older versions ignore the unknown field.
        """
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(RELOADING=1, MONOTONIC_USEC=now_usec)

    def watchdog(self) -> bool:
        """Tell systemd we are alive; it restarts us when these stop for WatchdogSec."""
        return self.notify(WATCHDOG=1)

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` fields as one datagram. Returns whether it was sent; never raises."""
        if self._address is None or not fields:
            return False
        try:
            payload = _encode(fields)
        except ValueError as exc:
            # A malformed field is our bug, but a status line is never worth crashing over.
            log.warning("not sending malformed notification: %s", exc)
            return False
        try:
            sock = self._socket()
            # MSG_DONTWAIT: if systemd's queue is full we drop the message rather than stall the
            # event loop; a lost STATUS is harmless and the next WATCHDOG comes soon enough.
            sock.sendto(payload, socket.MSG_DONTWAIT, self._address)
        except OSError as exc:
            self._warn_once(exc)
            return False
        return True

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def _socket(self) -> socket.socket:
        with self._lock:
            if self._sock is None:
                # Python sockets are close-on-exec, so worker processes do not inherit this one.
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            return self._sock

    def _warn_once(self, exc: OSError) -> None:
        # Once: a vanished supervisor would otherwise add a warning per watchdog ping forever.
        if not self._warned:
            self._warned = True
            log.warning(
                "cannot notify systemd at %r: %s (further failures are not logged)",
                _display(self._address),
                exc,
            )


def _display(address: str | None) -> str | None:
    return "@" + address[1:] if address and address.startswith("\0") else address


def _encode(fields: Mapping[str, str | int]) -> bytes:
    lines = []
    for key, value in fields.items():
        if not key or "=" in key or not key.isupper() or not key.replace("_", "").isalnum():
            raise ValueError(f"invalid notify field name {key!r}")
        text = str(value)
        # One field per line is the protocol: a newline inside a value would forge another field.
        text = text.replace("\r", " ").replace("\n", " ")
        lines.append(f"{key}={text}")
    # Paths with undecodable bytes (surrogate escapes) in a STATUS line must not cost the message.
    return "\n".join(lines).encode("utf-8", errors="replace")


async def watchdog_loop(
    notifier: Notifier,
    health_check: Callable[[], bool] | None = None,
    *,
    clock: Callable[[], float] = anyio.current_time,
    sleep_until: Callable[[float], Awaitable[None]] = anyio.sleep_until,
) -> None:
    """Ping systemd's watchdog every ``notifier.watchdog_interval`` seconds, forever.

    Runs on the event loop on purpose: if the loop is blocked the pings stop and systemd restarts
    us, which is exactly the hang the watchdog exists to catch. ``health_check`` (cheap, sync)
    can veto a ping, letting a wedged subsystem trigger the same restart. Returns at once when
    the watchdog is off; cancel it to stop.

    ``clock`` and ``sleep_until`` are the event loop's clock and sleep unless given others (a
    test's clock that moves only when told, so the schedule can be checked exactly).
    """
    interval = notifier.watchdog_interval
    if interval is None:
        return
    healthy = True
    next_ping = clock()
    while True:
        ok, error = _check(health_check)
        if ok:
            notifier.watchdog()
        if ok != healthy:
            # Log transitions only: one line when pings stop, one when they resume, rather than
            # one per interval for as long as the condition lasts.
            if ok:
                log.warning("health check passes again; resuming systemd watchdog pings")
            else:
                log.warning(
                    "health check failed; withholding systemd watchdog pings", exc_info=error
                )
            healthy = ok
        # Schedule from the previous deadline so pings do not drift later each round; after a
        # stall (the very thing we report) restart the schedule from now instead of bursting.
        next_ping += interval
        now = clock()
        if next_ping < now:
            next_ping = now + interval
        await sleep_until(next_ping)


def _check(health_check: Callable[[], bool] | None) -> tuple[bool, Exception | None]:
    if health_check is None:
        return True, None
    try:
        return bool(health_check()), None
    except Exception as exc:
        # A check that crashes says nothing good about health: withhold the ping.
        return False, exc
