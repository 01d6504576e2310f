"""The sd_notify protocol against a real NOTIFY_SOCKET, and the watchdog task's schedule.

The watchdog's schedule is checked on an injected clock that moves only when the loop sleeps, so
every ping time is exact and the tests take no wall-clock time; one test keeps the real event
loop, to show that a blocked loop stops the pings.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from tracktiond.service.sdnotify import Notifier, under_systemd, watchdog_loop

pytestmark = pytest.mark.anyio

# sockaddr_un holds 108 bytes including the terminating NUL.
_MAX_SUN_PATH = 107


class Receiver:
    """The systemd side: a bound datagram socket that collects what the daemon sends."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value

    def recv(self, timeout: float = 2.0) -> str:
        self.sock.settimeout(timeout)
        return self.sock.recv(4096).decode()

    def pending(self) -> list[str]:
        """Every datagram already queued, without waiting for more."""
        self.sock.setblocking(False)
        out = []
        try:
            while True:
                out.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            return out

    async def recv_async(self) -> str:
        self.sock.setblocking(False)
        while True:
            try:
                return self.sock.recv(4096).decode()
            except BlockingIOError:
                await anyio.wait_readable(self.sock)


def _clear_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "INVOCATION_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)


@pytest.fixture
def path_receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    _clear_env(monkeypatch)
    path = tmp_path / "notify.sock"
    short_dir: str | None = None
    if len(os.fsencode(path)) > _MAX_SUN_PATH:
        # A long tmp_path (deep basetemp, long test name) would not fit in sockaddr_un.
        short_dir = tempfile.mkdtemp(prefix="sdn")
        path = Path(short_dir) / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    try:
        yield Receiver(sock, str(path))
    finally:
        sock.close()
        path.unlink(missing_ok=True)
        if short_dir is not None:
            os.rmdir(short_dir)


@pytest.fixture
def abstract_receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    _clear_env(monkeypatch)
    name = f"tracktiond-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    try:
        yield Receiver(sock, "@" + name)
    finally:
        sock.close()


def test_messages_to_path_socket(path_receiver: Receiver) -> None:
    notifier = Notifier()
    assert notifier.enabled
    assert notifier.ready()
    assert path_receiver.recv() == "READY=1"
    assert notifier.status("reconciling 12,034 / 480,000 files")
    assert path_receiver.recv() == "STATUS=reconciling 12,034 / 480,000 files"
    assert notifier.watchdog()
    assert path_receiver.recv() == "WATCHDOG=1"
    assert notifier.stopping()
    assert path_receiver.recv() == "STOPPING=1"
    assert path_receiver.pending() == []
    notifier.close()


def test_messages_to_abstract_socket(abstract_receiver: Receiver) -> None:
    notifier = Notifier()
    assert notifier.enabled
    notifier.ready()
    notifier.status("watching 3 roots, 0 pending")
    notifier.stopping()
    assert abstract_receiver.recv() == "READY=1"
    assert abstract_receiver.recv() == "STATUS=watching 3 roots, 0 pending"
    assert abstract_receiver.recv() == "STOPPING=1"
    notifier.close()


def test_ready_with_status_is_one_datagram(path_receiver: Receiver) -> None:
    Notifier().ready("watching 1 root, 0 pending")
    assert path_receiver.recv() == "READY=1\nSTATUS=watching 1 root, 0 pending"


