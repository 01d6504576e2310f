"""`tracktiond organise`: rename and move files by the naming patterns, previewed, undoable.

    tracktiond organise [PATH...] --dry-run [--json]   the plan, changing nothing
    tracktiond organise [PATH...]                      plan, store, apply through the journal
    tracktiond organise undo [PLAN]                    move back what a plan moved (default: last)
    tracktiond organise plans [--json]                 the plans so far

Every command first finishes a plan a crash left halfway (tracktiond.organise.journal). Exit 0
when every file moved or was skipped for a reason given at planning; 1 when a step failed while
it was carried out (the report says which and why) or undo had to keep a file where it is.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from tracktiond.catalog.leases import make_owner_id
from tracktiond.catalog.plans import PlanInfo, PlanState, StepRow, StepState
from tracktiond.catalog.store import Catalog
from tracktiond.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    config_option,
    handled,
    json_option,
    load_command_config,
)
from tracktiond.errors import ConfigError, TracktiondError
from tracktiond.organise.journal import Journal, apply_plan, recover, undo_plan
from tracktiond.organise.plans import Draft, make_plan
from tracktiond.organise.settings import Settings, settings_from_config
from tracktiond.pipeline.reconcile import absolute_path

_SHOWN = {
    (StepState.PLANNED, "audio"): "move",
    (StepState.PLANNED, "sidecar"): "sidecar",
    (StepState.PLANNED, "cover"): "cover",
    (StepState.PLANNED, "cue"): "cue",
}


class _DefaultToApply(click.Group):
    """`organise PATH...` means `organise apply PATH...`; `undo` and `plans` are subcommands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["apply", *args]
        return super().parse_args(ctx, args)


@click.group("organise", cls=_DefaultToApply)
def organise() -> None:
    """Rename and move files by the [organise] naming patterns (docs/organise.md)."""


def journal_for(settings: Settings) -> Journal:
    return Journal(protected=frozenset(settings.protected_dirs), batch=settings.journal_batch)


@organise.command("apply", hidden=True)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show the plan; change nothing.")
@config_option
@json_option
@handled
async def apply(
    paths: tuple[Path, ...], dry_run: bool, config_path: Path | None, as_json: bool
) -> int:
    """Organise PATHS (default: the configured roots)."""
    config = load_command_config(config_path)
    settings = settings_from_config(config)
    targets = [absolute_path(str(p)) for p in paths] or list(settings.roots)
    if not targets:
        raise ConfigError(
            f"{config.source or 'built-in defaults'}: [library] roots is empty and no PATH was "
            "given: nothing to organise"
        )
    catalog = await Catalog.open(config.database_url)
    owner = make_owner_id()
    journal = journal_for(settings)
    try:
        if not dry_run:
            for info in await recover(catalog, owner, journal):
                click.echo(f"finished plan {info.id}, interrupted earlier ({info.state})", err=True)
        draft = await make_plan(catalog, settings, targets)
        if dry_run:
            _print_draft(draft, as_json)
            return EXIT_OK
        if not any(s.state == StepState.PLANNED for s in draft.steps):
            _print_draft(draft, as_json, applied=True)
            return EXIT_OK
        summary = {"planned": draft.summary(), "options": settings.options}
        plan_id = await catalog.create_plan("organise", targets, draft.steps, summary, owner)
        info = await apply_plan(catalog, plan_id, owner, journal)
        steps = await catalog.plan_steps(plan_id)
    finally:
        await catalog.close()
    _print_result(info, steps, draft, as_json)
    return EXIT_FAILURE if info.counts.get(StepState.FAILED) else EXIT_OK


@organise.command("undo")
@click.argument("plan", required=False, type=int)
@config_option
@json_option
@handled
async def undo(plan: int | None, config_path: Path | None, as_json: bool) -> int:
    """Move back what PLAN moved (default: the newest applied plan)."""
    config = load_command_config(config_path)
    settings = settings_from_config(config)
    catalog = await Catalog.open(config.database_url)
    owner = make_owner_id()
    journal = journal_for(settings)
    try:
        for info in await recover(catalog, owner, journal):
            click.echo(f"finished plan {info.id}, interrupted earlier ({info.state})", err=True)
        plan_id = plan if plan is not None else await catalog.latest_plan([PlanState.APPLIED])
        if plan_id is None:
            raise TracktiondError("no applied plan to undo")
        before = await catalog.plan_info(plan_id)
        if before is None:
            raise TracktiondError(f"no plan {plan_id}")
        if before.state not in (PlanState.APPLIED, PlanState.UNDOING):
            raise TracktiondError(
                f"plan {plan_id} is {before.state}: only an applied plan is undone"
            )
        info = await undo_plan(catalog, plan_id, owner, journal)
        steps = await catalog.plan_steps(plan_id)
    finally:
        await catalog.close()
    kept = [s for s in steps if s.state == StepState.KEPT]
    if as_json:
        click.echo(json.dumps(_plan_json(info, steps), indent=2))
    else:
        undone = sum(1 for s in steps if s.state == StepState.UNDONE)
        click.echo(f"plan {info.id} undone: {undone} steps reversed, {len(kept)} kept")
        for s in kept:
            click.echo(f"  kept     {s.target}: {s.reason}")
    return EXIT_FAILURE if kept else EXIT_OK


