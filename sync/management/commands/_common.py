"""Shared bits of the sync management commands."""

from django.core.management.base import CommandError

from integrations.models import Connection


def add_connection_argument(parser) -> None:
    parser.add_argument(
        "--realm",
        help="QuickBooks company (realm) id; default: every connected company.",
    )


def connections(realm: str | None) -> list[Connection]:
    qs = Connection.objects.all()
    if realm:
        qs = qs.filter(realm_id=realm)
        if not qs.exists():
            raise CommandError(f"No QuickBooks company with realm id {realm} is connected here.")
    else:
        qs = qs.filter(status=Connection.Status.CONNECTED)
    found = list(qs)
    if not found:
        raise CommandError(
            "No QuickBooks company is connected. Connect one on the admin's QuickBooks page."
        )
    return found
