"""Changing QuickBooks company is an explicit choice, and disconnecting asks first.

Connecting to another company than the one last connected saves nothing: a page says which
company was connected and which now, what is linked to the old one and what happens to it,
and only Switch changes anything. Keep (or letting the choice expire) leaves every
connection exactly as it was.
"""

from __future__ import annotations

import html

import pytest
from django.test import Client

from integrations import crypto, services
from integrations.models import Connection
from integrations.quickbooks import oauth
from integrations.quickbooks.errors import InvalidGrantError
from portal.models import Customer, Invoice, Item
from sync.models import SyncRecord
from tests.integrations.connect_steps import (
    DISCONNECT_URL,
    consent,
    follow,
    landed_on,
    shown_messages,
    start_connect,
)
from tests.integrations.test_connect_flow import CRAIGS, snapshot

SWITCH_URL = "/admin/quickbooks/switch/"
OTHER = "Sandbox Company_US_2"


@pytest.fixture
def admin(user_factory):
    return user_factory(role="Sync administrators")


@pytest.fixture
def browser(admin):
    client = Client()
    client.force_login(admin)
    return client


@pytest.fixture
def craigs(qbo, browser):
    """Connected to Craig's through the admin, with records linked to it: two invoices (one
    pulled from it), their customer and an item."""
    follow(browser, consent(start_connect(browser)))
    connection = Connection.objects.get()
    customer = Customer.objects.create(display_name="Amy's Bird Sanctuary")
    item = Item.objects.create(name="Rock Fountain")
    for obj, qbo_id in ((customer, "1"), (item, "5")):
        SyncRecord.objects.create(
            connection=connection, object_type=obj._meta.model_name, qbo_id=qbo_id,
            status="synced", **{obj._meta.model_name: obj},
        )  # fmt: skip
    for number, qbo_id in (("1037", "130"), ("INV-1", "150")):
        invoice = Invoice.objects.create(number=number, customer=customer)
        SyncRecord.objects.create(
            connection=connection, object_type="invoice", invoice=invoice, qbo_id=qbo_id,
            status="synced",
        )  # fmt: skip
    qbo.app.reset_realm(qbo.realm_ids[1])
    return connection


def page_text(response) -> str:
    return html.unescape(response.content.decode())


def sign_in_to_the_other_company(browser):
    page = follow(browser, consent(start_connect(browser), company=1))
    assert landed_on(page) == SWITCH_URL
    return page


def test_another_company_asks_first_saying_what_is_linked_and_what_happens(qbo, browser, craigs):
    before = snapshot()

    page = sign_in_to_the_other_company(browser)

    assert shown_messages(page) == []
    text = page_text(page)
    assert (
        f'id="qbo-switch-from"><strong>{CRAIGS}</strong> (company ID {craigs.realm_id}, '
        "connected)" in text
    )
    assert f'id="qbo-switch-to"><strong>{OTHER}</strong> (company ID {qbo.realm_ids[1]})' in (text)
    assert ">2 invoices, 1 customer and 1 item</dd>" in text
    assert f"They are <strong>not sent to {OTHER}</strong>" in text
    assert f"{CRAIGS} is disconnected" in text
    assert "nothing syncs with it until a Sync administrator presses Sync now" in text
    # Nothing was saved: the same connections, with the same tokens.
    assert snapshot() == before


def test_keep_changes_nothing_and_withdraws_the_other_sign_in(qbo, browser, craigs):
    before = snapshot()
    sign_in_to_the_other_company(browser)
    held = browser.session[services.SWITCH_SESSION_KEY]
    other_refresh = crypto.decrypt(held["refresh"])

    page = browser.post(SWITCH_URL, {"choice": "keep"}, follow=True)

    assert landed_on(page) == "/admin/quickbooks/"
    assert shown_messages(page) == [
        f"Nothing changed: Ledgerlink stays with {CRAIGS}, as it was. The sign-in to the other "
        "company was withdrawn."
    ]
    assert snapshot() == before
    assert services.SWITCH_SESSION_KEY not in browser.session
    with pytest.raises(InvalidGrantError):
        oauth.refresh(other_refresh)
    # Craig's still answers with its own tokens.
    assert services.connection_client(connection=craigs).company_info()["CompanyName"] == CRAIGS


