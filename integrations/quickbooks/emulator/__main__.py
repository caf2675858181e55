"""``python -m integrations.quickbooks.emulator``: the emulator without Django.

Same flags as ``manage.py qbo_emulator``, with built-in defaults instead of settings.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import start_emulator


def main(argv: list[str] | None = None) -> int:
    """Parse flags, serve until SIGINT/SIGTERM, return the exit status."""
    parser = argparse.ArgumentParser(prog="qbo-emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--client-id", default="qbo-emulator-client")
    parser.add_argument("--client-secret", default="qbo-emulator-secret")
    parser.add_argument("--redirect-uri", action="append", dest="redirect_uris", default=[])
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument("--webhook-verifier", default="qbo-emulator-verifier")
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-throttle", action="store_true")
    parser.add_argument("--cloudevents", action="store_true")
    parser.add_argument("--state-file", default=None)
    args = parser.parse_args(argv)
    emulator = start_emulator(
        args.host,
        args.port,
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=args.redirect_uris,
        webhook_url=args.webhook_url,
        webhook_verifier=args.webhook_verifier,
        cloudevents=args.cloudevents,
        latency_ms=args.latency_ms,
        fault_rate=args.fault_rate,
        seed=args.seed,
        throttle=not args.no_throttle,
        state_file=args.state_file,
    )
    print(emulator.base_url, flush=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
