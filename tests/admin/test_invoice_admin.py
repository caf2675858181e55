"""The invoice list's QuickBooks columns, filter, actions, and the panel on the invoice page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.models import Invoice
from portal.roles import AUDITORS, BILLING_STAFF, SYNC_ADMINISTRATORS
from sync.models import SyncRecord

CHANGELIST = "admin:portal_invoice_changelist"


def _record(connection, invoice, status, **fields):
    return SyncRecord.objects.create(
        connection=connection, object_type="invoice", invoice=invoice, status=status, **fields
    )


@pytest.fixture
def listed(connection, invoices):
    synced, failed, plain = invoices(3)
    _record(connection, synced, "synced", qbo_id="130", qbo_doc_number="INV-1")
    _record(
        connection,
        failed,
        "failed",
        details="The tax rate Nevada is not mapped to a QuickBooks tax code: map it on the "
        "Mapping tab.",
        error_code="6000",
        error_element="TaxCodeRef",
        intuit_tid="1-abc-123",
    )
    return {"synced": synced, "failed": failed, "plain": plain}


def test_list_shows_status_badge_details_number_and_link(client, login, listed):
    login(BILLING_STAFF)
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert "QuickBooks Sync Status" in page
    assert "QuickBooks Sync Details" in page
    assert '<span class="ll-badge synced">Synced</span>' in page
    assert '<span class="ll-badge failed">Failed</span>' in page
    assert '<span class="ll-badge not_synced">Not synced</span>' in page
    assert "The tax rate Nevada is not mapped" in page
    assert ">INV-1</td>" in page
    assert "Open in QuickBooks</a>" in page
    assert "txnId=130" in page


@pytest.mark.parametrize(
    ("status", "expected"),
    [("synced", ["synced"]), ("failed", ["failed"]), ("not_synced", ["plain"])],
)
def test_list_filters_by_sync_status(client, login, listed, status, expected):
    login(AUDITORS)
    response = client.get(reverse(CHANGELIST), {"qbo_status": status})
    shown = {obj.pk for obj in response.context["cl"].result_list}
    assert shown == {listed[key].pk for key in expected}


def test_list_sorts_by_sync_status(client, login, listed):
    login(AUDITORS)
    column = client.get(reverse(CHANGELIST)).context["cl"].list_display.index("qbo_sync_status")
    response = client.get(reverse(CHANGELIST), {"o": str(column)})
    statuses = [obj.qbo_status for obj in response.context["cl"].result_list]
    assert statuses == sorted(statuses)


def test_list_costs_a_fixed_number_of_queries(
    client, login, connection, invoices, django_assert_max_num_queries
):
    login(BILLING_STAFF)
    for invoice in invoices(3):
        _record(connection, invoice, "synced", qbo_id=f"q{invoice.pk}")
    client.get(reverse(CHANGELIST))  # warm caches (content types, permissions)
    with django_assert_max_num_queries(12) as few:
        client.get(reverse(CHANGELIST))
    for invoice in invoices(40):
        _record(connection, invoice, "failed", details="Refused")
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(reverse(CHANGELIST))


def test_sync_now_action_queues_a_push_with_a_count(client, login, listed, queued, connection):
    login(BILLING_STAFF)
    ids = [listed["synced"].pk, listed["plain"].pk]
    response = client.post(
        reverse(CHANGELIST),
        {"action": "sync_now", "_selected_action": ids},
        follow=True,
    )
    assert queued == [("sync.tasks.push_invoices", connection.pk, sorted(ids), "button")]
    assert "Queued 2 invoices to sync with QuickBooks." in response.content.decode()


def test_retry_action_retries_only_failed_ones(client, login, listed, queued, connection):
    login(BILLING_STAFF)
    ids = [listed["failed"].pk, listed["synced"].pk, listed["plain"].pk]
    response = client.post(
        reverse(CHANGELIST), {"action": "retry_failed", "_selected_action": ids}, follow=True
    )
    assert queued == [("sync.tasks.push_invoices", connection.pk, [listed["failed"].pk], "retry")]
    page = response.content.decode()
    assert "Retrying 1 failed invoice. 2 of the 3 selected had not failed and were left alone." in (
        page
    )
    assert SyncRecord.objects.get(invoice=listed["failed"]).status == "pending"


def test_auditors_get_no_sync_actions(client, login, listed, queued):
    login(AUDITORS)
    response = client.get(reverse(CHANGELIST))
    assert response.context["action_form"] is None  # no action this role may use
    client.post(
        reverse(CHANGELIST), {"action": "sync_now", "_selected_action": [listed["plain"].pk]}
    )
    assert queued == []


def test_actions_say_when_quickbooks_is_not_connected(client, login, invoices, queued):
    [invoice] = invoices(1)
    login(SYNC_ADMINISTRATORS)
    response = client.post(
        reverse(CHANGELIST), {"action": "sync_now", "_selected_action": [invoice.pk]}, follow=True
    )
    assert "QuickBooks is not connected" in response.content.decode()
    assert queued == []


def test_invoice_page_panel_explains_the_failure(client, login, listed):
    login(BILLING_STAFF)
    url = reverse("admin:portal_invoice_change", args=[listed["failed"].pk])
    page = client.get(url).content.decode()
    assert 'id="qbo-panel"' in page
    assert '<span class="ll-badge failed" id="qbo-invoice-status">Failed</span>' in page
    assert "The tax rate Nevada is not mapped" in page
    assert "code 6000, field TaxCodeRef" in page
    assert "1-abc-123" in page
    assert 'id="qbo-invoice-sync"' in page
    assert 'id="qbo-invoice-retry"' in page
    # The panel's forms are not nested in the invoice's own form.
    assert page.index('id="qbo-panel"') < page.index('id="invoice_form"')


def test_invoice_page_panel_for_auditors_has_no_buttons(client, login, listed):
    login(AUDITORS)
    url = reverse("admin:portal_invoice_change", args=[listed["synced"].pk])
    page = client.get(url).content.decode()
    assert 'id="qbo-open"' in page
    assert 'id="qbo-invoice-sync"' not in page
    assert 'id="qbo-invoice-retry"' not in page


def test_invoice_page_buttons_queue_sync_and_retry(client, login, listed, queued, connection):
    login(BILLING_STAFF)
    failed = listed["failed"]
    response = client.post(reverse("admin:portal_invoice_qbo_retry", args=[failed.pk]), follow=True)
    assert f"Invoice {failed.number}: retry queued with QuickBooks." in response.content.decode()
    response = client.post(reverse("admin:portal_invoice_qbo_sync", args=[failed.pk]), follow=True)
    assert "is queued to sync with QuickBooks" in response.content.decode()
    assert queued == [
        ("sync.tasks.push_invoices", connection.pk, [failed.pk], "retry"),
        ("sync.tasks.push_invoices", connection.pk, [failed.pk], "button"),
    ]
    response = client.post(
        reverse("admin:portal_invoice_qbo_retry", args=[listed["synced"].pk]), follow=True
    )
    assert "has not failed: there is nothing to retry." in response.content.decode()


def test_invoice_page_buttons_refuse_auditors_and_get(client, login, listed, queued):
    login(AUDITORS)
    url = reverse("admin:portal_invoice_qbo_sync", args=[listed["plain"].pk])
    assert client.post(url).status_code == 403
    client.logout()
    login(BILLING_STAFF)
    assert client.get(url).status_code == 405
    assert queued == []


@pytest.mark.parametrize("role", [SYNC_ADMINISTRATORS, BILLING_STAFF])
def test_deleting_invoices_takes_their_sync_records_along(
    client, login, invoices, connection, role
):
    login(role)
    [invoice] = invoices(1)
    _record(connection, invoice, "failed")
    response = client.post(
        reverse(CHANGELIST),
        {"action": "delete_selected", "_selected_action": [invoice.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Invoice.objects.exists()
    assert not SyncRecord.objects.exists()


def test_an_invoice_in_quickbooks_cannot_be_deleted_only_voided(client, user_factory, db):
    from integrations.models import Connection
    from portal.models import Customer, Invoice
    from portal.roles import SYNC_ADMINISTRATORS
    from sync.models import SyncRecord

    connection = Connection.objects.create(environment="emulator", realm_id="1")
    invoice = Invoice.objects.create(
        number="INV-9", customer=Customer.objects.create(display_name="A")
    )
    SyncRecord.objects.create(
        connection=connection,
        object_type="invoice",
        invoice=invoice,
        qbo_id="130",
        status="synced",
    )
    client.force_login(user_factory(role=SYNC_ADMINISTRATORS))
    url = reverse("admin:portal_invoice_delete", args=[invoice.pk])
    page = client.get(url).content.decode()
    assert (
        "Invoice INV-9: it is in QuickBooks, so it cannot be deleted here; void it instead." in page
    )
    client.post(url, {"post": "yes"})
    assert Invoice.objects.filter(pk=invoice.pk).exists()


def test_invoice_page_panel_links_the_settings_tab_its_reason_names(client, login, listed):
    from sync.models import SyncRecord

    failed = listed["failed"]
    SyncRecord.objects.filter(invoice=failed).update(
        details="The tax rate <Nevada> is not mapped: map it on the Mapping > Tax tab, then retry."
    )
    login(BILLING_STAFF)
    page = client.get(reverse("admin:portal_invoice_change", args=[failed.pk])).content.decode()
    assert (
        "The tax rate &lt;Nevada&gt; is not mapped: map it on the "
        '<a href="/admin/quickbooks/?tab=mapping&amp;sub=tax">Mapping &gt; Tax tab</a>, then retry.'
    ) in page
