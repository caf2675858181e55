"""``manage.py qbo_emulator``: serve the QuickBooks Online emulator until stopped."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from qbo_emulator.cli import (
    DEFAULTS,
    add_arguments,
    serve_until_signalled,
    start_from_options,
)


def _settings_defaults() -> dict:
    """Defaults from the portal's settings, so the portal and the emulator agree."""
    url = getattr(settings, "QBO_EMULATOR_URL", "") or ""
    parts = urlsplit(url) if url else None
    redirect = getattr(settings, "QBO_REDIRECT_URI", None)
    return {
        "host": (parts.hostname if parts else None) or DEFAULTS["host"],
        "port": (parts.port if parts else None) or DEFAULTS["port"],
        "client_id": getattr(settings, "QBO_CLIENT_ID", None),
        "client_secret": getattr(settings, "QBO_CLIENT_SECRET", None),
        "redirect_uris": [redirect] if redirect else [],
        "webhook_url": getattr(settings, "QBO_EMULATOR_WEBHOOK_URL", None),
        "webhook_verifier": getattr(settings, "QBO_WEBHOOK_VERIFIER_TOKEN", None),
    }


class Command(BaseCommand):
    help = "Serve a QuickBooks Online emulator (OAuth 2.0 and the v3 Accounting API)."

    def add_arguments(self, parser) -> None:
        add_arguments(parser, _settings_defaults())

    def handle(self, *args, **options) -> None:
        try:
            emulator = start_from_options(options)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        except OSError as exc:
            raise CommandError(
                f"Cannot listen on {options['host']}:{options['port']}: {exc}"
            ) from exc

        def announce(url: str) -> None:
            self.stdout.write(url)
            self.stdout.flush()

        serve_until_signalled(emulator, announce)
