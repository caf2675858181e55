"""What every QuickBooks management command shares: choosing the companies to work on."""

from django.core.management.base import CommandError

from integrations.models import Connection
from integrations.selectors import connections_selected


def add_connection_argument(parser) -> None:
    parser.add_argument(
        "--realm", help="QuickBooks company (realm) ID; default: every connected company."
    )


def connections(realm: str | None) -> list[Connection]:
    """The companies to work on, or a CommandError saying why there is none."""
    try:
        return connections_selected(realm=realm)
    except LookupError as exc:
        raise CommandError(str(exc)) from exc
