"""Names as matching sees them: artist and title strings normalised, and their search words.

``normalise`` folds what differs between a tracklist and a tag without making it another song:
case, accents, punctuation, ``&``/``and``, "feat." credits, ``The`` in front of an artist.
``words`` are the normalised words a candidate search looks up (the catalog keeps them per
recording); words that say nothing about which song it is ("the", "mix", "original") are left
out, a version's own words ("remix" credits) stay in the title.
"""

from __future__ import annotations

import re
import unicodedata

_FEAT = re.compile(r"[\(\[]?\b(?:feat|ft|featuring)\b\.?.*$", re.IGNORECASE)
_NON_WORD = re.compile(r"[^\w]+")
_APOSTROPHES = re.compile(r"['’`´]")

STOPWORDS = frozenset(
    {
        "the", "a", "an", "and", "of", "in", "on", "to", "for", "de", "la", "le", "el",
        "mix", "original", "extended", "radio", "edit", "version", "remix", "vs", "feat", "ft",
        "with", "club", "dub", "id",
    }
)  # fmt: skip

MAX_WORD = 64  # the catalog's column width


def fold(text: str) -> str:
    """Case, accents and compatibility forms folded (``É`` → ``e``, ``ﬁ`` → ``fi``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def normalise(text: str, *, artist: bool = False) -> str:
    """The comparable form of an artist (``artist=True``: credits after "feat." and a leading
    "the" dropped) or a title."""
    text = fold(text).replace("&", " and ")
    if artist:
        text = _FEAT.sub("", text)
    text = _APOSTROPHES.sub("", text)
    text = " ".join(_NON_WORD.sub(" ", text).split())
    if artist and text.startswith("the "):
        text = text[4:]
    return text


def words(text: str, *, artist: bool = False) -> set[str]:
    """The search words of a name: normalised, stopwords and one-letter words left out."""
    return {
        w[:MAX_WORD]
        for w in normalise(text, artist=artist).split()
        if w not in STOPWORDS and (len(w) > 1 or w.isdigit())
    }
