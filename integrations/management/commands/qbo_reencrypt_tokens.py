"""``manage.py qbo_reencrypt_tokens``: re-encrypt stored tokens with the newest key."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from integrations import services


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored QuickBooks token with the first key of TOKEN_ENCRYPTION_KEYS. "
        "Rotate a key by putting the new key first, running this, then removing the old key."
    )

    def handle(self, *args, **options) -> None:
        try:
            count = services.tokens_reencrypt()
        except services.TokensNotReencrypted as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-encrypted the tokens of {count} connection(s) with the newest key."
            )
        )
