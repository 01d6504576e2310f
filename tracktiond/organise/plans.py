"""Planning: what each cataloged file's name would be, and every reason one cannot move.

The planner reads nothing but the catalog's rows and a ``stat`` per file (and the listing of each
source directory once, for sidecars and cover art; a cue sheet's bytes when it names moved
audio). It touches nothing: a dry run is the plan printed, an apply is the plan stored and then
carried out by the journal.

Per audio file, in order: only cataloged files are placed (pending: scan first; failed: the
catalog's reason); the pattern that applies is rendered (a required field without a value skips
the file, naming the field); the target root is ``[organise] library`` or the file's own
library root; the levels are made safe (:mod:`tracktiond.organise.names`); the source must still
be what the catalog recorded (size, mtime, inode); a target equal to the source is "in place",
one inside the source is refused, one that differs only in case is a two-step case rename.
A target that exists on disk, or that another file of this plan already takes (compared after
NFC and case folding, so a plan is safe on case-insensitive disks too), is a collision: the name
gets `` (2)``, `` (3)`` … (``collisions = "number"``) or the file is skipped (``"skip"``), and
either way the step says so. The same number is given to the file's sidecars, whose targets
must be free as well.

After every file: cover art for directories that move as a whole, and cue-sheet rewrites for
sheets whose FILE lines name moved audio (the sheets that move with it, and those that stay).

:func:`make_plan` is the whole of it for a set of paths: the catalog read chunk by chunk, each
chunk planned on a worker thread.
"""

from __future__ import annotations

import contextlib
import gc
import os
import stat as statmod
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import anyio

from tracktiond.catalog.plans import OrganiseSource, StepRow, StepState
from tracktiond.catalog.store import Catalog
from tracktiond.catalog.values import to_int64
from tracktiond.media.formats import is_candidate
from tracktiond.organise import cuefile
from tracktiond.organise.fields import FileFacts
from tracktiond.organise.names import NameRules, UnsafeName, filesystem_rules, name_key, target_path
from tracktiond.organise.patterns import MissingField
from tracktiond.organise.settings import Settings
from tracktiond.organise.sidecars import (
    is_cover,
    list_dir,
    printable,
    sidecars_of,
    stem_of,
)

MAX_NUMBER = 999


@dataclass(slots=True)
class _Moved:
    """An audio file this plan moves (for covers and cue sheets decided at the end)."""

    seq: int
    source: str
    target: str


@dataclass(slots=True)
class Draft:
    """A plan before it is stored: the steps in order and what they add up to."""

    steps: list[StepRow] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, int]:
        keys = ("move", "sidecar", "cover", "cue", "in_place", "skipped", "numbered")
        return {k: self.counts.get(k, 0) for k in keys}


