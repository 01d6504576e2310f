"""Cue sheets and pasted tracklists in the shapes real software and real users produce.

Each builder returns text (or bytes, where the encoding is the point); the tests and bench/
use the same shapes. Written from the formats' documentation and from sheets these programs
write, not copied from any of them.
"""

from __future__ import annotations

import codecs


def stamp(seconds: float) -> str:
    """MM:SS:FF, minutes unbounded (frames: 75 per second)."""
    frames = round(seconds * 75)
    s, f = divmod(frames, 75)
    m, s = divmod(s, 60)
    return f"{m:02d}:{s:02d}:{f:02d}"


def long_set(tracks: int = 150, total_seconds: float = 3 * 3600, *, name: str = "set.flac") -> str:
    """A DJ set of ``tracks`` tracks over ``total_seconds`` (a 3-hour, 150-track set)."""
    step = total_seconds / tracks
    lines = [
        'REM GENRE "Techno"',
        "REM DATE 2023",
        'PERFORMER "DJ Long"',
        'TITLE "Three Hours"',
        f'FILE "{name}" WAVE',
    ]
    for n in range(1, tracks + 1):
        lines += [
            f"  TRACK {n:02d} AUDIO",
            f'    TITLE "Track {n} (Artist {n % 7} Remix)"',
            f'    PERFORMER "Artist {n}"',
            f"    REM BPM {120 + n % 10}",
            f"    INDEX 01 {stamp((n - 1) * step)}",
        ]
    return "\n".join(lines) + "\n"


def mixxx(name: str = "set.wav") -> str:
    """Mixxx's recording sheet: UTF-8 without BOM, minutes past 99, 2-space indent."""
    return (
        'TITLE "Mixxx Recording 2023-05-01"\n'
        'PERFORMER "DJ Mix"\n'
        f'FILE "{name}" WAVE\n'
        "  TRACK 01 AUDIO\n"
        '    TITLE "Opening"\n'
        '    PERFORMER "Künstler Eins"\n'
        "    INDEX 01 00:00:00\n"
        "  TRACK 02 AUDIO\n"
        '    TITLE "Middle"\n'
        '    PERFORMER "Artist Two"\n'
        "    INDEX 01 61:10:37\n"
        "  TRACK 03 AUDIO\n"
        '    TITLE "Closing"\n'
        '    PERFORMER "Artist Three"\n'
        "    INDEX 01 125:30:12\n"
    )


def rekordbox(name: str = "REC001.wav") -> str:
    """A rekordbox recording: tab indentation, a FILE nested in each TRACK naming the source."""
    return (
        'TITLE "REC001"\r\n'
        'PERFORMER "rekordbox"\r\n'
        f'FILE "{name}" WAVE\r\n'
        "\tTRACK 01 AUDIO\r\n"
        '\t\tTITLE "First Song"\r\n'
        '\t\tPERFORMER "Alpha"\r\n'
        '\t\tFILE "/music/Alpha - First Song.mp3" MP3\r\n'
        "\t\tINDEX 01 00:00:00\r\n"
        "\tTRACK 02 AUDIO\r\n"
        '\t\tTITLE "Second Song"\r\n'
        '\t\tPERFORMER "Beta"\r\n'
        '\t\tFILE "/music/Beta - Second Song.flac" FLAC\r\n'
        "\t\tINDEX 01 04:12:30\r\n"
    )


def cuetools_multifile() -> str:
    """CUETools/EAC multi-file: one FILE per track, INDEX 00 gaps kept in the previous file."""
    return (
        'REM GENRE "Electronic"\n'
        "REM DATE 1999\n"
        "REM DISCID 8A0B1C0D\n"
        'REM COMMENT "ExactAudioCopy v1.6"\n'
        "CATALOG 0724384960650\n"
        'PERFORMER "Some Band"\n'
        'TITLE "Some Album"\n'
        'FILE "01 - Intro.flac" WAVE\n'
        "  TRACK 01 AUDIO\n"
        '    TITLE "Intro"\n'
        "    ISRC GBAYE9900001\n"
        "    FLAGS DCP\n"
        "    INDEX 01 00:00:00\n"
        "  TRACK 02 AUDIO\n"
        '    TITLE "Second"\n'
        "    INDEX 00 03:58:40\n"
        'FILE "02 - Second.flac" WAVE\n'
        "    INDEX 01 00:00:00\n"
        "  TRACK 03 AUDIO\n"
        '    TITLE "Third"\n'
        "    PREGAP 00:02:00\n"
        'FILE "03 - Third.flac" WAVE\n'
        "    INDEX 01 00:00:00\n"
        "    POSTGAP 00:01:00\n"
    )


def cp1252_sheet(name: str = "set.mp3") -> bytes:
    """A short Western sheet in cp1252 ("ANSI"), the kind guessers misdetect."""
    text = (
        'PERFORMER "Beyoncé & Café"\r\n'
        'TITLE "Señor – Noël"\r\n'
        f'FILE "{name}" MP3\r\n'
        "  TRACK 01 AUDIO\r\n"
        '    TITLE "Déjà vu"\r\n'
        "    INDEX 01 00:00:00\r\n"
    )
    return text.encode("cp1252")


def bom_sheet(name: str = "set.flac") -> bytes:
    text = (
        f'TITLE "Ünïcödé"\nFILE "{name}" WAVE\n'
        '  TRACK 01 AUDIO\n    TITLE "Ä"\n    INDEX 01 00:00:00\n'
    )
    return codecs.BOM_UTF8 + text.encode("utf-8")


def pasted_1001() -> str:
    """A 1001tracklists copy with the shapes the pre-pass exists for."""
    return (
        "Some DJ @ Awakenings 2023\n"
        "\n"
        "[00:00] Artist One - First Track (Extended Mix) [DRUMCODE]\n"
        "[04:30] Artist Two ft. Guest - Second Track [KOMPAKT]\n"
        "02 - 09:15 - Artist Three - Third Track\n"
        "Artist Four - Fourth Track (Someone Remix) 14:02\n"
        "[19:40] ID - ID\n"
        "[24:10] Artist Five - Fifth Track vs. Artist Six - Sixth Track\n"
        "w/ Artist Seven - Acapella Seven\n"
        "[1:02:33] Artist Eight - Late Track [Afterlife Records]\n"
    )