def test_reloading_carries_monotonic_usec(path_receiver: Receiver) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    Notifier().reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = path_receiver.recv().split("\n")
    assert lines[0] == "RELOADING=1"
    assert len(lines) == 2
    key, value = lines[1].split("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_arbitrary_fields_and_newlines_cannot_forge_fields(path_receiver: Receiver) -> None:
    notifier = Notifier()
    notifier.notify(STATUS="line one\nREADY=1", EXTEND_TIMEOUT_USEC=5_000_000)
    assert path_receiver.recv() == "STATUS=line one READY=1\nEXTEND_TIMEOUT_USEC=5000000"
    # Malformed names are refused (and nothing is sent) rather than raised.
    assert not notifier.notify(**{"BAD=NAME": 1})
    assert not notifier.notify(lowercase=1)
    assert path_receiver.pending() == []


def test_status_with_undecodable_path_is_still_sent(path_receiver: Receiver) -> None:
    # os.fsdecode() of a Latin-1 file name on a UTF-8 system yields a lone surrogate.
    name = os.fsdecode(b"caf\xe9.flac")
    assert Notifier().status(f"hashing {name}")
    assert path_receiver.recv() == "STATUS=hashing caf?.flac"


def test_notify_socket_is_left_in_the_environment(path_receiver: Receiver) -> None:
    Notifier().ready()
    path_receiver.recv()
    assert os.environ["NOTIFY_SOCKET"] == path_receiver.env_value


def test_disabled_without_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_env(monkeypatch)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    notifier = Notifier()
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert not notifier.ready()
    assert not notifier.watchdog()


def test_unsupported_socket_address_disables(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_env(monkeypatch)
    monkeypatch.setenv("NOTIFY_SOCKET", "relative/notify.sock")
    notifier = Notifier()
    assert not notifier.enabled
    assert not notifier.ready()


def test_vanished_socket_does_not_raise_and_warns_once(
    path_receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier()
    assert notifier.ready()
    path_receiver.sock.close()
    Path(path_receiver.env_value).unlink()
    with caplog.at_level(logging.WARNING, logger="tracktiond.service.sdnotify"):
        assert not notifier.watchdog()
        assert not notifier.status("still here")
        assert not notifier.stopping()
    warnings = [r for r in caplog.records if "cannot notify systemd" in r.getMessage()]
    assert len(warnings) == 1
    notifier.close()


def test_socket_path_that_never_existed_does_not_raise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clear_env(monkeypatch)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "missing.sock"))
    notifier = Notifier()
    assert notifier.enabled
    assert not notifier.ready()
    assert not notifier.reloading()


def test_watchdog_interval_is_half_of_watchdog_usec(
    path_receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    assert Notifier().watchdog_interval == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert Notifier().watchdog_interval == 30.0
    monkeypatch.setenv("WATCHDOG_USEC", "0")
    assert Notifier().watchdog_interval is None
    monkeypatch.setenv("WATCHDOG_USEC", "junk")
    assert Notifier().watchdog_interval is None


def test_watchdog_pid_of_another_process_disables_watchdog(
    path_receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getppid()))
    notifier = Notifier()
    assert notifier.enabled  # still allowed to send READY/STATUS, only the watchdog is not ours
    assert notifier.watchdog_interval is None


async def test_watchdog_loop_with_another_pid_returns_at_once(
    path_receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getppid()))
    with anyio.fail_after(1):
        await watchdog_loop(Notifier())
    assert path_receiver.pending() == []


async def test_watchdog_loop_returns_when_watchdog_off(path_receiver: Receiver) -> None:
    with anyio.fail_after(1):
        await watchdog_loop(Notifier())
    assert path_receiver.pending() == []


class ClockStopped(Exception):
    """Raised by FakeClock.sleep_until once the test's sleeps are used up: ends the loop."""


class FakeClock:
    """Time that moves only when the watchdog loop sleeps: a sleep jumps to its deadline.

    ``lag`` adds extra seconds to given sleeps (1-based), as a blocked or overloaded event loop
    would; after ``sleeps`` sleeps the next one raises ClockStopped.
    """

    def __init__(self, sleeps: int, lag: dict[int, float] | None = None) -> None:
        self.now = 1000.0
        self.start = self.now
        self.deadlines: list[float] = []
        self._sleeps = sleeps
        self._lag = lag or {}

    def __call__(self) -> float:
        return self.now

    async def sleep_until(self, deadline: float) -> None:
        self.deadlines.append(deadline)
        if len(self.deadlines) > self._sleeps:
            raise ClockStopped
        self.now = max(self.now, deadline) + self._lag.get(len(self.deadlines), 0.0)
        await anyio.lowlevel.checkpoint()

    def since_start(self, times: list[float]) -> list[float]:
        return [round(t - self.start, 6) for t in times]


