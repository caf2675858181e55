"""``manage.py qbo_emulator``: serve the QuickBooks Online emulator until stopped."""

from __future__ import annotations

import signal
import threading
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from integrations.quickbooks.emulator import start_emulator

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def _emulator_address() -> tuple[str, int]:
    """Host and port from QBO_EMULATOR_URL, so the portal and the emulator agree."""
    url = getattr(settings, "QBO_EMULATOR_URL", "") or ""
    if not url:
        return DEFAULT_HOST, DEFAULT_PORT
    parts = urlsplit(url)
    return parts.hostname or DEFAULT_HOST, parts.port or DEFAULT_PORT


class Command(BaseCommand):
    help = "Serve a QuickBooks Online emulator (OAuth 2.0 and the v3 Accounting API)."

    def add_arguments(self, parser) -> None:
        host, port = _emulator_address()
        redirect = getattr(settings, "QBO_REDIRECT_URI", None)
        parser.add_argument("--host", default=host)
        parser.add_argument("--port", type=int, default=port)
        parser.add_argument(
            "--client-id", default=getattr(settings, "QBO_CLIENT_ID", None) or "qbo-emulator-client"
        )
        parser.add_argument(
            "--client-secret",
            default=getattr(settings, "QBO_CLIENT_SECRET", None) or "qbo-emulator-secret",
        )
        parser.add_argument(
            "--redirect-uri",
            action="append",
            dest="redirect_uris",
            help="A registered redirect URI; repeat for several.",
        )
        parser.add_argument(
            "--webhook-url", default=getattr(settings, "QBO_EMULATOR_WEBHOOK_URL", None)
        )
        parser.add_argument(
            "--webhook-verifier",
            default=getattr(settings, "QBO_WEBHOOK_VERIFIER_TOKEN", None)
            or "qbo-emulator-verifier",
        )
        parser.add_argument("--latency-ms", type=int, default=0)
        parser.add_argument("--fault-rate", type=float, default=0.0)
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--no-throttle", action="store_true")
        parser.add_argument("--cloudevents", action="store_true")
        parser.add_argument("--state-file", default=None)
        parser.set_defaults(default_redirect=redirect)

    def handle(self, *args, **options) -> None:
        redirect_uris = options["redirect_uris"] or (
            [options["default_redirect"]] if options["default_redirect"] else []
        )
        if not 0.0 <= options["fault_rate"] <= 1.0:
            raise CommandError("--fault-rate must be between 0 and 1")
        try:
            emulator = start_emulator(
                options["host"],
                options["port"],
                client_id=options["client_id"],
                client_secret=options["client_secret"],
                redirect_uris=redirect_uris,
                webhook_url=options["webhook_url"],
                webhook_verifier=options["webhook_verifier"],
                cloudevents=options["cloudevents"],
                latency_ms=options["latency_ms"],
                fault_rate=options["fault_rate"],
                seed=options["seed"],
                throttle=not options["no_throttle"],
                state_file=options["state_file"],
            )
        except OSError as exc:
            raise CommandError(
                f"Cannot listen on {options['host']}:{options['port']}: {exc}"
            ) from exc
        self.stdout.write(emulator.base_url)
        self.stdout.flush()
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        try:
            while not stop.wait(0.5):
                pass
        finally:
            emulator.stop()
