"""Organising the library: renaming and moving files by naming patterns, previewed, journalled,
undoable, with their sidecars, never losing or overwriting a file (docs/organise.md).

Imports ``catalog``, ``media``, ``errors`` and ``config`` only. The modules, in the order data
goes through them:

- ``fields``: the whitelist of fields a pattern may use, each computed from catalog metadata;
- ``patterns``: the pattern language, parsed once (errors name the column), rendered per file;
- ``settings``: the ``[organise]`` configuration compiled: which pattern, which target root;
- ``names``: safe names: NFC, optional transliteration, sanitising, byte limits, validation;
- ``sidecars``: the files that travel with an audio file, and a directory's cover art;
- ``cuefile``: a cue sheet's FILE lines rewritten byte-for-byte so it still finds its audio;
- ``plans``: the planner: one step per file to move, or the reason it is skipped;
- ``moves``: no-replace renames, verified copies across filesystems, case-only renames;
- ``journal``: applying and undoing a stored plan step by step, and settling a crashed one.
"""
