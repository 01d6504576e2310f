"""Writing analysis results (BPM, key, ReplayGain, energy) into audio files: the one place
tracktiond modifies user files, so it is opt-in, conservative and crash-safe (DESIGN invariant 7).

Where each value goes is declared once in media.tags (FIELDS, WRITE_SUPPORT); this package
decides how values are spelled, what differs from what the file holds, and how the file is
replaced safely:

1. plan: read the file (mutagen, read-only) and work out which fields change;
2. copy the file to a hidden temporary name in the same directory, apply the tags to the copy,
   fsync it;
3. verify the copy: it parses, our values read back, every other tag is as before, the audio
   payload is byte-identical and the headers a decoder needs (FLAC STREAMINFO, Ogg codec headers,
   WAV/AIFF chunks, MP4 track tables relative to the audio) are unchanged;
4. give the copy the original's mode, owner, extended attributes and access time, check the
   original was not changed or removed meanwhile, ``os.replace`` it over the original and fsync
   the directory.

Any failure before step 4's rename removes the copy and leaves the original untouched. A crash or
kill -9 at any instant leaves either the old or the new file under the name (the rename is
atomic) and at worst a hidden ``.NAME.tracktiond-XXXXXXXX.tmp`` copy, which the scanner ignores
and :func:`cleanup_stale_temp_files` removes. See docs/tagging.md.

The modules, in the order a write goes through them:

- ``model``: the values and options (refused when invalid), the plan, the result, the failures;
- ``spelling``: how each value is spelled per tag system (keys in the configured notation, with
  tracktiond.media.keys), and when a held value is the same;
- ``plan``: step 1, reads only (``plan_tag_write`` is the dry run);
- ``apply``: mutagen: loading the tags as they are, applying the changes, saving;
- ``audiocheck``: the audio payload and decoder headers that must not change;
- ``verify``: step 3, the checks the copy must pass;
- ``safewrite``: steps 2 to 4 (``write_tags``);
- ``tempfiles``: the temporary copies' names and the cleanup of leftovers.

Only the names below are the API; the rest is private to the package.
"""

from tracktiond.tagwrite.model import FieldChange, TagValues, TagWriteOptions, TagWriteResult
from tracktiond.tagwrite.plan import plan_tag_write
from tracktiond.tagwrite.safewrite import write_tags
from tracktiond.tagwrite.spelling import format_key, parse_key
from tracktiond.tagwrite.tempfiles import cleanup_stale_temp_files, is_temp_name

__all__ = [
    "FieldChange",
    "TagValues",
    "TagWriteOptions",
    "TagWriteResult",
    "cleanup_stale_temp_files",
    "format_key",
    "is_temp_name",
    "parse_key",
    "plan_tag_write",
    "write_tags",
]
