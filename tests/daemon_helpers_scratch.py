"""scratch: timing experiments (deleted afterwards)"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class D:
    def __init__(self, cfg: Path, env: dict[str, str], log: Path, port: int) -> None:
        self.cfg, self.env, self.log_path, self.port = cfg, env, log, port

    def start(self):
        self.fh = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tracktiond", "run", "--config", str(self.cfg)],
            stdin=subprocess.DEVNULL, stdout=self.fh, stderr=self.fh, env=self.env,
        )
        return self

    def get(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self):
        out = {}
        for fam in text_string_to_metric_families(self.get("/metrics")[1]):
            for s in fam.samples:
                out[s.name + json.dumps(s.labels, sort_keys=True)] = s.value
        return out


def main() -> None:
    tmp = Path(sys.argv[1])
    db = sys.argv[2]
    n = int(sys.argv[3])
    ndaemons = int(sys.argv[4])
    workers = int(sys.argv[5])
    lib = tmp / "music"
    env = dict(os.environ, TRACKTIOND_DATABASE_URL=db, XDG_STATE_HOME=str(tmp / "s"))
    ds = []
    for i in range(ndaemons):
        port = free_port()
        cfg = tmp / f"c{i}.toml"
        cfg.write_text(
            f'[library]\nroots=["{lib}"]\nsettle_interval=0.5\n[http]\nlisten="127.0.0.1:{port}"\n'
            f"[workers]\ncount={workers}\n"
        )
        ds.append(D(cfg, env, tmp / f"log{i}", port))
    t0 = time.monotonic()
    for d in ds:
        d.start()
    done = False
    while not done:
        time.sleep(0.05)
        tot = 0
        row = []
        for d in ds:
            try:
                m = d.metrics()
            except OSError:
                row.append(None)
                continue
            j = sum(v for k, v in m.items() if k.startswith("tracktiond_jobs_processed_total{"))
            row.append(j)
            tot += j
        print(f"{time.monotonic()-t0:.2f}", row)
        done = tot >= n
    for d in ds:
        d.proc.send_signal(signal.SIGTERM)
        print("exit", d.proc.wait(20))


main()
