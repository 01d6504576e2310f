"""Audio analysis: tempo, key, loudness, danceability and mood, in crash-isolated workers.

Importing this package is cheap and has no side effects: essentia is only imported inside the
worker processes (:mod:`tracktiond.analysis.worker`) by :mod:`tracktiond.analysis.engine`.
The daemon and the CLI use :class:`AnalysisPool`; docs/analysis.md describes the methods, the
stored metadata keys and the limits.

The modules, in the order an analysis goes through them:

- ``settings``: what a run is configured with, and the fingerprint that decides re-analysis;
- ``pool``: the persistent worker processes: timeouts, memory bound, crash replacement;
- ``worker``: the worker process's loop (``python -m tracktiond.analysis.worker``);
- ``decode``: streaming decode of any file to fixed-size blocks (PyAV), bounded memory;
  ``sndfile_decode``: the second decoder (libsndfile) for files FFmpeg will not open;
- ``engine``: one file in, one result out, inside a worker;
- ``tempo``, ``metre``: onset envelopes, the metrical level chosen by evidence, windows
  combined into a tempo, its confidence and curve;
- ``tuning``: the recording's tuning, and its pitch profile corrected for it before the key;
- ``loudness``, ``mood``: the other estimators the engine combines (keys are ``media.keys``);
- ``result``: the result as plain data, JSON round-trippable, and its catalog metadata;
- ``fingerprinting``: the worker's other task: one recording decoded at 8 kHz into the peaks
  of its fingerprint (``tracktiond.fingerprint``).
"""

from tracktiond.analysis.pool import AnalysisFailed, AnalysisPool
from tracktiond.analysis.result import METADATA_PREFIX, AnalysisResult
from tracktiond.analysis.settings import ANALYSIS_VERSION, AnalysisSettings

__all__ = [
    "ANALYSIS_VERSION",
    "METADATA_PREFIX",
    "AnalysisFailed",
    "AnalysisPool",
    "AnalysisResult",
    "AnalysisSettings",
]
