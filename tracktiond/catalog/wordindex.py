"""The search words of each recording (``recording_words``), kept in line with its tags.

Tracklist matching looks candidates up by word instead of reading the artist and title of every
recording: a 30-entry tracklist against 100,000 recordings reads a few hundred rows, not
200,000. The words are ``media.names.words`` of the ``artist`` and ``title`` tags; they are
rewritten in the transaction that rewrites the tags (``upkeep``, ``batch``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import String, delete, func, insert, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncConnection

from tracktiond.catalog.base import IN_CHUNK, _chunks
from tracktiond.catalog.models import recording_words
from tracktiond.media.names import words


def word_rows(rec_id: uuid.UUID, tags: Mapping[str, str]) -> list[dict[str, Any]]:
    found = words(tags.get("artist", ""), artist=True) | words(tags.get("title", ""))
    return [{"word": w, "recording_id": rec_id} for w in sorted(found)]


async def replace_words(
    conn: AsyncConnection, rec_id: uuid.UUID, tags: Mapping[str, str], *, fresh: bool = False
) -> None:
    """Rewrite one recording's words (``fresh``: it has none yet, skip the delete)."""
    if not fresh:
        await conn.execute(delete(recording_words).where(recording_words.c.recording_id == rec_id))
    rows = word_rows(rec_id, tags)
    if rows:
        await conn.execute(insert(recording_words), rows)


async def insert_words(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    for chunk in _chunks(list(rows), 5000):
        await conn.execute(insert(recording_words), chunk)


async def recordings_with_words(
    conn: AsyncConnection, wanted: Iterable[str]
) -> dict[str, list[str]]:
    """For each word, the recordings that have it, as id text: most of them are counted and
    dropped, so none is parsed into a UUID here (that costs more than the query on SQLite)."""
    out: dict[str, list[str]] = {}
    for chunk in _chunks(sorted(set(wanted)), IN_CHUNK):
        rows = await conn.execute(
            select(
                recording_words.c.word, type_coerce(recording_words.c.recording_id, String)
            ).where(recording_words.c.word.in_(chunk))
        )
        for word, rec_id in rows:
            out.setdefault(word, []).append(str(rec_id))
    return out


async def word_frequencies(conn: AsyncConnection, wanted: Iterable[str]) -> dict[str, int]:
    """How many recordings have each word (counted in the primary-key index, no row read)."""
    out: dict[str, int] = {}
    for chunk in _chunks(sorted(set(wanted)), IN_CHUNK):
        rows = await conn.execute(
            select(recording_words.c.word, func.count())
            .where(recording_words.c.word.in_(chunk))
            .group_by(recording_words.c.word)
        )
        out.update({w: int(n) for w, n in rows})
    return out
