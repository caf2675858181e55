"""Reproducible injection of QBO's transient failures (a test lever, not a QBO feature)."""

from __future__ import annotations

import random
import threading

# "lost" applies a write and then drops the connection, so the client cannot know it
# succeeded: the case requestid exists for.
KINDS = ("http500", "http503", "http429", "drop", "lost")


class FaultInjector:
    """Decides, per API request in arrival order, whether and how it fails.

    Draws per request from one generator seeded with ``seed``: the same seed and the same
    request sequence give the same faults. ``rate`` picks any of ``KINDS`` alike;
    ``lost_rate`` is a further chance, for writes served normally, that the answer is lost
    after the write is applied (a second draw, made only when ``lost_rate`` is set, so a
    seed's faults at ``rate`` stay the same without it).
    """

    def __init__(self, rate: float = 0.0, seed: int | None = None, lost_rate: float = 0.0) -> None:
        self._lock = threading.Lock()
        self.lost_rate = 0.0
        self.configure(rate, seed, lost_rate)

    def configure(self, rate: float, seed: int | None, lost_rate: float | None = None) -> None:
        """Set the rates and restart the generator from ``seed`` (``lost_rate`` None keeps
        the current one)."""
        with self._lock:
            self.rate = _probability(rate)
            if lost_rate is not None:
                self.lost_rate = _probability(lost_rate)
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

    def draw_lost(self) -> bool:
        """For a write that ``draw`` let through: whether its answer is lost once applied."""
        if self.lost_rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < self.lost_rate


def _probability(value: float) -> float:
    return max(0.0, min(1.0, float(value)))
