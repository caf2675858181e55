"""Reads on the QuickBooks connection."""

from __future__ import annotations

from django.conf import settings

from integrations.models import Connection, QuickBooksAccount
from integrations.services import JOURNAL_ACCOUNT_TYPES


def connection_current() -> Connection | None:
    """The connection the admin works with: the newest one not disconnected, else the newest."""
    connections = Connection.objects.filter(environment=settings.QBO_ENVIRONMENT).select_related(
        "income_account", "expense_account", "asset_account", "connected_by", "sync_started_by"
    )
    active = connections.exclude(status=Connection.Status.DISCONNECTED).order_by("-connected_at")
    return active.first() or connections.order_by("-connected_at").first()


def connections_selected(*, realm: str | None) -> list[Connection]:
    """The companies a command works on: one realm (whatever its status) or every connected one.

    Raises LookupError, with a message for the operator, when there is none.
    """
    connections = Connection.objects.filter(environment=settings.QBO_ENVIRONMENT)
    if realm:
        connections = connections.filter(realm_id=realm)
        if not connections.exists():
            raise LookupError(f"No QuickBooks company with realm ID {realm} is known here.")
    else:
        connections = connections.filter(status=Connection.Status.CONNECTED)
    found = list(connections.order_by("pk"))
    if not found:
        raise LookupError(
            "No QuickBooks company is connected. Connect one on the admin's QuickBooks page."
        )
    return found


def journal_choices(*, connection: Connection) -> dict[str, list[QuickBooksAccount]]:
    """Active accounts each journal may use, as QuickBooks allows them on items."""
    accounts = list(connection.accounts.filter(active=True))
    choices = {}
    for field, types in JOURNAL_ACCOUNT_TYPES.items():
        options = [a for a in accounts if a.account_type in types]
        if field == "asset_account":
            options = [a for a in options if a.account_sub_type == "Inventory"]
        choices[field] = options
    return choices
