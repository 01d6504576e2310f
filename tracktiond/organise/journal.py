"""Applying and undoing a stored plan through its journal, and settling one a crash interrupted.

A plan is carried out a batch of steps at a time (``[organise] journal_batch``)::

    steps planned ──> [commit: state = moving]  ──> the moves, fsync of the directories
                  ──> [commit: state = done | failed | skipped, and the catalog rows moved]

so at every instant each step is either untouched (``planned``), finished (``done``, with the
catalog already pointing at the new place), or ``moving`` — and only a ``moving`` step can have
been caught halfway by a kill -9 or a power cut. :func:`settle` decides those from the disk:
source there and target not: not done; target there and source not: done; both (a hard link
made but not yet unlinked, or a verified cross-filesystem copy renamed into place before the
source was unlinked): finished by unlinking the source once the target is proven to be the same
file or the same bytes; a leftover temporary copy is deleted (the source it was copied from is
intact). A plan whose owner died is taken over and *finished* at the next start of the daemon or
of any ``tracktiond organise`` command: the steps after the interrupted ones run as planned,
each checked again against the disk first.

Before each step the source must still be what the plan saw — size, mtime, ctime, inode and
device; ctime changes with every write, even one that restores the mtime — and a copy across
filesystems is compared with the catalog's SHA-256 as it is read. A step that fails (the source
changed or vanished, the target appeared, a read-only or full disk) is recorded with the reason;
the rest go on. Sidecars and cover art travel only with audio that did move.

Undo runs the done steps backwards through the same journal (``undoing`` → ``undone``), moving
each file back if it is still the file that was moved there (same inode) and its old name is
still free; otherwise the step is ``kept`` with the reason. Cue sheets get their original bytes
back if they still hold what the rewrite wrote.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio

from tracktiond.catalog.plans import PlanInfo, PlanState, StepOutcome, StepRow, StepState
from tracktiond.catalog.store import Catalog
from tracktiond.catalog.values import to_int64
from tracktiond.errors import TracktiondError
from tracktiond.organise import cuefile
from tracktiond.organise.moves import (
    MoveError,
    Stat,
    TargetExists,
    entry_named,
    fsync_dir,
    make_dirs,
    move_file,
    remove_empty_dirs,
    rename_noreplace,
    rewrite_in_place,
    sha256_of,
)
from tracktiond.organise.names import name_key

TEMP_PREFIX = ".tracktiond-organise-"


class PlanBusy(TracktiondError):
    """Another process is applying or undoing this plan."""


@dataclass(frozen=True, slots=True)
class Journal:
    """How plans are carried out here: the directories never removed, the batch size."""

    protected: frozenset[str]
    batch: int = 200


def temporary(step: StepRow, plan_id: int, directory: str, what: str) -> str:
    """The fixed temporary name of a step's copy (``part``) or case rename (``case``): hidden,
    so no scan catalogs it, and found again after a crash."""
    return os.path.join(directory, f"{TEMP_PREFIX}{plan_id}-{step.seq}.{what}")


def _case_only(a: str, b: str) -> bool:
    return a != b and name_key(a) == name_key(b)


def _stat_tuple(st: Stat) -> tuple[int, int, int, int, int]:
    return (st.size, st.mtime_ns, st.ctime_ns, st.inode, st.device)


def _reason(exc: OSError) -> str:
    names = {
        errno.ENOSPC: "no space left on the device",
        errno.EROFS: "the target is on a read-only filesystem",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.ENAMETOOLONG: "the name is too long for the filesystem",
        errno.EDQUOT: "disk quota exceeded",
    }
    what = names.get(exc.errno or 0, exc.strerror or str(exc))
    return f"{what} ({exc.filename})" if exc.filename else what


# -- one step, on the disk (blocking) ----------------------------------------------------------


def _unchanged(step: StepRow) -> str | None:
    """Why the source is not what the plan saw, or None when it is."""
    try:
        st = Stat.of(step.source)
    except FileNotFoundError:
        return f"{step.source} vanished after the plan was made"
    now = (st.size, st.mtime_ns, st.ctime_ns, to_int64(st.inode), to_int64(st.device))
    planned = (step.size, step.mtime_ns, step.ctime_ns, step.inode, step.device)
    if now != planned:
        return f"{step.source} changed after the plan was made (size, times or inode differ)"
    return None


def move_step(step: StepRow, plan_id: int, stop: str) -> StepOutcome:
    """Carry out one move step (audio, sidecar or cover)."""
    changed = _unchanged(step)
    if changed is not None:
        return StepOutcome(step, StepState.FAILED, changed)
    case_only = _case_only(step.source, step.target)
    target_dir = os.path.dirname(step.target)
    try:
        created = make_dirs(target_dir, stop)
    except MoveError as exc:
        return StepOutcome(step, StepState.FAILED, exc.reason)
    except OSError as exc:
        return StepOutcome(step, StepState.FAILED, _reason(exc))
    try:
        method = move_file(
            step.source,
            step.target,
            temporary=temporary(step, plan_id, target_dir, "case" if case_only else "part"),
            case_only=case_only,
            expected_sha256=step.sha256,
        )
    except TargetExists:
        return StepOutcome(
            step,
            StepState.FAILED,
            f"{step.target} exists now (it appeared after the plan)",
            created_dirs=created,
        )
    except MoveError as exc:
        return StepOutcome(step, StepState.FAILED, exc.reason, created_dirs=created)
    except OSError as exc:
        return StepOutcome(step, StepState.FAILED, _reason(exc), created_dirs=created)
    return StepOutcome(
        step,
        StepState.DONE,
        method=method,
        stat=_stat_tuple(Stat.of(step.target)),
        created_dirs=created,
    )


def settle_move(step: StepRow, plan_id: int, source: str, target: str) -> tuple[bool, str | None]:
    """Whether an interrupted move ``source`` -> ``target`` happened (finishing it where only the
    unlink of a proven copy was missing); the reason when it can be neither."""
    target_dir = os.path.dirname(target)
    part = temporary(step, plan_id, target_dir, "part")
    case_tmp = temporary(step, plan_id, target_dir, "case")
    if os.path.lexists(part):
        os.unlink(part)  # a copy never renamed into place: its source is intact
    if _case_only(source, target):
        if os.path.lexists(case_tmp):
            # Caught between the two renames: the file is under the temporary name.
            try:
                rename_noreplace(case_tmp, target)
            except TargetExists:
                rename_noreplace(case_tmp, source)
                return False, f"{target} appeared while the case was changed: left at {source}"
            return True, None
        return entry_named(target) and not entry_named(source), None
    src, dst = os.path.lexists(source), os.path.lexists(target)
    if src and not dst:
        return False, None
    if dst and not src:
        return True, None
    if not src and not dst:
        return False, f"neither {source} nor {target} exists"
    if os.path.samefile(source, target):  # linked, not yet unlinked
        os.unlink(source)
        fsync_dir(os.path.dirname(source))
        return True, None
    # A cross-filesystem copy is renamed into place only once verified; prove it again.
    if os.path.getsize(source) == os.path.getsize(target) and sha256_of(source) == sha256_of(
        target
    ):
        os.unlink(source)
        fsync_dir(os.path.dirname(source))
        return True, None
    return False, f"both {source} and a different {target} exist: both kept"


def _read_sheet(step: StepRow) -> tuple[str, bytes] | None:
    """Where a cue step's sheet is now, and its bytes."""
    details = step.details or {}
    for path in (step.target, str(details.get("sheet", ""))):
        if path and os.path.isfile(path):
            with open(path, "rb") as fh:
                return path, fh.read(cuefile.MAX_CUE_BYTES + 1)
    return None


