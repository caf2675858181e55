"""Connect to QuickBooks in the admin, end to end against the emulator over real HTTP.

Each test does what the person does: press Connect, pick the company on the emulator's
consent page and press Connect (or Cancel), land back on the QuickBooks page and read the
message there. Failures must leave every Connection exactly as it was.
"""

from __future__ import annotations

import time

import pytest
import requests
from django.forms.models import model_to_dict
from django.test import Client

from integrations import crypto, services
from integrations.models import Connection
from integrations.quickbooks import oauth
from integrations.quickbooks.errors import InvalidGrantError
from qbo_emulator.oauth import JWE_HEADER
from tests.conftest import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, EMULATOR_REDIRECT_URI
from tests.integrations.connect_steps import (
    CONNECT_URL,
    DISCONNECT_URL,
    QUICKBOOKS_PAGE,
    consent,
    follow,
    landed_on,
    query_of,
    shown_messages,
    start_connect,
    with_query,
)

CRAIGS = "Craig's Design and Landscaping Services"
CONNECTED = f"Connected to QuickBooks company {CRAIGS}."
RECONNECTED = f"Reconnected to QuickBooks company {CRAIGS}."
CANCELLED = (
    "You cancelled on the QuickBooks page, so nothing was connected. Press Connect to "
    "QuickBooks to try again."
)
NO_STATE = (
    "QuickBooks sent no state with its answer, so it cannot be trusted. Nothing was changed; "
    "press Connect to QuickBooks again."
)
FOREIGN_STATE = (
    "This QuickBooks answer does not belong to a Connect started in this browser session, or "
    "it was already used. Nothing was changed; press Connect to QuickBooks again."
)
EXPIRED_STATE = (
    "The QuickBooks sign-in took longer than 10 minutes and expired. Nothing was changed; "
    "press Connect to QuickBooks again."
)
NO_REALM = (
    "QuickBooks did not say which company was chosen (no realmId). Nothing was changed; press "
    "Connect to QuickBooks again and pick a company."
)
BAD_CODE = (
    "QuickBooks did not accept the sign-in code (it was already used or has expired). Nothing "
    "was changed; press Connect to QuickBooks again."
)
BAD_CLIENT = (
    "QuickBooks refused the sign-in. QuickBooks did not accept Ledgerlink's app keys. Check "
    "the QBO_CLIENT_ID and QBO_CLIENT_SECRET settings. Nothing was changed."
)
ADMINS_ONLY = "Only Sync administrators may connect QuickBooks."


@pytest.fixture
def admin(user_factory):
    return user_factory(role="Sync administrators")


@pytest.fixture
def browser(admin):
    client = Client()
    client.force_login(admin)
    return client


@pytest.fixture
def existing(connection_factory):
    """The company is already known, needing a reconnect, as when someone presses Reconnect."""
    return connection_factory(
        status=Connection.Status.NEEDS_RECONNECT, last_error="QuickBooks refused the refresh."
    )


def snapshot() -> list[dict]:
    return [model_to_dict(c) | {"token_version": c.token_version} for c in Connection.objects.all()]


# --- The happy path ----------------------------------------------------------------------


def test_connect_redirects_to_the_authorize_page_with_state_bound_to_the_session(qbo, browser):
    url = start_connect(browser)

    assert url.startswith(f"{qbo.base_url}/connect/oauth2?")
    params = query_of(url)
    assert params["client_id"] == EMULATOR_CLIENT_ID
    assert params["redirect_uri"] == EMULATOR_REDIRECT_URI
    assert params["scope"] == "com.intuit.quickbooks.accounting"
    assert params["response_type"] == "code"
    assert len(params["state"]) >= 32
    assert params["state"] in browser.session[services.STATE_SESSION_KEY]


def test_connect_end_to_end_saves_the_company_and_says_so(qbo, browser, admin):
    url = start_connect(browser)
    callback = consent(url)

    answer = query_of(callback)
    assert callback.startswith(EMULATOR_REDIRECT_URI)
    assert answer["state"] == query_of(url)["state"]
    assert answer["realmId"] == qbo.realm_ids[0]
    assert answer["code"]

    page = follow(browser, callback)

    assert landed_on(page) == QUICKBOOKS_PAGE
    assert shown_messages(page) == [CONNECTED]
    connection = Connection.objects.get()
    assert connection.realm_id == qbo.realm_ids[0]
    assert connection.environment == "emulator"
    assert connection.company_name == CRAIGS
    assert connection.status == Connection.Status.CONNECTED
    assert connection.connected_by == admin
    assert connection.last_error == ""
    # Encrypted at rest, and what decrypts is a token the emulator accepts.
    assert connection.access_token.startswith(JWE_HEADER)
    assert connection.refresh_token.startswith("AB11")
    assert connection.access_token not in connection.access_token_encrypted
    assert connection.refresh_token not in connection.refresh_token_encrypted
    assert services.connection_client(connection=connection).company_info()["CompanyName"] == (
        CRAIGS
    )
    assert connection.refresh_token_expires_at > connection.access_token_expires_at
    assert 'id="qbo-company">Craig&#x27;s Design' in page.content.decode()


