"""Tracklists: which tracks a recording plays, when, and which of them the library holds.

The modules, in the order a tracklist goes through them:

- ``reading``: a source (a sheet or list next to the audio, an embedded sheet, a file given on
  the command line) to drafts: size limit, decoding (``media.textcodec``), which audio it
  belongs to;
- ``sheets``: a cue sheet (``media.cuesheet``, checked by ``media.cuecheck``) as drafts, one
  per audio file it describes;
- ``pasted``: a pasted list (trackparse behind our pre-pass) as a draft;
- ``match``: each entry matched to library recordings (rapidfuzz) with a score and candidates;
- ``cuewrite``: a tracklist as a cue sheet, in flavours (standard, cdj, rekordbox, kodi);
- ``exportdata``: the library's tracks and the sets with their tracklists, gathered once;
  ``rekordbox``, ``traktor``, ``playlists``: written for DJ software (rekordbox XML, Traktor
  NML) and players (M3U8);
- ``documents``: a recording's tracklists as the JSON document the CLI and HTTP give;
- ``safefile``: every file written atomically, never over someone else's.

Imports ``catalog`` (the drafts and versions are its values), ``media``, ``errors`` and
``config`` only.
"""