def _sheet_names(step: StepRow, sheet: str, done: Callable[[int], bool]) -> dict[str, str]:
    refs: dict[str, list[object]] = (step.details or {}).get("refs", {})
    names = {}
    for ref, (old, new, seq) in refs.items():
        chosen = new if seq is None or done(int(seq)) else old  # type: ignore[call-overload]
        name = cuefile.relative_reference(str(chosen), os.path.dirname(sheet))
        if name != ref:
            names[ref] = name
    return names


def cue_step(step: StepRow, plan_id: int, done: Callable[[int], bool]) -> StepOutcome:
    """Rewrite a sheet's FILE lines for where its audio is now."""
    found = _read_sheet(step)
    if found is None:
        return StepOutcome(step, StepState.FAILED, "the cue sheet is gone")
    sheet, raw = found
    if step.original is not None and raw != step.original:
        return StepOutcome(step, StepState.FAILED, f"{sheet} changed after the plan was made")
    names = _sheet_names(step, sheet, done)
    if not names:
        return StepOutcome(step, StepState.DONE, "nothing to change", method="rewrite")
    try:
        new = cuefile.rewrite(raw, names)
        rewrite_in_place(sheet, new)
    except cuefile.CueError as exc:
        return StepOutcome(step, StepState.FAILED, str(exc))
    except OSError as exc:
        return StepOutcome(step, StepState.FAILED, _reason(exc))
    return StepOutcome(
        step, StepState.DONE, method="rewrite", rewritten_sha256=hashlib.sha256(new).hexdigest()
    )


