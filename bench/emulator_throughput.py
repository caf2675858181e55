"""Measure the QBO emulator's throughput with throttling off (issue 3: at least 300 req/s).

Starts the emulator in its own process (``python -m qbo_emulator``) unless
``--url`` points at a running one, then drives it from client threads with ``requests``:
a mix of reads, queries and creates, like a sync run. Prints requests per second.

    .venv/bin/python bench/emulator_throughput.py [--threads 8] [--seconds 5] [--url URL]
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def start_server() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "qbo_emulator", "--port", "0", "--no-throttle"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    base_url = process.stdout.readline().strip()
    if not base_url.startswith("http"):
        process.kill()
        raise SystemExit("the emulator did not start")
    return process, base_url


def worker(base_url: str, realm_id: str, token: str, stop_at: float, counts: list, n: int):
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})
    api = f"{base_url}/v3/company/{realm_id}"
    done = errors = 0
    for i in itertools.count():
        if time.perf_counter() >= stop_at:
            break
        kind = i % 4
        if kind == 0:
            response = session.post(
                f"{api}/customer", json={"DisplayName": f"Bench {n}-{i}"}, timeout=10
            )
        elif kind == 1:
            response = session.get(
                f"{api}/query", params={"query": "select * from Item"}, timeout=10
            )
        elif kind == 2:
            response = session.get(f"{api}/preferences", timeout=10)
        else:
            response = session.get(f"{api}/companyinfo/{realm_id}", timeout=10)
        done += 1
        errors += response.status_code != 200
    counts[n] = (done, errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--url", default=None, help="a running emulator (throttle off)")
    args = parser.parse_args()
    process = None
    base_url = args.url
    if base_url is None:
        process, base_url = start_server()
    try:
        status = requests.get(f"{base_url}/_emulator", timeout=5).json()
        realm_id = status["realms"][0]["realm_id"]
        token = requests.post(
            f"{base_url}/_emulator/tokens", json={"realm_id": realm_id}, timeout=5
        ).json()["access_token"]
        counts: list = [(0, 0)] * args.threads
        started = time.perf_counter()
        stop_at = started + args.seconds
        threads = [
            threading.Thread(target=worker, args=(base_url, realm_id, token, stop_at, counts, n))
            for n in range(args.threads)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        total = sum(done for done, _ in counts)
        failed = sum(errors for _, errors in counts)
        print(
            f"{total} requests in {elapsed:.2f}s with {args.threads} threads: "
            f"{total / elapsed:.0f} req/s ({failed} non-200)"
        )
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