class PingTimes(Notifier):
    """The real notifier (real datagrams), noting the fake clock's time of every ping."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.times: list[float] = []

    def watchdog(self) -> bool:
        self.times.append(self.clock())
        return super().watchdog()


async def _run(notifier: PingTimes, health_check: Callable[[], bool] | None = None) -> None:
    clock = notifier.clock
    with anyio.fail_after(5), pytest.raises(ClockStopped):
        await watchdog_loop(notifier, health_check, clock=clock, sleep_until=clock.sleep_until)


async def test_watchdog_loop_pings_every_half_period(
    path_receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    clock = FakeClock(sleeps=8)
    notifier = PingTimes(clock)
    assert notifier.watchdog_interval == pytest.approx(0.1)
    await _run(notifier)
    # The first ping at once, then one per interval: 9 pings over 8 sleeps, each one sent.
    assert clock.since_start(notifier.times) == [round(0.1 * k, 6) for k in range(9)]
    assert path_receiver.pending() == ["WATCHDOG=1"] * 9


async def test_watchdog_loop_does_not_drift_when_woken_late(
    path_receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    # Every wake-up 30 ms late (less than an interval): the deadlines stay on the grid.
    clock = FakeClock(sleeps=5, lag=dict.fromkeys(range(1, 6), 0.03))
    notifier = PingTimes(clock)
    await _run(notifier)
    assert clock.since_start(clock.deadlines) == [round(0.1 * k, 6) for k in range(1, 7)]
    assert clock.since_start(notifier.times) == [0.0, 0.13, 0.23, 0.33, 0.43, 0.53]


async def test_watchdog_loop_restarts_its_schedule_after_a_stall(
    path_receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    # The second sleep ends 0.45 s late (the loop was blocked): one ping then, not a burst for
    # the four missed ones, and the schedule goes on from there.
    clock = FakeClock(sleeps=4, lag={2: 0.45})
    notifier = PingTimes(clock)
    await _run(notifier)
    assert clock.since_start(notifier.times) == [0.0, 0.1, 0.65, 0.75, 0.85]
    assert clock.since_start(clock.deadlines) == [0.1, 0.2, 0.75, 0.85, 0.95]
    assert len(path_receiver.pending()) == 5


async def test_watchdog_loop_withholds_pings_while_unhealthy(
    path_receiver: Receiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    clock = FakeClock(sleeps=11)
    notifier = PingTimes(clock)

    def healthy() -> bool:  # sick from 0.3 s to 0.8 s
        return not 0.3 <= round(clock() - clock.start, 6) < 0.8

    with caplog.at_level(logging.WARNING, logger="tracktiond.service.sdnotify"):
        await _run(notifier, healthy)
    assert clock.since_start(notifier.times) == [0.0, 0.1, 0.2, 0.8, 0.9, 1.0, 1.1]
    assert len(path_receiver.pending()) == 7
    messages = [r.getMessage() for r in caplog.records]
    assert sum("withholding" in m for m in messages) == 1
    assert sum("resuming" in m for m in messages) == 1


async def test_watchdog_loop_treats_raising_health_check_as_unhealthy(
    path_receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")

    def broken() -> bool:
        raise RuntimeError("catalog probe crashed")

    clock = FakeClock(sleeps=5)
    notifier = PingTimes(clock)
    await _run(notifier, broken)
    assert notifier.times == []
    assert path_receiver.pending() == []


async def test_blocked_event_loop_stops_pings(
    path_receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the real event loop: while the loop is blocked no ping can go out (the hang systemd
    must be told about), and once it runs again the pings resume."""
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    async with anyio.create_task_group() as tg:
        tg.start_soon(watchdog_loop, Notifier())
        assert await path_receiver.recv_async() == "WATCHDOG=1"
        path_receiver.pending()
        time.sleep(0.4)  # blocks the loop for several intervals
        assert path_receiver.pending() == []
        with anyio.fail_after(5):
            assert await path_receiver.recv_async() == "WATCHDOG=1"
        tg.cancel_scope.cancel()


def test_under_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_env(monkeypatch)
    assert not under_systemd()
    monkeypatch.setenv("INVOCATION_ID", uuid.uuid4().hex)
    assert under_systemd()
    monkeypatch.delenv("INVOCATION_ID")
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    assert under_systemd()
