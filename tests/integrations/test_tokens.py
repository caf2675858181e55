"""The token lifecycle against the emulator: refresh, single flight, rotation, invalid_grant,
encryption at rest and key rotation, and that no token ever shows up anywhere."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
import requests
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection as db
from django.db import connections
from django.test import Client
from django.utils import timezone

from integrations import crypto, services
from integrations.models import Connection
from integrations.quickbooks import oauth
from integrations.quickbooks.errors import InvalidGrantError
from qbo_emulator import start_emulator
from qbo_emulator.oauth import JWE_HEADER
from tests.conftest import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, EMULATOR_REDIRECT_URI
from tests.integrations.connect_steps import (
    consent,
    follow,
    shown_messages,
    start_connect,
    token_requests,
)


def expired(connection_factory, **fields) -> Connection:
    """A connection whose access token has run out (refresh due)."""
    return connection_factory(
        access_token_expires_at=timezone.now() - timedelta(minutes=1), **fields
    )


def revoke_at_intuit(emulator, token: str) -> None:
    answer = requests.post(
        f"{emulator.base_url}/v2/oauth2/tokens/revoke",
        json={"token": token},
        auth=(EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET),
        timeout=10,
    )
    assert answer.status_code == 200


# --- Refresh -------------------------------------------------------------------------------


def test_a_fresh_access_token_is_used_without_refreshing(qbo, connection_factory):
    connection = connection_factory()

    token, version = services.connection_access_token(connection_id=connection.pk)

    assert token == connection.access_token
    assert version == connection.token_version
    assert token_requests(qbo) == []


def test_an_expired_access_token_is_refreshed_before_use(qbo, connection_factory):
    connection = expired(connection_factory)
    old = connection.access_token

    company = services.connection_client(connection=connection).company_info()

    assert company["CompanyName"]
    assert len(token_requests(qbo)) == 1
    connection.refresh_from_db()
    assert connection.access_token != old
    assert connection.token_version == 1
    assert connection.last_refreshed_at is not None
    assert connection.refresh_lease_until is None
    left = connection.access_token_expires_at - timezone.now()
    assert timedelta(minutes=55) < left <= timedelta(hours=1)


def test_an_access_token_about_to_expire_is_refreshed_early(qbo, connection_factory):
    connection = connection_factory(access_token_expires_at=timezone.now() + timedelta(minutes=2))

    token, _ = services.connection_access_token(connection_id=connection.pk)

    assert token != connection.access_token
    assert len(token_requests(qbo)) == 1


def test_an_access_token_quickbooks_refuses_is_refreshed_once(qbo, connection_factory):
    unknown = JWE_HEADER + "." * 2 + "x" * 200  # well formed, never issued: QBO answers 401
    connection = connection_factory(access_token_encrypted=crypto.encrypt(unknown))

    company = services.connection_client(connection=connection).company_info()

    assert company["CompanyName"]
    assert len(token_requests(qbo)) == 1
    connection.refresh_from_db()
    assert connection.access_token != unknown


def test_emulator_time_past_expiry_leads_to_a_refresh(qbo, connection_factory):
    connection = connection_factory()
    # The emulator's clock moves past the token's hour, and Ledgerlink's belief with it.
    qbo.advance_clock(3700)
    try:
        Connection.objects.filter(pk=connection.pk).update(
            access_token_expires_at=timezone.now() - timedelta(seconds=100)
        )
        assert services.connection_client(connection=connection).company_info()
    finally:
        qbo.advance_clock(-3700)
    assert len(token_requests(qbo)) == 1


def _race(connection_id: int, callers: int) -> list:
    barrier = threading.Barrier(callers)
    results: list = [None] * callers

    def call(index: int) -> None:
        try:
            barrier.wait()
            results[index] = services.connection_access_token(connection_id=connection_id)
        except Exception as exc:  # reported by the assertion below
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("callers", [2, 5])
def test_concurrent_callers_cause_exactly_one_refresh(
    qbo, connection_factory, monkeypatch, callers
):
    if db.vendor == "sqlite" and db.is_in_memory_db():
        # Threads on SQLite's shared-cache memory database get "table is locked" at once
        # instead of waiting; a deployment uses a file, covered by the worker processes test.
        pytest.skip("in-memory SQLite; see test_worker_processes_sharing_a_sqlite_file")
    connection = expired(connection_factory)
    real_refresh = oauth.refresh
    calls = []

    def slow_refresh(*args, **kwargs):
        calls.append(1)
        threading.Event().wait(0.3)  # a slow Intuit keeps the race window open
        return real_refresh(*args, **kwargs)

    monkeypatch.setattr(oauth, "refresh", slow_refresh)

    results = _race(connection.pk, callers)

    assert [type(r).__name__ for r in results] == ["tuple"] * callers
    assert len(calls) == 1
    assert len(token_requests(qbo)) == 1
    assert len({token for token, _ in results}) == 1
    connection.refresh_from_db()
    assert results[0] == (connection.access_token, connection.token_version)
    # The refresh token Ledgerlink kept is the one Intuit holds as current.
    assert oauth.refresh(connection.refresh_token).access_token


@pytest.mark.django_db(transaction=True)
def test_a_stale_lease_from_a_crashed_worker_is_taken_over(qbo, connection_factory):
    connection = expired(connection_factory)
    Connection.objects.filter(pk=connection.pk).update(
        refresh_lease_until=timezone.now() - timedelta(seconds=1)
    )

    token, _ = services.connection_access_token(connection_id=connection.pk)

    assert token != connection.access_token
    assert len(token_requests(qbo)) == 1


@pytest.mark.django_db(transaction=True)
def test_waiting_on_a_refresh_that_never_ends_is_retryable_not_a_reconnect(qbo, connection_factory):
    from integrations.quickbooks.errors import ConnectionFailedError

    connection = expired(connection_factory)
    Connection.objects.filter(pk=connection.pk).update(
        refresh_lease_until=timezone.now() + timedelta(seconds=30)
    )

    with pytest.raises(ConnectionFailedError) as caught:
        services.connection_access_token(connection_id=connection.pk, wait=0.2)

    assert caught.value.retryable
    assert Connection.objects.get(pk=connection.pk).status == Connection.Status.CONNECTED
    assert token_requests(qbo) == []


# --- Rotation ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rotating_emulator():
    """An emulator whose every refresh rotates the refresh token (Intuit does it daily)."""
    emulator = start_emulator(
        client_id=EMULATOR_CLIENT_ID,
        client_secret=EMULATOR_CLIENT_SECRET,
        redirect_uris=[EMULATOR_REDIRECT_URI],
        throttle=False,
        refresh_rotation_seconds=0,
    )
    yield emulator
    emulator.stop()


@pytest.fixture
def rotating(rotating_emulator, qbo, settings, db):
    settings.QBO_EMULATOR_URL = rotating_emulator.base_url
    realm_id = rotating_emulator.realm_ids[0]
    tokens = rotating_emulator.tokens(realm_id)
    return Connection.objects.create(
        environment="emulator",
        realm_id=realm_id,
        company_name="Rotating",
        access_token_encrypted=crypto.encrypt(tokens["access_token"]),
        refresh_token_encrypted=crypto.encrypt(tokens["refresh_token"]),
        access_token_expires_at=timezone.now() - timedelta(minutes=1),
        refresh_token_expires_at=timezone.now() + timedelta(days=100),
    )


def test_the_rotated_refresh_token_is_stored_and_the_old_one_is_dead(rotating):
    first = rotating.refresh_token

    services.connection_access_token(connection_id=rotating.pk)

    rotating.refresh_from_db()
    second = rotating.refresh_token
    assert second != first
    with pytest.raises(InvalidGrantError):
        oauth.refresh(first)
    # The next refresh spends the newest token and stores the next one.
    services.connection_access_token(connection_id=rotating.pk, force_refresh_of_version=1)
    rotating.refresh_from_db()
    assert rotating.refresh_token not in (first, second)
    assert rotating.status == Connection.Status.CONNECTED
    assert rotating.token_version == 2


# --- invalid_grant -------------------------------------------------------------------------


def test_invalid_grant_marks_needs_reconnect_shows_a_banner_and_stops_the_client(
    qbo, connection_factory, user_factory
):
    connection = expired(connection_factory)
    revoke_at_intuit(qbo, connection.refresh_token)
    client = services.connection_client(connection=connection)

    with pytest.raises(services.ReconnectRequired) as caught:
        client.company_info()

    assert caught.value.user_message == services.NEEDS_RECONNECT_REASON
    connection.refresh_from_db()
    assert connection.status == Connection.Status.NEEDS_RECONNECT
    assert connection.last_error == services.NEEDS_RECONNECT_REASON
    assert connection.refresh_lease_until is None
    with pytest.raises(services.ReconnectRequired) as again:
        services.connection_client(connection=connection)
    assert str(again.value) == services.NEEDS_RECONNECT_REASON
    # Later calls stop at once, without spending another request on Intuit.
    with pytest.raises(services.ReconnectRequired):
        client.company_info()
    assert len(token_requests(qbo)) == 1

    browser = Client()
    browser.force_login(user_factory(role="Billing staff"))
    page = browser.get("/admin/quickbooks/").content.decode()
    assert (
        "QuickBooks needs to be reconnected: QuickBooks no longer accepts Ledgerlink&#x27;s "
        "sign-in (the authorization expired or was revoked). A Sync administrator must press "
        "Reconnect on the QuickBooks page. Syncing is paused until then."
    ) in page


def test_a_refresh_token_near_its_end_warns_in_the_admin(qbo, connection_factory, user_factory):
    ends = timezone.now() + timedelta(days=10)
    connection_factory(refresh_token_expires_at=ends)
    browser = Client()
    browser.force_login(user_factory(role="Auditors"))

    page = browser.get("/admin/quickbooks/").content.decode()

    assert (
        f"The QuickBooks authorization ends on {ends:%-d %b %Y}. Reconnect before then to keep "
        "syncing."
    ) in page


def test_the_five_year_cap_bounds_the_refresh_token_expiry(qbo, connection_factory):
    connection = expired(connection_factory)

    services.connection_access_token(connection_id=connection.pk)

    connection.refresh_from_db()
    # The emulator sends the hard cap (five years) and the rolling 100 days: the sooner wins.
    left = connection.refresh_token_expires_at - timezone.now()
    assert timedelta(days=99) < left <= timedelta(days=101)


# --- No token in clear text anywhere -------------------------------------------------------


def issued_tokens(emulator) -> set[str]:
    state = emulator.app.oauth.state
    with emulator.app.oauth.lock:
        return set(state.access) | set(state.refresh)


def database_cells() -> list[str]:
    cells = []
    with db.cursor() as cursor:
        for table in db.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {db.ops.quote_name(table)}")
            for row in cursor.fetchall():
                cells.extend(str(value) for value in row if value is not None)
    return cells


@pytest.fixture
def every_log(caplog):
    """caplog at DEBUG, including the app loggers that do not propagate to the root."""
    names = ["integrations", "sync", "portal", "django", "urllib3", "requests", "qbo_emulator"]
    caplog.set_level(logging.DEBUG)
    for name in names:
        caplog.set_level(logging.DEBUG, logger=name)
        logging.getLogger(name).addHandler(caplog.handler)
    yield caplog
    for name in names:
        logging.getLogger(name).removeHandler(caplog.handler)


def log_text(records) -> str:
    parts = []
    for record in records:
        parts.append(record.getMessage())
        parts.extend(repr(value) for value in vars(record).values())
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(repr(record.exc_info[1]))
            parts.append(str(record.exc_info[1]))
    return "\n".join(parts)


def test_no_token_in_the_database_logs_or_reprs_across_connect_refresh_fetch(
    qbo, user_factory, every_log
):
    browser = Client()
    browser.force_login(user_factory(role="Sync administrators"))
    follow(browser, consent(start_connect(browser)))
    connection = Connection.objects.get()
    Connection.objects.filter(pk=connection.pk).update(
        access_token_expires_at=timezone.now() - timedelta(minutes=1)
    )
    page = browser.post("/admin/quickbooks/fetch-accounts/", follow=True)
    assert shown_messages(page)[0].startswith("Accounts fetched")
    assert len(token_requests(qbo)) == 2  # the code exchange, then one refresh
    connection.refresh_from_db()
    revoke_at_intuit(qbo, connection.refresh_token)
    Connection.objects.filter(pk=connection.pk).update(
        access_token_expires_at=timezone.now() - timedelta(minutes=1)
    )
    with pytest.raises(services.ReconnectRequired) as reconnect:
        services.accounts_fetch(connection=connection)
    with pytest.raises(InvalidGrantError) as refused:
        oauth.refresh(connection.refresh_token)

    tokens = issued_tokens(qbo)
    ours = {connection.access_token, connection.refresh_token}
    assert ours <= tokens

    cells = database_cells()
    assert cells
    leaked = [t for t in tokens for cell in cells if t in cell]
    assert leaked == []

    logs = log_text(every_log.records)
    assert "qbo.token.refreshed" in logs
    assert "qbo.connection.needs_reconnect" in logs
    assert [t for t in tokens if t in logs] == []
    # Not even the bearer token's secret part after the common JWE header.
    secrets = [t[len(JWE_HEADER) + 2 :][:40] for t in tokens if t.startswith(JWE_HEADER)]
    assert secrets
    assert [s for s in secrets if s in logs] == []

    shown = [
        str(connection),
        repr(connection),
        str(reconnect.value),
        repr(reconnect.value),
        str(refused.value),
        repr(refused.value),
        refused.value.user_message,
    ]
    for text in shown:
        assert not any(t in text for t in ours), text
        assert connection.access_token_encrypted[:40] not in text
        assert connection.refresh_token_encrypted[:40] not in text


def test_decryption_failure_names_no_token(qbo, connection_factory, settings):
    connection = connection_factory()
    settings.TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(crypto.TokenDecryptionError) as caught:
        connection.refresh_token  # noqa: B018

    assert "TOKEN_ENCRYPTION_KEYS" in str(caught.value)
    assert connection.refresh_token_encrypted not in str(caught.value) + repr(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


# --- Key rotation --------------------------------------------------------------------------


def test_key_rotation_with_the_reencrypt_command(qbo, connection_factory, settings, capsys):
    key_a = Fernet.generate_key().decode()
    key_b = Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEYS = [key_a]
    connection = connection_factory()
    raw = (connection.access_token, connection.refresh_token)
    connection_factory(realm_id=qbo.realm_ids[1], access_token_encrypted="")
    Connection.objects.create(environment="emulator", realm_id="1", status="disconnected")

    settings.TOKEN_ENCRYPTION_KEYS = [key_b, key_a]
    connection.refresh_from_db()
    assert (connection.access_token, connection.refresh_token) == raw

    call_command("qbo_reencrypt_tokens")

    assert capsys.readouterr().out == (
        "Re-encrypted the tokens of 2 connection(s) with the newest key.\n"
    )
    settings.TOKEN_ENCRYPTION_KEYS = [key_b]
    connection.refresh_from_db()
    assert (connection.access_token, connection.refresh_token) == raw
    settings.TOKEN_ENCRYPTION_KEYS = [key_a]
    with pytest.raises(crypto.TokenDecryptionError):
        connection.refresh_token  # noqa: B018


def test_keys_given_as_a_comma_separated_string(qbo, connection_factory, settings):
    key_a = Fernet.generate_key().decode()
    key_b = Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEYS = key_a
    connection = connection_factory()
    raw = connection.refresh_token

    settings.TOKEN_ENCRYPTION_KEYS = f"{key_b}, {key_a}"
    connection.refresh_from_db()
    assert connection.refresh_token == raw
    assert services.tokens_reencrypt() == 1

    settings.TOKEN_ENCRYPTION_KEYS = key_b
    connection.refresh_from_db()
    assert connection.refresh_token == raw


def test_reencrypt_does_not_overwrite_a_refresh_that_happened_meanwhile(
    qbo, connection_factory, monkeypatch
):
    connection = connection_factory()
    newer = crypto.encrypt("AB11newer-refresh-token")
    real_rotate = crypto.rotate
    raced = []

    def rotate_while_a_worker_refreshes(value):
        if not raced:
            raced.append(1)
            Connection.objects.filter(pk=connection.pk).update(refresh_token_encrypted=newer)
        return real_rotate(value)

    monkeypatch.setattr(crypto, "rotate", rotate_while_a_worker_refreshes)

    assert services.tokens_reencrypt() == 1

    connection.refresh_from_db()
    assert connection.refresh_token == "AB11newer-refresh-token"


# --- Single flight across worker processes on a SQLite file ------------------------------

WORKER = """
import sys, time
import django
django.setup()
from integrations import services
from integrations.quickbooks import oauth

