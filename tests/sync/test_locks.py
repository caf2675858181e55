"""The company's sync lease: one run at a time, kept by a long run, freed by a dead one, and a
webhook pull that finds a run in progress queued again rather than dropped."""

import ast
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from integrations.models import WebhookEvent
from integrations.quickbooks.backend import QuickBooksBackend
from integrations.quickbooks.client import QBOClient
from sync.locks import RedisLease, lease_for, lock_acquire, lock_held, lock_release
from sync.models import SyncLock, SyncRecord, SyncRun
from sync.services import sync_run
from sync.tasks import pull_realm
from tests.portal.test_redis import _redis_up
from tests.sync.conftest import qbo_invoices

LEASE = 1.0


@pytest.fixture
def short_lease(settings):
    settings.SYNC_LOCK_LEASE_SECONDS = LEASE
    return LEASE


def test_run_longer_than_its_lease_keeps_the_lock_through_the_heartbeat(
    run_sync, ready, make_invoice, short_lease
):
    for n in range(3):
        make_invoice(number=f"INV-77{n}")
    started = time.monotonic()
    intruder_got_it = []

    def slow_progress(run):
        # The run pauses between steps for most of its lease each time; another worker tries
        # to take the company's lock meanwhile.
        time.sleep(0.7 * short_lease)
        intruder_got_it.append(lock_acquire(connection=ready, holder="another-worker"))

    run = run_sync("both", on_progress=slow_progress)

    assert run.status == "done", run.message
    assert time.monotonic() - started > 2 * short_lease
    assert len(intruder_got_it) >= 3
    assert not any(intruder_got_it), "another run took the lock while this one was running"
    # Released at the end: the next run starts at once.
    assert lock_acquire(connection=ready, holder="next-run")


def test_a_dead_run_frees_the_lock_after_one_lease(ready, short_lease):
    assert lock_acquire(connection=ready, holder="worker-that-dies")
    assert not lock_acquire(connection=ready, holder="second-worker")
    time.sleep(short_lease + 0.2)
    assert lock_acquire(connection=ready, holder="second-worker")


@pytest.mark.skipif(not _redis_up(), reason="Redis is not running on 127.0.0.1:6379")
def test_with_redis_the_lease_is_a_redis_lock(ready, settings, short_lease):
    settings.REDIS_URL = "redis://127.0.0.1:6379/7"
    first = lease_for(connection=ready, holder="run-a")
    second = lease_for(connection=ready, holder="run-b")
    assert isinstance(first, RedisLease)
    try:
        assert first.acquire()
        assert not second.acquire()
        # Renewed before it runs out, it outlives its first lease.
        for _ in range(3):
            time.sleep(0.6 * short_lease)
            assert first.renew()
            assert not second.acquire()
        first.release()
        assert second.acquire()
        assert not first.renew(), "a lease another holder took cannot be renewed"
        # A holder that stops renewing loses it after one lease.
        time.sleep(short_lease + 0.2)
        assert first.acquire()
    finally:
        first.release()
        second.release()


def test_webhook_pull_that_finds_a_run_in_progress_is_queued_again(ready, qbo_ui):
    customer = qbo_ui.create("Customer", {"DisplayName": "Busy Bees Ltd"})
    event = WebhookEvent.objects.create(
        event_key=f"Customer-{customer['Id']}-Create",
        realm_id=ready.realm_id,
        entity="Customer",
        entity_id=customer["Id"],
        operation="Create",
    )
    assert lock_acquire(connection=ready, holder="scheduled-run")

    assert pull_realm(ready.realm_id) == []

    assert not SyncRun.objects.filter(trigger="webhook").exists()
    event.refresh_from_db()
    assert event.processed_at is None, "the notified change must not be marked as handled"
    [again] = Schedule.objects.filter(func="sync.tasks.pull_realm")
    assert ast.literal_eval(again.args) == (ready.realm_id, "webhook")
    assert timezone.now() < again.next_run <= timezone.now() + timedelta(minutes=1)
    # Still busy: asking again queues nothing more.
    assert pull_realm(ready.realm_id) == []
    assert Schedule.objects.filter(func="sync.tasks.pull_realm").count() == 1

    # The run ends; the queued pull runs as django-q2's scheduler would start it.
    lock_release(connection=ready, holder="scheduled-run")
    [run_id] = pull_realm(*ast.literal_eval(again.args))

    assert SyncRun.objects.get(pk=run_id).status == "done"
    event.refresh_from_db()
    assert event.processed_at is not None
    assert ready.sync_records.filter(customer__display_name="Busy Bees Ltd").exists()


def test_webhook_pull_that_meets_a_run_starting_at_the_same_moment_is_queued_again(
    ready, monkeypatch
):
    # The lease was free when checked and taken by another run a moment later.
    monkeypatch.setattr("sync.tasks.lock_held", lambda connection: False)
    assert lock_acquire(connection=ready, holder="scheduled-run")

    [run_id] = pull_realm(ready.realm_id)

    assert SyncRun.objects.get(pk=run_id).status == "skipped"
    assert Schedule.objects.filter(name=f"pull-realm-{ready.realm_id}").exists()


