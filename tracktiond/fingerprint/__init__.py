"""Fingerprints that survive tempo and pitch changes, and finding indexed tracks inside DJ sets.

Pure computation on mono sample blocks (NumPy/SciPy): no database, no decoding (the worker
decoder hands over mono blocks at ``spectrum.RATE``). Imports nothing of tracktiond but
``media``, ``errors`` and ``config``. The method is explained in docs/identify.md. The modules,
in the order audio goes through them:

- ``spectrum``: a stream of sample blocks into a log-frequency magnitude spectrogram, block by
  block (bounded memory whatever the recording's length);
- ``peaks``: the spectral peaks of that spectrogram (local maxima in time and log frequency),
  streamed with a few frames of context;
- ``triplets``: three peaks at a time into hashes of ratios (time-gap ratio, frequency-gap
  ratio, a coarse band): unchanged by time-stretch, and by a pitch shift but for the band;
- ``index``: an in-memory inverted index from hash to (track, time, span, frequency) postings;
- ``matcher``: one query window's hits voted into (track, offset, speed) candidates, each
  verified by the hits it aligns in time and pitch;
- ``segments``: the windows' candidates smoothed into a tracklist of (track, start, end, speed,
  pitch, confidence) segments, unknown stretches left unknown;
- ``identify``: the two entry points, ``fingerprint_blocks`` (a track or a set) and
  ``identify_set`` (a set against an index);
- ``postings``: what the catalog stores: packed postings in key-sorted batches (and the
  ``StoredIndex`` that reads them batch by batch), a set's peaks as bytes.
"""
