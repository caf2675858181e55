"""The per-realm limiter: concurrency slots and the per-minute budget, shared through the cache."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from integrations.quickbooks.errors import ThrottledError
from integrations.quickbooks.limiter import RealmLimiter


class FakeClock:
    """A clock that only moves when someone sleeps."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_threads_never_exceed_max_concurrent():
    limiter = RealmLimiter("123", max_concurrent=2, poll_interval=0.005)
    active = 0
    peak = 0
    lock = threading.Lock()
    start = threading.Barrier(5)

    def worker():
        nonlocal active, peak
        start.wait()
        for _ in range(3):
            with limiter:
                with lock:
                    active += 1
                    peak = max(peak, active)
                time.sleep(0.01)
                with lock:
                    active -= 1

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert peak == 2
    assert active == 0


def test_two_limiters_for_one_realm_share_the_slots():
    first = RealmLimiter("123", max_concurrent=1, max_wait=0.05, poll_interval=0.01)
    second = RealmLimiter("123", max_concurrent=1, max_wait=0.05, poll_interval=0.01)
    other_realm = RealmLimiter("456", max_concurrent=1, max_wait=0.05)

    with first:
        with pytest.raises(ThrottledError):
            second.acquire()
        with other_realm:
            pass
    with second:
        pass


def test_per_minute_budget_blocks_then_releases():
    clock = FakeClock(start=60 * 1000)  # the start of a minute
    limiter = RealmLimiter("123", per_minute=3, clock=clock, sleep=clock.sleep, max_wait=120)

    for _ in range(3):
        with limiter:
            pass
    assert clock.sleeps == []

    with limiter:
        pass

    # The fourth waits until the first three are 60 seconds old, as QBO's sliding minute
    # does, and not a moment less.
    assert clock.sleeps == [60]
    assert clock.now == 60 * 1000 + 60


def test_release_frees_only_the_holders_own_lease():
    limiter = RealmLimiter("123", max_concurrent=1, max_wait=0)
    slot = limiter.acquire()
    key = slot.rsplit("|", 1)[0]

    limiter.release(f"{key}|someone-else")
    with pytest.raises(ThrottledError):
        limiter.acquire()

    limiter.release(slot)
    limiter.release(limiter.acquire())


def test_waiting_longer_than_max_wait_raises_with_retry_after():
    clock = FakeClock(start=60 * 1000 + 10)
    limiter = RealmLimiter("123", per_minute=2, clock=clock, sleep=clock.sleep, max_wait=30)
    with limiter:
        pass
    with limiter:
        pass

    with pytest.raises(ThrottledError) as excinfo, limiter:
        pass

    assert excinfo.value.retry_after == 60  # until the first two are 60 seconds old
    assert excinfo.value.retryable
    assert clock.sleeps == []  # it does not sleep when the wait is already known too long
    # The concurrency slot taken before the budget check was given back.
    one_slot = RealmLimiter("123", per_minute=100, max_concurrent=1, max_wait=0)
    with one_slot:
        pass


def test_a_crashed_holder_loses_its_slot_when_the_lease_runs_out():
    crashed = RealmLimiter("123", max_concurrent=1, slot_ttl=1)
    crashed.acquire()  # never released
    waiting = RealmLimiter("123", max_concurrent=1, max_wait=3, poll_interval=0.05)

    started = time.monotonic()
    with waiting:
        pass

    assert 0.5 < time.monotonic() - started < 3


def test_a_wait_is_logged_with_its_company_reason_and_length(caplog):
    clock = FakeClock(start=60 * 1000)
    limiter = RealmLimiter("4620816365", per_minute=1, clock=clock, sleep=clock.sleep)
    with limiter:
        pass
    with caplog.at_level("INFO", logger="integrations.quickbooks.limiter"), limiter:
        pass

    # As an operator reads it, through the portal's own log format.
    console = logging.getLogger().handlers[0]
    line = console.format(caplog.records[-1])
    assert line.endswith(
        'qbo.limiter.wait realm=4620816365 reason="requests per minute" wait=60'
    ), line
