from django.conf import settings
from django.core.management.base import BaseCommand

from portal.services import demo_data_load

PASSWORD_STATES = {
    "kept": "unchanged since the last start",
    "new": "set now",
    "reset": "CHANGED: the login had another password, now reset to this one",
}


class Command(BaseCommand):
    help = (
        "Load the demo customers, items, tax rates and invoices, make sure the demo login "
        "exists with its password (DEMO_PASSWORD), and say whether QuickBooks is connected."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo", help="Login to create (default: demo).")
        parser.add_argument(
            "--password",
            default=None,
            help="The login's password (default: DEMO_PASSWORD; without it, a fresh one each "
            "time).",
        )

    def handle(self, *args, username: str, password: str | None, **options):
        given = settings.DEMO_PASSWORD if password is None else password
        result = demo_data_load(username=username, password=given)
        summary = ", ".join(f"{count} {name}" for name, count in result.created.items())
        self.stdout.write(f"Demo data: created {summary} (existing records kept).")
        state = PASSWORD_STATES[result.password_state]
        if not given:
            state += "; set DEMO_PASSWORD in .env to keep it across starts"
        line = f"Login: {result.username}   Password: {result.password}   ({state})"
        style = self.style.WARNING if result.password_state == "reset" else self.style.SUCCESS
        self.stdout.write(style(line))
        self.stdout.write(quickbooks_state())


def quickbooks_state() -> str:
    """Where the QuickBooks connection stands, and what to do next, in one line."""
    from integrations.models import Connection
    from integrations.selectors import connection_current

    connection = connection_current()
    if connection is None or connection.status == Connection.Status.DISCONNECTED:
        return (
            "QuickBooks: not connected. Sign in, open QuickBooks (top right) and press "
            "Connect to QuickBooks."
        )
    company = connection.company_name or f"realm {connection.realm_id}"
    if connection.status == Connection.Status.NEEDS_RECONNECT:
        return (
            f"QuickBooks: {company} needs reconnecting ({connection.last_error}). Sign in, "
            "open QuickBooks and press Reconnect."
        )
    return (
        f"QuickBooks: connected to {company} (realm {connection.realm_id}). Sign in and press "
        "Sync now on the QuickBooks page."
    )
