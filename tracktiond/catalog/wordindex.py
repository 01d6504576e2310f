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

from sqlalchemy import delete, insert, select
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
) -> dict[str, list[uuid.UUID]]:
    """For each word, the recordings that have it."""
    out: dict[str, list[uuid.UUID]] = {}
    for chunk in _chunks(sorted(set(wanted)), IN_CHUNK):
        rows = await conn.execute(
            select(recording_words.c.word, recording_words.c.recording_id).where(
                recording_words.c.word.in_(chunk)
            )
        )
        for word, rec_id in rows:
            out.setdefault(word, []).append(rec_id)
    return out
