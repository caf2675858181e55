"""The emulator's command-line flags and serving loop, shared by ``manage.py qbo_emulator``
and ``python -m qbo_emulator`` (which differ only in their defaults)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

from .server import RunningEmulator, start_emulator

DEFAULTS = {
    "host": "127.0.0.1",
    "port": 8765,
    "client_id": "qbo-emulator-client",
    "client_secret": "qbo-emulator-secret",
    "redirect_uris": [],
    "webhook_url": None,
    "webhook_verifier": "qbo-emulator-verifier",
}


def add_arguments(parser, defaults: dict | None = None) -> None:
    """The flags the issue names, with ``defaults`` (e.g. from Django settings) applied."""
    values = {**DEFAULTS, **{k: v for k, v in (defaults or {}).items() if v}}
    parser.add_argument("--host", default=values["host"])
    parser.add_argument("--port", type=int, default=values["port"])
    parser.add_argument("--client-id", default=values["client_id"])
    parser.add_argument("--client-secret", default=values["client_secret"])
    parser.add_argument(
        "--redirect-uri",
        action="append",
        dest="redirect_uris",
        default=None,
        help="A registered redirect URI; repeat for several.",
    )
    parser.add_argument("--webhook-url", default=values["webhook_url"])
    parser.add_argument("--webhook-verifier", default=values["webhook_verifier"])
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument(
        "--lost-rate",
        type=float,
        default=0.0,
        help="A further chance that a write's answer is lost after it is applied.",
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-throttle", action="store_true")
    parser.add_argument("--cloudevents", action="store_true")
    parser.add_argument("--state-file", default=None)
    parser.set_defaults(default_redirect_uris=list(values["redirect_uris"]))


def start_from_options(options: dict) -> RunningEmulator:
    """Start an emulator from parsed flags. Raises ValueError for a bad flag, OSError when
    the address cannot be bound."""
    if not 0.0 <= options["fault_rate"] <= 1.0:
        raise ValueError("--fault-rate must be between 0 and 1")
    lost_rate = options.get("lost_rate") or 0.0
    if not 0.0 <= lost_rate <= 1.0:
        raise ValueError("--lost-rate must be between 0 and 1")
    return start_emulator(
        options["host"],
        options["port"],
        client_id=options["client_id"],
        client_secret=options["client_secret"],
        redirect_uris=options["redirect_uris"] or options["default_redirect_uris"],
        webhook_url=options["webhook_url"],
        webhook_verifier=options["webhook_verifier"],
        cloudevents=options["cloudevents"],
        latency_ms=options["latency_ms"],
        fault_rate=options["fault_rate"],
        lost_rate=lost_rate,
        seed=options["seed"],
        throttle=not options["no_throttle"],
        state_file=options["state_file"],
    )


def serve_until_signalled(emulator: RunningEmulator, announce: Callable[[str], None]) -> None:
    """Announce the base URL, serve until SIGINT or SIGTERM, then stop cleanly."""
    announce(emulator.base_url)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
