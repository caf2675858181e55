"""A run's log: its events, its counts, its progress and, for a dry run, its plan.

Events are written in bulk (every 200) and the run row every 25 records, so the history page
shows progress without a query per record. Each write of the run row also renews the run's
lease (the heartbeat), so a long run keeps it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sync.locks import Heartbeat
from sync.models import SyncEvent, SyncRecord, SyncRun

EVENTS_PER_WRITE = 200
PROGRESS_EVERY = 25


@dataclass
class Outcome:
    """What a run did, by record."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    conflicts: int = 0
    skipped: int = 0
    planned: list[str] = field(default_factory=list)


class RunLog:
    """The log of one ``SyncRun``.

    ``on_progress(run)`` is called after each write of the run row (the command prints it).
    ``heartbeat`` (a ``sync.locks.Heartbeat``) keeps the run's lease: it beats at each write
    of the run row, and ``checkpoint()`` stops the run there if the lease was lost.
    """

    def __init__(
        self,
        run: SyncRun,
        *,
        dry_run: bool = False,
        on_progress: Callable[[SyncRun], None] | None = None,
        heartbeat: Heartbeat | None = None,
    ):
        self.run = run
        self.dry_run = dry_run
        self.on_progress = on_progress
        self.heartbeat = heartbeat
        self.outcome = Outcome()
        self._events: list[SyncEvent] = []

    def event(
        self, record: SyncRecord | None, action: str, message: str, level: str = "info"
    ) -> None:
        """One line of the run's log, about ``record`` (or the run when None)."""
        self._events.append(
            SyncEvent(
                run=self.run,
                record=record if record is not None and record.pk else None,
                action=action,
                message=message,
                level=level,
            )
        )
        if len(self._events) >= EVENTS_PER_WRITE:
            self.flush()

    def plan(self, line: str) -> None:
        """What a dry run would have done (``qbo_sync --dry-run`` prints these)."""
        self.outcome.planned.append(line)

    def checkpoint(self) -> None:
        """A safe point to stop at: raises ``LeaseLost`` when another run took the lease."""
        if self.heartbeat is not None:
            self.heartbeat.check()

    def progress(self, done: int = 0, total: int = 0) -> None:
        """Count records announced (``total``) and finished (``done``)."""
        self.run.total += total
        self.run.done += done
        if total or self.run.done % PROGRESS_EVERY == 0:
            self.flush()

    def flush(self) -> None:
        """Write pending events and the run's counters; renew the lock."""
        if self._events:
            SyncEvent.objects.bulk_create(self._events)
            self._events = []
        o = self.outcome
        SyncRun.objects.filter(pk=self.run.pk).update(
            created=o.created,
            updated=o.updated,
            unchanged=o.unchanged,
            failed=o.failed,
            conflicts=o.conflicts,
            total=self.run.total,
            done=self.run.done,
        )
        if self.heartbeat is not None:
            self.heartbeat.beat()
        if self.on_progress is not None:
            self.on_progress(self.run)
