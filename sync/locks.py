"""One sync per company at a time: a lease with a heartbeat.

A run takes its company's lease for ``SYNC_LOCK_LEASE_SECONDS`` and renews it as it goes (the
run log's heartbeat), so a run longer than the lease keeps it, and a worker that dies frees it
within one lease. A run that finds its lease taken (it stalled longer than the lease) stops at
the next safe point; writes it had claimed are replayed with their own ``requestid`` by
whichever run comes next, so nothing is written twice.

With ``REDIS_URL`` set the lease is a redis-py ``Lock`` (shared by every machine); otherwise
it is a row claimed by compare-and-swap, which works on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta

import redis
from django.conf import settings
from django.db import IntegrityError
from django.db.models import Q
from django.utils import timezone

from integrations.models import Connection
from sync.models import SyncLock


class LeaseLost(Exception):
    """Another run took the company's lease (this run stalled past it); the run stops."""

    user_message = (
        "The run stopped: it was paused longer than its lock allows and another sync took over. "
        "Nothing is lost; the next sync goes on from where this one stopped."
    )


def lease_seconds() -> float:
    return float(settings.SYNC_LOCK_LEASE_SECONDS)


class DatabaseLease:
    """The ``SyncLock`` row of a connection, held by ``holder`` until ``expires_at``."""

    def __init__(self, *, connection: Connection, holder: str):
        self.connection = connection
        self.holder = holder

    def _lease(self) -> timedelta:
        return timedelta(seconds=lease_seconds())

    def acquire(self) -> bool:
        # Two processes may create the row at once; either way it exists afterwards.
        with contextlib.suppress(IntegrityError):
            SyncLock.objects.get_or_create(connection=self.connection)
        now = timezone.now()
        return bool(
            SyncLock.objects.filter(connection=self.connection)
            .filter(Q(holder="") | Q(expires_at__lt=now) | Q(holder=self.holder))
            .update(holder=self.holder, expires_at=now + self._lease())
        )

    def renew(self) -> bool:
        return bool(
            SyncLock.objects.filter(connection=self.connection, holder=self.holder).update(
                expires_at=timezone.now() + self._lease()
            )
        )

    def release(self) -> None:
        SyncLock.objects.filter(connection=self.connection, holder=self.holder).update(
            holder="", expires_at=None
        )

    def held(self) -> bool:
        """Whether any run holds the company's lease now."""
        return (
            SyncLock.objects.filter(connection=self.connection, expires_at__gte=timezone.now())
            .exclude(holder="")
            .exists()
        )


class RedisLease:
    """A redis-py ``Lock`` named after the connection, with ``holder`` as its token."""

    def __init__(self, *, connection: Connection, holder: str, url: str):
        self.holder = holder
        self._lock = redis.Redis.from_url(url).lock(
            f"ledgerlink:sync-lock:{connection.pk}", timeout=lease_seconds(), thread_local=False
        )

    def acquire(self) -> bool:
        return bool(self._lock.acquire(blocking=False, token=self.holder))

    def renew(self) -> bool:
        try:
            return bool(self._lock.reacquire())
        except redis.exceptions.LockError:
            return False

    def release(self) -> None:
        with contextlib.suppress(redis.exceptions.LockError):
            self._lock.release()

    def held(self) -> bool:
        """Whether any run holds the company's lease now."""
        return bool(self._lock.locked())


class Heartbeat:
    """Keeps a run's lease: ``beat()`` renews it when due and never raises; ``check()``, at
    points where stopping leaves nothing half-done (before a write is claimed and sent,
    before QuickBooks' version is applied, between steps), raises ``LeaseLost`` once the
    lease was taken."""

    def __init__(self, lease: DatabaseLease | RedisLease):
        self.lease = lease
        self.lost = False
        self._last = time.monotonic()

    def beat(self) -> None:
        """Renew the lease when a fifth of it has passed since the last renewal."""
        now = time.monotonic()
        if self.lost or now - self._last < lease_seconds() / 5:
            return
        self._last = now
        self.lost = not self.lease.renew()

    def check(self) -> None:
        self.beat()
        if self.lost:
            raise LeaseLost(LeaseLost.user_message)


def lease_for(*, connection: Connection, holder: str) -> DatabaseLease | RedisLease:
    """The company's lease for ``holder``: Redis when ``REDIS_URL`` is set, else the database."""
    url = settings.REDIS_URL
    if url:
        return RedisLease(connection=connection, holder=holder, url=url)
    return DatabaseLease(connection=connection, holder=holder)


def lock_acquire(*, connection: Connection, holder: str) -> bool:
    """Take the company's lease for ``holder``; False when another holder has it."""
    return lease_for(connection=connection, holder=holder).acquire()


def lock_release(*, connection: Connection, holder: str) -> None:
    lease_for(connection=connection, holder=holder).release()


def lock_held(*, connection: Connection) -> bool:
    """Whether a sync of the company is running now (its lease is held)."""
    return lease_for(connection=connection, holder="").held()