def settle_cue(step: StepRow, plan_id: int, undoing: bool) -> StepOutcome:
    """An interrupted sheet rewrite (or its undo): the journal holds the original bytes, so a
    sheet caught halfway is simply written again."""
    found = _read_sheet(step)
    if found is None or step.original is None:
        return StepOutcome(step, StepState.FAILED, "the cue sheet is gone")
    sheet, raw = found
    names = _sheet_names(step, sheet, lambda _seq: True)
    rewritten = cuefile.rewrite(step.original, names)
    if undoing:
        if raw != step.original:
            rewrite_in_place(sheet, step.original)
        return StepOutcome(step, StepState.UNDONE)
    if raw == step.original:
        return StepOutcome(step, StepState.PLANNED)
    if raw != rewritten:
        rewrite_in_place(sheet, rewritten)
    digest = hashlib.sha256(rewritten).hexdigest()
    return StepOutcome(step, StepState.DONE, method="rewrite", rewritten_sha256=digest)


def undo_step(step: StepRow, plan_id: int) -> StepOutcome:
    """Move one done step's file back (or restore a sheet's bytes)."""
    if step.kind == "cue":
        found = _read_sheet(step)
        if found is None or step.original is None:
            return StepOutcome(step, StepState.KEPT, "the cue sheet is gone")
        sheet, raw = found
        if step.rewritten_sha256 and hashlib.sha256(raw).hexdigest() != step.rewritten_sha256:
            return StepOutcome(step, StepState.KEPT, f"{sheet} changed since the rewrite: kept")
        if step.method == "rewrite" and step.rewritten_sha256:
            try:
                rewrite_in_place(sheet, step.original)
            except OSError as exc:
                return StepOutcome(step, StepState.KEPT, _reason(exc))
        return StepOutcome(step, StepState.UNDONE)
    try:
        st = Stat.of(step.target)
    except FileNotFoundError:
        return StepOutcome(step, StepState.KEPT, f"{step.target} is gone")
    if (to_int64(st.inode), to_int64(st.device)) != (step.moved_inode, step.moved_device):
        return StepOutcome(
            step, StepState.KEPT, f"{step.target} is no longer the file this plan moved there"
        )
    case_only = _case_only(step.target, step.source)
    if not case_only and os.path.lexists(step.source):
        return StepOutcome(step, StepState.KEPT, f"{step.source} is taken now: nothing replaced")
    source_dir = os.path.dirname(step.source)
    try:
        os.makedirs(source_dir, exist_ok=True)
        method = move_file(
            step.target,
            step.source,
            temporary=temporary(step, plan_id, source_dir, "case" if case_only else "part"),
            case_only=case_only,
        )
    except TargetExists:
        return StepOutcome(step, StepState.KEPT, f"{step.source} is taken now: nothing replaced")
    except MoveError as exc:
        return StepOutcome(step, StepState.KEPT, exc.reason)
    except OSError as exc:
        return StepOutcome(step, StepState.KEPT, _reason(exc))
    for directory in reversed(step.created_dirs or []):
        try:
            os.rmdir(directory)  # only ever an empty one
        except OSError:
            break
    return StepOutcome(
        step, StepState.UNDONE, method=method, stat=_stat_tuple(Stat.of(step.source))
    )


