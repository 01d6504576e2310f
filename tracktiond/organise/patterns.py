"""The naming-pattern language: a small whitelisted grammar, parsed once, rendered per file.

Patterns are user input, so nothing in them is ever evaluated: no ``str.format``, no template
engine, no attribute access. A pattern is parsed into a tree of four node kinds and rendered by
walking it::

    "{albumartist|artist}/{album}/[{disc}-]{track:02} {artist} - {title}"

- text is copied; ``/`` separates directory levels (the last level names the file, and its
  extension is added by the planner);
- ``{name}`` is a field of :data:`tracktiond.organise.fields.FIELDS`; ``{a|b|"Unknown"}`` takes
  the first alternative that has a value (a quoted alternative is literal text);
- after the alternatives, ``:`` modifiers apply to the chosen value, left to right: ``:02`` pads
  a number with zeros to two digits, ``:40`` keeps the first 40 characters, ``:upper``,
  ``:lower``, ``:initial`` (the first letter or digit, upper case);
- ``[ ... ]`` is an optional segment, left out entirely when any field inside it has no value
  (segments nest);
- ``{{``, ``}}``, ``[[`` and ``]]`` are literal braces and brackets.

A field outside any optional segment that has no value (and no alternative that has one) makes
the file unplaceable: :class:`MissingField` names it, and the planner skips that file with the
reason. Syntax errors and unknown fields or modifiers raise :class:`PatternError` (a
``ConfigError``) naming the column.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from tracktiond.errors import ConfigError
from tracktiond.organise.fields import FIELDS, FileFacts, value

_NAMED_MODIFIERS = ("upper", "lower", "initial")


class PatternError(ConfigError):
    """A pattern that cannot be compiled: the message names where it came from and the column."""

    def __init__(self, where: str, pattern: str, column: int, message: str) -> None:
        self.where = where
        self.pattern = pattern
        self.column = column
        pointer = " " * (column - 1) + "^"
        super().__init__(f"{where}: {message} at column {column}\n    {pattern}\n    {pointer}")


class MissingField(Exception):
    """A required field has no value for this file (not a config error: a per-file skip)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        shown = "|".join(names)
        super().__init__(f"{{{shown}}} has no value")


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Separator:
    """A ``/`` of the pattern: the start of the next directory level."""


@dataclass(frozen=True, slots=True)
class Field:
    alternatives: tuple[str | Text, ...]  # field names, or quoted literals
    modifiers: tuple[str, ...]
    column: int

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a for a in self.alternatives if isinstance(a, str))


@dataclass(frozen=True, slots=True)
class OptionalSegment:
    body: tuple[Node, ...]


Node = Text | Separator | Field | OptionalSegment


@dataclass(frozen=True, slots=True)
class Pattern:
    """A compiled pattern: render it with :meth:`components`."""

    source: str
    nodes: tuple[Node, ...]

    @property
    def fields(self) -> frozenset[str]:
        """Every field the pattern names (to know whether it waits for analysis, say)."""
        return frozenset(_fields(self.nodes))

    def components(self, facts: FileFacts) -> list[str]:
        """The path levels for ``facts``, raw (not yet made safe); empty levels are dropped.

        Raises MissingField when a required field has no value."""
        levels: list[list[str]] = [[]]
        _render(self.nodes, facts, levels)
        return ["".join(level) for level in levels if "".join(level)]


def _fields(nodes: tuple[Node, ...]) -> list[str]:
    out: list[str] = []
    for node in nodes:
        if isinstance(node, Field):
            out += node.names
        elif isinstance(node, OptionalSegment):
            out += _fields(node.body)
    return out


class _Absent(Exception):
    """A field inside an optional segment has no value: the segment is left out."""


def _render(nodes: tuple[Node, ...], facts: FileFacts, levels: list[list[str]]) -> None:
    for node in nodes:
        if isinstance(node, Text):
            levels[-1].append(node.text)
        elif isinstance(node, Separator):
            levels.append([])
        elif isinstance(node, Field):
            text = _field_value(node, facts)
            if text is None:
                raise MissingField(node.names)
            levels[-1].append(text)
        else:
            # Render into a scratch copy; keep it only if every field inside had a value.
            scratch: list[list[str]] = [list(level) for level in levels]
            try:
                _render(node.body, facts, scratch)
            except (MissingField, _Absent):
                continue
            levels[:] = scratch


def _field_value(node: Field, facts: FileFacts) -> str | None:
    chosen: str | None = None
    for alternative in node.alternatives:
        chosen = alternative.text if isinstance(alternative, Text) else value(alternative, facts)
        if chosen:
            break
    if not chosen:
        return None
    for modifier in node.modifiers:
        chosen = _apply(modifier, chosen)
    return chosen or None


def _apply(modifier: str, text: str) -> str:
    if modifier == "upper":
        return text.upper()
    if modifier == "lower":
        return text.lower()
    if modifier == "initial":
        first = next((c for c in text if c.isalnum()), "")
        return first.upper()
    if modifier.startswith("0"):
        width = int(modifier)
        return text.zfill(width) if text.isdigit() else text
    return text[: int(modifier)]


# -- parsing -----------------------------------------------------------------------------------


