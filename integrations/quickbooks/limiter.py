"""A per-realm request limiter shared by every worker process through Django's cache.

QBO allows 500 requests a minute per company (realm) and about 10 at once per realm and app
(qbo-api.md section 6). Every process that talks to one realm takes a concurrency slot and a
ticket in the per-minute budget before each request, so together they stay under both limits
and QBO rarely has to answer 429.

The cache does the sharing: Redis in production, where ``add`` and ``incr`` are atomic. On the
database cache ``incr`` is a read then a write, so under contention the minute count can run
slightly low; the default budget (450 of 500) leaves room for that.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.core.cache import cache

from .errors import ThrottledError

__all__ = ["RealmLimiter"]

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60


class RealmLimiter:
    """Keep requests to one QBO realm under ``per_minute`` and ``max_concurrent``, fleet-wide.

    Use it as a context manager around each HTTP request (``with limiter: send()``), or call
    ``acquire()`` and ``release()``. When the budget is used it waits (``sleep``) for room; if
    the room would come later than ``max_wait`` seconds from now it raises ``ThrottledError``.

    Concurrency slots are cache keys leased for ``slot_ttl`` seconds, so a worker that dies
    holding one loses it when the lease runs out rather than never. The minute budget is a
    sliding window estimated from the current and previous minute's counters, so a burst at
    the end of one minute and another at the start of the next cannot add up to twice it.
    """

    def __init__(
        self,
        realm_id: str,
        *,
        per_minute: int = 450,
        max_concurrent: int = 8,
        cache: Any = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 90.0,
        slot_ttl: int = 180,
        poll_interval: float = 0.1,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if per_minute < 1 or max_concurrent < 1:
            raise ValueError("per_minute and max_concurrent must be at least 1")
        self.realm_id = str(realm_id)
        self.per_minute = per_minute
        self.max_concurrent = max_concurrent
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
            f"max_concurrent={self.max_concurrent})"
        )

    # --- public --------------------------------------------------------------------------

    def acquire(self) -> str:
        """Wait for a concurrency slot and a ticket in the minute budget; return the slot key.

        Raises ``ThrottledError`` (``retry_after`` set) when either would take longer than
        ``max_wait`` seconds.
        """
        deadline = self.clock() + self.max_wait
        slot = self._take_slot(deadline)
        try:
            self._take_ticket(deadline)
        except BaseException:
            self.release(slot)
            raise
        return slot

    def release(self, slot: str) -> None:
        """Give back the concurrency slot returned by ``acquire()``."""
        owner = slot.rsplit("|", 1)[-1]
        key = slot.rsplit("|", 1)[0]
        # Only free the lease if it is still this holder's: after a lease has run out another
        # worker may hold the same key.
        if self.cache.get(key) == owner:
            self.cache.delete(key)

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

    def _window_key(self, window: int) -> str:
        return f"qbo:limit:{self.realm_id}:minute:{window}"

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

    def _take_ticket(self, deadline: float) -> None:
        while True:
            now = self.clock()
            window, elapsed = divmod(now, WINDOW_SECONDS)
            key = self._window_key(int(window))
            # Each counter is also read as "the previous minute" during the next one.
            self.cache.add(key, 0, timeout=3 * WINDOW_SECONDS)
            try:
                current = self.cache.incr(key)
            except ValueError:  # expired between add and incr: count again
                continue
            previous = self.cache.get(self._window_key(int(window) - 1)) or 0
            weight = 1 - elapsed / WINDOW_SECONDS
            estimate = previous * weight + current
            if estimate <= self.per_minute + 1e-9:  # float slack at exact boundaries
                return
            with contextlib.suppress(ValueError):  # already expired: nothing to give back
                self.cache.decr(key)
            to_window_end = WINDOW_SECONDS - elapsed
            if previous:
                # The previous minute's share shrinks by previous/60 a second.
                excess = estimate - self.per_minute
                wait = min(to_window_end, excess * WINDOW_SECONDS / previous)
            else:
                wait = to_window_end
            wait = max(wait, self.poll_interval)
            if self.clock() + wait > deadline:
                raise self._give_up("requests per minute", wait)
            logger.info(
                "qbo.limiter.wait",
                extra={"realm": self.realm_id, "reason": "requests per minute", "wait": wait},
            )
            self.sleep(wait)
