"""The result of analysing one recording: plain data, JSON round-trippable, no essentia.

It crosses a process boundary (worker -> pool, as JSON) and is stored as flat ``metadata`` rows
(:meth:`AnalysisResult.to_metadata`), so everything in it is a float, int, bool, str, None or a
list/dict of those. ``tracktiond.analysis.engine`` re-exports it; it lives here so the daemon can
use it without importing the engine's dependencies.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from tracktiond.media.keys import Key

# Every metadata key written by analysis starts with this. The catalog also stores *tag* values
# under plain names ("bpm", "initialkey", "replaygain_track_gain"), with source "tags"; the
# prefix keeps a query for the analysed BPM from ever matching the tagged one.
METADATA_PREFIX = "analysis."


@dataclass
class AnalysisResult:
    version: int
    settings_fingerprint: str
    duration: float  # seconds of audio decoded
    sample_rate: int  # of the source stream (analysis itself runs at 44.1 kHz)
    channels: int  # of the source stream
    bpm: float | None
    bpm_confidence: float  # 0..1
    beatless: bool
    tempo_curve: list[tuple[float, float]]  # (window start s, bpm); long recordings only
    bpm_start: float | None
    bpm_end: float | None
    tempo_stability: float | None  # 0..1, long recordings only
    variable_tempo: bool
    key_tonic: str | None
    key_mode: str | None
    key_strength: float
    key_segments: list[tuple[float, str, float]]  # (start s, "A minor", strength)
    loudness_integrated: float  # LUFS (EBU R128); -70.0 when nothing passes the absolute gate
    loudness_range: float  # LU (EBU Tech 3342)
    sample_peak: float  # linear, 1.0 = full scale (may exceed 1 for lossy float decoders)
    replaygain_track_gain: float  # dB, ReplayGain 2.0 (reference -18 LUFS)
    replaygain_track_peak: float  # linear
    danceability: float  # essentia Danceability, 0..3
    energy: float  # 0..1
    valence: float  # 0..1
    mood: str
    mood_features: dict[str, float]
    mood_source: str  # "descriptors" or "tensorflow"
    # Why the TensorFlow mood path (settings.models_dir) was not used, when it was asked for.
    mood_error: str | None = None
    # Decoding problems that were tolerated (e.g. a few undecodable packets), for the record.
    warnings: list[str] = field(default_factory=list)
    # bpm_confidence below tempo.UNCERTAIN_BELOW: the tempo is reported but not written to tags
    # unless the user asks (pipeline.tagging). Results stored before version 2 lack it: False.
    bpm_uncertain: bool = False
    # A4 in Hz as the recording is tuned (the key is estimated after correcting for it).
    tuning_frequency: float = 440.0

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysisResult:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        # JSON turns tuples into lists; restore the declared shapes.
        values["tempo_curve"] = [(float(t), float(b)) for t, b in values.get("tempo_curve", [])]
        values["key_segments"] = [
            (float(t), str(k), float(s)) for t, k, s in values.get("key_segments", [])
        ]
        values["mood_features"] = {
            str(k): float(v) for k, v in dict(values.get("mood_features", {})).items()
        }
        values["warnings"] = [str(w) for w in values.get("warnings", [])]
        return cls(**values)

    # -- presentation --------------------------------------------------------------------------

    @property
    def key(self) -> str | None:
        """ "A minor", or None when no key was found (silence, unpitched audio)."""
        if self.key_tonic is None or self.key_mode is None:
            return None
        return Key.of(self.key_tonic, self.key_mode).name

    def to_metadata(self) -> dict[str, str]:
        """Flat ``analysis.*`` metadata rows; documented in docs/analysis.md.

        Keys whose value does not apply (no BPM for beatless audio, no key for unpitched audio,
        curve data for short recordings) are left out rather than written empty: the catalog
        replaces all analysis rows of a recording at once, so an absent key means "not
        applicable" and stale values cannot survive a re-analysis.
        """
        p = METADATA_PREFIX
        rows: dict[str, str] = {
            f"{p}version": str(self.version),
            f"{p}settings": self.settings_fingerprint,
            f"{p}duration": f"{self.duration:.3f}",
            f"{p}beatless": _bool(self.beatless),
            f"{p}bpm_confidence": f"{self.bpm_confidence:.2f}",
            f"{p}bpm_uncertain": _bool(self.bpm_uncertain),
            f"{p}loudness_lufs": f"{self.loudness_integrated:.2f}",
            f"{p}loudness_range_lu": f"{self.loudness_range:.2f}",
            f"{p}sample_peak": f"{self.sample_peak:.6f}",
            f"{p}replaygain_track_gain": f"{self.replaygain_track_gain:.2f} dB",
            f"{p}replaygain_track_peak": f"{self.replaygain_track_peak:.6f}",
            f"{p}danceability": f"{self.danceability:.3f}",
            f"{p}energy": f"{self.energy:.3f}",
            f"{p}valence": f"{self.valence:.3f}",
            f"{p}mood": self.mood,
            f"{p}mood_source": self.mood_source,
            f"{p}mood_features": _json({k: round(v, 4) for k, v in self.mood_features.items()}),
            f"{p}variable_tempo": _bool(self.variable_tempo),
        }
        if self.bpm is not None:
            rows[f"{p}bpm"] = f"{self.bpm:.1f}"
        if self.key_tonic is not None and self.key_mode is not None:
            key = Key.of(self.key_tonic, self.key_mode)
            rows[f"{p}key"] = key.name
            rows[f"{p}key_short"] = key.short()
            rows[f"{p}key_camelot"] = key.camelot
            rows[f"{p}key_openkey"] = key.open_key
            rows[f"{p}key_strength"] = f"{self.key_strength:.2f}"
            rows[f"{p}tuning_hz"] = f"{self.tuning_frequency:.1f}"
        if self.tempo_curve:
            rows[f"{p}tempo_curve"] = _json(
                [[round(t, 1), round(b, 1)] for t, b in self.tempo_curve]
            )
        if self.bpm_start is not None:
            rows[f"{p}bpm_start"] = f"{self.bpm_start:.1f}"
        if self.bpm_end is not None:
            rows[f"{p}bpm_end"] = f"{self.bpm_end:.1f}"
        if self.tempo_stability is not None:
            rows[f"{p}tempo_stability"] = f"{self.tempo_stability:.2f}"
        if self.key_segments:
            rows[f"{p}key_segments"] = _json(
                [[round(t, 1), k, round(s, 2)] for t, k, s in self.key_segments]
            )
        if self.mood_error:
            rows[f"{p}mood_error"] = self.mood_error
        if self.warnings:
            rows[f"{p}warnings"] = _json(self.warnings)
        return rows


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def finite(value: float, default: float = 0.0) -> float:
    """``value`` if it is a finite number, else ``default``: JSON has no NaN or infinity."""
    return value if math.isfinite(value) else default