def _names_in(directory: str) -> tuple[set[str], set[str]] | None:
    """The names in ``directory`` (none when it does not exist), and their name_keys; None
    when it cannot be listed (then each name is looked up: a directory may be searchable
    without being readable)."""
    try:
        names = set(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return set(), set()
    except OSError:
        return None
    return names, {name_key(n) for n in names}


class Planner:
    """Builds a :class:`Draft` from catalog rows, one call of :meth:`add` per file."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.draft = Draft()
        self._claimed: set[str] = set()
        self._rules: dict[str, NameRules] = {}
        self._entries: dict[str, list[str]] = {}
        self._stem_index: dict[str, dict[str, list[str]]] = {}
        self._moved_from: dict[str, list[_Moved]] = {}  # source dir -> audio moved out of it
        self._sidecars_from: dict[str, set[str]] = {}  # source dir -> sidecar names moving
        self._moved_by_path: dict[str, _Moved] = {}
        self._sheet_moves: dict[str, StepRow] = {}  # cue sheet source -> its sidecar step
        # target directory -> its names, exact and as name_key; None: ask the disk per name
        self._present: dict[str, tuple[set[str], set[str]] | None] = {}

    # -- helpers -----------------------------------------------------------------------------

    def _next_seq(self) -> int:
        return len(self.draft.steps) + 1

    def _rules_for(self, root: str) -> NameRules:
        rules = self._rules.get(root)
        if rules is None:
            rules = filesystem_rules(
                root,
                portable=self.settings.portable,
                transliterate=self.settings.transliterate,
                max_path_chars=self.settings.max_path_chars,
            )
            self._rules[root] = rules
        return rules

    def _list(self, directory: str) -> list[str]:
        entries = self._entries.get(directory)
        if entries is None:
            entries = self._entries[directory] = list_dir(directory)
        return entries

    def _stems(self, directory: str) -> dict[str, list[str]]:
        stems = self._stem_index.get(directory)
        if stems is None:
            stems = {}
            for entry in self._list(directory):
                stems.setdefault(stem_of(entry), []).append(entry)
            self._stem_index[directory] = stems
        return stems

    def _skip(
        self, path: str, reason: str, kind: str = "audio", file_id: int | None = None
    ) -> None:
        self.draft.steps.append(
            StepRow(
                seq=self._next_seq(),
                kind=kind,
                source=path,
                target="",
                state=StepState.SKIPPED,
                reason=reason,
                file_id=file_id,
            )
        )
        self.draft.counts["skipped"] += 1

    def _exists(self, target: str) -> bool:
        """``os.path.lexists(target)``, answered from one listing per target directory: most
        targets are in directories that do not exist yet, or hold a few names, and a plan
        checks 100,000 of them. A name found only up to case or normalisation is asked of
        the disk, which knows whether it is case-insensitive."""
        directory, name = os.path.split(target)
        if directory not in self._present:
            self._present[directory] = _names_in(directory)
        names = self._present[directory]
        if names is None:
            return os.path.lexists(target)
        if name in names[0]:
            return True
        return name_key(name) in names[1] and os.path.lexists(target)

    def _free(self, target: str, source: str, key: str | None = None) -> bool:
        if (key or name_key(target)) in self._claimed:
            return False
        if not self._exists(target):
            return True
        # On a case-insensitive filesystem the new spelling of a name *is* the source.
        try:
            return os.path.samefile(target, source)
        except OSError:
            return False

    # -- one file ----------------------------------------------------------------------------

    def add_all(self, sources: Iterable[OrganiseSource]) -> None:
        for source in sources:
            self.add(source)

    def add(self, src: OrganiseSource) -> None:
        path = src.path
        if not printable(path):
            self._skip(path, "the name is not valid UTF-8: rename it by hand", file_id=src.file_id)
            return
        if src.state == "pending":
            self._skip(path, "not cataloged yet: run tracktiond scan first", file_id=src.file_id)
            return
        if src.state != "cataloged":
            self._skip(path, f"not cataloged: {src.last_error or src.state}", file_id=src.file_id)
            return
        facts = FileFacts(path, src.format, src.metadata)
        extension = facts.extension
        which, pattern = self.settings.pattern_for(facts)
        try:
            levels = pattern.components(facts)
        except MissingField as exc:
            self._skip(path, f"[organise] {which}: {exc}", file_id=src.file_id)
            return
        root = self.settings.target_root(path)
        if root is None:
            self._skip(
                path,
                "not under any [library] root, and no [organise] library is set",
                file_id=src.file_id,
            )
            return
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self._skip(path, "vanished since it was cataloged", file_id=src.file_id)
            return
        except OSError as exc:
            self._skip(path, f"cannot be read: {exc.strerror}", file_id=src.file_id)
            return
        if statmod.S_ISLNK(st.st_mode):
            self._skip(path, "is a symbolic link: organise what it points to", file_id=src.file_id)
            return
        if (st.st_size, st.st_mtime_ns, to_int64(st.st_ino)) != (
            src.size,
            src.mtime_ns,
            src.inode,
        ):
            self._skip(
                path,
                "changed since it was cataloged: run tracktiond scan first",
                file_id=src.file_id,
            )
            return
        directory, name = os.path.split(path)
        stems = self._stems(directory)
        # Only names sharing the stem can be sidecars: no scan of the whole directory per file.
        nearby = stems.get(stem_of(name), []) + stems.get(name, [])
        sidecars = sidecars_of(name, nearby) if self.settings.sidecars else []
        shared = [
            e
            for e in stems.get(stem_of(name), [])
            if e != name and is_candidate(e)  # another audio file of the same stem
        ]
        if shared:
            # Set.flac and Set.mp3 share Set.cue: it stays, unless named Set.flac.cue.
            stays = [s for s in sidecars if not s.rest.lower().startswith("." + extension)]
            sidecars = [s for s in sidecars if s not in stays]
            for s in stays:
                self._skip(
                    os.path.join(directory, s.name),
                    f"stays: it belongs to several audio files ({', '.join([name, *shared])})",
                    kind="sidecar",
                )
        rules = self._rules_for(root)
        first: str | None = None
        number = 1
        while True:
            try:
                target = target_path(root, levels, extension, rules, number)
            except UnsafeName as exc:
                self._skip(path, str(exc), file_id=src.file_id)
                return
            if target == path:
                self.draft.counts["in_place"] += 1
                return
            if target.startswith(path + "/"):
                self._skip(path, f"the target {target} is inside the source", file_id=src.file_id)
                return
            key = name_key(target)
            side_targets: list[str] = []
            if not sidecars:
                # Most files: one target to check, without building the pairs.
                if self._free(target, path, key):
                    break
                taken = [target]
            else:
                stem = target[: len(target) - len(extension) - 1] if extension else target
                side_targets = [stem + s.rest for s in sidecars]
                pairs = [(target, path)] + [
                    (t, os.path.join(directory, s.name))
                    for t, s in zip(side_targets, sidecars, strict=True)
                ]
                taken = [t for t, source in pairs if not self._free(t, source)]
                if not taken:
                    break
            if first is None:
                first = taken[0]
            if self.settings.collisions == "skip":
                reason = f'collision: {taken[0]} is taken (collisions = "skip")'
                self._skip(path, reason, file_id=src.file_id)
                return
            number += 1
            if number > MAX_NUMBER:
                reason = f"collision: {first} and {MAX_NUMBER} numbered names are taken"
                self._skip(path, reason, file_id=src.file_id)
                return
        note = None
        if first is not None:
            note = f"numbered ({number}): {first} is taken"
            self.draft.counts["numbered"] += 1
        case_only = key == name_key(path)
        seq = self._next_seq()
        self.draft.steps.append(
            StepRow(
                seq=seq,
                kind="audio",
                source=path,
                target=target,
                state=StepState.PLANNED,
                note=note if not case_only else (note or "case-only rename (two steps)"),
                file_id=src.file_id,
                size=st.st_size,
                mtime_ns=st.st_mtime_ns,
                ctime_ns=st.st_ctime_ns,
                inode=st.st_ino,
                device=st.st_dev,
                sha256=src.sha256,
            )
        )
        self._claimed.add(key)
        self.draft.counts["move"] += 1
        moved = _Moved(seq, path, target)
        self._moved_from.setdefault(directory, []).append(moved)
        self._moved_by_path[path] = moved
        for s, side_target in zip(sidecars, side_targets, strict=True):
            side_source = os.path.join(directory, s.name)
            try:
                sst = os.lstat(side_source)
            except OSError:
                continue
            if not statmod.S_ISREG(sst.st_mode) or not printable(s.name):
                self._skip(side_source, "not a regular file with a UTF-8 name", kind="sidecar")
                continue
            step = StepRow(
                seq=self._next_seq(),
                kind="sidecar",
                source=side_source,
                target=side_target,
                state=StepState.PLANNED,
                follows=seq,
                size=sst.st_size,
                mtime_ns=sst.st_mtime_ns,
                ctime_ns=sst.st_ctime_ns,
                inode=sst.st_ino,
                device=sst.st_dev,
            )
            self.draft.steps.append(step)
            self._claimed.add(name_key(side_target))
            self._sidecars_from.setdefault(directory, set()).add(s.name)
            if s.name.lower().endswith(".cue"):
                self._sheet_moves[side_source] = step
            self.draft.counts["sidecar"] += 1

    # -- after every file --------------------------------------------------------------------

    def finish(self) -> Draft:
        for directory in sorted(self._moved_from):
            self._covers(directory)
        for directory in sorted(self._moved_from):
            self._cue_sheets(directory)
        return self.draft

    def _covers(self, directory: str) -> None:
        moved = self._moved_from[directory]
        entries = self._list(directory)
        covers = [e for e in entries if is_cover(e)]
        if not covers:
            return
        leaving = {os.path.basename(m.source) for m in moved} | self._sidecars_from.get(
            directory, set()
        )
        rest = [e for e in entries if e not in leaving and not is_cover(e)]
        target_dirs = {os.path.dirname(m.target) for m in moved}
        reason = None
        if rest:
            shown = ", ".join(rest[:3]) + (" …" if len(rest) > 3 else "")
            reason = f"stays: the directory keeps other files ({shown})"
        elif len(target_dirs) > 1:
            reason = "stays: the directory's audio goes to several directories"
        for cover in covers:
            source = os.path.join(directory, cover)
            if reason is not None:
                self._skip(source, reason, kind="cover")
                continue
            (target_dir,) = target_dirs
            if target_dir == directory:
                continue
            target = os.path.join(target_dir, cover)
            if not self._free(target, source):
                self._skip(source, f"stays: {target} exists", kind="cover")
                continue
            st = os.lstat(source)
            self.draft.steps.append(
                StepRow(
                    seq=self._next_seq(),
                    kind="cover",
                    source=source,
                    target=target,
                    state=StepState.PLANNED,
                    size=st.st_size,
                    mtime_ns=st.st_mtime_ns,
                    ctime_ns=st.st_ctime_ns,
                    inode=st.st_ino,
                    device=st.st_dev,
                    details={"after": [m.seq for m in moved]},
                )
            )
            self._claimed.add(name_key(target))
            self.draft.counts["cover"] += 1

    def _cue_sheets(self, directory: str) -> None:
        for name in self._list(directory):
            if not name.lower().endswith(".cue") or not printable(name):
                continue
            sheet = os.path.join(directory, name)
            try:
                if os.path.getsize(sheet) > cuefile.MAX_CUE_BYTES:
                    continue
                with open(sheet, "rb") as fh:
                    raw = fh.read()
            except OSError:
                continue
            move = self._sheet_moves.get(sheet)
            new_dir = os.path.dirname(move.target) if move is not None else directory
            refs: dict[str, list[object]] = {}
            after = [move.seq] if move is not None else []
            for ref in cuefile.file_references(raw):
                old = cuefile.resolve(ref, directory, self._list)
                audio = self._moved_by_path.get(old)
                new = audio.target if audio is not None else old
                if audio is None and move is None:
                    continue
                if cuefile.relative_reference(new, new_dir) == ref:
                    continue
                refs[ref] = [old, new, audio.seq if audio is not None else None]
                if audio is not None:
                    after.append(audio.seq)
            if not refs:
                continue
            final = move.target if move is not None else sheet
            trial = {ref: cuefile.relative_reference(str(v[1]), new_dir) for ref, v in refs.items()}
            try:
                cuefile.rewrite(raw, trial)
            except cuefile.CueError as exc:
                self._skip(sheet, f"FILE lines not rewritten: {exc}", kind="cue")
                continue
            self.draft.steps.append(
                StepRow(
                    seq=self._next_seq(),
                    kind="cue",
                    source=final,
                    target=final,
                    state=StepState.PLANNED,
                    note=f"FILE lines: {', '.join(trial.values())}",
                    details={"sheet": sheet, "refs": refs, "after": after},
                )
            )
            self.draft.counts["cue"] += 1


async def make_plan(catalog: Catalog, settings: Settings, targets: Sequence[str]) -> Draft:
    """The plan for the cataloged files under ``targets``, the catalog read chunk by chunk and
    each chunk planned on a worker thread (it stats every file; the event loop stays free).

    Reading the next chunk while the planner works on this one was tried and measured: it
    cost more CPU (the two threads contend for the GIL) and saved no time on two cores."""
    planner = Planner(settings)
    with _collector_paused():
        async for chunk in catalog.organise_sources(targets):
            await anyio.to_thread.run_sync(planner.add_all, chunk)
        return await anyio.to_thread.run_sync(planner.finish)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a plan is made.

    A plan keeps a few objects per file alive until it is stored (hundreds of thousands for a
    big library), and every collection the allocations trigger walks all of them again: about
    1.3 s of a 100,000-file plan. Nothing the planner makes is cyclic garbage; reference
    counting still frees everything else meanwhile, and the collector runs as before after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
