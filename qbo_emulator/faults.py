"""Reproducible injection of QBO's transient failures (a test lever, not a QBO feature)."""

from __future__ import annotations

import random
import threading

# "lost" applies a write and then drops the connection, so the client cannot know it
# succeeded: the case requestid exists for.
KINDS = ("http500", "http503", "http429", "drop", "lost")


class FaultInjector:
    """Decides, per API request in arrival order, whether and how it fails.

    One draw per request from a generator seeded with ``seed``: the same seed and the same
    request sequence give the same faults.
    """

    def __init__(self, rate: float = 0.0, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(rate, seed)

    def configure(self, rate: float, seed: int | None) -> None:
        with self._lock:
            self.rate = max(0.0, min(1.0, float(rate)))
            self.seed = seed
            self._rng = random.Random(seed)

    def draw(self) -> str | None:
        """Return a fault kind for the next request, or None to serve it normally."""
        if self.rate <= 0:
            return None
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            return self._rng.choice(KINDS)
