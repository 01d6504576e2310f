"""What an analysis run is configured with, and the fingerprint that decides re-analysis.

This module is imported by the daemon, the CLI and the catalog, so it must stay light: no
essentia, no numpy. A stored result carries ``settings.fingerprint()``; when the fingerprint of
the current settings differs (a setting or :data:`ANALYSIS_VERSION` changed) the recording is
analysed again, lazily (DESIGN invariant 2: nothing else re-triggers analysis).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

# Bump whenever the engine's output for the same audio and settings changes meaning or value
# (a new algorithm, a fixed bug, a different formula): every stored result becomes stale.
# 2: tempo level by evidence (metre), calibrated confidence and bpm_uncertain, key after tuning
# correction, danceability and mood rescaled (docs/analysis.md).
ANALYSIS_VERSION: int = 2

# essentia's Key algorithm accepts exactly these profile names (from its parameter range); checked
# here so a typo in the config fails at load time rather than in every worker job.
KEY_PROFILES: frozenset[str] = frozenset(
    {
        "diatonic",
        "krumhansl",
        "temperley",
        "weichai",
        "tonictriad",
        "temperley2005",
        "thpcp",
        "shaath",
        "gomez",
        "noland",
        "edmm",
        "edma",
        "bgate",
        "braw",
    }
)

# The curve window is also the engine's processing window (see docs/analysis.md): below ~10 s a
# window holds too few bars for a tempo estimate, above 2 minutes memory per window grows for
# no gain in resolution.
MIN_CURVE_WINDOW = 10.0
MAX_CURVE_WINDOW = 120.0


@dataclass(frozen=True)
class AnalysisSettings:
    """Analysis parameters; every field is part of :meth:`fingerprint`."""

    # [min, max): a tempo whose metrical level the signal could not decide is folded into it (the
    # last resort; decided tempi stay where they are).
    bpm_min: float = 60.0
    bpm_max: float = 210.0
    # Longer recordings (DJ sets, live recordings) also get a tempo curve, start/end BPM, a
    # stability score, a variable-tempo flag and a key per segment.
    long_recording_seconds: float = 900.0
    curve_window_seconds: float = 30.0
    # essentia Key profileType; temperley measured best on bench/accuracy.py's key sets (it
    # found all 96 detuned cadences, alone and under drums; edma 93) and tied on real ones.
    key_profile: str = "temperley"
    models_dir: str | None = None  # optional essentia TensorFlow mood models (*.pb)

    def __post_init__(self) -> None:
        for name in ("bpm_min", "bpm_max", "long_recording_seconds", "curve_window_seconds"):
            value = getattr(self, name)
            # bool is an int subclass; a TOML `true` here is a mistake, not 1.0.
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"analysis setting {name} must be a number, got {value!r}")
            if not value > 0:
                raise ValueError(f"analysis setting {name} must be positive, got {value!r}")
        if not self.bpm_max > self.bpm_min:
            raise ValueError(
                f"analysis setting bpm_max ({self.bpm_max}) must be greater than "
                f"bpm_min ({self.bpm_min})"
            )
        if not MIN_CURVE_WINDOW <= self.curve_window_seconds <= MAX_CURVE_WINDOW:
            raise ValueError(
                f"analysis setting curve_window_seconds must be between {MIN_CURVE_WINDOW:g} "
                f"and {MAX_CURVE_WINDOW:g}, got {self.curve_window_seconds!r}"
            )
        if self.key_profile not in KEY_PROFILES:
            raise ValueError(
                f"analysis setting key_profile {self.key_profile!r} is not an essentia key "
                f"profile; known: {', '.join(sorted(KEY_PROFILES))}"
            )
        if self.models_dir is not None and not isinstance(self.models_dir, str):
            raise ValueError(f"analysis setting models_dir must be a path, got {self.models_dir!r}")

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysisSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            # A misspelt setting silently falling back to its default would give results the
            # user did not ask for; say so instead.
            raise ValueError(
                f"unknown analysis settings {unknown}; known: {', '.join(sorted(known))}"
            )
        return cls(**data)

    def fingerprint(self) -> str:
        """A short, stable hash of :data:`ANALYSIS_VERSION` and every setting.

        Numbers are normalised to float so ``bpm_min = 70`` (int from TOML) and ``70.0`` give
        the same fingerprint; keys are sorted so field order never matters.
        """
        values = {
            k: float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
            for k, v in self.to_dict().items()
        }
        payload = json.dumps({"version": ANALYSIS_VERSION, "settings": values}, sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]
