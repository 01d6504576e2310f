"""Facts about one audio file, read from the file alone: pure, no database, no daemon.

Imports nothing of tracktiond but ``errors``; the catalog, the pipeline and the CLI build on it.
The modules, in the order a file goes through them when it is cataloged:

- ``formats``: what the content is (sniffed from its first bytes; extensions lie);
- ``hashing``: one streamed read giving the file's sha256 and xxh3-128, and its stat;
- ``audiohash``: the audio stream's own identity (tags excluded), computed during that read;
- ``riff``: the chunk layout of WAV (RIFF, RF64) and AIFF files, read as players read it;
- ``integrity``: whether a file is complete (truncated, still arriving, header durations that lie);
- ``tags``: reading tags and stream properties (mutagen), and the one table of tag fields;
- ``sidecar``: which files next to audio may hold its tracklist (``.cue``, ``.txt``);
- ``textcodec``: the bytes of a sheet or list as text (BOM, UTF-8, a legacy code page, a guess);
- ``cuesheet``: the lossless cue-sheet model, its tolerant reader and its writer;
  ``cuecheck``: a sheet checked against itself and its audio's duration;
  ``embeddedcue``: a sheet embedded in an audio file (a CUESHEET tag or FLAC block);
- ``names``: artist and title normalised for matching, and their search words;
- ``keys``: the musical ``Key`` value object (any notation in; standard, Camelot, Open Key out);
- ``probe``: all of the above for one file: ``ingest_file`` gives an ``IngestResult``.
"""
