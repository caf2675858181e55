"""Per-realm throttling as QBO applies it (qbo-api.md section 6)."""

from __future__ import annotations

import threading
from collections import defaultdict, deque

from .clock import Clock

PER_MINUTE = 500
# Intuit has documented both "10 concurrent requests per realm and app" (2016 policy) and
# "10 requests per second"; the concurrency form is used because it is the one answered
# with 429 and it does not penalise a fast sequential client that QBO would accept.
CONCURRENT = 10
BATCH_PER_MINUTE = 40
WINDOW = 60.0


class Throttle:
    """Sliding one-minute windows and an in-flight counter per realm.

    Refused requests are not counted against the window (UNCONFIRMED). The windows read the
    emulator clock, so a test can advance it instead of waiting a minute.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        enabled: bool = True,
        per_minute: int = PER_MINUTE,
        concurrent: int = CONCURRENT,
        batch_per_minute: int = BATCH_PER_MINUTE,
    ) -> None:
        self.clock = clock
        self.enabled = enabled
        self.per_minute = per_minute
        self.concurrent = concurrent
        self.batch_per_minute = batch_per_minute
        self._lock = threading.Lock()
        self._requests: dict[str, deque] = defaultdict(deque)
        self._batches: dict[str, deque] = defaultdict(deque)
        self._in_flight: dict[str, int] = defaultdict(int)

    def acquire(self, realm_id: str, *, batch: bool = False) -> bool:
        """Admit a request (and hold a concurrency slot) or refuse it; call release() after."""
        if not self.enabled:
            return True
        now = self.clock.time()
        with self._lock:
            window = self._requests[realm_id]
            while window and window[0] <= now - WINDOW:
                window.popleft()
            batches = self._batches[realm_id]
            while batches and batches[0] <= now - WINDOW:
                batches.popleft()
            if (
                len(window) >= self.per_minute
                or self._in_flight[realm_id] >= self.concurrent
                or (batch and len(batches) >= self.batch_per_minute)
            ):
                return False
            window.append(now)
            if batch:
                batches.append(now)
            self._in_flight[realm_id] += 1
            return True

    def release(self, realm_id: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._in_flight[realm_id] = max(0, self._in_flight[realm_id] - 1)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._batches.clear()