def test_connect_then_fetch_accounts_then_disconnect_in_the_admin(qbo, browser):
    page = follow(browser, consent(start_connect(browser)))
    assert shown_messages(page) == [CONNECTED]
    connection = Connection.objects.get()

    page = browser.post("/admin/quickbooks/fetch-accounts/", follow=True)
    [message] = shown_messages(page)
    assert message.startswith("Accounts fetched: ")
    assert connection.accounts.count() == len(qbo_accounts(qbo))
    assert connection.tax_codes.exists()

    refresh_token = Connection.objects.get().refresh_token
    page = browser.post(DISCONNECT_URL, follow=True)
    assert shown_messages(page) == [
        f"Disconnected from {CRAIGS}. Mappings and sync history are kept for a reconnect."
    ]
    with pytest.raises(InvalidGrantError):
        oauth.refresh(refresh_token)


def qbo_accounts(qbo) -> list[dict]:
    from tests.qbo import EmulatorUI

    return EmulatorUI(qbo, qbo.realm_ids[0]).rows("Account")


def test_connecting_a_known_company_again_updates_it_and_never_duplicates(qbo, browser):
    follow(browser, consent(start_connect(browser)))
    first = Connection.objects.get()

    page = follow(browser, consent(start_connect(browser)))

    assert shown_messages(page) == [RECONNECTED]
    again = Connection.objects.get()
    assert again.pk == first.pk
    assert again.token_version > first.token_version
    assert again.refresh_token != first.refresh_token


def test_reconnect_clears_needs_reconnect(qbo, browser, existing):
    page = follow(browser, consent(start_connect(browser)))

    assert shown_messages(page) == [RECONNECTED]
    connection = Connection.objects.get()
    assert connection.pk == existing.pk
    assert connection.status == Connection.Status.CONNECTED
    assert connection.last_error == ""


def test_connecting_a_second_company_adds_it(qbo, browser):
    follow(browser, consent(start_connect(browser)))
    qbo.app.reset_realm(qbo.realm_ids[1])

    page = follow(browser, consent(start_connect(browser), company=1))
    # Another company than the one connected: staff confirm the switch first
    # (tests/integrations/test_company_switch.py).
    assert landed_on(page) == "/admin/quickbooks/switch/"
    page = browser.post("/admin/quickbooks/switch/", {"choice": "confirm"}, follow=True)

    assert shown_messages(page)[0] == "Connected to QuickBooks company Sandbox Company_US_2."
    assert sorted(Connection.objects.values_list("realm_id", flat=True)) == sorted(qbo.realm_ids)


# --- Every way the connect flow can fail ---------------------------------------------------


def test_cancel_on_the_quickbooks_page(qbo, browser, existing):
    before = snapshot()
    callback = consent(start_connect(browser), button="cancel")
    assert query_of(callback)["error"] == "access_denied"

    page = follow(browser, callback)

    assert landed_on(page) == QUICKBOOKS_PAGE
    assert shown_messages(page) == [CANCELLED]
    assert snapshot() == before


def test_cancel_spends_the_state(qbo, browser, existing):
    url = start_connect(browser)
    state = query_of(url)["state"]
    follow(browser, consent(url, button="cancel"))

    assert state not in browser.session[services.STATE_SESSION_KEY]


def test_missing_state(qbo, browser, existing):
    before = snapshot()
    callback = consent(start_connect(browser))

    page = follow(browser, with_query(callback, state=None))

    assert shown_messages(page) == [NO_STATE]
    assert snapshot() == before


def test_replayed_callback_is_refused_and_changes_nothing(qbo, browser):
    callback = consent(start_connect(browser))
    assert shown_messages(follow(browser, callback)) == [CONNECTED]
    before = snapshot()

    page = follow(browser, callback)

    assert shown_messages(page) == [FOREIGN_STATE]
    assert snapshot() == before


def test_state_from_another_session_is_refused(qbo, browser, user_factory, existing):
    before = snapshot()
    callback = consent(start_connect(browser))
    other = Client()
    other.force_login(user_factory(role="Sync administrators"))

    page = follow(other, callback)

    assert shown_messages(page) == [FOREIGN_STATE]
    assert snapshot() == before
    # The other session's attempt did not spend the person's own answer.
    assert shown_messages(follow(browser, callback)) == [RECONNECTED]


