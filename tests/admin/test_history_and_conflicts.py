"""Sync history with live progress, the run's event log, and resolving conflicts."""

from __future__ import annotations

from django.urls import reverse

from portal.roles import AUDITORS, BILLING_STAFF, SYNC_ADMINISTRATORS
from sync.models import SyncEvent, SyncRecord, SyncRun
from tests.sync.conftest import qbo_invoices

REFRESH = '<meta http-equiv="refresh" content="2">'


def _run(connection, **fields):
    defaults = {"trigger": "button", "direction": "both", "status": "done"}
    return SyncRun.objects.create(connection=connection, **{**defaults, **fields})


def test_history_lists_runs_newest_first_with_progress_and_counts(client, login, connection):
    older = _run(connection, total=10, done=10, created=3, failed=1, api_calls=4)
    newer = _run(connection, status="running", total=8, done=2, trigger="schedule")
    login(AUDITORS)
    page = client.get(reverse("admin:quickbooks"), {"tab": "history"}).content.decode()
    assert page.index(f'id="run-{newer.pk}"') < page.index(f'id="run-{older.pk}"')
    assert '<progress max="100" value="25"' in page
    assert "<span>2 / 8</span>" in page
    assert f'href="{reverse("admin:quickbooks_run", args=[older.pk])}"' in page
    # A running run keeps the page refreshing; without one, it stays still.
    assert REFRESH in page
    newer.status = "done"
    newer.save()
    page = client.get(reverse("admin:quickbooks"), {"tab": "history"}).content.decode()
    assert REFRESH not in page


def test_run_page_shows_events_and_refreshes_only_while_running(
    client, login, connection, invoices
):
    [invoice] = invoices(1)
    record = SyncRecord.objects.create(
        connection=connection, object_type="invoice", invoice=invoice, status="failed"
    )
    run = _run(connection, status="running", total=2, done=1)
    SyncEvent.objects.create(run=run, record=record, action="failed", level="error", message="No")
    SyncEvent.objects.create(run=run, action="created", message="Created customer Bayside")
    login(BILLING_STAFF)
    url = reverse("admin:quickbooks_run", args=[run.pk])
    page = client.get(url).content.decode()
    assert REFRESH in page
    assert "Created customer Bayside" in page
    assert f'href="{reverse("admin:portal_invoice_change", args=[invoice.pk])}"' in page
    run.status = "done"
    run.save()
    assert REFRESH not in client.get(url).content.decode()


def test_history_waits_for_a_queued_sync_then_stops(client, login, connection, started, queued):
    login(BILLING_STAFF)
    response = client.post(reverse("admin:quickbooks_sync"))
    page = client.get(response.url).content.decode()
    assert 'id="qbo-waiting"' in page and REFRESH in page
    _run(connection, status="running")
    page = client.get(response.url).content.decode()
    assert 'id="qbo-waiting"' not in page and REFRESH in page


def test_conflicts_tab_shows_both_versions_side_by_side(client, login, connection, invoices):
    [invoice] = invoices(1)
    record = SyncRecord.objects.create(
        connection=connection,
        object_type="invoice",
        invoice=invoice,
        status="conflict",
        qbo_id="55",
        details="Changed on both sides since the last sync.",
        conflict_portal={"number": "INV-1", "customer_memo": "From the portal"},
        conflict_qbo={"number": "INV-1", "customer_memo": "From QuickBooks"},
    )
    login(SYNC_ADMINISTRATORS)
    page = client.get(reverse("admin:quickbooks"), {"tab": "conflicts"}).content.decode()
    assert f'id="conflict-{record.pk}"' in page
    assert (
        '<tr class="ll-differs" data-differs="true"><th scope="row">Customer memo '
        '<span class="ll-muted">(differs)</span></th><td class="ll-multiline">From the portal'
        '</td><td class="ll-multiline">From QuickBooks</td></tr>'
    ) in page
    assert '<tr class=""><th scope="row">Invoice number</th>' in page
    assert f'id="qbo-keep-portal-{record.pk}"' in page
    assert f'id="qbo-keep-qbo-{record.pk}"' in page
    client.logout()
    login(BILLING_STAFF)
    page = client.get(reverse("admin:quickbooks"), {"tab": "conflicts"}).content.decode()
    assert "From QuickBooks" in page
    assert f'id="qbo-keep-portal-{record.pk}"' not in page
    url = reverse("admin:quickbooks_conflict_resolve", args=[record.pk])
    assert client.post(url, {"keep": "portal"}).status_code == 403


