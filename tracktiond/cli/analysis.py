"""`tracktiond analyze` and `tracktiond tag`: analysis of single files, and writing its results
into the files' tags.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import anyio
import click

from tracktiond.catalog.store import Catalog, Outcome
from tracktiond.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    config_option,
    handled,
    json_option,
    load_command_config,
)
from tracktiond.cli.progress import ScanProgressBar
from tracktiond.pipeline.reconcile import absolute_path


@click.command("analyze")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@config_option
@json_option
@handled
async def analyze(files: tuple[Path, ...], config_path: Path | None, as_json: bool) -> int:
    """Analyse FILES (tempo, key, loudness, danceability, mood) and print the results.

    The catalog is not touched. Analysis runs in crash-isolated worker processes, as in the
    daemon, with the [analysis] settings of the configuration."""
    from tracktiond.analysis.pool import AnalysisFailed, AnalysisPool
    from tracktiond.pipeline.analyse import settings_from_config

    config = load_command_config(config_path)
    settings = settings_from_config(config.analysis)
    results: list[dict[str, Any]] = []
    failed = 0
    async with AnalysisPool(
        min(len(files), config.analysis.workers or max(1, (os.cpu_count() or 2) // 2)),
        memory_limit_bytes=config.analysis.memory_limit_mb * 1024 * 1024,
        timeout_base=config.analysis.timeout_base,
        timeout_factor=config.analysis.timeout_factor,
    ) as pool:

        async def one(path: Path, slot: int) -> None:
            nonlocal failed
            try:
                result = await pool.analyze(str(path), settings)
                results[slot] = {"path": str(path), "ok": True, **result.to_dict()}
                results[slot]["summary"] = result.to_metadata()
            except AnalysisFailed as exc:
                failed += 1
                results[slot] = {
                    "path": str(path),
                    "ok": False,
                    "failure_class": exc.failure_class.value,
                    "error": exc.reason,
                }
            bar.processed(Outcome.NEW, 0)

        results = [{} for _ in files]
        bar = ScanProgressBar(enabled=not as_json and sys.stderr.isatty())
        with bar:
            bar.queued(len(files))
            async with anyio.create_task_group() as tg:
                for slot, path in enumerate(files):
                    tg.start_soon(one, path, slot)
    if as_json:
        click.echo(json.dumps(results, indent=2))
    else:
        for r in results:
            if not r["ok"]:
                click.echo(f"{r['path']}: cannot analyse: {r['error']}")
                continue
            click.echo(r["path"])
            for key, value in r["summary"].items():
                if len(value) <= 120:
                    click.echo(f"  {key.removeprefix('analysis.')}: {value}")
    return EXIT_FAILURE if failed == len(files) else EXIT_OK


@click.command("tag")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@config_option
@json_option
@click.option(
    "--dry-run", is_flag=True, help="Print what would change, file by file; write nothing."
)
@click.option("--overwrite", is_flag=True, default=None, help="Replace values the files hold.")
@click.option(
    "--uncertain-bpm", is_flag=True, default=None, help="Also write tempi marked uncertain."
)
@handled
async def tag(
    paths: tuple[Path, ...],
    config_path: Path | None,
    as_json: bool,
    dry_run: bool,
    overwrite: bool | None,
    uncertain_bpm: bool | None,
) -> int:
    """Write analysis results (BPM, key, ReplayGain) into the tags of cataloged files.

    Directories are searched for audio files. Files the daemon has not analysed yet are
    skipped with a reason. The catalog is updated after each write."""
    from tracktiond.catalog.store import TagJob
    from tracktiond.pipeline.tagging import (
        options_fingerprint,
        options_from_config,
        values_from_analysis,
        write_and_record,
    )
    from tracktiond.tagwrite import plan_tag_write

    config = load_command_config(config_path)
    options = options_from_config(config.tagging)
    if overwrite:
        options = dataclasses.replace(options, overwrite=True)
    if uncertain_bpm:
        options = dataclasses.replace(options, uncertain_bpm=True)
    targets: list[str] = []
    for p in paths:
        targets += await anyio.to_thread.run_sync(_audio_files_under, absolute_path(str(p)))
    catalog = await Catalog.open(config.database_url)
    reports: list[dict[str, Any]] = []
    try:
        for path in targets:
            found = await catalog.analysis_for_path(path)
            if found is None:
                reports.append({"path": path, "status": "skipped", "reason": NOT_ANALYSED})
                continue
            file_id, analysis, fingerprint = found
            job = TagJob(file_id, path, analysis, f"{fingerprint}:{options_fingerprint(options)}")
            if dry_run:
                values = values_from_analysis(
                    analysis,
                    with_energy=bool(options.energy_field),
                    uncertain_bpm=options.uncertain_bpm,
                )
                result = await anyio.to_thread.run_sync(plan_tag_write, path, values, options)
                status = "would write" if result.changes else "unchanged"
                if result.error or result.skipped_reason:
                    status = "failed" if result.error else "skipped"
            else:
                status, result = await write_and_record(catalog, job, options, None)
            reports.append(
                {
                    "path": path,
                    "status": status,
                    "reason": result.error or result.skipped_reason,
                    "changes": [
                        {"field": c.field, "native": c.native, "old": c.old, "new": c.new}
                        for c in result.changes
                    ],
                    "kept": [{"field": c.field, "value": c.old} for c in result.kept],
                    "summary": result.summary(),
                }
            )
    finally:
        await catalog.close()
    if as_json:
        click.echo(json.dumps(reports, indent=2))
    else:
        for r in reports:
            if "summary" in r:
                click.echo(f"[{r['status']}] {r['summary']}")
            else:
                click.echo(f"[{r['status']}] {r['path']}: {r['reason']}")
    unanalysed = sum(1 for r in reports if r.get("reason") == NOT_ANALYSED)
    if unanalysed:
        where = " ".join(shlex.quote(str(p)) for p in paths)
        click.echo(
            f"tracktiond: {unanalysed} file(s) not analysed yet: run `tracktiond scan --analyze "
            f"{where}` first (or let the daemon analyse them, [analysis] enabled)",
            err=True,
        )
    # Done when every file asked for is written, would be written, or already right.
    done = sum(1 for r in reports if r["status"] in ("written", "would write", "unchanged"))
    return EXIT_FAILURE if reports and not done else EXIT_OK


NOT_ANALYSED = "not analysed yet"


def _audio_files_under(path: str) -> list[str]:
    from tracktiond.media.formats import is_candidate

    if not os.path.isdir(path):
        return [path]
    found: list[str] = []
    for dirpath, _dirs, names in os.walk(path):
        found += [os.path.join(dirpath, n) for n in sorted(names) if is_candidate(n)]
    return found
