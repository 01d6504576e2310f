"""The peers of ``bench/accuracy.py``: tempo and key of each file by plain essentia or librosa.

    python bench/plain_tools.py essentia FILE...
    python bench/plain_tools.py librosa FILE...

``essentia`` is what an essentia user writes first: ``MonoLoader`` (44.1 kHz mono, the whole
file), ``RhythmExtractor2013(method="multifeature")`` for the tempo and ``KeyExtractor()`` with
its defaults for the key. ``librosa`` is ``bench/librosa_anchor.py``'s recipe (``beat_track``
and Krumhansl-Kessler profiles on averaged ``chroma_cqt``).

One JSON object per line on stdout, one per file as it is done (``{"file", "bpm", "key"}``, or
``"error"``), so that the parent knows how far it got if a native decoder crashes the process
(essentia's loader does on some codecs); it then starts a new one after the file that crashed.
No tracktiond import: the peers run as their users would run them.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any


def _essentia() -> Any:
    import essentia

    essentia.log.infoActive = False
    essentia.log.warningActive = False
    import essentia.standard as es

    rhythm = es.RhythmExtractor2013(method="multifeature")
    key = es.KeyExtractor()

    def run(path: str) -> dict[str, Any]:
        audio = es.MonoLoader(filename=path, sampleRate=44100)()
        bpm = float(rhythm(audio)[0])
        tonic, scale, strength = key(audio)
        return {"bpm": round(bpm, 1), "key": f"{tonic} {scale}", "key_strength": float(strength)}

    return run


def _librosa() -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import librosa_anchor

    def run(path: str) -> dict[str, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = librosa_anchor.analyse(Path(path), long_seconds=1e9, edge_seconds=120.0)
        return {"bpm": found["bpm"], "key": found["key"]}

    return run


def main() -> int:
    tool, files = sys.argv[1], sys.argv[2:]
    run = {"essentia": _essentia, "librosa": _librosa}[tool]()
    for path in files:
        try:
            found = run(path)
        except Exception as exc:  # a file one tool cannot read is a result, not a stop
            found = {"error": f"{type(exc).__name__}: {exc}"[:200]}
        print(json.dumps({"file": path, **found}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
