"""django-q2 tasks: each parses its arguments, calls one service and reports.

django-q2's ``retry`` is a redelivery timeout, not a backoff; failed records are retried on
the engine's own schedule (``next_retry_at``) by ``scheduled_sync``, so these tasks never rely
on redelivery to retry and are safe to run twice (the connection lock and the change
detection make a second run a no-op).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from integrations.models import Connection, WebhookEvent
from portal.tasks import queue, queue_later
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
    connection = _connection(connection_id)
    if connection is None:
        return 0
    return sync_run(connection=connection, trigger=trigger, direction=direction).pk


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
    """Every minute: sync companies whose interval has passed, retry failed records now due.

    A company whose sync has not been started gets a skipped run saying what is missing, once
    per reason (``sync_run``), and no request goes to QuickBooks."""
    now = timezone.now()
    runs = []
    for config in SyncConfiguration.objects.filter(
        enabled=True, connection__status=Connection.Status.CONNECTED
    ).select_related("connection"):
        connection = config.connection
        runs_end_dead(connection=connection)
        direction = schedule_due(config, now=now)
        if direction:
            runs.append(sync_run(connection=connection, trigger="schedule", direction=direction).pk)
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
