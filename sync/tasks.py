"""django-q2 tasks: each parses its arguments, calls one service and reports.

django-q2's ``retry`` is a redelivery timeout, not a backoff; failed records are retried on
the engine's own schedule (``next_retry_at``) by ``scheduled_sync``, so these tasks never rely
on redelivery to retry and are safe to run twice (the connection lock and the change
detection make a second run a no-op).

The schedule fans out: each minute ``scheduled_sync`` queues one ``run_sync`` task per company
that is due, so the workers of every ``qcluster`` process (on every machine sharing the
database and Redis) take different companies at once, while each company's lease keeps its
syncs one at a time.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from integrations.models import Connection, WebhookEvent
from portal.tasks import queue, queue_later
from sync.configuration import sync_gate
from sync.locks import lock_held
from sync.models import SyncConfiguration, SyncRecord, SyncRun
from sync.services import (
    ClashError,
    conflict_resolve,
    number_clash_link,
    number_clash_renumber,
    runs_end_dead,
    sync_run,
)

logger = logging.getLogger(__name__)

# A pull that finds its company's sync running is queued again after this long.
RETRY_BUSY_AFTER = timedelta(seconds=30)
# A company's scheduled sync, queued and not started yet, is not queued again for this long.
# Past it the task is taken for lost (a broker emptied, every worker gone) and queued anew; a
# second one queued while the first is still waiting only costs an idle sync (2 requests).
SCHEDULE_QUEUED_FOR = timedelta(minutes=15)


def _connection(connection_id: int) -> Connection | None:
    return Connection.objects.filter(pk=connection_id).first()


def push_invoices(connection_id: int, invoice_ids: list[int] | None = None, trigger="save") -> int:
    connection = _connection(connection_id)
    if connection is None:
        return 0
    run = sync_run(
        connection=connection, trigger=trigger, direction="push", invoice_ids=invoice_ids
    )
    return run.pk


def run_sync(connection_id: int, direction: str = "both", trigger: str = "button") -> int:
    """Sync company ``connection_id`` in ``direction`` (a ``SyncRun.Direction``) and return
    the run's id; 0 when the connection is gone.

    The schedule's task (``trigger="schedule"``, queued by ``scheduled_sync``) first says it
    is no longer waiting, and returns 0 without a run when another sync of the company is
    going: the next tick queues it again if the company is still due, so a busy company gets
    no skipped run in its history every minute."""
    if trigger == SyncRun.Trigger.SCHEDULE:
        cache.delete(_queued_key(connection_id))
    connection = _connection(connection_id)
    if connection is None:
        return 0
    if trigger == SyncRun.Trigger.SCHEDULE and lock_held(connection=connection):
        return 0
    return sync_run(connection=connection, trigger=trigger, direction=direction).pk


def _queued_key(connection_id: int) -> str:
    return f"ledgerlink:schedule-queued:{connection_id}"


def resolve_conflict(record_id: int, keep: str) -> int:
    """Keep one side's version of a held invoice ("portal" or "quickbooks")."""
    record = SyncRecord.objects.select_related("connection", "invoice").filter(pk=record_id).first()
    if record is None or record.status != SyncRecord.Status.CONFLICT:
        return 0
    return conflict_resolve(record=record, keep=keep).pk


def resolve_number_clash(record_id: int, action: str, number: str = "") -> int:
    """Settle an invoice number taken on both sides: "link" them as one invoice, or
    "renumber" the portal's to ``number``. Returns the run's id (0 when nothing was done:
    the clash was already settled, or the choice is no longer possible, which the record's
    details then say)."""
    record = SyncRecord.objects.select_related("connection", "invoice").filter(pk=record_id).first()
    if record is None or record.status != SyncRecord.Status.CLASH:
        return 0
    try:
        if action == "link":
            return number_clash_link(record=record).pk
        return number_clash_renumber(record=record, number=number).pk
    except ClashError as exc:
        logger.warning("sync.clash.refused", extra={"record": record_id, "why": str(exc)})
        return 0


