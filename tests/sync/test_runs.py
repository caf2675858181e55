import pytest
from django.core.management import call_command

from portal.models import Invoice
from sync.locks import lock_acquire
from sync.models import SyncLock, SyncRecord, SyncRun
from sync.services import sync_run
from tests.sync.conftest import qbo_invoices


def test_dry_run_changes_nothing_on_either_side(run_sync, make_invoice, qbo, qbo_ui):
    make_invoice(number="INV-4001")
    before = len(qbo_ui.rows("Invoice"))
    qbo.app.clear_log()
    run = run_sync("both", dry_run=True)
    assert run.status == "done"
    assert "create invoice Invoice INV-4001" in run.planned
    assert any(line.startswith("pull invoice") for line in run.planned)
    assert len(qbo_ui.rows("Invoice")) == before
    assert not [
        r
        for r in qbo.app.requests_log()
        if r.get("method") == "POST" and "/batch" not in r.get("path", "")
    ]
    assert Invoice.objects.count() == 1
    assert not SyncRecord.objects.filter(object_type="invoice", status="synced").exists()


def test_only_one_sync_per_connection_at_a_time(ready, make_invoice):
    assert lock_acquire(connection=ready, holder="someone-else")
    run = sync_run(connection=ready, trigger="schedule", direction="both")
    assert run.status == "skipped"
    assert run.message == "Another sync for this company is running; this one was skipped."
    SyncLock.objects.filter(connection=ready).update(holder="")
    assert sync_run(connection=ready, trigger="schedule", direction="push").status == "done"


def test_connection_needing_reconnect_stops_the_run_with_one_reason(ready, make_invoice):
    make_invoice()
    ready.status = "needs_reconnect"
    ready.last_error = "QuickBooks no longer accepts Ledgerlink's sign-in."
    ready.save()
    run = sync_run(connection=ready, trigger="schedule", direction="both")
    assert run.status == "failed"
    assert run.message == "QuickBooks no longer accepts Ledgerlink's sign-in."
    assert not SyncRecord.objects.filter(status="failed").exists()


def test_run_is_idempotent_when_run_twice(run_sync, make_invoice, qbo_ui):
    make_invoice(number="INV-4002")
    run_sync("push")
    run_sync("push")
    assert len(qbo_invoices(qbo_ui, "INV-4002")) == 1


