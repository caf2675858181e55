"""``manage.py qbo_fetch_accounts``: load accounts and tax codes from QuickBooks."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from integrations import services
from integrations.management.commands._common import add_connection_argument
from integrations.management.commands._common import connections as select_connections
from integrations.quickbooks.errors import QBOError


class Command(BaseCommand):
    help = (
        "Fetch the chart of accounts and the sales tax codes from QuickBooks, as the admin's "
        "'Fetch Accounts From QuickBooks' button does, for every connected company or one."
    )

    def add_arguments(self, parser) -> None:
        add_connection_argument(parser)

    def handle(self, *args, realm: str | None = None, **options) -> None:
        connections = select_connections(realm)
        failed = 0
        for connection in connections:
            self.stdout.write(f"{connection} (realm {connection.realm_id}): fetching...")
            try:
                accounts = services.accounts_fetch(connection=connection)
                codes = services.tax_codes_fetch(connection=connection)
            except services.ReconnectRequired as exc:
                failed += 1
                self.stderr.write(self.style.ERROR(f"  {exc.user_message}"))
                continue
            except QBOError as exc:
                failed += 1
                self.stderr.write(self.style.ERROR(f"  Fetching failed: {exc.user_message}"))
                continue
            self.stdout.write(
                f"  accounts: {accounts.total} ({accounts.inactive} inactive; {accounts})"
            )
            self.stdout.write(f"  tax codes: {codes.total} ({codes.inactive} inactive; {codes})")
        if failed:
            raise CommandError(
                f"Fetching failed for {failed} of {_companies(len(connections))}; see above."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Fetched accounts and tax codes for {_companies(len(connections))}."
            )
        )


def _companies(count: int) -> str:
    return f"{count} {'company' if count == 1 else 'companies'}"
