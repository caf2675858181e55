"""Nothing syncs by itself until the set-up is complete and a Sync administrator starts it.

The schedule, push on save, webhook pulls and ``qbo_sync`` are gated in the engine's entry
(``sync_run``): before the start each of them records a skipped run naming what is missing,
and QuickBooks gets no request at all (counted from the emulator's request log).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

from integrations.models import Connection, WebhookEvent
from portal.models import TaxRate
from sync.configuration import configuration_save, sync_gate, sync_start
from sync.models import SyncConfiguration, SyncRecord, SyncRun
from sync.tasks import pull_realm, push_invoices, schedule_due, scheduled_sync
from tests.qbo import pick_journals, set_up_for_sync
from tests.sync.conftest import qbo_invoices

NOT_STARTED = (
    "Nothing was synced: sync has not been started for this company. A Sync administrator "
    "starts it by pressing Sync now on the QuickBooks page."
)
TAX_MISSING = (
    "Nothing was synced: the set-up is not complete. 1 tax rate is not mapped to a QuickBooks "
    "tax code: California. Once it is, sync has to be started. A Sync administrator starts it "
    "by pressing Sync now on the QuickBooks page."
)


def api_requests(qbo) -> list[dict]:
    return [r for r in qbo.app.requests_log() if "/v3/" in r.get("path", "")]


@pytest.fixture
def set_up(connection_factory):
    """Set up completely (configuration saved, journals, tax mapped), but nobody has pressed
    Sync now yet."""
    connection = connection_factory()
    configuration_save(connection=connection, sync_type="two_way")
    return set_up_for_sync(connection, start=False)


@pytest.fixture
def half_done(connection_factory):
    """Connected, configuration and journals saved, the portal's tax rate NOT mapped."""
    connection = connection_factory()
    configuration_save(connection=connection, sync_type="two_way")
    pick_journals(connection)
    TaxRate.objects.create(name="California", percent=Decimal("8"))
    connection.refresh_from_db()
    return connection


def test_every_automatic_trigger_does_nothing_before_the_start_and_says_why(
    set_up, make_invoice, qbo, qbo_ui
):
    invoice = make_invoice(number="INV-7001")
    qbo.app.clear_log()

    save = SyncRun.objects.get(pk=push_invoices(set_up.pk, [invoice.pk], "save"))
    [schedule] = SyncRun.objects.filter(pk__in=scheduled_sync())
    [webhook] = SyncRun.objects.filter(pk__in=pull_realm(set_up.realm_id))
    call_command("qbo_sync", "--push")
    command = SyncRun.objects.get(trigger="command")

    assert api_requests(qbo) == []
    for run in (save, schedule, webhook, command):
        assert (run.trigger, run.status, run.message) == (run.trigger, "skipped", NOT_STARTED)
        assert run.api_calls == 0
        assert run.events.get().message == NOT_STARTED
    assert qbo_invoices(qbo_ui, "INV-7001") == []
    assert not SyncRecord.objects.exists()


def test_a_half_done_set_up_names_what_is_missing(half_done, make_invoice, qbo):
    qbo.app.clear_log()

    [run] = SyncRun.objects.filter(pk__in=scheduled_sync())

    assert (run.status, run.message) == ("skipped", TAX_MISSING)
    assert sync_gate(half_done) == TAX_MISSING
    assert api_requests(qbo) == []


def test_the_schedule_records_one_skip_per_reason_not_one_per_minute(
    half_done, make_invoice, qbo, monkeypatch, inline_tasks
):
    now = timezone.now()
    qbo.app.clear_log()
    for minute in range(3):
        moment = now + timedelta(minutes=minute)
        monkeypatch.setattr("sync.tasks.timezone.now", lambda moment=moment: moment)
        config = SyncConfiguration.objects.select_related("connection").get()
        # Honest: the schedule found the company due every minute (never synced), so without
        # the gate it would have pushed and pulled three times.
        assert schedule_due(config, now=moment) == "both"
        scheduled_sync()

    assert list(SyncRun.objects.values_list("status", "message")) == [("skipped", TAX_MISSING)]
    assert api_requests(qbo) == []

    # The reason changes once the tax rate is mapped: one more skip, naming the start.
    set_up_for_sync(half_done, start=False)  # fetches tax codes: its requests are not the sync's
    qbo.app.clear_log()
    scheduled_sync()
    scheduled_sync()
    assert list(SyncRun.objects.order_by("pk").values_list("message", flat=True)) == [
        TAX_MISSING,
        NOT_STARTED,
    ]
    assert api_requests(qbo) == []

    # Started: the very next tick syncs.
    assert sync_start(connection=half_done, user=None) is True
    [run] = SyncRun.objects.filter(pk__in=scheduled_sync())
    assert run.status == "done", run.message
    assert api_requests(qbo)


def test_a_webhook_before_the_start_is_not_queued_again_and_its_events_are_settled(set_up, qbo):
    from django_q.models import Schedule

    WebhookEvent.objects.create(
        event_key="k1", realm_id=set_up.realm_id, entity="Invoice", entity_id="1", operation="X"
    )

    [run_id] = pull_realm(set_up.realm_id)

    assert SyncRun.objects.get(pk=run_id).status == "skipped"
    assert not Schedule.objects.filter(func="sync.tasks.pull_realm").exists()
    # The first pull after the start reads everything since the first invoice date anyway.
    assert not WebhookEvent.objects.filter(processed_at__isnull=True).exists()


def test_staff_actions_are_not_gated(set_up, make_invoice, qbo, qbo_ui):
    """Sync now, Quick Sync and the invoice's own buttons are staff's choice of this very run
    (Sync now is what starts sync; the others check what they need themselves)."""
    from sync.services import sync_run

    make_invoice(number="INV-7002")
    run = sync_run(connection=set_up, trigger="button", direction="items")
    assert run.status == "done", run.message
    assert api_requests(qbo)


def test_starting_needs_the_set_up_complete_and_happens_once(half_done, user_factory):
    admin = user_factory(role="Sync administrators")
    with pytest.raises(ValidationError) as refused:
        sync_start(connection=half_done, user=admin)
    assert refused.value.messages == [
        "1 tax rate is not mapped to a QuickBooks tax code: California."
    ]
    assert Connection.objects.get().sync_started_at is None

    set_up_for_sync(half_done, start=False)
    assert sync_start(connection=half_done, user=admin) is True
    started = Connection.objects.get()
    assert started.sync_started_by == admin
    assert sync_start(connection=half_done, user=None) is False
    assert Connection.objects.get().sync_started_at == started.sync_started_at
    assert sync_gate(half_done) == ""


def test_once_started_a_new_unmapped_tax_rate_fails_only_the_invoices_that_use_it(
    ready, make_invoice, qbo_ui
):
    TaxRate.objects.create(name="Tucson City", percent=Decimal("0.5"))
    plain = make_invoice(number="INV-7003")
    taxed = make_invoice(number="INV-7004")
    taxed.lines.update(tax_rate=TaxRate.objects.get(name="Tucson City"))

    run = SyncRun.objects.get(pk=push_invoices(ready.pk, [plain.pk, taxed.pk], "save"))

    assert run.status == "done", run.message
    assert qbo_invoices(qbo_ui, "INV-7003")
    record = SyncRecord.objects.get(invoice=taxed)
    assert record.status == "failed"
    assert "Tucson City is not mapped" in record.details
