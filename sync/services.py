"""Starting sync runs: the lock, the run record, and the engine's steps in order."""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from contextlib import contextmanager
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from integrations.models import Connection
from integrations.quickbooks.errors import QBOError
from integrations.services import ReconnectRequired
from sync import catalogue
from sync.engine import RunStopped, Sync, sync_configuration_for
from sync.models import SyncEvent, SyncLock, SyncRecord, SyncRun

logger = logging.getLogger(__name__)

LOCK_TTL = timedelta(minutes=30)
_local = threading.local()


@contextmanager
def sync_writing():
    """Portal writes made by the sync itself: they must not queue a push (no echoes)."""
    previous = getattr(_local, "writing", False)
    _local.writing = True
    try:
        yield
    finally:
        _local.writing = previous


def is_sync_writing() -> bool:
    return getattr(_local, "writing", False)


def lock_acquire(*, connection: Connection, holder: str) -> bool:
    """Claim the connection's sync lock by compare-and-swap (works on SQLite and PostgreSQL)."""
    # Two processes may create the row at once; either way it exists afterwards.
    with contextlib.suppress(IntegrityError):
        SyncLock.objects.get_or_create(connection=connection)
    now = timezone.now()
    return bool(
        SyncLock.objects.filter(connection=connection)
        .filter(Q(holder="") | Q(expires_at__lt=now))
        .update(holder=holder, expires_at=now + LOCK_TTL)
    )


def lock_release(*, connection: Connection, holder: str) -> None:
    SyncLock.objects.filter(connection=connection, holder=holder).update(holder="", expires_at=None)


def sync_run(
    *,
    connection: Connection,
    trigger: str,
    direction: str,
    dry_run: bool = False,
    invoice_ids: list[int] | None = None,
    force: bool = False,
    client=None,
    on_progress=None,
) -> SyncRun:
    """Run one sync for the connection and return its run record.

    Skips (with a run saying why) when another sync holds the connection's lock or sync is
    off for scheduled triggers. A connection that needs reconnecting ends the run with that
    one reason; per-record failures are on the records and the run goes on.
    """
    run = SyncRun.objects.create(
        connection=connection,
        trigger=trigger,
        direction=direction,
        dry_run=dry_run,
        status=SyncRun.Status.RUNNING,
    )
    holder = f"run-{run.pk}-{uuid.uuid4().hex[:8]}"
    if not lock_acquire(connection=connection, holder=holder):
        return _finish(
            run,
            SyncRun.Status.SKIPPED,
            "Another sync for this company is running; this one was skipped.",
        )
    engine = None
    try:
        connection.refresh_from_db()
        if connection.status != Connection.Status.CONNECTED:
            raise ReconnectRequired(connection)
        config = sync_configuration_for(connection=connection)
        if not config.enabled and trigger in ("schedule", "save", "webhook"):
            return _finish(run, SyncRun.Status.SKIPPED, "Sync is turned off in the configuration.")
        engine = Sync(
            connection=connection,
            run=run,
            client=client,
            dry_run=dry_run,
            on_progress=on_progress,
        )
        with sync_writing():
            engine.replay_uncertain()
            if direction in (SyncRun.Direction.PUSH, SyncRun.Direction.BOTH):
                engine.push_invoices(invoice_ids=invoice_ids, force=force)
            if direction in (SyncRun.Direction.PULL, SyncRun.Direction.BOTH):
                engine.pull()
            if direction == SyncRun.Direction.ITEMS:
                engine.quick_sync_items()
        if not dry_run and direction in (SyncRun.Direction.PUSH, SyncRun.Direction.BOTH):
            config.__class__.objects.filter(pk=config.pk).update(last_push_at=timezone.now())
        status, message = SyncRun.Status.DONE, ""
    except (ReconnectRequired, RunStopped) as exc:
        status, message = SyncRun.Status.FAILED, getattr(exc, "user_message", str(exc))
    except QBOError as exc:
        status = SyncRun.Status.FAILED
        message = f"The run stopped: {catalogue.describe(exc)}"
        logger.warning("sync.run.failed", extra={"run": run.pk, "code": exc.code})
    finally:
        if engine is not None:
            engine.flush()
        lock_release(connection=connection, holder=holder)
    run.refresh_from_db()
    if engine is not None:
        run.api_calls = engine.run.api_calls
        run.planned = engine.outcome.planned  # type: ignore[attr-defined]
    return _finish(run, status, message)


def _finish(run: SyncRun, status: str, message: str) -> SyncRun:
    run.status = status
    run.message = message
    run.finished_at = timezone.now()
    if status == SyncRun.Status.DONE and run.total and run.done < run.total:
        run.done = run.total
    run.save(update_fields=["status", "message", "finished_at", "api_calls", "done"])
    if message:
        SyncEvent.objects.create(
            run=run,
            action=status,
            message=message,
            level="error" if status == SyncRun.Status.FAILED else "info",
        )
    return run


def records_retry(*, records) -> int:
    """Make failed records due now; the caller queues a push. Returns how many."""
    with transaction.atomic():
        return SyncRecord.objects.filter(
            pk__in=[r.pk for r in records],
            status__in=[SyncRecord.Status.FAILED, SyncRecord.Status.SKIPPED],
        ).update(next_retry_at=None, status=SyncRecord.Status.PENDING)


def conflict_resolve(*, record: SyncRecord, keep: str) -> SyncRun:
    """Resolve a held conflict by keeping the portal's or QuickBooks' version."""
    if record.status != SyncRecord.Status.CONFLICT:
        raise ValueError("This record is not in conflict.")
    if keep == "portal":
        SyncRecord.objects.filter(pk=record.pk).update(status=SyncRecord.Status.PENDING)
        return sync_run(
            connection=record.connection,
            trigger="button",
            direction="push",
            invoice_ids=[record.invoice_id],
            force=True,
        )
    if keep == "quickbooks":
        # Agree on the portal's side as it was, so the QuickBooks version reads as the only
        # change, and pull it.
        from sync.engine import Sync as Engine

        run = SyncRun.objects.create(
            connection=record.connection, trigger="button", direction="pull", status="running"
        )
        engine = Engine(connection=record.connection, run=run)
        with sync_writing():
            obj = engine.client.read("Invoice", record.qbo_id)
            engine.apply_qbo_invoice(record, record.invoice, obj, engine.neutral_qbo(obj))
        engine.flush()
        run.refresh_from_db()
        return _finish(run, SyncRun.Status.DONE, "")
    raise ValueError("keep must be 'portal' or 'quickbooks'")