def test_state_older_than_ten_minutes_is_refused(qbo, browser, existing, monkeypatch):
    before = snapshot()
    callback = consent(start_connect(browser))
    started = time.time()
    monkeypatch.setattr(services, "_now", lambda: started + 10 * 60 + 5)

    page = follow(browser, callback)

    assert shown_messages(page) == [EXPIRED_STATE]
    assert snapshot() == before


def test_state_younger_than_ten_minutes_is_accepted(qbo, browser, monkeypatch):
    callback = consent(start_connect(browser))
    started = time.time()
    monkeypatch.setattr(services, "_now", lambda: started + 9 * 60)

    assert shown_messages(follow(browser, callback)) == [CONNECTED]


def test_missing_realm_id(qbo, browser, existing):
    before = snapshot()
    callback = consent(start_connect(browser))

    page = follow(browser, with_query(callback, realmId=None))

    assert shown_messages(page) == [NO_REALM]
    assert snapshot() == before


def test_token_endpoint_refuses_a_bad_code(qbo, browser, existing):
    before = snapshot()
    callback = consent(start_connect(browser))

    page = follow(browser, with_query(callback, code="AB11this-code-was-never-issued"))

    assert shown_messages(page) == [BAD_CODE]
    assert snapshot() == before


def test_token_endpoint_refuses_a_used_code(qbo, browser, existing):
    callback = consent(start_connect(browser))
    code = query_of(callback)["code"]
    oauth.exchange_code(code)  # someone else spent it first
    before = snapshot()

    page = follow(browser, callback)

    assert shown_messages(page) == [BAD_CODE]
    assert snapshot() == before


def test_token_endpoint_refuses_the_client_secret(qbo, browser, existing, settings):
    before = snapshot()
    callback = consent(start_connect(browser))
    settings.QBO_CLIENT_SECRET = "not-the-secret"

    page = follow(browser, callback)

    assert shown_messages(page) == [BAD_CLIENT]
    assert snapshot() == before


def test_quickbooks_unreachable(qbo, browser, existing, settings):
    before = snapshot()
    callback = consent(start_connect(browser))
    settings.QBO_EMULATOR_URL = "http://127.0.0.1:9"  # nothing listens on the discard port

    page = follow(browser, callback)

    assert shown_messages(page) == [
        "QuickBooks could not be reached to finish the sign-in, so nothing was connected. "
        "Press Connect to QuickBooks again in a few minutes."
    ]
    assert snapshot() == before


def test_company_details_unreadable(qbo, browser, existing, monkeypatch):
    from integrations.quickbooks.client import QBOClient
    from integrations.quickbooks.errors import ServiceUnavailableError

    def broken(self):
        raise ServiceUnavailableError("QuickBooks answered HTTP 503", status=503)

    monkeypatch.setattr(QBOClient, "company_info", broken)
    before = snapshot()

    page = follow(browser, consent(start_connect(browser)))

    assert shown_messages(page) == [
        "QuickBooks accepted the sign-in, but the company's details could not be read, so "
        "nothing was saved. Press Connect to QuickBooks again."
    ]
    assert snapshot() == before


# --- Who may connect -----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["Billing staff", "Auditors"])
def test_only_sync_administrators_may_connect_or_disconnect(
    qbo, browser, user_factory, role, existing
):
    before = snapshot()
    client = Client()
    client.force_login(user_factory(role=role))

    assert client.get(CONNECT_URL).status_code == 403
    assert client.post(DISCONNECT_URL).status_code == 403
    page = follow(client, consent(start_connect(browser)))

    assert landed_on(page) == QUICKBOOKS_PAGE
    assert shown_messages(page) == [ADMINS_ONLY]
    assert snapshot() == before


def test_callback_needs_a_signed_in_staff_member(qbo, browser, existing):
    before = snapshot()
    callback = consent(start_connect(browser))

    response = Client().get(with_query(callback))

    assert response.status_code == 302
    assert "/login/" in response["Location"]
    assert snapshot() == before


# --- Disconnect ----------------------------------------------------------------------------


@pytest.fixture
def with_journals(connection_factory):
    from tests.qbo import pick_journals

    connection = connection_factory()
    pick_journals(connection)
    return connection