real = oauth.refresh
def slow(*args, **kwargs):
    time.sleep(0.3)  # a slow Intuit keeps the race window open
    return real(*args, **kwargs)
oauth.refresh = slow
start = float(sys.argv[1])
time.sleep(max(0.0, start - time.time()))
token, version = services.connection_access_token(connection_id=int(sys.argv[2]))
print(version, token[-12:])
"""

SEED = """
import sys
from datetime import timedelta
import django
django.setup()
from django.utils import timezone
from integrations import crypto
from integrations.models import Connection
connection = Connection.objects.create(
    environment="emulator", realm_id=sys.argv[1], company_name="Workers",
    access_token_encrypted=crypto.encrypt(sys.argv[2]),
    refresh_token_encrypted=crypto.encrypt(sys.argv[3]),
    access_token_expires_at=timezone.now() - timedelta(minutes=1),
    refresh_token_expires_at=timezone.now() + timedelta(days=100),
)
print(connection.pk)
"""


def test_worker_processes_sharing_a_sqlite_file_refresh_once(qbo, tmp_path):
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'workers.sqlite3'}",
        "QBO_ENVIRONMENT": "emulator",
        "QBO_EMULATOR_URL": qbo.base_url,
        "QBO_CLIENT_ID": EMULATOR_CLIENT_ID,
        "QBO_CLIENT_SECRET": EMULATOR_CLIENT_SECRET,
        "PYTHONPATH": str(root),
    }

    def run(*args: str, **kwargs) -> str:
        done = subprocess.run(
            [sys.executable, *args], env=env, cwd=root, capture_output=True, text=True, **kwargs
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("manage.py", "migrate", "-v0", timeout=120)
    realm_id = qbo.realm_ids[0]
    tokens = qbo.tokens(realm_id)
    pk = run("-c", SEED, realm_id, tokens["access_token"], tokens["refresh_token"]).strip()
    qbo.app.clear_log()

    start = str(time.time() + 2.0)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, start, pk],
            env=env,
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [worker.communicate(timeout=60) for worker in workers]

    assert [worker.returncode for worker in workers] == [0, 0, 0], outputs
    assert len({out for out, _ in outputs}) == 1  # the same token, version 1, everywhere
    assert outputs[0][0].startswith("1 ")
    assert len(token_requests(qbo)) == 1
