"""The fingerprint task of the analysis worker: one recording decoded as a stream into peaks.

Runs in the crash-isolated worker processes (``worker.py``, task "fingerprint"), so a decoder
crash or a runaway allocation costs a worker, never the daemon. The file is decoded once, at
the fingerprinter's low rate (8 kHz), block by block and mixed to mono; the spectrogram is never
held whole, so memory stays bounded whatever the recording's length (a 3-hour set holds its
peaks, a few megabytes). What goes back to the pool is the peaks, encoded
(``fingerprint.postings.encode_peaks``), and the recording's length: the index hashes are
formed from them by the daemon, with the settings of its configuration.
"""

from __future__ import annotations

import base64
from typing import Any

from tracktiond.analysis.decode import Decoder
from tracktiond.fingerprint.identify import FingerprintSettings, fingerprint_blocks, settings_id
from tracktiond.fingerprint.postings import encode_peaks

BLOCK_SECONDS = 10.0


def fingerprint_file(path: str, settings: FingerprintSettings | None = None) -> dict[str, Any]:
    """``{"frames", "seconds", "peaks" (base64), "settings"}`` of the recording at ``path``;
    raises :class:`tracktiond.errors.FileJobError` for a file that does not decode."""
    settings = settings or FingerprintSettings()
    rate = settings.spectrum.rate
    with Decoder(path, int(BLOCK_SECONDS * rate), rate=rate) as decoder:
        mono = (block.mean(axis=0) for block in decoder.blocks())
        fp = fingerprint_blocks(mono, settings)
        seconds = decoder.decoded_seconds
    return {
        "frames": fp.frames,
        "seconds": seconds,
        "peaks": base64.b64encode(encode_peaks(fp.peaks)).decode("ascii"),
        "settings": settings_id(settings),
    }
