"""Audio analysis: tempo, key, loudness, danceability and mood, in crash-isolated workers.

Importing this package is cheap and has no side effects: essentia is only imported inside the
worker processes (:mod:`tracktiond.analysis.worker`) by :mod:`tracktiond.analysis.engine`.
The daemon and the CLI use :class:`AnalysisPool`; docs/analysis.md describes the methods, the
stored metadata keys and the limits.
"""

from tracktiond.analysis.keys import camelot, key_name, open_key, short_key
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
    "camelot",
    "key_name",
    "open_key",
    "short_key",
]