@pytest.mark.django_db(transaction=True)
def test_saving_an_invoice_queues_a_push_after_commit(ready, make_invoice, qbo_ui, settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
    from sync.models import SyncConfiguration

    SyncConfiguration.objects.get_or_create(connection=ready)
    invoice = make_invoice(number="INV-4003")
    invoice.customer_memo = "saved"
    invoice.save()
    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "synced"
    [obj] = qbo_invoices(qbo_ui, "INV-4003")
    assert obj["CustomerMemo"]["value"] == "saved"
    runs = SyncRun.objects.filter(trigger="save")
    assert runs.exists()


def test_failed_records_retry_on_the_projects_backoff(run_sync, make_invoice, qbo, inline_tasks):
    from django.utils import timezone

    from sync.tasks import scheduled_sync

    invoice = make_invoice(number="INV-4004")
    real_draw = qbo.app.faults.draw
    qbo.app.faults.draw = lambda: "http503"
    try:
        run_sync("push")
    finally:
        qbo.app.faults.draw = real_draw
    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "failed"
    assert "QuickBooks is having trouble right now" in record.details
    assert record.next_retry_at > timezone.now()
    SyncRecord.objects.filter(pk=record.pk).update(next_retry_at=timezone.now())
    scheduled_sync()
    record.refresh_from_db()
    assert record.status == "synced"


def test_push_costs_a_fixed_number_of_queries_per_invoice(
    ready, run_sync, make_invoice, django_assert_max_num_queries
):
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    make_invoice(number="Q-0")
    run_sync("push")  # customers and items bound

    for n in range(1, 6):
        make_invoice(number=f"Q-{n}")
    with CaptureQueriesContext(db) as five:
        assert run_sync("push").created == 5
    for n in range(100, 135):
        make_invoice(number=f"Q-{n}")
    # Each invoice costs its record insert (with its requestid), its settle and taking
    # QuickBooks' default due date; reading the invoices, lines, records and bindings is a
    # fixed cost, whatever the number (progress is written every 25 records).
    fixed = len(five) - 3 * 5
    with django_assert_max_num_queries(fixed + 3 * 35 + 4):
        assert run_sync("push").created == 35


def test_idle_sync_costs_at_most_two_api_calls(ready, run_sync, make_invoice, qbo):
    for n in range(40):
        make_invoice(number=f"I-{n}")
    run_sync("both")
    run_sync("both")
    qbo.app.clear_log()
    run = run_sync("both")
    api = [r for r in qbo.app.requests_log() if "/v3/" in r.get("path", "")]
    assert len(api) <= 2, api
    assert (run.created, run.updated) == (0, 0)


def test_commands_print_progress_and_summary(ready, make_invoice, capsys):
    make_invoice(number="INV-4005")
    call_command("qbo_sync", "--push")
    out = capsys.readouterr().out
    assert "Done: 3 created" in out
    call_command("qbo_status")
    out = capsys.readouterr().out
    assert "invoice   synced" in out
    call_command("qbo_retry_failed")
    assert "no failed invoices" in capsys.readouterr().out
    call_command("qbo_sync", "--reconcile")
    out = capsys.readouterr().out
    assert "equal on both sides: " in out


def test_cursor_older_than_cdc_allows_means_a_full_read(run_sync, ready, qbo):
    from datetime import timedelta

    from django.utils import timezone

    from sync.models import SyncConfiguration

    run_sync("pull")
    SyncConfiguration.objects.filter(connection=ready).update(
        pull_cursor=timezone.now() - timedelta(days=40)
    )
    qbo.app.clear_log()
    run = run_sync("pull")
    assert run.status == "done", run.message
    paths = [r.get("path", "") for r in qbo.app.requests_log()]
    assert not any(p.endswith("/cdc") for p in paths)
    assert any(p.endswith("/query") for p in paths)
    run = run_sync("pull")
    assert any(r.get("path", "").endswith("/cdc") for r in qbo.app.requests_log())


def test_reasons_name_records_instead_of_quickbooks_ids():
    from integrations.quickbooks import errors as catalogue
    from integrations.quickbooks.errors import ValidationError

    error = ValidationError(
        "Invalid Reference Id",
        code="2500",
        element="ItemRef",
        detail="Invalid Reference Id: 42",
        intuit_tid="1-abc",
    )
    reason = catalogue.describe(error, id_names={"42": "Pump"})
    assert reason == (
        "QuickBooks does not know the ItemRef this invoice points to: sync or re-create it in "
        "QuickBooks, then retry. (QuickBooks said: Invalid Reference Id: Pump)"
    )
    assert catalogue.error_fields(error)["intuit_tid"] == "1-abc"


def test_schedule_syncs_each_company_when_its_interval_has_passed(
    ready, make_invoice, qbo_ui, inline_tasks
):
    from datetime import timedelta

    from django.utils import timezone

    from sync.models import SyncConfiguration
    from sync.tasks import scheduled_sync

    config, _ = SyncConfiguration.objects.update_or_create(
        connection=ready, defaults={"sync_type": "one_way", "push_on_save": False}
    )
    make_invoice(number="INV-4100")
    [run_id] = scheduled_sync()
    assert SyncRun.objects.get(pk=run_id).direction == "push"
    assert len(qbo_invoices(qbo_ui, "INV-4100")) == 1
    make_invoice(number="INV-4101")
    assert scheduled_sync() == []  # the interval has not passed yet
    config.refresh_from_db()
    SyncConfiguration.objects.filter(pk=config.pk).update(
        last_push_at=timezone.now() - timedelta(minutes=config.pull_interval_minutes)
    )
    assert len(scheduled_sync()) == 1
    assert len(qbo_invoices(qbo_ui, "INV-4101")) == 1


@pytest.mark.parametrize("direction", ["items", "both"])
def test_progress_never_runs_past_the_total(run_sync, ready, make_invoice, qbo_ui, direction):
    make_invoice(number="INV-4200")
    run_sync("both")
    obj = qbo_invoices(qbo_ui, "INV-4200")[0]
    qbo_ui.create(
        "Payment",
        {
            "CustomerRef": obj["CustomerRef"],
            "TotalAmt": 10,
            "Line": [{"Amount": 10, "LinkedTxn": [{"TxnId": obj["Id"], "TxnType": "Invoice"}]}],
        },
    )
    run = run_sync(direction)
    assert run.status == "done"
    assert run.done == run.total
    assert run.progress_percent == 100
