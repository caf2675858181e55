"""The connection's management commands: what they print and when they refuse."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from integrations.models import Connection

CRAIGS = "Craig's Design and Landscaping Services"


def run(name: str, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_fetch_accounts_for_every_connected_company(qbo, connection_factory):
    connection = connection_factory()
    qbo.app.reset_realm(qbo.realm_ids[1])
    connection_factory(realm_id=qbo.realm_ids[1])
    connection_factory(realm_id="123", status=Connection.Status.DISCONNECTED)

    out, err = run("qbo_fetch_accounts")

    assert err == ""
    assert out.splitlines() == [
        f"{CRAIGS} (realm {qbo.realm_ids[0]}): fetching...",
        "  accounts: 19 (1 inactive; 19 new, 0 updated, 0 no longer active)",
        "  tax codes: 4 (0 inactive; 4 new, 0 updated, 0 no longer active)",
        f"Sandbox Company_US_2 (realm {qbo.realm_ids[1]}): fetching...",
        "  accounts: 19 (1 inactive; 19 new, 0 updated, 0 no longer active)",
        "  tax codes: 4 (0 inactive; 4 new, 0 updated, 0 no longer active)",
        "Fetched accounts and tax codes for 2 companies.",
    ]
    assert connection.accounts.count() == 19


def test_fetch_accounts_for_one_realm_again(qbo, connection_factory):
    connection_factory()
    qbo.app.reset_realm(qbo.realm_ids[1])
    connection_factory(realm_id=qbo.realm_ids[1])
    run("qbo_fetch_accounts", "--realm", qbo.realm_ids[0])

    out, _ = run("qbo_fetch_accounts", "--realm", qbo.realm_ids[0])

    assert out.splitlines() == [
        f"{CRAIGS} (realm {qbo.realm_ids[0]}): fetching...",
        "  accounts: 19 (1 inactive; 0 new, 19 updated, 0 no longer active)",
        "  tax codes: 4 (0 inactive; 0 new, 4 updated, 0 no longer active)",
        "Fetched accounts and tax codes for 1 company.",
    ]


def test_fetch_accounts_with_an_unknown_realm(qbo, connection_factory):
    connection_factory()

    with pytest.raises(
        CommandError, match=re.escape("No QuickBooks company with realm ID 42 is known here.")
    ):
        run("qbo_fetch_accounts", "--realm", "42")


def test_fetch_accounts_with_nothing_connected(db, qbo):
    with pytest.raises(CommandError, match=re.escape("No QuickBooks company is connected.")):
        run("qbo_fetch_accounts")


def test_fetch_accounts_for_a_company_needing_reconnect(qbo, connection_factory):
    connection_factory(status=Connection.Status.NEEDS_RECONNECT, last_error="Reconnect first.")

    out = StringIO()
    err = StringIO()
    with pytest.raises(
        CommandError, match=re.escape("Fetching failed for 1 of 1 company; see above.")
    ):
        call_command("qbo_fetch_accounts", "--realm", qbo.realm_ids[0], stdout=out, stderr=err)

    assert err.getvalue().strip() == "Reconnect first."


def test_reencrypt_tokens_counts_the_connections(qbo, connection_factory, settings):
    old = Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEYS = [old]
    connection = connection_factory()
    raw = connection.refresh_token
    settings.TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), old]

    out, _ = run("qbo_reencrypt_tokens")

    assert out == "Re-encrypted the tokens of 1 connection(s) with the newest key.\n"
    settings.TOKEN_ENCRYPTION_KEYS = settings.TOKEN_ENCRYPTION_KEYS[:1]
    connection.refresh_from_db()
    assert connection.refresh_token == raw


def test_reencrypt_tokens_with_nothing_stored(db):
    out, _ = run("qbo_reencrypt_tokens")

    assert out == "Re-encrypted the tokens of 0 connection(s) with the newest key.\n"


def test_reencrypt_tokens_when_the_old_key_is_already_gone(qbo, connection_factory, settings):
    lost = connection_factory()
    settings.TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(CommandError) as caught:
        run("qbo_reencrypt_tokens")

    assert str(caught.value) == (
        f"Re-encrypted the tokens of 0 connection(s), but those of connection(s) {lost.pk} "
        "cannot be decrypted with TOKEN_ENCRYPTION_KEYS. Put back the key that encrypted them, "
        "or reconnect those companies."
    )
