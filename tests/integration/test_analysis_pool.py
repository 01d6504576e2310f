"""The analysis pool: every catalog format, broken files, and workers that crash, hang or bloat.

These run real worker subprocesses (essentia imported once per worker) on real files made by
audiogen and signals; the crash/hang/OOM/slow-start cases run the faulty worker of
tests/support/faulty_worker.py (the real worker with the fault injected), picked by the pool's
``worker_command``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from tests.support import faulty_worker, signals
from tests.support.audiogen import FORMATS, make_audio, make_broken
from tracktiond.analysis import AnalysisFailed, AnalysisPool, AnalysisResult, AnalysisSettings
from tracktiond.analysis.pool import STOP_GRACE, probe_duration
from tracktiond.errors import FailureClass

pytestmark = pytest.mark.anyio

SETTINGS = AnalysisSettings()


FAULTY = faulty_worker.command()


@pytest.fixture
async def pool() -> AsyncIterator[AnalysisPool]:
    async with AnalysisPool(2, timeout_base=20.0, worker_command=FAULTY) as p:
        yield p


@pytest.fixture(scope="module")
def drums(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("drums") / "drums.flac"
    return signals.write_audio(path, signals.drum_pattern(124.0, "house", seconds=12.0))


def _hook_file(tmp_path: Path, suffix: str) -> str:
    path = tmp_path / f"victim{suffix}"
    path.write_bytes(b"not looked at: the fault comes first")
    return str(path)


async def test_every_catalog_format_decodes_and_analyses(
    pool: AnalysisPool, tmp_path: Path
) -> None:
    paths = {fmt: make_audio(tmp_path / f"tone.{fmt}", seconds=3.0, freq=330.0) for fmt in FORMATS}
    results: dict[str, AnalysisResult] = {}

    async def one(fmt: str) -> None:
        results[fmt] = await pool.analyze(str(paths[fmt]), SETTINGS)

    async with anyio.create_task_group() as tg:
        for fmt in FORMATS:
            tg.start_soon(one, fmt)
    for fmt, result in results.items():
        assert result.duration > 2.5, fmt
        assert result.channels == 2, fmt
        if fmt == "ape":
            continue  # the shipped .ape sample is silence
        # A 330 Hz sine at half scale: loud, and E is its pitch class.
        assert -12.0 < result.loudness_integrated < -3.0, (fmt, result.loudness_integrated)
        assert result.beatless, fmt
    assert results["opus"].sample_rate == 48000
    assert set(results) == set(FORMATS)


async def test_six_channel_flac_and_opus(pool: AnalysisPool, tmp_path: Path) -> None:
    for ext in ("flac", "opus"):
        path = make_broken(tmp_path / f"surround.{ext}", "multichannel")
        result = await pool.analyze(str(path), SETTINGS)
        assert result.channels == 6
        assert result.duration == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize(
    ("kind", "name", "reason"),
    [
        # Not FFmpeg's "End of file": what the user needs to know.
        ("zero", "empty.flac", "empty file (0 bytes)"),
        ("zero", "empty.mp3", "empty file (0 bytes)"),
        ("garbage", "noise.mp3", "not a decodable audio file"),
        ("garbage", "noise.flac", "no audio could be decoded"),
        ("truncated", "cut.flac", "truncated or corrupt"),
        ("truncated", "cut.mp3", "truncated or corrupt"),
        ("text", "notes.ogg", "not a decodable audio file"),
    ],
)
async def test_broken_files_fail_with_a_reason_and_the_pool_goes_on(
    pool: AnalysisPool, tmp_path: Path, drums: Path, kind: str, name: str, reason: str
) -> None:
    path = make_broken(tmp_path / name, kind)
    with pytest.raises(AnalysisFailed) as caught:
        await pool.analyze(str(path), SETTINGS)
    assert caught.value.failure_class is FailureClass.BAD_INPUT
    assert reason in caught.value.reason
    result = await pool.analyze(str(drums), SETTINGS)
    assert result.bpm == pytest.approx(124.0, rel=0.04)


async def test_missing_file_is_transient(pool: AnalysisPool, tmp_path: Path) -> None:
    with pytest.raises(AnalysisFailed) as caught:
        await pool.analyze(str(tmp_path / "gone.flac"), SETTINGS, duration_hint=1.0)
    assert caught.value.failure_class is FailureClass.TRANSIENT


@pytest.mark.parametrize(
    ("suffix", "name"), [(".crash-test", "SIGSEGV"), (".abort-test", "SIGABRT")]
)
async def test_crashing_worker_is_replaced(
    pool: AnalysisPool, tmp_path: Path, drums: Path, suffix: str, name: str
) -> None:
    with pytest.raises(AnalysisFailed) as caught:
        await pool.analyze(_hook_file(tmp_path, suffix), SETTINGS, duration_hint=1.0)
    assert caught.value.failure_class is FailureClass.BAD_INPUT
    assert caught.value.reason == f"decoder crashed ({name})"
    assert pool.busy == 0
    result = await pool.analyze(str(drums), SETTINGS)
    assert result.bpm == pytest.approx(124.0, rel=0.04)


async def test_hang_times_out_and_the_worker_is_replaced(tmp_path: Path, drums: Path) -> None:
    async with AnalysisPool(1, timeout_base=1.5, timeout_factor=0.0, worker_command=FAULTY) as pool:
        started = time.monotonic()
        with pytest.raises(AnalysisFailed) as caught:
            await pool.analyze(_hook_file(tmp_path, ".hang-test"), SETTINGS, duration_hint=1.0)
        assert time.monotonic() - started < 10.0
        assert caught.value.failure_class is FailureClass.BAD_INPUT
        assert caught.value.reason == "analysis timed out after 2 s"
        pool.timeout_base = 30.0
        result = await pool.analyze(str(drums), SETTINGS)
        assert result.bpm == pytest.approx(124.0, rel=0.04)


async def test_memory_limit_kills_the_worker(tmp_path: Path, drums: Path) -> None:
    limit = 400 * 1024**2
    async with AnalysisPool(
        1, memory_limit_bytes=limit, timeout_base=30.0, worker_command=FAULTY
    ) as pool:
        with pytest.raises(AnalysisFailed) as caught:
            await pool.analyze(_hook_file(tmp_path, ".oom-test"), SETTINGS, duration_hint=1.0)
        assert caught.value.failure_class is FailureClass.BAD_INPUT
        assert caught.value.reason == "analysis exceeded the memory limit (400 MB)"
        result = await pool.analyze(str(drums), SETTINGS)
        assert result.bpm == pytest.approx(124.0, rel=0.04)
        assert pool.peak_rss_bytes > 0


async def test_concurrency_is_bounded_by_size(pool: AnalysisPool, drums: Path) -> None:
    seen: list[int] = []

    async def one() -> None:
        await pool.analyze(str(drums), SETTINGS, duration_hint=12.0)

    async def watch() -> None:
        while True:
            seen.append(pool.busy)
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as outer:
        outer.start_soon(watch)
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(one)
        outer.cancel_scope.cancel()
    assert max(seen) == 2
    assert pool.busy == 0


async def test_the_real_worker_has_no_fault_hooks(tmp_path: Path) -> None:
    async with AnalysisPool(1) as pool:
        with pytest.raises(AnalysisFailed) as caught:
            await pool.analyze(_hook_file(tmp_path, ".crash-test"), SETTINGS, duration_hint=1.0)
    # The file is simply not audio: the worker survived to say so.
    assert caught.value.failure_class is FailureClass.BAD_INPUT
    assert "crashed" not in caught.value.reason


async def test_a_worker_computes_on_one_thread_whatever_the_daemon_was_given(
    drums: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pool's size is the parallelism: a worker whose BLAS started a thread per core would
    # compete with the other workers (and its spinning threads doubled its CPU time).
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "8")
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    async with AnalysisPool(1) as pool:
        made = await pool.fingerprint(str(drums))
        (pid,) = pool.worker_pids
        environ = dict(
            item.split("=", 1)
            for item in Path(f"/proc/{pid}/environ").read_text().split("\0")
            if "=" in item
        )
    assert int(made["frames"]) > 0
    assert environ["OPENBLAS_NUM_THREADS"] == environ["OMP_NUM_THREADS"] == "1"
    assert environ["MKL_NUM_THREADS"] == "1"


async def test_aclose_stops_every_worker(drums: Path) -> None:
    pool = AnalysisPool(2)
    await pool.analyze(str(drums), SETTINGS)
    pids = [w.pid for w in pool._all]
    assert pids
    await pool.aclose()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(RuntimeError):
        await pool.analyze(str(drums), SETTINGS)


def test_probe_duration(tmp_path: Path) -> None:
    path = make_audio(tmp_path / "a.flac", seconds=2.0)
    assert probe_duration(str(path)) == pytest.approx(2.0, abs=0.01)
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"\0" * 32_000)
    assert probe_duration(str(junk)) == pytest.approx(2.0)  # size-based fallback
    assert probe_duration(str(tmp_path / "missing.mp3")) is None


def test_signal_names() -> None:
    from tracktiond.analysis.pool import _signal_name

    assert _signal_name(-signal.SIGSEGV) == "SIGSEGV"
    assert _signal_name(-200) == "signal 200"


async def test_tensorflow_mood_path_reports_what_is_missing(
    pool: AnalysisPool, tmp_path: Path, drums: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    result = await pool.analyze(str(drums), AnalysisSettings(models_dir=str(models)))
    assert result.mood_source == "descriptors"  # the estimate still comes, from descriptors
    assert result.mood_error is not None and "no TensorFlow mood models in" in result.mood_error
    assert result.to_metadata()["analysis.mood_error"] == result.mood_error
    (models / "mood_happy-msd-musicnn-1.pb").write_bytes(b"not a real graph")
    result = await pool.analyze(str(drums), AnalysisSettings(models_dir=str(models)))
    # This essentia build (the PyPI wheel) has no TensorFlow: that is what the message says.
    assert result.mood_error is not None
    assert "TensorFlow support" in result.mood_error or "cannot load" in result.mood_error
    missing = await pool.analyze(str(drums), AnalysisSettings(models_dir=str(tmp_path / "nope")))
    assert missing.mood_error is not None and "is not a directory" in missing.mood_error


async def _close_pool_during_a_job(
    tmp_path: Path, *, once_ready: bool, start_delay: float = 0.0
) -> list[AnalysisFailed]:
    """Start a job that never finishes, close the pool under it; the job's failures."""
    command = faulty_worker.command(start_delay=start_delay)
    pool = AnalysisPool(1, timeout_base=60.0, worker_command=command)
    failures: list[AnalysisFailed] = []

    async def job() -> None:
        try:
            await pool.analyze(_hook_file(tmp_path, ".hang-test"), SETTINGS, duration_hint=1.0)
        except AnalysisFailed as exc:
            failures.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(job)
        while not pool.worker_pids or (once_ready and not pool.busy):
            await anyio.sleep(0.005)
        if once_ready:
            await anyio.sleep(0.5)
        await pool.aclose()
    return failures


async def test_closing_the_pool_mid_job_is_not_the_files_fault(tmp_path: Path) -> None:
    failures = await _close_pool_during_a_job(tmp_path, once_ready=True)
    assert [f.failure_class for f in failures] == [FailureClass.TRANSIENT]
    assert "pool was closed" in failures[0].reason


async def test_closing_the_pool_while_its_worker_starts_is_not_the_files_fault(
    tmp_path: Path,
) -> None:
    """A shutdown right after work arrived stops a worker that is still starting; it is killed
    before it is ready (its start takes longer than the pool's stop grace)."""
    failures = await _close_pool_during_a_job(
        tmp_path, once_ready=False, start_delay=STOP_GRACE + 30
    )
    assert [f.failure_class for f in failures] == [FailureClass.TRANSIENT]
    assert "pool was closed" in failures[0].reason
