"""Accuracy benchmark: tempo, key, confidence, codecs, mood; beside plain essentia and librosa.

    python bench/accuracy.py --workdir /tmp/tracktiond-accuracy            # everything (~15 min)
    python bench/accuracy.py --quick --skip-librosa                        # a few minutes
    python bench/accuracy.py --baseline /path/to/old/checkout              # and an older one

Two kinds of material:

* **Real annotated excerpts**, read at run time out of public repositories' test data (never
  copied into this repository: their licences are the datasets', not ours). The benchmark looks
  for git mirrors under ``--mirrors`` (default ``/work/.mirror``, laid out ``owner+name/repo``
  with the git directory inside, as the workplace's fetch tool makes them; any clone works:
  point ``--mirrors`` at a directory of ``owner+name/repo`` clones), pins the commit each
  file was read at, and skips (saying so) what it cannot find. :data:`REAL` lists every file,
  its truth and where the truth comes from.
* **Generated material with exact truth** (``tests/support/accuracy_sets.py``): drum patterns of
  seven kits at 60-200 BPM (off-beat hats, swing, half-time, triplet shuffle, waltz), cadences
  in all 24 keys detuned by up to ±40 cents, alone and under drums.

Reported: tempo Accuracy1 / Accuracy2 per class; key exact / fifth / relative / parallel /
other and the MIREX weighted score per class, for several key profiles; how well
``bpm_confidence`` separates right tempi from wrong ones (ROC AUC) and what ``bpm_uncertain``
catches; agreement of the same material across codecs (wav, flac, ogg, opus, mp3, m4a); the
spread of danceability and mood. tracktiond (and, with ``--baseline``, an older checkout's
worker) runs through ``AnalysisPool``; plain essentia and librosa through
``bench/plain_tools.py`` in subprocesses. JSON goes to ``WORKDIR/accuracy.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import accuracy_sets as sets
from tests.support import signals
from tracktiond.analysis import AnalysisPool, AnalysisResult, AnalysisSettings
from tracktiond.analysis.decode import Decoder
from tracktiond.analysis.pool import WORKER_COMMAND

PLAIN = Path(__file__).resolve().with_name("plain_tools.py")
MIRDATA = ("mir-dataset-loaders/mirdata", "b95bf3893616ff16082beed7869f144bb711c163")
ESSENTIA_AUDIO = ("MTG/essentia-audio", "4c874103641d5b1146471210ad3e6761d3bef0c4")
MUSHER = ("jmaldon1/Musher", "58f4c8bde4c314821f15bce27555896a00935c1c")
MIR = "tests/resources/mir_datasets"
PROFILES = ("edma", "bgate", "temperley", "krumhansl", "shaath")
CODECS = signals.CODEC_EXTENSIONS


@dataclass(frozen=True)
class Real:
    """One real recording: where it is, its truth, and where the truth comes from."""

    name: str
    cls: str
    source: tuple[str, str]  # (repository, commit)
    path: str
    bpm: float | None = None
    bpm_file: str | None = None  # annotation file in the same repository (first number)
    key: tuple[str, str] | None = None
    tuning_hz: float | None = None
    truth: str = ""


REAL: tuple[Real, ...] = (
    Real(
        "ballroom-waltz",
        "ballroom",
        MIRDATA,
        f"{MIR}/ballroom/B_1.0/audio/Waltz/Media-105901.wav",
        bpm_file=f"{MIR}/ballroom/B_1.0/annotations/tempo/Media-105901.bpm",
        truth="Ballroom annotation",
    ),
    Real(
        "gtzan-country",
        "gtzan",
        MIRDATA,
        f"{MIR}/gtzan_genre/gtzan_genre/genres/country/country.00000.wav",
        bpm_file=f"{MIR}/gtzan_genre/gtzan_tempo_beat-main/tempo/gtzan_country_00000.bpm",
        truth="GTZAN tempo annotation (Marchand)",
    ),
    Real(
        "hainsworth-001",
        "hainsworth",
        MIRDATA,
        f"{MIR}/hainsworth/H_1.0/audio/hains001.flac",
        bpm_file=f"{MIR}/hainsworth/H_1.0/annotations/tempo/hains001.bpm",
        truth="Hainsworth annotation",
    ),
    Real(
        "cuidado-falla",
        "cuidado",
        MIRDATA,
        f"{MIR}/cuidado/C_1.0/audio/cuidado_FallaCancion.flac",
        bpm_file=f"{MIR}/cuidado/C_1.0/annotations/tempo/cuidado_FallaCancion.bpm",
        truth="Cuidado annotation",
    ),
    Real(
        "simac-rallou",
        "simac",
        MIRDATA,
        f"{MIR}/simac/S_1.0/audio/simac_01_H_mikri_Rallou.flac",
        bpm_file=f"{MIR}/simac/S_1.0/annotations/tempo/simac_01_H_mikri_Rallou.bpm",
        truth="SIMAC annotation",
    ),
    Real(
        "essentia-techno-loop",
        "loops",
        ESSENTIA_AUDIO,
        "recorded/techno_loop.mp3",
        bpm=125.0,
        truth="essentia's PercivalBpmEstimator test expects 125",
    ),
    Real(
        "musher-126bpm",
        "loops",
        MUSHER,
        "data/audio_files/126bpm.mp3",
        bpm=126.0,
        truth="file name",
    ),
    Real(
        "musher-edm",
        "edm",
        MUSHER,
        "data/audio_files/EDM_Eb_major_2min.mp3",
        key=("Eb", "major"),
        truth="file name",
    ),
    Real(
        "musher-mozart",
        "classical",
        MUSHER,
        "data/audio_files/mozart_c_major_30sec.mp3",
        key=("C", "major"),
        truth="file name",
    ),
    Real(
        "essentia-sax-e-major",
        "solo",
        ESSENTIA_AUDIO,
        "recorded/359500__mtg__sax-tenor-e-major.wav",
        key=("E", "major"),
        truth="Freesound title",
    ),
    Real(
        "essentia-sax-d-minor",
        "solo",
        ESSENTIA_AUDIO,
        "recorded/359628__mtg__sax-tenor-d-minor.wav",
        key=("D", "minor"),
        truth="Freesound title",
    ),
    Real(
        "essentia-guitar-432-1",
        "tuning",
        ESSENTIA_AUDIO,
        "recorded/Guitar-A4-432-1.ogg",
        tuning_hz=432.0,
        truth="essentia's TuningFrequencyExtractor test expects 432 Hz",
    ),
    Real(
        "essentia-guitar-432-2",
        "tuning",
        ESSENTIA_AUDIO,
        "recorded/Guitar-A4-432-2.ogg",
        tuning_hz=432.0,
        truth="essentia's TuningFrequencyExtractor test expects 432 Hz",
    ),
    # No annotation: used for cross-codec agreement only.
    Real("essentia-dubstep", "codec", ESSENTIA_AUDIO, "recorded/dubstep.wav", truth="none"),
)
CODEC_SOURCES = ("essentia-dubstep", "essentia-techno-loop", "musher-edm", "essentia-sax-d-minor")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _git_show(mirrors: Path, repo: str, commit: str, path: str) -> bytes | None:
    git_dir = mirrors / repo.replace("/", "+") / "repo"
    if (git_dir / ".git").is_dir():
        git_dir = git_dir / ".git"
    if not git_dir.is_dir():
        return None
    done = subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"],
        capture_output=True,
        check=False,
    )
    return done.stdout if done.returncode == 0 and done.stdout else None


def fetch_real(mirrors: Path, target: Path) -> dict[str, dict[str, Any]]:
    """Read the real files and their annotations out of the mirrors; {name: case}."""
    target.mkdir(parents=True, exist_ok=True)
    found: dict[str, dict[str, Any]] = {}
    for real in REAL:
        repo, commit = real.source
        out = target / f"{real.name}{Path(real.path).suffix}"
        if not out.exists():
            data = _git_show(mirrors, repo, commit, real.path)
            if data is None:
                _log(f"  skipped {real.name}: {repo}@{commit[:10]}:{real.path} not found")
                continue
            out.write_bytes(data)
        bpm = real.bpm
        if real.bpm_file:
            text = _git_show(mirrors, repo, commit, real.bpm_file)
            if text is None:
                _log(f"  skipped {real.name}: no annotation {real.bpm_file}")
                continue
            bpm = float(text.decode().split()[0])
        found[real.name] = {
            "path": str(out),
            "cls": "real/" + real.cls,
            "bpm": bpm,
            "key": real.key,
            "tuning_hz": real.tuning_hz,
            "truth": real.truth,
            "source": f"{repo}@{commit[:10]}",
        }
    return found


def generate(target: Path, quick: bool) -> dict[str, dict[str, Any]]:
    target.mkdir(parents=True, exist_ok=True)
    cases = sets.tempo_cases(8 if quick else 15, seed=7) + sets.noisy_cases(seed=13)
    cases += sets.key_cases(step=2 if quick else 1)
    cases += sets.key_cases(("saw", "piano"), drums=True, step=2 if quick else 1)
    found: dict[str, dict[str, Any]] = {}
    for case in cases:
        path = target / (case.name.replace("/", "_") + ".wav")
        if not path.exists():
            signals.write_audio(path, case.make())
        cls = case.name.split("/")[0]
        if cls in ("tempo", "noisy"):
            cls += "/" + case.name.split("/")[1]
        found[case.name] = {
            "path": str(path),
            "cls": cls,
            "bpm": case.bpm,
            "key": case.key,
            "cents": case.cents,
        }
    return found


def encode_codecs(real: dict[str, dict[str, Any]], target: Path) -> dict[str, dict[str, Any]]:
    """Each codec source (and one generated mix) decoded once and encoded in every codec."""
    target.mkdir(parents=True, exist_ok=True)
    sources: dict[str, signals.Signal] = {}
    for name in CODEC_SOURCES:
        if name in real:
            with Decoder(real[name]["path"], 1 << 30) as decoder:
                sources[name] = np.concatenate([b.T for b in decoder.blocks()])
    beat = signals.drum_pattern(124.0, "house", seconds=20.0, seed=5)
    harmony = signals.chord_progression(
        "F#", "minor", "organ", seconds=20.0, chord_seconds=240 / 124
    )
    sources["generated-mix"] = (0.6 * beat + 0.4 * harmony).astype(np.float32)
    found: dict[str, dict[str, Any]] = {}
    for name, audio in sources.items():
        for ext in CODECS:
            path = target / f"{name}.{ext}"
            if not path.exists():
                signals.write_audio(path, audio)
            found[f"codec/{name}/{ext}"] = {"path": str(path), "cls": "codec", "source": name}
    return found


async def run_tracktiond(
    files: dict[str, dict[str, Any]], settings: AnalysisSettings, worker: Sequence[str]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    async with AnalysisPool(2, worker_command=worker) as pool:

        async def one(name: str, path: str) -> None:
            try:
                result = await pool.analyze(path, settings)
            except Exception as exc:  # a failure is a result of the benchmark, not its end
                out[name] = {"error": str(exc)}
                return
            out[name] = _summary(result)

        async with anyio.create_task_group() as tg:
            for name, case in files.items():
                tg.start_soon(one, name, case["path"])
    return out


def _summary(r: AnalysisResult) -> dict[str, Any]:
    return {
        "bpm": r.bpm,
        "confidence": r.bpm_confidence,
        "uncertain": r.bpm_uncertain,
        "key": [r.key_tonic, r.key_mode] if r.key_tonic and r.key_mode else None,
        "key_strength": r.key_strength,
        "tuning_hz": r.tuning_frequency,
        "danceability": r.danceability,
        "energy": r.energy,
        "valence": r.valence,
        "mood": r.mood,
    }


def run_plain(tool: str, files: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``bench/plain_tools.py`` over the files; restarted after any file that crashes it."""
    by_path = {case["path"]: name for name, case in files.items()}
    pending = list(by_path)
    out: dict[str, dict[str, Any]] = {}
    while pending:
        proc = subprocess.run(
            [sys.executable, str(PLAIN), tool, *pending],
            capture_output=True,
            text=True,
            check=False,
            env=os.environ | {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"},
        )
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        done = [row for row in lines if "event" not in row]  # librosa_anchor's progress lines
        for row in done:
            found = {"bpm": row.get("bpm"), "error": row.get("error")}
            key = row.get("key")
            found["key"] = key.split() if isinstance(key, str) else None
            out[by_path[row["file"]]] = found
        pending = pending[len(done) :]
        if pending:  # the process died on pending[0]
            out[by_path[pending[0]]] = {
                "bpm": None,
                "key": None,
                "error": f"crashed (exit {proc.returncode})",
            }
            pending = pending[1:]
    return out


# -- scoring ------------------------------------------------------------------------------------


def score_tempo(
    files: dict[str, dict[str, Any]], found: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    by_cls: dict[str, Counter[str]] = {}
    for name, case in files.items():
        if case.get("bpm") is None or name not in found:
            continue
        verdict = sets.tempo_verdict(found[name].get("bpm"), case["bpm"])
        by_cls.setdefault(case["cls"], Counter())[verdict] += 1
    return {cls: _acc(c) for cls, c in sorted(by_cls.items())}


def _acc(c: Counter[str]) -> dict[str, Any]:
    n = sum(c.values())
    return {"n": n, "acc1": c["acc1"], "acc2": c["acc1"] + c["acc2"]}


def score_key(files: dict[str, dict[str, Any]], found: dict[str, dict[str, Any]]) -> dict[str, Any]:
    by_cls: dict[str, Counter[str]] = {}
    for name, case in files.items():
        if case.get("key") is None or name not in found:
            continue
        got = found[name].get("key")
        relation = sets.key_relation(tuple(got) if got else None, tuple(case["key"]))
        by_cls.setdefault(case["cls"], Counter())[relation] += 1
    out = {}
    for cls, c in sorted(by_cls.items()):
        n = sum(c.values())
        weighted = sum(sets.MIREX_WEIGHTS[k] * v for k, v in c.items()) / n
        out[cls] = {"n": n, **{k: c[k] for k in sets.MIREX_WEIGHTS}, "weighted": round(weighted, 3)}
    return out


def score_confidence(
    files: dict[str, dict[str, Any]], found: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    right: list[float] = []
    wrong: list[float] = []
    flagged = Counter[str]()
    for name, case in files.items():
        got = found.get(name, {})
        if case.get("bpm") is None or got.get("bpm") is None:
            continue
        ok = sets.tempo_verdict(got["bpm"], case["bpm"]) == "acc1"
        (right if ok else wrong).append(float(got["confidence"]))
        flagged[
            ("uncertain" if got["uncertain"] else "certain") + ("_right" if ok else "_wrong")
        ] += 1
    auc = sets.roc_auc(right, wrong)
    return {
        "auc": None if auc is None else round(auc, 3),
        "right": len(right),
        "wrong": len(wrong),
        **flagged,
    }


def score_codecs(
    files: dict[str, dict[str, Any]], found: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    out = {}
    for source in sorted({c["source"] for c in files.values() if c["cls"] == "codec"}):
        rows = {
            n.rsplit("/", 1)[1]: found.get(n, {})
            for n, c in files.items()
            if c.get("source") == source
        }
        keys = {ext: " ".join(r["key"]) if r.get("key") else None for ext, r in rows.items()}
        bpms = {ext: r.get("bpm") for ext, r in rows.items()}
        values = [b for b in bpms.values() if b]
        same_bpm = bool(values) and len(values) == len(bpms) and max(values) / min(values) <= 1.01
        out[source] = {
            "keys": keys,
            "bpms": bpms,
            "same_key": len(set(keys.values())) == 1,
            "same_bpm": same_bpm,
        }
    return out


def spread(found: dict[str, dict[str, Any]]) -> dict[str, Any]:
    dance = np.array([r["danceability"] for r in found.values() if "danceability" in r])
    moods = Counter(r["mood"] for r in found.values() if "mood" in r)
    if not dance.size:
        return {}
    return {
        "danceability_percentiles": [
            round(float(x), 2) for x in np.percentile(dance, [0, 10, 50, 90, 100])
        ],
        "danceability_at_max": int(np.sum(dance >= 2.999)),
        "moods": dict(moods.most_common()),
        "n": int(dance.size),
    }


# -- the run ------------------------------------------------------------------------------------


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    work = args.workdir
    _log("reading real excerpts ...")
    real = fetch_real(args.mirrors, work / "real")
    _log(f"  {len(real)} real files; generating ...")
    generated = generate(work / "generated", args.quick)
    codecs = encode_codecs(real, work / "codecs")
    everything = {**{f"real/{k}": v for k, v in real.items()}, **generated, **codecs}
    _log(f"  {len(everything)} files in all")

    results: dict[str, Any] = {
        "files": {
            k: {kk: vv for kk, vv in v.items() if kk != "path"} for k, v in everything.items()
        }
    }
    tools: dict[str, dict[str, dict[str, Any]]] = {}
    t0 = time.monotonic()
    tools["tracktiond"] = await run_tracktiond(everything, AnalysisSettings(), WORKER_COMMAND)
    _log(f"  tracktiond: {time.monotonic() - t0:.0f} s")
    if args.baseline:
        # -P: the current directory must not come before PYTHONPATH, or this checkout's
        # worker would run instead of the baseline's.
        worker = ("env", f"PYTHONPATH={args.baseline}", sys.executable, "-P", *WORKER_COMMAND[1:])
        # The old defaults (70-180 BPM) for the old engine, so it runs as it did.
        old = AnalysisSettings(bpm_min=70.0, bpm_max=180.0)
        tools["baseline"] = await run_tracktiond(everything, old, worker)
        _log(f"  baseline done: {time.monotonic() - t0:.0f} s")
    key_files = {k: v for k, v in everything.items() if v.get("key")}
    profiles: dict[str, Any] = {}
    if not (args.quick or args.skip_profiles):
        for profile in PROFILES:
            found = await run_tracktiond(
                key_files, AnalysisSettings(key_profile=profile), WORKER_COMMAND
            )
            profiles[profile] = score_key(key_files, found)
        _log(f"  profiles done: {time.monotonic() - t0:.0f} s")
    if not args.skip_essentia:
        tools["essentia"] = await anyio.to_thread.run_sync(run_plain, "essentia", everything)
        _log(f"  essentia done: {time.monotonic() - t0:.0f} s")
    if not args.skip_librosa:
        tools["librosa"] = await anyio.to_thread.run_sync(run_plain, "librosa", everything)
        _log(f"  librosa done: {time.monotonic() - t0:.0f} s")

    results["found"] = tools
    results["tempo"] = {t: score_tempo(everything, f) for t, f in tools.items()}
    results["key"] = {t: score_key(everything, f) for t, f in tools.items()}
    results["key_profiles"] = profiles
    results["confidence"] = {
        t: score_confidence(everything, f)
        for t, f in tools.items()
        if t in ("tracktiond", "baseline")
    }
    results["codecs"] = {t: score_codecs(everything, f) for t, f in tools.items()}
    results["spread"] = {t: spread(f) for t, f in tools.items() if t in ("tracktiond", "baseline")}
    results["tuning"] = {
        n: {"truth": c["tuning_hz"], "found": tools["tracktiond"].get(n, {}).get("tuning_hz")}
        for n, c in everything.items()
        if c.get("tuning_hz")
    }
    results["load_average"] = os.getloadavg()
    return results


def _print(results: dict[str, Any]) -> None:
    tools = list(results["found"])
    print("\n## Tempo (Accuracy1 / Accuracy2 of n)\n")
    classes = sorted({c for t in tools for c in results["tempo"][t]})
    print("| class | n | " + " | ".join(tools) + " |")
    print("|---|---:|" + "---:|" * len(tools))
    for cls in classes:
        n = next(results["tempo"][t][cls]["n"] for t in tools if cls in results["tempo"][t])
        cells = [
            f"{results['tempo'][t][cls]['acc1']} / {results['tempo'][t][cls]['acc2']}"
            if cls in results["tempo"][t]
            else "–"
            for t in tools
        ]
        print(f"| {cls} | {n} | " + " | ".join(cells) + " |")
    print("\n## Key (exact / MIREX weighted)\n")
    classes = sorted({c for t in tools for c in results["key"][t]})
    print("| class | n | " + " | ".join(tools) + " |")
    print("|---|---:|" + "---:|" * len(tools))
    for cls in classes:
        n = next(results["key"][t][cls]["n"] for t in tools if cls in results["key"][t])
        cells = [
            f"{results['key'][t][cls]['exact']} / {results['key'][t][cls]['weighted']:.2f}"
            if cls in results["key"][t]
            else "–"
            for t in tools
        ]
        print(f"| {cls} | {n} | " + " | ".join(cells) + " |")
    if results["key_profiles"]:
        print("\n## Key profiles (tracktiond, exact of n)\n")
        profiles = list(results["key_profiles"])
        classes = sorted({c for p in profiles for c in results["key_profiles"][p]})
        print("| class | " + " | ".join(profiles) + " |")
        print("|---|" + "---:|" * len(profiles))
        for cls in classes:
            cells = [
                f"{results['key_profiles'][p][cls]['exact']}/{results['key_profiles'][p][cls]['n']}"
                for p in profiles
            ]
            print(f"| {cls} | " + " | ".join(cells) + " |")
    print("\n## Confidence\n")
    for tool, c in results["confidence"].items():
        print(f"* {tool}: {json.dumps(c)}")
    print("\n## Codecs (same key / same BPM across " + ", ".join(CODECS) + ")\n")
    for tool, c in results["codecs"].items():
        cells = [
            f"{s}: key {'yes' if v['same_key'] else 'NO ' + str(v['keys'])}, "
            f"bpm {'yes' if v['same_bpm'] else 'NO ' + str(v['bpms'])}"
            for s, v in c.items()
        ]
        print(f"* {tool}: " + "; ".join(cells))
    print("\n## Spread\n")
    for tool, s in results["spread"].items():
        print(f"* {tool}: {json.dumps(s)}")
    print(f"\n* tuning: {json.dumps(results['tuning'])}")
    print(f"* load average at the end: {results['load_average']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tracktiond-accuracy"))
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--quick", action="store_true", help="fewer generated cases, no profiles")
    parser.add_argument("--baseline", type=Path, help="an older checkout to compare with")
    parser.add_argument("--skip-profiles", action="store_true", help="no key-profile comparison")
    parser.add_argument("--skip-essentia", action="store_true")
    parser.add_argument("--skip-librosa", action="store_true")
    args = parser.parse_args()
    results = anyio.run(_main, args)
    args.workdir.mkdir(parents=True, exist_ok=True)
    (args.workdir / "accuracy.json").write_text(json.dumps(results, indent=1, default=str))
    _print(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