def test_switch_connects_the_new_company_and_disconnects_the_old_keeping_its_links(
    qbo, browser, craigs, admin
):
    old_refresh = craigs.refresh_token
    sign_in_to_the_other_company(browser)

    page = browser.post(SWITCH_URL, {"choice": "confirm"}, follow=True)

    assert shown_messages(page) == [
        f"Connected to QuickBooks company {OTHER}.",
        f"Disconnected from {CRAIGS}: its linked records stay linked to it and are not sent to "
        f"{OTHER}. Set {OTHER} up on the tabs below; nothing syncs with it until a Sync "
        "administrator presses Sync now.",
    ]
    new = Connection.objects.get(realm_id=qbo.realm_ids[1])
    assert new.status == Connection.Status.CONNECTED and new.connected_by == admin
    assert new.sync_started_at is None
    assert services.connection_client(connection=new).company_info()["CompanyName"] == OTHER
    craigs.refresh_from_db()
    assert craigs.status == Connection.Status.DISCONNECTED
    assert craigs.refresh_token_encrypted == ""
    with pytest.raises(InvalidGrantError):
        oauth.refresh(old_refresh)
    assert SyncRecord.objects.filter(connection=craigs).count() == 4
    assert not SyncRecord.objects.filter(connection=new).exists()
    assert f'id="qbo-company">{OTHER}' in page.content.decode()


def test_after_a_switch_the_invoice_list_says_which_invoices_are_linked_to_the_old_company(
    qbo, browser, craigs
):
    sign_in_to_the_other_company(browser)
    browser.post(SWITCH_URL, {"choice": "confirm"})
    unlinked = Invoice.objects.create(number="INV-2", customer=Customer.objects.get())

    page = page_text(browser.get("/admin/portal/invoice/"))
    assert page.count(f">Linked to {CRAIGS}</span>") == 2
    assert page.count(">Not synced</span>") == 1
    listed = browser.get("/admin/portal/invoice/", {"qbo_status": "linked_elsewhere"})
    assert {i.number for i in listed.context["cl"].result_list} == {"1037", "INV-1"}
    listed = browser.get("/admin/portal/invoice/", {"qbo_status": "not_synced"})
    assert [i.pk for i in listed.context["cl"].result_list] == [unlinked.pk]


def test_the_choice_expires_after_ten_minutes_and_then_changes_nothing(
    qbo, browser, craigs, monkeypatch
):
    import time

    before = snapshot()
    sign_in_to_the_other_company(browser)
    monkeypatch.setattr(services, "_now", lambda: time.time() + 11 * 60)

    page = browser.get(SWITCH_URL, follow=True)
    assert shown_messages(page) == [services.SWITCH_EXPIRED]
    page = browser.post(SWITCH_URL, {"choice": "confirm"}, follow=True)
    assert shown_messages(page) == [services.SWITCH_EXPIRED]
    assert snapshot() == before


def test_the_same_company_again_does_not_ask(qbo, browser, craigs):
    page = follow(browser, consent(start_connect(browser)))
    assert landed_on(page) == "/admin/quickbooks/"
    assert shown_messages(page) == [f"Reconnected to QuickBooks company {CRAIGS}."]


def test_a_disconnected_company_is_still_the_one_last_connected(qbo, browser, craigs):
    browser.post(DISCONNECT_URL)
    before = snapshot()
    sign_in_to_the_other_company(browser)
    assert snapshot() == before


@pytest.mark.parametrize("role", ["Billing staff", "Auditors"])
def test_only_sync_administrators_choose(qbo, user_factory, craigs, role):
    client = Client()
    client.force_login(user_factory(role=role))
    assert client.get(SWITCH_URL).status_code == 403
    assert client.post(SWITCH_URL, {"choice": "confirm"}).status_code == 403
    assert client.get(DISCONNECT_URL).status_code == 403


# --- Disconnect asks first ---------------------------------------------------------------------


def test_disconnect_asks_first_saying_what_it_stops_and_keeps(qbo, browser, craigs):
    before = snapshot()
    page = browser.get("/admin/quickbooks/?tab=connection").content.decode()
    assert f'href="{DISCONNECT_URL}"' in page and 'id="qbo-disconnect"' in page

    page = browser.get(DISCONNECT_URL)

    assert page.status_code == 200
    text = " ".join(page_text(page).split())
    assert f"Disconnect from {CRAIGS}?" in text
    assert (
        f"every sync with {CRAIGS}: the schedule, the push when an invoice is saved, the pulls "
        "QuickBooks' notifications start, Sync now and Quick Sync;" in text
    )
    assert "its authorization is revoked at Intuit and the tokens are wiped here." in text
    assert "the links of the 2 invoices, 1 customer and 1 item linked to" in text
    assert 'id="qbo-disconnect-confirm"' in page.content.decode()
    assert snapshot() == before  # asking changes nothing

    page = browser.post(DISCONNECT_URL, follow=True)
    assert shown_messages(page)[0].startswith(f"Disconnected from {CRAIGS}.")
    assert Connection.objects.get().status == Connection.Status.DISCONNECTED