def test_disconnect_revokes_wipes_tokens_and_keeps_the_rest(qbo, browser, with_journals):
    connection = with_journals
    old_refresh = connection.refresh_token
    journals = (connection.income_account_id, connection.expense_account_id)
    accounts = connection.accounts.count()

    page = browser.post(DISCONNECT_URL, follow=True)

    assert shown_messages(page) == [
        f"Disconnected from {CRAIGS}. Mappings and sync history are kept for a reconnect."
    ]
    with pytest.raises(InvalidGrantError):
        oauth.refresh(old_refresh)
    connection.refresh_from_db()
    assert connection.status == Connection.Status.DISCONNECTED
    assert connection.access_token_encrypted == connection.refresh_token_encrypted == ""
    assert connection.access_token_expires_at is None
    assert connection.disconnected_at is not None
    assert connection.accounts.count() == accounts
    assert (connection.income_account_id, connection.expense_account_id) == journals
    with pytest.raises(services.ReconnectRequired):
        services.connection_client(connection=connection)

    page = follow(browser, consent(start_connect(browser)))

    assert shown_messages(page) == [RECONNECTED]
    again = Connection.objects.get()
    assert again.pk == connection.pk
    assert again.status == Connection.Status.CONNECTED
    assert again.disconnected_at is None
    assert again.accounts.count() == accounts
    assert (again.income_account_id, again.expense_account_id) == journals


def test_disconnect_when_intuit_cannot_be_reached_still_wipes_and_says_so(
    qbo, browser, connection_factory, settings
):
    connection_factory()
    settings.QBO_EMULATOR_URL = "http://127.0.0.1:9"

    page = browser.post(DISCONNECT_URL, follow=True)

    [done, warning] = shown_messages(page)
    assert done.startswith(f"Disconnected from {CRAIGS}.")
    assert warning.startswith("QuickBooks did not confirm the revoke")
    assert Connection.objects.get().refresh_token_encrypted == ""


def revoke_at_intuit(qbo, token: str) -> None:
    """As when the company removes the app in QuickBooks: Intuit ends its authorization."""
    answer = requests.post(
        f"{qbo.base_url}/v2/oauth2/tokens/revoke",
        json={"token": token},
        auth=(EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET),
        timeout=10,
    )
    assert answer.status_code == 200


def test_intuit_disconnect_url_marks_a_revoked_connection_disconnected(
    qbo, browser, connection_factory
):
    connection = connection_factory()
    revoke_at_intuit(qbo, connection.refresh_token)

    page = browser.get(f"/integrations/quickbooks/disconnected/?realmId={connection.realm_id}")

    assert page.status_code == 200
    assert "was disconnected from within QuickBooks" in page.content.decode()
    connection.refresh_from_db()
    assert connection.status == Connection.Status.DISCONNECTED
    assert connection.last_error == "The app was disconnected from within QuickBooks."
    assert connection.refresh_token_encrypted == ""


def test_intuit_disconnect_url_with_an_expired_access_token(qbo, browser, connection_factory):
    from datetime import timedelta

    from django.utils import timezone

    connection = connection_factory(access_token_expires_at=timezone.now() - timedelta(hours=1))
    revoke_at_intuit(qbo, connection.access_token)

    browser.get(f"/integrations/quickbooks/disconnected/?realmId={connection.realm_id}")

    connection.refresh_from_db()
    assert connection.status == Connection.Status.DISCONNECTED


def test_intuit_disconnect_url_leaves_a_healthy_connection_connected(
    qbo, browser, connection_factory
):
    connection = connection_factory()
    tokens = (connection.access_token_encrypted, connection.refresh_token_encrypted)

    page = browser.get(f"/integrations/quickbooks/disconnected/?realmId={connection.realm_id}")

    assert "still answers, so it stays connected" in page.content.decode()
    connection.refresh_from_db()
    assert connection.status == Connection.Status.CONNECTED
    assert (connection.access_token_encrypted, connection.refresh_token_encrypted) == tokens


def test_intuit_disconnect_url_leaves_a_connection_it_cannot_check(
    qbo, browser, connection_factory, settings
):
    connection = connection_factory()
    settings.QBO_EMULATOR_URL = "http://127.0.0.1:9"

    browser.get(f"/integrations/quickbooks/disconnected/?realmId={connection.realm_id}")

    connection.refresh_from_db()
    assert connection.status == Connection.Status.CONNECTED


def test_intuit_disconnect_url_for_an_unknown_realm_changes_nothing(qbo, browser, existing):
    before = snapshot()

    page = browser.get("/integrations/quickbooks/disconnected/?realmId=123")

    assert "nothing was changed" in page.content.decode()
    assert snapshot() == before


def test_tokens_are_encrypted_with_the_configured_key(qbo, browser):
    follow(browser, consent(start_connect(browser)))
    connection = Connection.objects.get()

    assert crypto.decrypt(connection.refresh_token_encrypted) == connection.refresh_token
