"""The ``[organise]`` configuration, compiled: patterns parsed (errors name the key and the
column), which pattern applies to which file, and where its target root is."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from tracktiond.config import Config
from tracktiond.errors import ConfigError
from tracktiond.organise.fields import FileFacts
from tracktiond.organise.patterns import Pattern, compile_pattern

# Fields only the analysis gives (a tag may hold some, but the daemon waits for the analysis).
ANALYSIS_FIELDS = frozenset({"bpm", "key", "camelot", "openkey"})


@dataclass(frozen=True, slots=True)
class Settings:
    pattern: Pattern
    set_pattern: Pattern | None
    set_seconds: float
    formats: dict[str, Pattern]
    roots: tuple[str, ...]  # the [library] roots: a file's default target root
    library: str | None  # [organise] library: every file's target root when set
    inboxes: tuple[str, ...]
    collisions: str = "number"
    transliterate: bool = False
    portable: bool = False
    max_path_chars: int = 0
    sidecars: bool = True
    journal_batch: int = 200
    auto: bool = False
    options: dict[str, object] = field(default_factory=dict)  # for the plan's summary

    def pattern_for(self, facts: FileFacts) -> tuple[str, Pattern]:
        """(which pattern, the pattern) for a file: its format's, else the set pattern for a
        long recording, else the pattern."""
        if facts.format in self.formats:
            return f"formats.{facts.format}", self.formats[facts.format]
        duration = facts.duration
        if self.set_pattern is not None and duration is not None and duration >= self.set_seconds:
            return "set_pattern", self.set_pattern
        return "pattern", self.pattern

    @property
    def uses_analysis(self) -> bool:
        patterns = [self.pattern, *self.formats.values()]
        if self.set_pattern is not None:
            patterns.append(self.set_pattern)
        return any(p.fields & ANALYSIS_FIELDS for p in patterns)

    def target_root(self, path: str) -> str | None:
        """Where ``path`` is organised to: [organise] library, else the deepest [library] root
        holding it (an inbox file with no library set stays under its own root)."""
        if self.library is not None:
            return self.library
        holding = [r for r in self.roots if path == r or path.startswith(r.rstrip("/") + "/")]
        return max(holding, key=len) if holding else None

    @property
    def protected_dirs(self) -> set[str]:
        """Directories never removed when emptied: the roots, the inboxes, the library."""
        dirs = set(self.roots) | set(self.inboxes)
        if self.library:
            dirs.add(self.library)
        return dirs


def settings_from_config(config: Config) -> Settings:
    """Compile ``config``'s [organise] section; raises ConfigError (PatternError) naming the key
    and the column of a bad pattern."""
    org = config.organise
    where = f"{config.source or 'built-in defaults'}: [organise]"
    pattern = compile_pattern(org.pattern, f"{where} pattern")
    set_pattern = (
        compile_pattern(org.set_pattern, f"{where} set_pattern") if org.set_pattern else None
    )
    formats = {
        name.lower(): compile_pattern(text, f"{where} formats.{name}")
        for name, text in org.formats.items()
    }
    for name in formats:
        if not name.isalnum():
            raise ConfigError(f"{where} formats: {name!r} is not a format name (flac, mp3, ...)")
    return Settings(
        pattern=pattern,
        set_pattern=set_pattern,
        set_seconds=org.set_seconds,
        formats=formats,
        roots=tuple(os.path.normpath(str(r)) for r in config.library.roots),
        library=os.path.normpath(str(org.library)) if org.library else None,
        inboxes=tuple(os.path.normpath(str(p)) for p in org.inbox),
        collisions=org.collisions,
        transliterate=org.transliterate,
        portable=org.portable,
        max_path_chars=org.max_path_chars,
        sidecars=org.sidecars,
        journal_batch=org.journal_batch,
        auto=org.auto,
        options={
            "pattern": org.pattern,
            "set_pattern": org.set_pattern,
            "formats": dict(org.formats),
            "collisions": org.collisions,
            "transliterate": org.transliterate,
            "portable": org.portable,
        },
    )
