"""The hashing floor of a first scan: read every file once and hash it, nothing else.

Any tool that keeps what tracktiond keeps per file (sha256 and xxh3-128 of every byte) pays at
least this: the same 1 MiB sequential reads into one reused buffer, OpenSSL's sha256 (hashlib)
and xxh3-128, on as many threads as there are CPUs. No tags, no catalog, no audio-range hash.
``sha256sum`` is a weaker floor on machines where coreutils is not linked against libcrypto.

    python bench/hashfloor.py LIST_FILE [--threads N]

LIST_FILE holds NUL-separated paths (what ``xargs -0 -a`` reads). Prints one JSON document:
files, bytes, threads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import xxhash

from tracktiond.media.hashing import CHUNK_BYTES as CHUNK  # the scan's own read size


def hash_file(path: str) -> int:
    sha = hashlib.sha256()
    xxh = xxhash.xxh3_128()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    total = 0
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        while n := os.readv(fd, [buf]):
            sha.update(view[:n])
            xxh.update(view[:n])
            total += n
    finally:
        os.close(fd)
    sha.hexdigest()
    xxh.hexdigest()
    return total


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("list_file")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    with open(args.list_file, "rb") as f:
        paths = [os.fsdecode(p) for p in f.read().split(b"\0") if p]
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        total = sum(pool.map(hash_file, paths))
    json.dump({"files": len(paths), "bytes": total, "threads": args.threads}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