def test_keep_portal_resolves_a_held_conflict_in_quickbooks(
    client,
    login,
    ready,
    run_sync,
    make_invoice,
    qbo_ui,
    settings,
    django_capture_on_commit_callbacks,
):
    assert run_sync("pull").status == "done"
    invoice = make_invoice(number="INV-7001")
    run_sync("push")
    [obj] = qbo_invoices(qbo_ui, "INV-7001")
    qbo_ui.update("Invoice", {"Id": obj["Id"], "PrivateNote": "QBO note"})
    invoice.private_note = "Portal note"
    invoice.save()
    run_sync("both")
    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "conflict"
    login(SYNC_ADMINISTRATORS)
    page = client.get(reverse("admin:quickbooks"), {"tab": "conflicts"}).content.decode()
    assert "Portal note" in page and "QBO note" in page
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:quickbooks_conflict_resolve", args=[record.pk]),
            {"keep": "portal"},
            follow=True,
        )
    messages = [str(m) for m in response.context["messages"]]
    assert (
        "Invoice INV-7001: keeping the portal's version. The result shows on the Sync history "
        "tab." in messages
    )
    record.refresh_from_db()
    assert record.status == "synced"
    [obj] = qbo_invoices(qbo_ui, "INV-7001")
    assert obj["PrivateNote"] == "Portal note"
    page = client.get(reverse("admin:quickbooks"), {"tab": "conflicts"})
    assert 'id="qbo-no-conflicts"' in page.content.decode()


def _clash(run_sync, make_invoice, qbo_ui, ready):
    from sync.models import SyncConfiguration
    from tests.sync.test_number_clash import _accountants_invoice

    SyncConfiguration.objects.filter(connection=ready).update(push_on_save=False)
    assert run_sync("pull").status == "done"
    portal = make_invoice(number="2050")
    made = _accountants_invoice(qbo_ui, "2050")
    assert run_sync("pull").status == "done"
    return portal, made, SyncRecord.objects.get(qbo_id=made["Id"])


def test_conflicts_tab_names_both_invoices_of_a_number_clash_and_settles_it(
    client,
    login,
    ready,
    run_sync,
    make_invoice,
    qbo_ui,
    settings,
    django_capture_on_commit_callbacks,
):
    portal, made, record = _clash(run_sync, make_invoice, qbo_ui, ready)
    login(SYNC_ADMINISTRATORS)
    page = client.get(reverse("admin:quickbooks"), {"tab": "conflicts"}).content.decode()
    assert f'id="clash-{record.pk}"' in page
    assert "kept in the portal as <a href=" in page and f"2050-QBO{made['Id']}</a>" in page
    assert (
        f'href="{reverse("admin:portal_invoice_change", args=[portal.pk])}">invoice 2050</a>'
        in page
    )
    url = reverse("admin:quickbooks_clash_resolve", args=[record.pk])

    # A number taken in the portal is refused at once, naming the field's problem.
    response = client.post(
        url, {"action": "renumber", f"clash-{record.pk}-number": "2050"}, follow=True
    )
    assert (
        f"Invoice 2050-QBO{made['Id']}: Number 2050 is taken in the portal too; choose another."
        in [str(m) for m in response.context["messages"]]
    )
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url, {"action": "renumber", f"clash-{record.pk}-number": "2050-P"}, follow=True
        )
    assert (
        "Portal invoice 2050 is being renumbered 2050-P and sent; QuickBooks' invoice keeps "
        "number 2050. The result shows on the Sync history tab."
    ) in [str(m) for m in response.context["messages"]]
    portal.refresh_from_db()
    assert portal.number == "2050-P"
    assert [r["Id"] for r in qbo_invoices(qbo_ui, "2050")] == [made["Id"]]
    assert len(qbo_invoices(qbo_ui, "2050-P")) == 1
    page = client.get(reverse("admin:quickbooks"), {"tab": "conflicts"}).content.decode()
    assert 'id="qbo-no-clashes"' in page


def test_billing_staff_see_a_number_clash_but_cannot_settle_it(
    client, login, ready, run_sync, make_invoice, qbo_ui
):
    _portal, _made, record = _clash(run_sync, make_invoice, qbo_ui, ready)
    login(BILLING_STAFF)
    page = client.get(reverse("admin:quickbooks"), {"tab": "conflicts"}).content.decode()
    assert f'id="clash-{record.pk}"' in page
    assert f'id="qbo-clash-link-{record.pk}"' not in page
    url = reverse("admin:quickbooks_clash_resolve", args=[record.pk])
    assert client.post(url, {"action": "link"}).status_code == 403