# -- batches -----------------------------------------------------------------------------------


def _apply_batch(
    steps: Sequence[StepRow],
    plan_id: int,
    states: dict[int, str],
    journal: Journal,
    stop: Callable[[str], str],
) -> list[StepOutcome]:
    outcomes: list[StepOutcome] = []
    touched: set[str] = set()

    def done(seq: int) -> bool:
        return states.get(seq) == StepState.DONE

    for step in steps:
        waits = [step.follows] if step.follows else []
        waits += [int(s) for s in (step.details or {}).get("after", []) if step.kind == "cover"]
        if step.kind in ("sidecar", "cover") and not all(done(s) for s in waits if s):
            outcome = StepOutcome(step, StepState.SKIPPED, "stays: its audio did not move")
        elif step.kind == "cue":
            outcome = cue_step(step, plan_id, done)
        else:
            outcome = move_step(step, plan_id, stop(step.target))
        if outcome.state == StepState.DONE and step.kind != "cue":
            touched |= {os.path.dirname(step.source), os.path.dirname(step.target)}
        states[step.seq] = outcome.state
        outcomes.append(outcome)
    for directory in sorted(touched):
        fsync_dir(directory)
    # Source directories this batch emptied go (rmdir: only ever an empty directory).
    last_from: dict[str, StepOutcome] = {}
    for o in outcomes:
        if o.state == StepState.DONE and o.step.kind != "cue":
            last_from[os.path.dirname(o.step.source)] = o
    for directory, o in last_from.items():
        o.removed_dirs = remove_empty_dirs(directory, set(journal.protected))
    return outcomes


async def _states(catalog: Catalog, plan_id: int, steps: Sequence[StepRow]) -> dict[int, str]:
    wanted: set[int] = set()
    for s in steps:
        if s.follows:
            wanted.add(s.follows)
        for key in ("after",):
            wanted |= {int(x) for x in (s.details or {}).get(key, [])}
        for _ref, value in ((s.details or {}).get("refs") or {}).items():
            if value[2] is not None:
                wanted.add(int(value[2]))
    return {
        seq: state
        for seq, (state, _t) in (await catalog.step_states(plan_id, list(wanted))).items()
    }


def _stop_for(journal: Journal) -> Callable[[str], str]:
    def stop(target: str) -> str:
        holding = [p for p in journal.protected if target.startswith(p.rstrip("/") + "/")]
        return max(holding, key=len) if holding else os.path.dirname(target)

    return stop


async def settle(catalog: Catalog, plan_id: int, owner: str, *, undoing: bool) -> int:
    """Decide, from the disk, every step a crash left ``moving`` (or ``undoing``); returns how
    many there were."""
    state = StepState.UNDOING if undoing else StepState.MOVING
    steps = await catalog.plan_steps(plan_id, [state])
    if not steps:
        return 0

    def run() -> list[StepOutcome]:
        out = []
        for step in steps:
            if step.kind == "cue":
                out.append(settle_cue(step, plan_id, undoing))
                continue
            source, target = (step.target, step.source) if undoing else (step.source, step.target)
            try:
                happened, problem = settle_move(step, plan_id, source, target)
            except MoveError as exc:
                happened, problem = False, exc.reason
            except OSError as exc:
                happened, problem = False, _reason(exc)
            if happened:
                new = StepState.UNDONE if undoing else StepState.DONE
                st = Stat.of(target)
                out.append(StepOutcome(step, new, stat=_stat_tuple(st)))
            elif problem is not None:
                out.append(
                    StepOutcome(step, StepState.KEPT if undoing else StepState.FAILED, problem)
                )
            else:
                out.append(StepOutcome(step, StepState.DONE if undoing else StepState.PLANNED))
        return out

    outcomes = await anyio.to_thread.run_sync(run)
    await catalog.finish_steps(plan_id, owner, outcomes)
    return len(outcomes)


