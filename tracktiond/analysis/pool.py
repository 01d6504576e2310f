"""A pool of persistent analysis worker processes, used by the daemon and the CLI.

Each job runs in a worker subprocess (:mod:`tracktiond.analysis.worker`) under three guards,
so that one bad file costs one file (DESIGN invariant 4) and its failure is classified here, at
the boundary (invariant 5):

* a timeout of ``timeout_base + timeout_factor * duration``: a hang is the file's fault, the
  worker is killed and replaced -> BAD_INPUT "analysis timed out after N s"; the duration is
  never taken on trust from a header the file's size rules out (:func:`probe_duration`,
  :func:`bounded_duration`);
* a memory limit: the pool polls the worker's resident set (/proc/PID/statm) and kills it above
  ``memory_limit_bytes`` -> BAD_INPUT "analysis exceeded the memory limit (N MB)"; the worker
  also runs under RLIMIT_AS (4x the limit, virtual memory overshoots resident memory) as a
  backstop should polling be too slow;
* crashes: a worker that dies by a signal -> BAD_INPUT "decoder crashed (SIGSEGV)".

A bad-input exception from the engine becomes BAD_INPUT with its reason; any other exception
in the worker becomes BUG "internal error: ..." with the worker's traceback logged. Replaced
workers start lazily, on the next job.

The worker program is ``worker_command`` (default :data:`WORKER_COMMAND`, the real worker): any
program that speaks the worker's protocol and takes ``--address-space-limit BYTES``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from tracktiond.analysis.result import AnalysisResult
from tracktiond.analysis.settings import AnalysisSettings
from tracktiond.errors import FailureClass, FileJobError
from tracktiond.media.integrity import implausible_duration, longest_plausible

log = logging.getLogger(__name__)

MEMORY_POLL_SECONDS = 0.1
START_TIMEOUT = 120.0  # importing essentia takes ~1 s; a loaded machine may take much longer
STOP_GRACE = 2.0
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# Recycle a worker after this many files, or once its peak RSS passes this share of the limit:
# a long-lived process keeps the high-water mark of its heap, and essentia/FFmpeg may leak a
# little; a fresh worker costs ~1 s.
MAX_JOBS_PER_WORKER = 500
RECYCLE_RSS_SHARE = 0.6
ADDRESS_SPACE_FACTOR = 4
MIN_ADDRESS_SPACE = 1024**3
# A worker is one core's work: the pool's size is the parallelism. NumPy's BLAS (OpenBLAS) and
# OpenMP would otherwise start a thread per core in every worker, whose spinning doubled a
# fingerprint worker's CPU time (1-hour set: 26.8 -> 12.8 CPU s with one thread, the same wall).
WORKER_ENVIRONMENT = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
#: The worker program an AnalysisPool starts unless told otherwise; the pool appends
#: ``--address-space-limit BYTES``.
WORKER_COMMAND: tuple[str, ...] = (sys.executable, "-m", "tracktiond.analysis.worker")
# Bytes per second assumed when the duration is unknown and mutagen cannot tell (128 kbit/s):
# errs towards long timeouts for uncompressed files, which is the safe side.
FALLBACK_BYTES_PER_SECOND = 16_000


class AnalysisFailed(FileJobError):
    """Analysing one file failed; ``failure_class`` says how the catalog treats it."""

    def __init__(self, failure_class: FailureClass, reason: str) -> None:
        super().__init__(reason)
        self.failure_class = failure_class


def probe_duration(path: str) -> float | None:
    """A cheap duration estimate without native decoders (mutagen is pure Python).

    A header duration the file's size rules out (a 14 kB file claiming 472 days) is not used:
    the timeout would follow it. The size-based estimate is used instead.
    """
    try:
        size = os.path.getsize(path)
    except OSError:
        return None
    try:
        import mutagen

        audio = mutagen.File(path)
        length = float(audio.info.length) if audio is not None else 0.0
        bitrate = int(getattr(audio.info, "bitrate", 0) or 0) if audio is not None else 0
        if length > 0 and implausible_duration(length, size, bitrate) is None:
            return length
    except Exception:  # mutagen raises all sorts on malformed files; the size is the fallback
        pass
    return size / FALLBACK_BYTES_PER_SECOND


def bounded_duration(path: str, hint: float | None) -> float | None:
    """``hint`` (the catalog's duration, from a header), capped at what the file's size can hold,
    so that no header sets a timeout of days."""
    if hint is None:
        return None
    try:
        return min(hint, longest_plausible(os.path.getsize(path)))
    except OSError:
        return hint


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _resident_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@dataclass(eq=False)  # identity semantics: workers live in a set
class _Worker:
    process: Process
    reader: BufferedByteReceiveStream
    pid: int
    jobs: int = 0
    peak_rss: int = 0
    closed: bool = False

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send((json.dumps(message) + "\n").encode("utf-8"))

    async def receive(self) -> dict[str, Any]:
        line = await self.reader.receive_until(b"\n", MAX_RESPONSE_BYTES)
        message = json.loads(line)
        if not isinstance(message, dict):
            raise ValueError(f"worker sent {type(message).__name__}, not an object")
        return message

    def signal_kill(self) -> None:
        """SIGKILL by pid. Not Popen.kill(): that polls first, and a poll that reaps the exiting
        worker steals its exit status from asyncio's child watcher, which then reports 255
        instead of the signal that killed it (so a SIGSEGV would go unreported)."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    async def kill(self) -> None:
        if self.closed:
            return
        self.closed = True
        with anyio.CancelScope(shield=True):
            self.signal_kill()
            with anyio.move_on_after(STOP_GRACE):
                await self.process.wait()
            await self.process.aclose()

    async def stop(self) -> None:
        """Graceful: end of input makes the worker exit; kill it if it does not."""
        if self.closed:
            return
        with anyio.CancelScope(shield=True):
            if self.process.stdin is not None:
                with contextlib.suppress(anyio.BrokenResourceError, OSError):
                    await self.process.stdin.aclose()
            with anyio.move_on_after(STOP_GRACE):
                await self.process.wait()
            await self.kill()


@dataclass
class _JobState:
    memory_exceeded: bool = False
    max_rss: int = 0


class AnalysisPool:
    """``async with AnalysisPool(2) as pool: result = await pool.analyze(path, settings)``."""

    def __init__(
        self,
        size: int,
        *,
        memory_limit_bytes: int = 1536 * 1024**2,
        timeout_base: float = 60.0,
        timeout_factor: float = 0.25,
        worker_command: Sequence[str] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"analysis pool size must be at least 1, got {size}")
        self.size = size
        self.memory_limit_bytes = memory_limit_bytes
        self.timeout_base = timeout_base
        self.timeout_factor = timeout_factor
        self.worker_command = tuple(WORKER_COMMAND if worker_command is None else worker_command)
        self._limiter = anyio.CapacityLimiter(size)
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()  # idle and busy, so aclose() can stop every one
        self._busy = 0
        self._next_id = 0
        self._closed = False
        self._peak_rss = 0

    async def __aenter__(self) -> AnalysisPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def busy(self) -> int:
        """Jobs being analysed right now (at most ``size``)."""
        return self._busy

    @property
    def peak_rss_bytes(self) -> int:
        """The highest peak resident memory (VmHWM) any worker of this pool has reported."""
        return self._peak_rss

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for metrics and benchmarks)."""
        return sorted(w.pid for w in self._all)

    def timeout_for(self, duration: float | None) -> float:
        return self.timeout_base + self.timeout_factor * max(0.0, duration or 0.0)

    async def aclose(self) -> None:
        self._closed = True
        workers, self._idle = list(self._all), []
        self._all.clear()
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for worker in workers:
                    tg.start_soon(worker.stop)

    async def analyze(
        self, path: str, settings: AnalysisSettings, duration_hint: float | None = None
    ) -> AnalysisResult:
        """Analyse ``path`` in a worker; raises :class:`AnalysisFailed` on any failure."""
        request = {"path": path, "settings": settings.to_dict()}
        result = await self._job(path, request, duration_hint)
        try:
            return AnalysisResult.from_dict(result)
        except (KeyError, TypeError, ValueError) as exc:
            raise AnalysisFailed(
                FailureClass.BUG, f"internal error: malformed worker result: {exc}"
            ) from exc

    async def fingerprint(self, path: str, duration_hint: float | None = None) -> dict[str, Any]:
        """The fingerprint of ``path`` made in a worker (``analysis.fingerprinting``), under the
        same guards as an analysis; raises :class:`AnalysisFailed` on any failure."""
        return await self._job(path, {"task": "fingerprint", "path": path}, duration_hint)

    async def _job(
        self, path: str, request: dict[str, Any], duration_hint: float | None
    ) -> dict[str, Any]:
        if self._closed:
            raise RuntimeError("the analysis pool is closed")
        if duration_hint is None:
            duration_hint = await anyio.to_thread.run_sync(probe_duration, path)
        else:
            duration_hint = await anyio.to_thread.run_sync(bounded_duration, path, duration_hint)
        timeout = self.timeout_for(duration_hint)
        async with self._limiter:
            self._busy += 1
            try:
                return await self._attempt(path, request, timeout)
            finally:
                self._busy -= 1

    async def _attempt(self, path: str, request: dict[str, Any], limit_s: float) -> dict[str, Any]:
        worker = self._idle.pop() if self._idle else await self._spawn()
        reusable = False
        try:
            response = await self._run(worker, request, limit_s)
            reusable = True
        finally:
            if reusable and self._keep(worker):
                self._idle.append(worker)
            else:
                self._all.discard(worker)
                await worker.kill()
        if response.get("ok"):
            result = response.get("result")
            if not isinstance(result, dict):
                raise AnalysisFailed(
                    FailureClass.BUG, "internal error: malformed worker result: not an object"
                )
            return result
        reason = str(response.get("reason") or "analysis failed")
        try:
            failure = FailureClass(response.get("class", "bug"))
        except ValueError:
            failure = FailureClass.BUG
        if failure is FailureClass.BUG:
            log.error(
                "analysis of %s failed: %s\n%s", path, reason, response.get("traceback") or ""
            )
        if response.get("memory"):
            reason = self._memory_reason()
        raise AnalysisFailed(failure, reason)

    def _keep(self, worker: _Worker) -> bool:
        return (
            not self._closed
            and worker.process.returncode is None
            and worker.jobs < MAX_JOBS_PER_WORKER
            and worker.peak_rss < RECYCLE_RSS_SHARE * self.memory_limit_bytes
        )

    def _memory_reason(self) -> str:
        return f"analysis exceeded the memory limit ({self.memory_limit_bytes // 1024**2} MB)"

    async def _spawn(self) -> _Worker:
        address_space = max(MIN_ADDRESS_SPACE, ADDRESS_SPACE_FACTOR * self.memory_limit_bytes)
        command = [*self.worker_command, "--address-space-limit", str(address_space)]
        try:
            process = await anyio.open_process(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=None,
                env={**os.environ, **WORKER_ENVIRONMENT},
            )
        except OSError as exc:
            raise AnalysisFailed(
                FailureClass.BUG, f"internal error: cannot start an analysis worker: {exc}"
            ) from exc
        assert process.stdout is not None
        worker = _Worker(process, BufferedByteReceiveStream(process.stdout), process.pid)
        self._all.add(worker)
        try:
            with anyio.fail_after(START_TIMEOUT):
                hello = await worker.receive()
            if not hello.get("ready"):
                raise ValueError(f"unexpected first message {hello!r}")
        except BaseException as exc:
            self._all.discard(worker)
            await worker.kill()
            if isinstance(exc, Exception):
                if self._closed:
                    # aclose() stopped the worker while it was still starting (a shutdown soon
                    # after work arrived): not the file's fault, nor a bug; try again later.
                    raise AnalysisFailed(
                        FailureClass.TRANSIENT, "analysis interrupted: the analysis pool was closed"
                    ) from exc
                code = process.returncode
                raise AnalysisFailed(
                    FailureClass.BUG,
                    f"internal error: the analysis worker did not start (exit status {code}): "
                    f"{type(exc).__name__}: {exc}",
                ) from exc
            raise
        return worker

    async def _run(
        self, worker: _Worker, request: dict[str, Any], limit_s: float
    ) -> dict[str, Any]:
        self._next_id += 1
        job_id = self._next_id
        worker.jobs += 1
        state = _JobState()
        response: dict[str, Any] | None = None
        failure: BaseException | None = None
        with anyio.move_on_after(limit_s) as deadline:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_memory, worker, state)
                try:
                    await worker.send({"id": job_id, **request})
                    response = await worker.receive()
                except (
                    anyio.EndOfStream,
                    anyio.IncompleteRead,
                    anyio.BrokenResourceError,
                    anyio.ClosedResourceError,
                    ConnectionError,
                ) as exc:
                    failure = exc  # the worker died: find out how below
                except (ValueError, anyio.DelimiterNotFound) as exc:
                    failure = exc
                tg.cancel_scope.cancel()
        if response is not None and response.get("id") == job_id:
            worker.peak_rss = max(worker.peak_rss, int(response.get("peak_rss") or 0))
            self._peak_rss = max(self._peak_rss, worker.peak_rss, state.max_rss)
            return response
        self._peak_rss = max(self._peak_rss, state.max_rss)
        # No valid answer: whatever happened, this worker is finished.
        await worker.kill()
        if self._closed:
            # aclose() stopped the worker under this job: not the file's fault, try again later.
            raise AnalysisFailed(
                FailureClass.TRANSIENT, "analysis interrupted: the analysis pool was closed"
            )
        if state.memory_exceeded:
            raise AnalysisFailed(FailureClass.BAD_INPUT, self._memory_reason())
        if deadline.cancelled_caught:
            raise AnalysisFailed(
                FailureClass.BAD_INPUT, f"analysis timed out after {limit_s:.0f} s"
            )
        code = worker.process.returncode
        if code is not None and code < 0:
            raise AnalysisFailed(FailureClass.BAD_INPUT, f"decoder crashed ({_signal_name(code)})")
        if code is not None:
            raise AnalysisFailed(
                FailureClass.BAD_INPUT, f"analysis worker exited unexpectedly (exit status {code})"
            )
        raise AnalysisFailed(
            FailureClass.BUG, f"internal error: bad answer from the analysis worker: {failure!r}"
        )

    async def _watch_memory(self, worker: _Worker, state: _JobState) -> None:
        while True:
            rss = _resident_bytes(worker.pid)
            state.max_rss = max(state.max_rss, rss)
            if rss > self.memory_limit_bytes:
                state.memory_exceeded = True
                log.warning(
                    "analysis worker %d uses %d MB, above the %d MB limit: killing it",
                    worker.pid,
                    rss // 1024**2,
                    self.memory_limit_bytes // 1024**2,
                )
                worker.signal_kill()
                return
            await anyio.sleep(MEMORY_POLL_SECONDS)
