"""Sync runs: the lease, the run record, and the components in order.

A run replays writes whose answer was lost, pushes (exporter), pulls (importer) and sends what
the importer decided the portal wins; push and pull never call each other, this module joins
them. Each run holds its company's lease (``sync.locks``) and ends with a status and a reason.
"""

from __future__ import annotations

import logging
import threading
import uuid
from contextlib import contextmanager

from django.db import transaction
from django.utils import timezone

from integrations.models import Connection
from integrations.quickbooks.errors import QBOError, ReconnectRequired, describe
from portal.changes import unstamped
from portal.history import changes_by, update_with_history
from portal.models import Invoice
from sync.configuration import sync_configuration_for, sync_gate
from sync.context import SyncContext
from sync.exporter import Exporter
from sync.importer import Importer
from sync.locks import Heartbeat, LeaseLost, lease_for, lock_held
from sync.models import SyncEvent, SyncRecord, SyncRun
from sync.runtime import context_for

logger = logging.getLogger(__name__)

BUSY = "Another sync for this company is running; this one was skipped."
# Triggers that run without a person choosing this very run: nothing runs for them until
# sync has been started for the company (``sync.configuration.sync_gate``). Sync now, Quick
# Sync, Retry and the conflict choices are staff's own, and check what they need themselves.
GATED_TRIGGERS = ("schedule", "save", "webhook", "command")
# Of those, the ones that repeat by themselves (every minute, on every save or notification):
# a skip for the same reason as their last run is not recorded again.
QUIET_TRIGGERS = ("schedule", "save", "webhook")
_local = threading.local()


@contextmanager
def sync_writing():
    """Portal writes made by the sync itself: they must not queue a push (no echoes)."""
    previous = getattr(_local, "writing", False)
    _local.writing = True
    try:
        with unstamped():  # QuickBooks' version is not a portal change to send back
            yield
    finally:
        _local.writing = previous


