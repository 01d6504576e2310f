"""What the benchmarks record about the machine they ran on (shared by every bench/ script).

Figures mean little without the machine, the load it carried and the code that was measured.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def load_average() -> str | None:
    """The 1/5/15-minute load averages: other work on the machine skews every figure."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return None


def machine_info(
    workdir: Path,
    *,
    dists: Sequence[str] = ("tracktiond",),
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """CPU, memory, filesystem of ``workdir``, package versions, and where and at which commit
    the measured ``tracktiond`` is imported from (PYTHONPATH may point at a snapshot)."""
    info: dict[str, Any] = {
        "nproc": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpu_model": "unknown",
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
        models = [ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")]
        flags = next((ln for ln in cpuinfo if ln.startswith("flags")), "").split()
        info["cpu_model"] = models[0] if models else "unknown"
        info["cpu_sha_ni"] = "sha_ni" in flags
    except OSError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    df = subprocess.run(["df", "-T", str(workdir)], capture_output=True, text=True, check=False)
    lines = df.stdout.splitlines()
    if len(lines) >= 2:
        parts = lines[1].split()
        info["filesystem"] = f"{parts[1]} on {parts[0]}"
    for dist in dists:
        try:
            info[f"{dist}_version"] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            info[f"{dist}_version"] = None
    where = subprocess.run(
        [sys.executable, "-c", "import tracktiond; print(tracktiond.__file__)"],
        capture_output=True,
        text=True,
        check=False,
        env=dict(env) if env is not None else None,
        cwd="/",  # not the repository: `python -c` puts the cwd first on sys.path
    )
    source = Path(where.stdout.strip()).parent if where.returncode == 0 else None
    info["tracktiond_source"] = str(source) if source else None
    git = subprocess.run(
        ["git", "-C", str(source or REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    info["tracktiond_commit"] = git.stdout.strip() or None
    info["loadavg_at_start"] = load_average()
    return info
