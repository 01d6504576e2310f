"""A symbolic link to a file the walk reaches anyway is an alias, not a copy.

It used to be cataloged as a second location of the same recording, so every such link showed
up in `tracktiond duplicates`. A link to a file outside the scanned tree is still followed and
cataloged (that is what following links is for); a real copy is still a duplicate.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support import audiogen
from tracktiond.catalog import Catalog
from tracktiond.pipeline.scan import Scanner

pytestmark = pytest.mark.anyio


async def test_a_link_inside_the_tree_is_no_duplicate_and_one_outside_is_followed(
    catalog: Catalog, library: Path, tmp_path: Path
) -> None:
    real = audiogen.make_audio(library / "Album" / "track.flac", seconds=0.2, seed=1)
    (library / "Favourites").mkdir()
    (library / "Favourites" / "track.flac").symlink_to(real)
    outside = audiogen.make_audio(tmp_path / "elsewhere" / "other.flac", seconds=0.2, seed=2)
    (library / "other.flac").symlink_to(outside)
    shutil.copyfile(real, library / "copy.flac")
    summary = await Scanner(catalog, concurrency=2).scan([str(library)])
    counts = {k: v for k, v in summary.counts.items() if v and k != "queued"}
    assert counts == {"new": 2, "duplicate": 1}, counts
    assert summary.files_seen == 3
    [group] = await catalog.duplicates()
    assert sorted(group.paths) == sorted([str(real), str(library / "copy.flac")])


async def test_files_the_walk_cannot_read_are_counted_as_seen(
    catalog: Catalog, library: Path
) -> None:
    audiogen.make_audio(library / "fine.flac", seconds=0.2, seed=3)
    (library / "dangling.flac").symlink_to(library / "nowhere.flac")
    summary = await Scanner(catalog, concurrency=2).scan([str(library)])
    assert summary.files_seen == 2, summary.as_dict()
    assert summary.counts["new"] == 1