def pull_realm(realm_id: str, trigger: str = "webhook") -> list[int]:
    """Pull every connected company with this realm id (webhooks name realms).

    A company whose sync is running keeps its webhook events unprocessed and gets this pull
    queued again (``queue_later``), so no change Intuit notified is dropped.
    """
    runs = []
    started = timezone.now()
    for connection in Connection.objects.filter(
        realm_id=realm_id, status=Connection.Status.CONNECTED
    ):
        # A sync of the company is running: its events stay unprocessed and the pull comes
        # back later (without adding a skipped run to the history every time).
        busy = lock_held(connection=connection)
        if not busy:
            run = sync_run(connection=connection, trigger=trigger, direction="pull")
            runs.append(run.pk)
            busy = run.lock_busy
        if busy:
            queue_later(
                "sync.tasks.pull_realm",
                realm_id,
                trigger,
                key=f"pull-realm-{realm_id}",
                delay=RETRY_BUSY_AFTER,
            )
        elif run.status in (SyncRun.Status.DONE, SyncRun.Status.SKIPPED):
            WebhookEvent.objects.filter(
                realm_id=realm_id, processed_at__isnull=True, received_at__lte=started
            ).update(processed_at=timezone.now())
    return runs


def schedule_due(config: SyncConfiguration, *, now) -> str:
    """The direction the schedule syncs ``config``'s company in at ``now``, or "" (not due).

    Two-way: pull (and push) every interval. One-way: push every interval, which catches what
    push-on-save did not send (it may be off). In between, a push when failed records are due
    for their retry or a write's answer is still unknown.
    """
    connection = config.connection
    last = config.last_pull_at if config.two_way else config.last_push_at
    if last is None or (now - last).total_seconds() >= config.pull_interval_minutes * 60:
        return "both" if config.two_way else "push"
    due_retry = (
        SyncRecord.objects.filter(
            connection=connection,
            object_type="invoice",
            status=SyncRecord.Status.FAILED,
            next_retry_at__lte=now,
        ).exists()
        or SyncRecord.objects.filter(connection=connection, uncertain=True).exists()
    )
    return "push" if due_retry else ""


def scheduled_sync() -> list[int]:
    """Every minute: find the companies whose interval has passed or whose failed records are
    due for their retry (``schedule_due``), and hand each to a worker.

    Each due company gets one ``run_sync(connection_id, direction, "schedule")`` task, queued
    unless a sync of it is running (its lease is held) or its previous scheduled task is still
    waiting (a cache key, shared by every process, held until that task starts or
    ``SCHEDULE_QUEUED_FOR`` passes). With tasks run inline (``Q_CLUSTER["sync"]``: tests, a
    single process) the companies are synced here, one after another. Runs found without a
    live worker are marked failed first (``runs_end_dead``).

    A company whose sync has not been started gets its skipped run here, without a task,
    saying what is missing, once per reason (``sync_run``); no request goes to QuickBooks.

    Returns the ids of the runs made here: the skipped runs of companies not started and,
    inline, every due company's run (queued tasks make theirs in the worker that takes them).
    """
    now = timezone.now()
    inline = bool(settings.Q_CLUSTER.get("sync", False))
    runs = []
    queued = 0
    for config in SyncConfiguration.objects.filter(
        enabled=True, connection__status=Connection.Status.CONNECTED
    ).select_related("connection"):
        connection = config.connection
        runs_end_dead(connection=connection)
        direction = schedule_due(config, now=now)
        if not direction:
            continue
        if sync_gate(connection):
            runs.append(sync_run(connection=connection, trigger="schedule", direction=direction).pk)
        elif lock_held(connection=connection):
            continue
        elif inline:
            runs.append(sync_run(connection=connection, trigger="schedule", direction=direction).pk)
        elif cache.add(
            _queued_key(connection.pk), now.isoformat(), SCHEDULE_QUEUED_FOR.total_seconds()
        ):
            queue("sync.tasks.run_sync", connection.pk, direction, "schedule")
            queued += 1
    if queued:
        logger.info("sync.schedule.queued", extra={"companies": queued})
    return runs


__all__ = [
    "pull_realm",
    "push_invoices",
    "queue",
    "queue_later",
    "resolve_conflict",
    "resolve_number_clash",
    "run_sync",
    "schedule_due",
    "scheduled_sync",
]