def is_sync_writing() -> bool:
    return getattr(_local, "writing", False)


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

    ``direction`` is a ``SyncRun.Direction``; ``invoice_ids`` limits a push to those invoices
    and ``force`` sends them even when unchanged or held. Skips (with a run saying why) when
    another sync holds the company's lease (``run.lock_busy`` is then True) or sync is off for
    automatic triggers. A connection that needs reconnecting ends the run with that one
    reason; per-record failures are on the records and the run goes on. Never raises: the
    run's status and message say what happened, whatever the error (an unexpected one is
    logged with its traceback).

    Automatic triggers (``GATED_TRIGGERS``) do nothing until sync has been started for the
    company: the run is *skipped* with what is missing, and makes no request to QuickBooks.
    A schedule, save or webhook skip for the same reason as that trigger's last run is not
    recorded again (that run is returned), so the history shows one skip per reason.
    """
    if trigger in GATED_TRIGGERS:
        why = sync_gate(connection)
        if why:
            return _skip_gated(
                connection, trigger=trigger, direction=direction, why=why, dry_run=dry_run
            )
    # The run is recorded once the lease is taken and ended before it is released, so the
    # runs of one company (started_at to finished_at) never overlap, whichever workers ran them.
    lease = lease_for(connection=connection, holder=f"run-{uuid.uuid4().hex}")
    acquired = lease.acquire()
    run = SyncRun.objects.create(
        connection=connection,
        trigger=trigger,
        direction=direction,
        dry_run=dry_run,
        status=SyncRun.Status.RUNNING,
    )
    run.lock_busy = not acquired
    if not acquired:
        return _finish(run, SyncRun.Status.SKIPPED, BUSY)
    try:
        return _run_leased(
            run,
            lease,
            connection=connection,
            trigger=trigger,
            direction=direction,
            dry_run=dry_run,
            invoice_ids=invoice_ids,
            force=force,
            client=client,
            on_progress=on_progress,
        )
    finally:
        lease.release()


def _run_leased(
    run: SyncRun,
    lease,
    *,
    connection: Connection,
    trigger: str,
    direction: str,
    dry_run: bool,
    invoice_ids: list[int] | None,
    force: bool,
    client,
    on_progress,
) -> SyncRun:
    runs_end_dead(connection=connection, before=run)
    ctx = None
    try:
        connection.refresh_from_db()
        if connection.status != Connection.Status.CONNECTED:
            raise ReconnectRequired(reason=connection.last_error, connection=connection)
        config = sync_configuration_for(connection=connection)
        if not config.enabled and trigger in ("schedule", "save", "webhook"):
            return _finish(run, SyncRun.Status.SKIPPED, "Sync is turned off in the configuration.")
        ctx = context_for(
            connection=connection,
            run=run,
            client=client,
            dry_run=dry_run,
            on_progress=on_progress,
            heartbeat=Heartbeat(lease),
        )
        # Invoices linked to another QuickBooks company are sent only when staff pick them
        # (Sync now on the invoice or on a selection), never by themselves.
        chosen = trigger == SyncRun.Trigger.BUTTON and invoice_ids is not None
        with sync_writing():
            _run_steps(
                ctx, direction=direction, invoice_ids=invoice_ids, force=force, chosen=chosen
            )
        if not dry_run and direction in (SyncRun.Direction.PUSH, SyncRun.Direction.BOTH):
            config.__class__.objects.filter(pk=config.pk).update(last_push_at=timezone.now())
        status, message = SyncRun.Status.DONE, ""
    except (ReconnectRequired, LeaseLost) as exc:
        status, message = SyncRun.Status.FAILED, exc.user_message
    except QBOError as exc:
        status = SyncRun.Status.FAILED
        message = f"The run stopped: {describe(exc)}"
        logger.warning("sync.run.failed", extra={"run": run.pk, "code": exc.code})
    except Exception as exc:
        # A fault in Ledgerlink itself. The run still ends, failed and saying so, and the lease
        # is released: every write's fate is on its binding (a create in flight stays claimed
        # and uncertain), so the next run continues from here. The traceback goes to the log.
        status = SyncRun.Status.FAILED
        message = (
            f"The run stopped on an unexpected error in Ledgerlink ({type(exc).__name__}: "
            f"{exc}). Nothing was lost: writes in flight are confirmed by the next run. "
            "Report this error (the log holds its details) if it comes back."
        )
        logger.exception("sync.run.crashed", extra={"run": run.pk})
    finally:
        if ctx is not None:
            ctx.log.flush()
    run.refresh_from_db()
    if ctx is not None:
        run.api_calls = ctx.backend.requests_sent
        run.planned = ctx.log.outcome.planned  # type: ignore[attr-defined]
    return _finish(run, status, message)


def _skip_gated(
    connection: Connection, *, trigger: str, direction: str, why: str, dry_run: bool
) -> SyncRun:
    if trigger in QUIET_TRIGGERS:
        last = (
            SyncRun.objects.filter(connection=connection, trigger=trigger)
            .order_by("-started_at", "-pk")
            .first()
        )
        if last is not None and last.status == SyncRun.Status.SKIPPED and last.message == why:
            last.lock_busy = False
            return last
    run = SyncRun.objects.create(
        connection=connection,
        trigger=trigger,
        direction=direction,
        dry_run=dry_run,
        status=SyncRun.Status.RUNNING,
    )
    run.lock_busy = False
    logger.info("sync.run.not_started", extra={"run": run.pk, "trigger": trigger})
    return _finish(run, SyncRun.Status.SKIPPED, why)


DEAD_RUN = (
    "The worker running this sync stopped before the run ended (killed, or its machine "
    "restarted), so its lease ran out. Nothing was lost: {next} confirms its writes in flight "
    "and continues from where it stopped."
)


def runs_end_dead(*, connection: Connection, before: SyncRun | None = None) -> int:
    """Mark failed the runs of ``connection`` still *running* whose worker is gone.

    With ``before`` (a run that has just taken the company's lease), every older running run
    lost its lease, so its worker is dead; without it, running runs are dead only when nobody
    holds the lease (called by the schedule, so a dead run is marked failed within about one
    lease, ``SYNC_LOCK_LEASE_SECONDS``). Returns how many were marked.
    """
    running = SyncRun.objects.filter(connection=connection, status=SyncRun.Status.RUNNING)
    if before is not None:
        running = running.filter(started_at__lt=before.started_at).exclude(pk=before.pk)
        follower = f"run {before.pk}"
    elif lock_held(connection=connection):
        return 0
    else:
        follower = "the next run"
    dead = list(running)
    message = DEAD_RUN.format(next=follower)
    for run in dead:
        # Counted as they were; only a run still marked running is ended (no race with its own
        # ending, had the worker come back).
        if SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.RUNNING).update(
            status=SyncRun.Status.FAILED, finished_at=timezone.now(), message=message
        ):
            SyncEvent.objects.create(run=run, action="failed", message=message, level="error")
    return len(dead)


def history_source(run: SyncRun, step: str) -> str:
    """How portal records' histories name a change the sync made (``portal.history``)."""
    return f"QuickBooks sync ({step}, run {run.pk})"


def _run_steps(
    ctx: SyncContext,
    *,
    direction: str,
    invoice_ids: list[int] | None,
    force: bool,
    chosen: bool = False,
) -> None:
    exporter, importer = Exporter(ctx), Importer(ctx)
    run = ctx.log.run
    with changes_by(history_source(run, "push")):
        exporter.replay_uncertain()
        if direction in (SyncRun.Direction.PUSH, SyncRun.Direction.BOTH):
            stale = exporter.push_invoices(
                invoice_ids=invoice_ids, force=force, other_companies=chosen
            )
            exporter.push_updates(importer.reconcile_stale(stale), whole=importer.send_whole)
            # Creates whose answer this push lost are settled now if QuickBooks answers again,
            # and so before the pull reads the feed, where they may show as new invoices.
            exporter.replay_uncertain()
    if direction in (SyncRun.Direction.PULL, SyncRun.Direction.BOTH):
        ctx.log.checkpoint()
        with changes_by(history_source(run, "pull")):
            exporter.push_updates(importer.pull(), whole=importer.send_whole)
            importer.advance_cursor()
    if direction == SyncRun.Direction.ITEMS:
        with changes_by(history_source(run, "items")):
            exporter.push_list(ctx.adapter("item"))
            ctx.log.checkpoint()
            importer.pull_list(ctx.adapter("item"))


def _finish(run: SyncRun, status: str, message: str) -> SyncRun:
    run.status = status
    run.message = message
    run.finished_at = timezone.now()
    if status == SyncRun.Status.DONE:
        # Announced records that reached no outcome (a payment, a deleted name-list entry,
        # one left for the next run) leave the total: what is shown is what was done.
        run.total = run.done
    run.save(update_fields=["status", "message", "finished_at", "api_calls", "done", "total"])
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
        run = SyncRun.objects.create(
            connection=record.connection, trigger="button", direction="pull", status="running"
        )
        ctx = context_for(connection=record.connection, run=run)
        importer = Importer(ctx)
        with sync_writing(), changes_by(history_source(run, "QuickBooks' version kept")):
            obj = ctx.backend.read("Invoice", record.qbo_id)
            importer.apply(record, record.invoice, obj, importer.invoices.neutral_qbo(obj))
        ctx.log.flush()
        run.refresh_from_db()
        run.api_calls = ctx.backend.api_calls
        return _finish(run, SyncRun.Status.DONE, "")
    raise ValueError("keep must be 'portal' or 'quickbooks'")


class ClashError(ValueError):
    """A number clash cannot be settled as asked; the message says why, for staff."""


def _clash_parts(record: SyncRecord) -> tuple[SyncRecord, Invoice, SyncRecord | None]:
    """(the held QuickBooks invoice's binding, the portal invoice holding its number, that
    invoice's binding). Raises ``ClashError`` when ``record`` is no longer held."""
    record.refresh_from_db()
    if record.status != SyncRecord.Status.CLASH or not record.qbo_id:
        raise ClashError(f"{record.label} is not held for its number any more.")
    holder = Invoice.objects.filter(number=record.qbo_doc_number).first()
    if holder is None or holder.pk == record.invoice_id:
        raise ClashError(f"No other portal invoice has number {record.qbo_doc_number} now.")
    holder_record = SyncRecord.objects.filter(
        connection=record.connection, object_type="invoice", invoice=holder
    ).first()
    if holder_record is not None and holder_record.qbo_id:
        raise ClashError(
            f"Portal invoice {holder.number} is already linked to another QuickBooks invoice: "
            "QuickBooks has this number twice. Renumber one of them in QuickBooks."
        )
    return record, holder, holder_record


def number_clash_link(*, record: SyncRecord) -> SyncRun:
    """Staff say the held QuickBooks invoice and the portal invoice with its number are one
    invoice: the portal invoice is linked to it and takes QuickBooks' version (QuickBooks
    holds the books), and the copy the pull made is deleted. Nothing is written to
    QuickBooks. Raises ``ClashError``."""
    record, holder, holder_record = _clash_parts(record)
    run = SyncRun.objects.create(
        connection=record.connection, trigger="button", direction="pull", status="running"
    )
    ctx = context_for(connection=record.connection, run=run)
    obj = ctx.backend.read("Invoice", record.qbo_id)
    copy = record.invoice
    with (
        transaction.atomic(),
        sync_writing(),
        changes_by(history_source(run, "linked as one invoice")),
    ):
        if holder_record is not None:
            holder_record.delete()
        record.invoice = holder
        record.status = SyncRecord.Status.PENDING
        record.save()
        copy.delete()
        importer = Importer(ctx)
        importer.apply(record, holder, obj, importer.invoices.neutral_qbo(obj))
        ctx.log.event(
            record,
            "linked",
            f"Invoice {holder.number} linked to QuickBooks invoice {record.qbo_id} as one "
            f"invoice, with QuickBooks' version; its copy {copy.number} was removed.",
        )
    ctx.log.flush()
    run.refresh_from_db()
    run.api_calls = ctx.backend.api_calls
    return _finish(run, SyncRun.Status.DONE, "")


def number_clash_renumber(*, record: SyncRecord, number: str) -> SyncRun:
    """Staff give the portal's invoice ``number`` instead: the held QuickBooks invoice takes
    its own number in the portal, and the portal's invoice is sent with its new number.
    Raises ``ClashError`` for a number that is empty or taken."""
    number = number.strip()
    record, holder, holder_record = _clash_parts(record)
    if not number:
        raise ClashError("Enter the new number for the portal's invoice.")
    if Invoice.objects.filter(number=number).exists():
        raise ClashError(f"Number {number} is taken in the portal too; choose another.")
    taken = record.qbo_doc_number
    with (
        transaction.atomic(),
        sync_writing(),
        changes_by(f"Number clash settled (renumbered to {number})"),
    ):
        update_with_history(holder, number=number)
        update_with_history(record.invoice, number=taken)
        record.status, record.details = SyncRecord.Status.SYNCED, ""
        record.save(update_fields=["status", "details", "updated_at"])
        if holder_record is not None:
            holder_record.status, holder_record.details = SyncRecord.Status.PENDING, ""
            holder_record.save(update_fields=["status", "details", "updated_at"])
    return sync_run(
        connection=record.connection,
        trigger="button",
        direction="push",
        invoice_ids=[holder.pk],
    )