@organise.command("plans")
@config_option
@json_option
@handled
async def plans(config_path: Path | None, as_json: bool) -> int:
    """The plans so far, newest first."""
    config = load_command_config(config_path)
    catalog = await Catalog.open(config.database_url)
    try:
        infos = await catalog.plans()
    finally:
        await catalog.close()
    if as_json:
        click.echo(json.dumps([_info_json(i) for i in infos], indent=2))
        return EXIT_OK
    for i in infos:
        counts = ", ".join(f"{v} {k}" for k, v in sorted(i.counts.items()))
        click.echo(f"{i.id:>5}  {i.kind:<8} {i.state:<9} {i.created_at:%Y-%m-%d %H:%M}  {counts}")
    return EXIT_OK


# -- output ------------------------------------------------------------------------------------


def _step_json(s: StepRow) -> dict[str, Any]:
    return {
        "seq": s.seq,
        "kind": s.kind,
        "state": s.state,
        "source": s.source,
        "target": s.target or None,
        "reason": s.reason,
        "note": s.note,
    }


def _info_json(info: PlanInfo) -> dict[str, Any]:
    return {
        "plan": info.id,
        "kind": info.kind,
        "state": info.state,
        "paths": info.paths,
        "counts": info.counts,
        "created_at": info.created_at.isoformat(),
        "finished_at": info.finished_at.isoformat() if info.finished_at else None,
        "undone_at": info.undone_at.isoformat() if info.undone_at else None,
    }


def _plan_json(info: PlanInfo, steps: Sequence[StepRow]) -> dict[str, Any]:
    return {**_info_json(info), "dry_run": False, "steps": [_step_json(s) for s in steps]}


def _print_draft(draft: Draft, as_json: bool, *, applied: bool = False) -> None:
    summary = draft.summary()
    if as_json:
        data = {
            "dry_run": not applied,
            "plan": None,
            "counts": summary,
            "steps": [_step_json(s) for s in draft.steps],
        }
        click.echo(json.dumps(data, indent=2))
        return
    verb = "nothing to move" if applied else "would move"
    click.echo(_summary_line(verb, summary))
    for s in draft.steps:
        _print_step(_SHOWN.get((s.state, s.kind), s.state), s)


def _print_result(info: PlanInfo, steps: Sequence[StepRow], draft: Draft, as_json: bool) -> None:
    if as_json:
        data = _plan_json(info, steps)
        data["counts"] = dict(info.counts) | {"in_place": draft.counts.get("in_place", 0)}
        click.echo(json.dumps(data, indent=2))
        return
    by_kind = Counter(s.kind for s in steps if s.state == StepState.DONE)
    failed = [s for s in steps if s.state == StepState.FAILED]
    click.echo(
        f"plan {info.id} {info.state}: {by_kind['audio']} moved, {by_kind['sidecar']} sidecars, "
        f"{by_kind['cover']} covers, {by_kind['cue']} cue sheets rewritten, "
        f"{draft.counts.get('in_place', 0)} in place, "
        f"{sum(1 for s in steps if s.state == StepState.SKIPPED)} skipped, {len(failed)} failed"
        f" (undo: tracktiond organise undo {info.id})"
    )
    for s in steps:
        shown = {"done": "moved", "failed": "FAILED"}.get(s.state, s.state)
        if s.kind == "cue" and s.state == StepState.DONE:
            shown = "rewrote"
        _print_step(shown, s)


def _summary_line(verb: str, summary: dict[str, int]) -> str:
    return (
        f"{verb} {summary['move']} files ({summary['sidecar']} sidecars, {summary['cover']} "
        f"covers, {summary['cue']} cue sheets to rewrite); {summary['in_place']} in place, "
        f"{summary['skipped']} skipped, {summary['numbered']} numbered for a collision"
    )


def _print_step(shown: str, s: StepRow) -> None:
    if s.kind == "cue":
        click.echo(f"  {shown:<8} {s.target}: {s.reason or s.note or ''}")
    elif s.target:
        extra = f"  [{s.reason or s.note}]" if (s.reason or s.note) else ""
        click.echo(f"  {shown:<8} {s.source} -> {s.target}{extra}")
    else:
        click.echo(f"  {shown:<8} {s.source}: {s.reason}")
