"""CSV exports of the invoice and sync record lists: the filtered rows, in readable columns."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from portal.models import Customer
from portal.roles import AUDITORS, BILLING_STAFF
from sync.models import SyncRecord


def rows(response) -> list[dict]:
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))


@pytest.fixture
def listed(connection, invoices):
    synced, failed, plain = invoices(3)
    SyncRecord.objects.create(
        connection=connection,
        object_type="invoice",
        invoice=synced,
        status="synced",
        qbo_id="130",
        qbo_doc_number="INV-1",
    )
    SyncRecord.objects.create(
        connection=connection,
        object_type="invoice",
        invoice=failed,
        status="failed",
        details="The tax rate Nevada is not mapped to a QuickBooks tax code.",
        error_code="6000",
    )
    return {"synced": synced, "failed": failed, "plain": plain}


def test_the_invoice_list_offers_a_csv_of_what_it_shows(client, login, listed):
    login(AUDITORS)
    page = client.get(reverse("admin:portal_invoice_changelist"), {"qbo_status": "failed"})
    export = reverse("admin:portal_invoice_export")
    assert f'href="{export}?qbo_status=failed"' in page.content.decode()


def test_invoice_csv_has_the_filtered_rows_with_sync_status_and_reason(client, login, listed):
    login(BILLING_STAFF)
    response = client.get(reverse("admin:portal_invoice_export"), {"qbo_status": "failed"})
    assert "attachment;" in response["Content-Disposition"]
    assert 'filename="invoices-' in response["Content-Disposition"]
    [row] = rows(response)
    failed = listed["failed"]
    assert row["Number"] == failed.number
    assert row["Customer"] == "Bayside Dental"
    assert row["Status"] == "Draft"
    assert row["Total"] == "0.00"
    assert row["QuickBooks sync status"] == "Failed"
    assert row["QuickBooks sync details"] == (
        "The tax rate Nevada is not mapped to a QuickBooks tax code."
    )

    everything = rows(client.get(reverse("admin:portal_invoice_export")))
    assert {r["Number"]: r["QuickBooks sync status"] for r in everything} == {
        listed["synced"].number: "Synced",
        listed["failed"].number: "Failed",
        listed["plain"].number: "Not synced",
    }
    assert {r["QuickBooks no."] for r in everything} == {"INV-1", ""}


def test_invoice_csv_follows_the_search_too(client, login, listed):
    login(AUDITORS)
    number = listed["plain"].number
    assert [
        r["Number"] for r in rows(client.get(reverse("admin:portal_invoice_export"), {"q": number}))
    ] == [number]


def test_sync_record_csv_has_status_and_reason_filtered(client, login, listed):
    login(AUDITORS)
    url = reverse("admin:sync_syncrecord_export")
    [row] = rows(client.get(url, {"status__exact": "failed"}))
    assert row["Record"] == f"Invoice {listed['failed'].number}"
    assert row["Kind"] == "Invoice"
    assert row["Status"] == "Failed"
    assert row["Reason"] == "The tax rate Nevada is not mapped to a QuickBooks tax code."
    assert row["QuickBooks error code"] == "6000"
    assert len(rows(client.get(url))) == 2


def test_text_a_spreadsheet_would_run_as_a_formula_is_escaped(client, login, invoices):
    [invoice] = invoices(1)
    Customer.objects.filter(pk=invoice.customer_id).update(display_name="=HYPERLINK(1)")
    login(AUDITORS)
    [row] = rows(client.get(reverse("admin:portal_invoice_export")))
    assert row["Customer"] == "'=HYPERLINK(1)"


def test_export_needs_the_view_permission(client, user_factory, listed):
    client.force_login(user_factory(role=None))
    assert client.get(reverse("admin:portal_invoice_export")).status_code == 403
    assert client.get(reverse("admin:sync_syncrecord_export")).status_code == 403
