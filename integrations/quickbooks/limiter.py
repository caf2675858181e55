"""One limiter per company (realm) for every QuickBooks limit, shared by every worker process
through Django's cache.

QBO allows, per company, 500 requests a minute, about 10 at once, and 40 batch requests a
minute (a batch is a request too; qbo-api.md sections 5 and 6). Every process that talks to
one realm takes a concurrency slot and a ticket in the per-minute budget before each request,
and a ticket in the batch budget before each batch request, so together they stay under all
three limits and QBO has no reason to answer 429. ``try_batch()`` takes a batch ticket only
if one is free now: the backend then sends a batch, or else the same writes one request each,
which the request budget still allows.

The cache does the sharing: Redis when ``REDIS_URL`` is set, where ``add`` and ``incr`` are
atomic; otherwise the database cache (the test settings use one process's memory). On the
database cache ``incr`` is a read then a write, so under contention a count can run slightly
low; the default budgets (450 of 500 requests, 36 of 40 batches) leave room for that, and for
a request counted when it leaves but by QBO when it arrives.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from django.core.cache import cache

from .errors import ThrottledError

__all__ = ["RealmLimiter"]

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
# Counts are also kept per slice of the minute, to check the last 60 seconds as QBO does.
SLICE_SECONDS = 5
REQUESTS, BATCHES = "requests", "batches"


class RealmLimiter:
    """Keep requests to one QBO realm under ``per_minute``, ``max_concurrent`` and
    ``batches_per_minute``, fleet-wide.

    Use it as a context manager around each HTTP request (``with limiter: send()``), or
    ``with limiter.request(batch=True):`` around a batch request, or call ``acquire()`` and
    ``release()``. When a budget is used it waits (``sleep``) for room; if the room would come
    later than ``max_wait`` seconds from now it raises ``ThrottledError``.

    Concurrency slots are cache keys leased for ``slot_ttl`` seconds, so a worker that dies
    holding one loses it when the lease runs out rather than never. A ticket is taken when
    the sum of the five-second slices that overlap the last 60 seconds allows it: that count
    never holds fewer requests than QBO's own sliding minute does, so a burst at the end of
    one minute and another at the start of the next cannot add up to more than the budget.
    """

    def __init__(
        self,
        realm_id: str,
        *,
        per_minute: int = 450,
        max_concurrent: int = 8,
        batches_per_minute: int = 36,
        cache: Any = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 90.0,
        slot_ttl: int = 180,
        poll_interval: float = 0.1,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if per_minute < 1 or max_concurrent < 1 or batches_per_minute < 1:
            raise ValueError("per_minute, max_concurrent and batches_per_minute must be >= 1")
        self.realm_id = str(realm_id)
        self.per_minute = per_minute
        self.max_concurrent = max_concurrent
        self.batches_per_minute = batches_per_minute
        self._cache = cache
        self.clock = clock
        self.sleep = sleep
        self.max_wait = max_wait
        # A lease must outlive the longest request (QBO gives up on a request after 120 s).
        self.slot_ttl = slot_ttl
        self.poll_interval = poll_interval
        self.rng = rng
        self._held = threading.local()

    @property
    def cache(self):
        """The cache shared by every worker (Django's default cache unless one was given)."""
        if self._cache is None:
            return cache
        return self._cache

    def __repr__(self) -> str:
        return (
            f"RealmLimiter(realm_id={self.realm_id!r}, per_minute={self.per_minute}, "
            f"max_concurrent={self.max_concurrent}, "
            f"batches_per_minute={self.batches_per_minute})"
        )

    # --- public --------------------------------------------------------------------------

    def acquire(self, *, batch: bool = False) -> str:
        """Wait for a concurrency slot and a ticket in the minute budget (and, for a batch
        request, one in the batch budget first); return the slot key.

        Raises ``ThrottledError`` (``retry_after`` set) when any would take longer than
        ``max_wait`` seconds.
        """
        deadline = self.clock() + self.max_wait
        # The batch ticket is taken before the slot, so a wait for it holds no slot.
        batch_ticket = (
            self._take_ticket(BATCHES, self.batches_per_minute, deadline) if batch else ()
        )
        try:
            slot = self._take_slot(deadline)
            try:
                self._take_ticket(REQUESTS, self.per_minute, deadline)
            except BaseException:
                self.release(slot)
                raise
        except BaseException:
            for key in batch_ticket:  # taken for a request that is not sent
                self._uncount(key)
            raise
        return slot

    def try_batch(self) -> bool:
        """Take a ticket in the batch budget if one is free now (never waits).

        True means the caller may send one batch request with ``request(batch=True,
        reserved=True)``; False, that it should send its items as single requests.
        """
        wait, _keys = self._try_ticket(BATCHES, self.batches_per_minute, self.clock())
        return not wait

    def release(self, slot: str) -> None:
        """Give back the concurrency slot returned by ``acquire()``."""
        owner = slot.rsplit("|", 1)[-1]
        key = slot.rsplit("|", 1)[0]
        # Only free the lease if it is still this holder's: after a lease has run out another
        # worker may hold the same key.
        if self.cache.get(key) == owner:
            self.cache.delete(key)

    @contextlib.contextmanager
    def request(self, *, batch: bool = False, reserved: bool = False) -> Iterator[None]:
        """Hold a slot and the tickets for one request while the block runs.

        ``batch``: a batch request, which needs a batch ticket too, unless ``reserved`` says
        ``try_batch()`` already took it.
        """
        slot = self.acquire(batch=batch and not reserved)
        try:
            yield
        finally:
            self.release(slot)

    def __enter__(self) -> RealmLimiter:
        stack = getattr(self._held, "slots", None)
        if stack is None:
            stack = self._held.slots = []
        stack.append(self.acquire())
        return self

    def __exit__(self, *exc_info) -> None:
        self.release(self._held.slots.pop())

    # --- internals -----------------------------------------------------------------------

    def _slot_key(self, index: int) -> str:
        return f"qbo:limit:{self.realm_id}:slot:{index}"

    def _slice_key(self, series: str, index: int) -> str:
        return f"qbo:limit:{self.realm_id}:{series}-slice:{index}"

    def _give_up(self, reason: str, retry_after: float) -> ThrottledError:
        logger.warning(
            "qbo.limiter.gave_up",
            extra={"realm": self.realm_id, "reason": reason, "retry_after": retry_after},
        )
        return ThrottledError(
            f"Ledgerlink's own request limit for this QuickBooks company is reached ({reason})",
            retry_after=retry_after,
        )

    def _take_slot(self, deadline: float) -> str:
        owner = uuid.uuid4().hex
        start = int(self.rng() * self.max_concurrent)
        while True:
            for offset in range(self.max_concurrent):
                key = self._slot_key((start + offset) % self.max_concurrent)
                if self.cache.add(key, owner, timeout=self.slot_ttl):
                    return f"{key}|{owner}"
            wait = self.poll_interval * (0.5 + self.rng())
            if self.clock() + wait > deadline:
                raise self._give_up("concurrent requests", self.poll_interval)
            self.sleep(wait)

    def _take_ticket(self, series: str, budget: int, deadline: float) -> tuple[str, ...]:
        """Wait for a ticket in ``series``' budget; return the counters it was counted in."""
        reason = "requests per minute" if series == REQUESTS else "batch requests per minute"
        while True:
            now = self.clock()
            wait, keys = self._try_ticket(series, budget, now, deadline=deadline)
            if not wait:
                return keys
            if now + wait > deadline:
                raise self._give_up(reason, wait)
            logger.info(
                "qbo.limiter.wait", extra={"realm": self.realm_id, "reason": reason, "wait": wait}
            )
            self.sleep(wait)

    def _try_ticket(
        self, series: str, budget: int, now: float, *, deadline: float | None = None
    ) -> tuple[float, tuple[str, ...]]:
        """Count one more ``series`` request at ``now``: (0, the counter it is counted in)
        when the budget allows it, else (how long to wait before trying again, ()) with the
        count given back.

        The count is that of the five-second slices overlapping the last 60 seconds, which
        is never lower than QBO's own sliding minute (qbo-api.md section 6), and lets a
        burst's budget come back as soon as the burst is 60 seconds old. (A sliding estimate
        from whole-minute counters, used before, held most of the next minute back after a
        burst at the start of one: a 5,000-invoice push took 1.3 times its floor.)
        ``deadline`` is accepted for the callers' symmetry; the wait is exact either way.
        """
        # A slice holds the requests in (end - SLICE_SECONDS, end]: one made exactly 60 s ago
        # has left QBO's window, and leaves this count at the same moment.
        last = math.ceil(now / SLICE_SECONDS)
        first = math.floor((now - WINDOW_SECONDS) / SLICE_SECONDS) + 1
        slice_key = self._slice_key(series, last)
        if self._count(slice_key) is None:
            return self._try_ticket(series, budget, now, deadline=deadline)
        slice_keys = [self._slice_key(series, index) for index in range(first, last + 1)]
        counts = self.cache.get_many(slice_keys)
        in_window = [counts.get(key) or 0 for key in slice_keys]
        excess = sum(in_window) - budget
        if excess <= 0:
            return 0, (slice_key,)
        # Wait until enough of the oldest slices have left the last 60 seconds.
        wait = 0.0
        for index, count in zip(range(first, last + 1), in_window, strict=True):
            excess -= count
            if excess <= 0:
                wait = index * SLICE_SECONDS + WINDOW_SECONDS - now
                break
        self._uncount(slice_key)
        return max(wait, self.poll_interval), ()

    def _count(self, key: str) -> int | None:
        """Add one to a counter; None when it expired between creating and counting."""
        # A slice is read for the 60 seconds after it; three minutes leaves room for clocks
        # that differ a little between machines.
        self.cache.add(key, 0, timeout=3 * WINDOW_SECONDS)
        try:
            return self.cache.incr(key)
        except ValueError:
            return None

    def _uncount(self, key: str) -> None:
        with contextlib.suppress(ValueError):  # already expired: nothing to give back
            self.cache.decr(key)
