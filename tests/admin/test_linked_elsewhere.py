"""After a switch of company, the invoice list, its filter, its CSV and the invoice page say
which invoices are linked to the old QuickBooks company (and so left out of the new one's
pushes) instead of calling them "Not synced"."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from integrations.models import Connection
from portal.roles import AUDITORS, BILLING_STAFF
from sync.models import SyncRecord

CHANGELIST = "admin:portal_invoice_changelist"
NOTE = (
    "Linked to Old Books (as 1037), not to the company connected now, whose pushes leave it "
    "out. To send it there on purpose, press Sync now on the invoice, or select it in the "
    "invoice list and run Sync now with QuickBooks."
)


@pytest.fixture
def old_books(db):
    """The company connected before, disconnected by the switch."""
    return Connection.objects.create(
        environment="emulator",
        realm_id="4620816365000000000",
        company_name="Old Books",
        status=Connection.Status.DISCONNECTED,
    )


def _link(connection, invoice, status="synced", **fields):
    return SyncRecord.objects.create(
        connection=connection, object_type="invoice", invoice=invoice, status=status, **fields
    )


@pytest.fixture
def switched(connection, old_books, invoices):
    """One invoice linked to the old company only, one to both, one to neither."""
    there, both, plain = invoices(3)
    _link(old_books, there, qbo_id="12", qbo_doc_number="1037")
    _link(old_books, both, qbo_id="13", qbo_doc_number="1038")
    _link(connection, both, qbo_id="130", qbo_doc_number="INV-2")
    return {"there": there, "both": both, "plain": plain}


def test_list_says_which_company_an_invoice_is_linked_to_and_how_to_send_it(
    client, login, switched
):
    login(BILLING_STAFF)
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert f'<span class="ll-badge linked_elsewhere" title="{NOTE}">Linked to Old Books</span>' in (
        page
    )
    assert (
        f'<span title="{NOTE}">Left out of this company\'s pushes; Sync now sends it on '
        "purpose.</span>"
    ) in page
    # Linked to both: its status with the company connected now; unlinked: not synced.
    assert '<span class="ll-badge synced">Synced</span>' in page
    assert page.count('<span class="ll-badge not_synced">Not synced</span>') == 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [("linked_elsewhere", ["there"]), ("not_synced", ["plain"]), ("synced", ["both"])],
)
def test_list_filters_invoices_linked_to_another_company(client, login, switched, status, expected):
    login(AUDITORS)
    response = client.get(reverse(CHANGELIST), {"qbo_status": status})
    shown = {obj.pk for obj in response.context["cl"].result_list}
    assert shown == {switched[key].pk for key in expected}
    assert "?qbo_status=linked_elsewhere" in response.content.decode()
    assert "Linked to another company</a>" in response.content.decode()


def test_list_without_a_company_offers_no_linked_elsewhere_filter(client, login, invoices):
    invoices(1)
    login(AUDITORS)
    assert "qbo_status=linked_elsewhere" not in client.get(reverse(CHANGELIST)).content.decode()


def test_list_with_old_company_links_costs_a_fixed_number_of_queries(
    client, login, connection, old_books, invoices, django_assert_max_num_queries
):
    login(BILLING_STAFF)
    for invoice in invoices(3):
        _link(old_books, invoice, qbo_id=f"o{invoice.pk}")
    client.get(reverse(CHANGELIST))  # warm caches (content types, permissions)
    with django_assert_max_num_queries(12) as few:
        client.get(reverse(CHANGELIST))
    for invoice in invoices(40):
        _link(old_books, invoice, qbo_id=f"o{invoice.pk}")
        _link(connection, invoice, "failed", details="Refused")
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = client.get(reverse(CHANGELIST)).content.decode()
    assert page.count(">Linked to Old Books</span>") == 3


def test_invoice_page_panel_names_the_old_company(client, login, switched, connection):
    login(BILLING_STAFF)
    url = reverse("admin:portal_invoice_change", args=[switched["there"].pk])
    page = client.get(url).content.decode()
    assert (
        '<span class="ll-badge linked_elsewhere" id="qbo-invoice-status">Linked to Old Books</span>'
    ) in page
    assert (
        '<dd id="qbo-invoice-details">Linked to Old Books (as 1037), not to Sandbox Company, '
        "whose pushes leave it out. To send it to Sandbox Company on purpose, press Sync now on "
        "the invoice, or select it in the invoice list and run Sync now with QuickBooks.</dd>"
    ) in page
    assert 'id="qbo-invoice-sync"' in page


def test_invoice_csv_says_linked_to_the_old_company(client, login, switched):
    login(AUDITORS)
    response = client.get(reverse("admin:portal_invoice_export"))
    rows = {r["Number"]: r for r in csv.DictReader(io.StringIO(response.content.decode()))}
    there = rows[switched["there"].number]
    assert there["QuickBooks sync status"] == "Linked to Old Books"
    assert there["QuickBooks sync details"] == NOTE
    assert rows[switched["both"].number]["QuickBooks sync status"] == "Synced"
    assert rows[switched["plain"].number]["QuickBooks sync status"] == "Not synced"