class _Parser:
    def __init__(self, pattern: str, where: str) -> None:
        self.s = pattern
        self.where = where
        self.i = 0

    def error(self, column: int, message: str) -> PatternError:
        return PatternError(self.where, self.s, column, message)

    def parse(self) -> tuple[Node, ...]:
        nodes = self.sequence(closing=None)
        if not nodes:
            raise self.error(1, "the pattern is empty")
        if isinstance(nodes[0], Separator):
            raise self.error(1, "a pattern is relative to the library: it cannot start with /")
        if isinstance(nodes[-1], Separator):
            raise self.error(len(self.s), "the last level names the file: it cannot end with /")
        return nodes

    def sequence(self, closing: str | None) -> tuple[Node, ...]:
        nodes: list[Node] = []
        text: list[str] = []

        def flush() -> None:
            if text:
                nodes.append(Text("".join(text)))
                text.clear()

        s = self.s
        while self.i < len(s):
            c = s[self.i]
            pair = s[self.i : self.i + 2]
            if pair in ("{{", "}}", "[[", "]]"):
                text.append(c)
                self.i += 2
            elif c == "{":
                flush()
                nodes.append(self.field())
            elif c == "[":
                flush()
                start = self.i + 1
                self.i += 1
                body = self.sequence(closing="]")
                if not any(isinstance(n, Field | OptionalSegment) for n in _walk(body)):
                    raise self.error(start, "an optional segment [...] needs a {field} inside")
                nodes.append(OptionalSegment(body))
            elif c == "]":
                if closing != "]":
                    raise self.error(self.i + 1, "unmatched ] (write ]] for a literal bracket)")
                flush()
                self.i += 1
                return tuple(nodes)
            elif c == "}":
                raise self.error(self.i + 1, "unmatched } (write }} for a literal brace)")
            elif c == "/":
                flush()
                if nodes and isinstance(nodes[-1], Separator):
                    raise self.error(self.i + 1, "empty directory level (//)")
                nodes.append(Separator())
                self.i += 1
            elif c == "\\":
                raise self.error(self.i + 1, "backslash is not allowed (levels are separated by /)")
            elif c == "\0" or ord(c) < 32:
                raise self.error(self.i + 1, "control character in the pattern")
            else:
                text.append(c)
                self.i += 1
        if closing is not None:
            raise self.error(len(s), "unclosed optional segment [ (missing ])")
        flush()
        return tuple(nodes)

    def field(self) -> Field:
        s = self.s
        open_column = self.i + 1
        end = s.find("}", self.i)
        if end < 0:
            raise self.error(open_column, "unclosed { (missing })")
        self.i += 1
        alternatives: list[str | Text] = []
        modifiers: list[str] = []
        # alternatives: name | "literal", separated by |
        while True:
            column = self.i + 1
            if self.i < len(s) and s[self.i] == '"':
                close = s.find('"', self.i + 1)
                if close < 0 or close > end:
                    raise self.error(column, 'unclosed quoted text (missing ")')
                alternatives.append(Text(s[self.i + 1 : close]))
                self.i = close + 1
            else:
                j = self.i
                while j < end and s[j] not in "|:":
                    j += 1
                name = s[self.i : j].strip()
                if not name:
                    raise self.error(column, "empty field name")
                if name not in FIELDS:
                    hint = difflib.get_close_matches(name, FIELDS, n=1)
                    also = f" (did you mean {{{hint[0]}}}?)" if hint else ""
                    raise self.error(
                        column,
                        f"unknown field {{{name}}}{also}; known fields: {', '.join(FIELDS)}",
                    )
                alternatives.append(name)
                self.i = j
            if self.i < end and s[self.i] == "|":
                self.i += 1
                continue
            break
        while self.i < end and s[self.i] == ":":
            column = self.i + 2
            j = self.i + 1
            while j < end and s[j] != ":":
                j += 1
            modifier = s[self.i + 1 : j].strip()
            if not (modifier in _NAMED_MODIFIERS or (modifier.isdigit() and int(modifier) > 0)):
                raise self.error(
                    column,
                    f"unknown modifier :{modifier} (expected :0N to pad, :N to truncate, "
                    f"or :{', :'.join(_NAMED_MODIFIERS)})",
                )
            modifiers.append(modifier)
            self.i = j
        if self.i != end:
            raise self.error(self.i + 1, "unexpected text in a field (expected |, : or })")
        if all(isinstance(a, Text) for a in alternatives):
            raise self.error(open_column, "a field needs at least one field name")
        self.i = end + 1
        return Field(tuple(alternatives), tuple(modifiers), open_column)


def _walk(nodes: tuple[Node, ...]) -> list[Node]:
    out: list[Node] = []
    for node in nodes:
        out.append(node)
        if isinstance(node, OptionalSegment):
            out += _walk(node.body)
    return out


def compile_pattern(pattern: str, where: str = "pattern") -> Pattern:
    """Parse ``pattern``; ``where`` names it in errors (e.g. "config.toml: [organise] pattern")."""
    if not isinstance(pattern, str):
        raise PatternError(where, str(pattern), 1, "expected a string")
    return Pattern(pattern, _Parser(pattern, where).parse())