async def apply_plan(
    catalog: Catalog,
    plan_id: int,
    owner: str,
    journal: Journal,
    on_batch: Callable[[list[StepOutcome]], None] | None = None,
) -> PlanInfo:
    """Carry out (or finish) a stored plan; returns it as it ended."""
    if not await catalog.take_plan(plan_id, owner, PlanState.APPLYING):
        raise PlanBusy(f"plan {plan_id} is being applied or undone by another process")
    await settle(catalog, plan_id, owner, undoing=False)
    stop = _stop_for(journal)
    last = 0
    while True:
        steps = await catalog.plan_steps(
            plan_id, [StepState.PLANNED], limit=journal.batch, after_seq=last
        )
        if not steps:
            break
        last = steps[-1].seq
        states = await _states(catalog, plan_id, steps)
        for step in steps:
            if step.kind == "cue":  # what the sheet held before: the journal's undo copy
                found = await anyio.to_thread.run_sync(_read_sheet, step)
                step.original = found[1] if found else None
        if not await catalog.begin_steps(plan_id, owner, StepState.MOVING, steps):
            raise PlanBusy(f"plan {plan_id} was taken over by another process")
        outcomes = await anyio.to_thread.run_sync(
            _apply_batch, steps, plan_id, states, journal, stop
        )
        await catalog.finish_steps(plan_id, owner, outcomes)
        if on_batch is not None:
            on_batch(outcomes)
    await catalog.finish_plan(plan_id, owner, PlanState.APPLIED)
    info = await catalog.plan_info(plan_id)
    assert info is not None
    return info


async def undo_plan(
    catalog: Catalog,
    plan_id: int,
    owner: str,
    journal: Journal,
    on_batch: Callable[[list[StepOutcome]], None] | None = None,
) -> PlanInfo:
    """Move everything a plan moved back, newest step first; returns the plan as it ended."""
    if not await catalog.take_plan(plan_id, owner, PlanState.UNDOING):
        raise PlanBusy(f"plan {plan_id} is being applied or undone by another process")
    await settle(catalog, plan_id, owner, undoing=True)
    while True:
        steps = await catalog.plan_steps(
            plan_id, [StepState.DONE], limit=journal.batch, descending=True
        )
        if not steps:
            break
        if not await catalog.begin_steps(plan_id, owner, StepState.UNDOING, steps):
            raise PlanBusy(f"plan {plan_id} was taken over by another process")

        def run(batch: list[StepRow] = steps) -> list[StepOutcome]:
            out = [undo_step(step, plan_id) for step in batch]
            for directory in sorted(
                {
                    os.path.dirname(p)
                    for o in out
                    if o.state == StepState.UNDONE
                    for p in (o.step.source, o.step.target)
                }
            ):
                fsync_dir(directory)
            return out

        outcomes = await anyio.to_thread.run_sync(run)
        await catalog.finish_steps(plan_id, owner, outcomes)
        if on_batch is not None:
            on_batch(outcomes)
    await catalog.finish_plan(plan_id, owner, PlanState.UNDONE)
    await catalog.mark_inbox_undone(plan_id)
    info = await catalog.plan_info(plan_id)
    assert info is not None
    return info


async def recover(catalog: Catalog, owner: str, journal: Journal) -> list[PlanInfo]:
    """Finish every plan whose applier or undoer died (the start of the daemon or a command)."""
    finished = []
    for plan_id in await catalog.abandoned_plans():
        info = await catalog.plan_info(plan_id)
        if info is None:
            continue
        try:
            if info.state == PlanState.UNDOING:
                finished.append(await undo_plan(catalog, plan_id, owner, journal))
            else:
                finished.append(await apply_plan(catalog, plan_id, owner, journal))
        except PlanBusy:
            continue  # another process took it over first
    return finished
