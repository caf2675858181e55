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

    @property
    def settled(self) -> int:
        """Records that reached an outcome: the run's progress (``SyncRun.done``)."""
        return (
            self.created + self.updated + self.unchanged + self.failed + self.conflicts
            + self.skipped
        )  # fmt: skip


class RunLog:
    """The log of one ``SyncRun``.

    ``on_progress(run)`` is called after each write of the run row (the command prints it).
    ``heartbeat`` (a ``sync.locks.Heartbeat``) keeps the run's lease: it beats at each write
    of the run row, and ``checkpoint()`` stops the run there if the lease was lost.
    ``api_calls()``, when set, gives the requests sent to QuickBooks so far (written live).

    Progress adds up with the counts: ``done`` is always the records that reached an outcome
    (created, updated, unchanged, failed, conflicts, skipped), and ``total`` what the run
    announced it would look at, never less than ``done``.
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
        self.api_calls: Callable[[], int] | None = None
        self._events: list[tuple[SyncEvent, SyncRecord | None]] = []
        self._unwritten = 0

    def event(
        self, record: SyncRecord | None, action: str, message: str, level: str = "info"
    ) -> None:
        """One line of the run's log, about ``record`` (or the run when None).

        A record not saved yet (a new binding that fails before its first write) is linked
        if it has been saved by the time the events are written."""
        event = SyncEvent(run=self.run, action=action, message=message, level=level)
        self._events.append((event, record))
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
        """Announce records the run will look at (``total``); ``done`` says how many were
        finished since, to write the run row every ``PROGRESS_EVERY`` of them (what is done
        is counted from the outcomes)."""
        self.run.total += total
        self._unwritten += done
        if total or self._unwritten >= PROGRESS_EVERY:
            self.flush()

    def flush(self) -> None:
        """Write pending events and the run's counters; renew the lock."""
        if self._events:
            for event, record in self._events:
                event.record = record if record is not None and record.pk else None
            SyncEvent.objects.bulk_create([event for event, _record in self._events])
            self._events = []
        self._unwritten = 0
        o = self.outcome
        self.run.done = o.settled
        self.run.total = max(self.run.total, self.run.done)
        counts = {
            "created": o.created,
            "updated": o.updated,
            "unchanged": o.unchanged,
            "failed": o.failed,
            "conflicts": o.conflicts,
            "skipped": o.skipped,
            "total": self.run.total,
            "done": self.run.done,
        }
        if self.api_calls is not None:
            counts["api_calls"] = self.run.api_calls = self.api_calls()
        SyncRun.objects.filter(pk=self.run.pk).update(**counts)
        if self.heartbeat is not None:
            self.heartbeat.beat()
        if self.on_progress is not None:
            self.on_progress(self.run)
