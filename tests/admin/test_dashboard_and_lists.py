"""The dashboard on the admin index, and the read-only sync lists."""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from portal.roles import AUDITORS, BILLING_STAFF, SYNC_ADMINISTRATORS
from sync.models import SyncEvent, SyncRecord, SyncRun


def test_dashboard_shows_health_counts_failures_and_an_svg_chart(
    client, login, connection, invoices
):
    synced, failed, _plain = invoices(3)
    SyncRecord.objects.create(
        connection=connection, object_type="invoice", invoice=synced, status="synced"
    )
    SyncRecord.objects.create(
        connection=connection,
        object_type="invoice",
        invoice=failed,
        status="failed",
        details="The customer name is refused.",
    )
    # The chart adds up the runs' own counts (as the history tab shows them).
    run = SyncRun.objects.create(
        connection=connection, trigger="button", direction="push", created=1, failed=1
    )
    now = timezone.now()
    SyncEvent.objects.create(run=run, action="created", message="c", created_at=now)
    SyncEvent.objects.create(run=run, action="failed", message="f", created_at=now)
    old = SyncRun.objects.create(
        connection=connection,
        trigger="button",
        direction="push",
        created=1,
        started_at=now - timedelta(days=45),
    )
    SyncEvent.objects.create(
        run=old, action="created", message="old", created_at=now - timedelta(days=45)
    )
    login(AUDITORS)
    page = client.get(reverse("admin:index")).content.decode()
    assert 'id="qbo-dashboard"' in page
    assert 'id="qbo-health-status">Connected</span>' in page
    assert 'id="qbo-last-pull">never</dd>' in page
    assert '<span class="ll-badge synced">Synced: 1</span>' in page
    assert '<span class="ll-badge failed">Failed: 1</span>' in page
    assert '<span class="ll-badge not_synced">Not synced: 1</span>' in page
    assert "The customer name is refused." in page
    assert f'href="{reverse("admin:portal_invoice_change", args=[failed.pk])}"' in page
    assert '<svg id="qbo-outcomes-chart"' in page
    assert page.count('class="ll-chart-day"') == 30
    assert f'data-day="{timezone.localdate().isoformat()}"' in page
    assert "1 created, 0 updated, 1 failed, 0 conflicts" in page
    assert "Created: 1</li>" in page  # the 45-day-old run is outside the chart
    assert "<script" not in page.split('id="qbo-dashboard"')[1].split("</section>")[0]


def test_dashboard_without_connection_says_so(client, login, db):
    login(BILLING_STAFF)
    page = client.get(reverse("admin:index")).content.decode()
    assert "No QuickBooks company is connected." in page
    assert 'id="qbo-outcomes-chart"' not in page


def test_dashboard_hidden_from_staff_without_a_role(client, user_factory, db):
    client.force_login(user_factory())
    page = client.get(reverse("admin:index")).content.decode()
    assert 'id="qbo-dashboard"' not in page


def test_sync_run_and_record_lists_are_read_only(client, login, connection, invoices):
    [invoice] = invoices(1)
    record = SyncRecord.objects.create(
        connection=connection, object_type="invoice", invoice=invoice, status="failed"
    )
    run = SyncRun.objects.create(
        connection=connection, trigger="button", direction="push", total=4, done=1
    )
    SyncEvent.objects.create(run=run, record=record, action="failed", message="Refused by QBO")
    login(SYNC_ADMINISTRATORS)
    page = client.get(reverse("admin:sync_syncrun_changelist")).content.decode()
    assert "<span>1 / 4</span>" in page
    page = client.get(reverse("admin:sync_syncrun_change", args=[run.pk])).content.decode()
    assert "Refused by QBO" in page
    assert 'name="_save"' not in page
    page = client.get(reverse("admin:sync_syncrecord_changelist")).content.decode()
    assert '<span class="ll-badge failed">Failed</span>' in page
    assert client.get(reverse("admin:sync_syncrecord_add")).status_code == 403
    page = client.get(reverse("admin:integrations_connection_changelist")).content.decode()
    assert "Sandbox Company" in page
    assert client.get(reverse("admin:integrations_connection_add")).status_code == 403


def test_sync_record_retry_action_for_billing_staff(client, login, connection, invoices, queued):
    first, second = invoices(2)
    failed = SyncRecord.objects.create(
        connection=connection, object_type="invoice", invoice=first, status="failed"
    )
    synced = SyncRecord.objects.create(
        connection=connection, object_type="invoice", invoice=second, status="synced"
    )
    login(BILLING_STAFF)
    response = client.post(
        reverse("admin:sync_syncrecord_changelist"),
        {"action": "retry", "_selected_action": [failed.pk, synced.pk]},
        follow=True,
    )
    assert "Retrying 1 failed record. 1 selected had not failed and were left alone." in (
        response.content.decode()
    )
    assert queued == [("sync.tasks.push_invoices", connection.pk, [first.pk], "retry")]


def test_auditors_cannot_retry_sync_records(client, login, connection, invoices, queued):
    [invoice] = invoices(1)
    record = SyncRecord.objects.create(
        connection=connection, object_type="invoice", invoice=invoice, status="failed"
    )
    login(AUDITORS)
    response = client.post(
        reverse("admin:sync_syncrecord_changelist"),
        {"action": "retry", "_selected_action": [record.pk]},
    )
    assert response.status_code in (200, 302)
    assert queued == []
    record.refresh_from_db()
    assert record.status == "failed"


def test_dashboard_counts_invoices_linked_to_another_company_apart(
    client, login, connection, invoices
):
    from integrations.models import Connection

    old = Connection.objects.create(
        environment="emulator", realm_id="4620816365000000000", company_name="Old Books",
        status=Connection.Status.DISCONNECTED,
    )  # fmt: skip
    linked_there, _plain = invoices(2)
    SyncRecord.objects.create(
        connection=old, object_type="invoice", invoice=linked_there, qbo_id="12", status="synced"
    )
    login(AUDITORS)
    page = client.get(reverse("admin:index")).content.decode()
    assert '<span class="ll-badge not_synced">Not synced: 1</span>' in page
    listed = reverse("admin:portal_invoice_changelist") + "?qbo_status=linked_elsewhere"
    assert (
        f'<p id="qbo-count-elsewhere"><a href="{listed}">1 more invoice linked to another '
        "QuickBooks company</a>: not sent to Sandbox Company unless sent one by one with Sync "
        "now.</p>" in page
    )