def _stalls_once(connection, lease: float):
    """A progress callback: at its first call the run stalls past its lease, and another
    worker takes the company meanwhile."""
    calls = []

    def stall(run):
        calls.append(run.done)
        if len(calls) == 1:
            time.sleep(lease + 0.3)
            assert lock_acquire(connection=connection, holder="another-worker")

    return stall


def test_a_run_whose_lease_was_taken_stops_before_sending_and_nothing_is_duplicated(
    run_sync, ready, make_invoice, short_lease, qbo_ui
):
    for n in range(30):
        make_invoice(number=f"L-{n:02}")
    run = run_sync("push", on_progress=_stalls_once(ready, short_lease))

    assert run.status == "failed"
    assert "another sync took over" in run.message
    # The other worker's lease is untouched.
    assert SyncLock.objects.get(connection=ready).holder == "another-worker"
    lock_release(connection=ready, holder="another-worker")
    run = run_sync("push")
    assert run.status == "done", run.message
    numbers = Counter(r.get("DocNumber") for r in qbo_invoices(qbo_ui) if "L-" in r["DocNumber"])
    assert len(numbers) == 30 and set(numbers.values()) == {1}
    bindings = SyncRecord.objects.filter(connection=ready, object_type="invoice")
    assert set(bindings.values_list("status", flat=True)) == {"synced"}


def test_an_unexpected_error_after_sending_ends_the_run_failed_and_the_next_run_replays(
    run_sync, ready, make_invoice, qbo_ui, monkeypatch
):
    invoice = make_invoice(number="K-100")
    real_write = QuickBooksBackend.write_batch

    def sent_then_crashed(self, entity, *args, **kwargs):
        answer = real_write(self, entity, *args, **kwargs)
        if entity == "Invoice":
            raise RuntimeError("a bug in Ledgerlink, after QuickBooks saved the invoice")
        return answer

    monkeypatch.setattr(QuickBooksBackend, "write_batch", sent_then_crashed)
    run = run_sync("push")
    monkeypatch.undo()

    assert run.status == "failed"
    assert run.finished_at is not None
    assert run.message.startswith(
        "The run stopped on an unexpected error in Ledgerlink (RuntimeError: a bug in Ledgerlink"
    )
    record = SyncRecord.objects.get(invoice=invoice)
    assert (record.status, record.uncertain) == ("pending", True)
    # The lease is released at once: the next run does not wait for it to run out.
    assert not lock_held(connection=ready)

    run = run_sync("push")

    assert run.status == "done", run.message
    assert len(qbo_invoices(qbo_ui, "K-100")) == 1
    record.refresh_from_db()
    assert (record.status, record.uncertain, record.qbo_id != "") == ("synced", False, True)


def test_a_run_left_running_by_a_dead_worker_is_marked_failed_within_one_lease(
    run_sync, ready, short_lease
):
    from sync.services import runs_end_dead

    dead = SyncRun.objects.create(
        connection=ready, trigger="schedule", direction="both", status="running"
    )
    assert lock_acquire(connection=ready, holder=f"run-{dead.pk}-dead")
    # While its lease holds, the run may be alive: the schedule leaves it alone.
    assert runs_end_dead(connection=ready) == 0
    time.sleep(short_lease + 0.2)
    assert runs_end_dead(connection=ready) == 1
    dead.refresh_from_db()
    assert dead.status == "failed" and dead.finished_at is not None
    assert dead.message.startswith("The worker running this sync stopped before the run ended")

    # A new run that takes the lease ends any older run still marked running, naming itself.
    older = SyncRun.objects.create(
        connection=ready, trigger="schedule", direction="both", status="running"
    )
    run = run_sync("push")
    assert run.status == "done", run.message
    older.refresh_from_db()
    assert older.status == "failed"
    assert f"run {run.pk} confirms its writes in flight" in older.message


def test_lease_lost_after_the_last_step_still_ends_the_run(run_sync, ready, short_lease):
    run = run_sync("push", on_progress=_stalls_once(ready, short_lease))

    assert run.status in ("done", "failed")
    assert run.finished_at is not None
    assert SyncLock.objects.get(connection=ready).holder == "another-worker"


def test_quickbooks_refusing_the_connection_during_a_pull_stops_the_run_with_one_reason(
    ready, make_invoice
):
    from sync.models import SyncConfiguration

    SyncConfiguration.objects.update_or_create(
        connection=ready, defaults={"pull_cursor": timezone.now() - timedelta(hours=1)}
    )
    before = SyncConfiguration.objects.get(connection=ready).pull_cursor
    refused = QBOClient(
        realm_id=ready.realm_id,
        access_token_provider=lambda: "revoked-token",
        environment=ready.environment,
        max_retries=0,
    )

    run = sync_run(connection=ready, trigger="command", direction="pull", client=refused)

    assert run.status == "failed"
    assert run.message == (
        "QuickBooks no longer accepts Ledgerlink's connection. "
        "A Sync administrator must reconnect to QuickBooks."
    )
    assert SyncConfiguration.objects.get(connection=ready).pull_cursor == before
