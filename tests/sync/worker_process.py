"""A django-q2 worker in a process of its own, for ``tests/sync/test_killed_worker.py``.

    python -m tests.sync.worker_process --lease 2 [--stop POINT --batch N --after K --marker F]

It takes the next task from django-q2's broker (the queue in the test database) and runs it as
a cluster does: the pusher unpacks it, ``django_q.worker.worker`` calls the task function, the
monitor saves the result and acknowledges the task. With ``--stop`` the engine is patched here,
never in the product, so that the run stops at one point of its N-th batch of invoices: the
process writes the marker file there and waits to be killed.

Points (the N-th invoice batch; each create in it already claimed with the batch's requestid):
    claimed    before the batch is sent
    sent       the batch is on its way and QuickBooks holds its answer (the emulator's
               ``hold_answers_ms``), so QuickBooks saves the invoices and the worker never hears
    answered   QuickBooks' answer is in, nothing of it recorded in the portal
    recording  the batch's answers written in the portal (its invoices' bindings settled),
               the transaction that records them not committed yet
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import threading
import time
from pathlib import Path

POINTS = ("claimed", "sent", "answered", "recording")
# How long a stopped worker waits to be killed before giving up with an error.
STOP_WAIT_SECONDS = 60
HOLD_ANSWERS_MS = STOP_WAIT_SECONDS * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lease", type=float, required=True, help="the lease, in seconds")
    parser.add_argument("--stop", choices=POINTS)
    parser.add_argument("--batch", type=int, default=1, help="the invoice batch to stop in")
    parser.add_argument("--after", type=int, default=0, help="answers recorded (recording)")
    parser.add_argument("--marker", type=Path, help="written when the stop point is reached")
    parser.add_argument(
        "--in-flight", type=int, default=1, help="batches sent at once (QBO_WRITES_IN_FLIGHT)"
    )
    parser.add_argument("--wait", type=float, default=20, help="seconds to wait for a task")
    args = parser.parse_args(argv)
    if args.stop and not args.marker:
        parser.error("--stop needs --marker")

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.conf import settings
    from django_q.conf import Conf

    # The settings refuse a lease under 30 seconds; the test needs a short one.
    settings.SYNC_LOCK_LEASE_SECONDS = args.lease
    # django-q2 delivers a task again `retry` seconds after a worker took it and never
    # acknowledged it; production keeps that above the lease (360 > 300), and so does this.
    Conf.RETRY = args.lease
    Conf.POLL = 0.05
    # The points are those of one batch at a time unless the case sends several at once.
    settings.QBO_WRITES_IN_FLIGHT = args.in_flight
    if args.stop:
        _stop_at(args.stop, batch=args.batch, after=args.after, marker=args.marker)
    return 0 if _work_one_task(wait=args.wait) else 1


def _work_one_task(*, wait: float) -> bool:
    """Run the next queued task as a django-q2 cluster would; whether it succeeded."""
    from multiprocessing import Queue, Value

    from django_q.brokers import get_broker
    from django_q.conf import Conf
    from django_q.models import Task
    from django_q.monitor import monitor
    from django_q.signing import SignedPackage
    from django_q.worker import worker

    broker = get_broker()
    deadline = time.monotonic() + wait
    while not (taken := broker.dequeue()):
        if time.monotonic() > deadline:
            print("No task was queued.", file=sys.stderr)
            return False
    [(ack_id, package)] = taken
    task = SignedPackage.loads(package)
    task["cluster"] = Conf.CLUSTER_NAME
    task["ack_id"] = ack_id
    tasks, results = Queue(), Queue()
    tasks.put(task)
    tasks.put("STOP")
    worker(tasks, results, Value("f", -1))
    results.put("STOP")
    monitor(results, broker)
    saved = Task.objects.get(id=task["id"])
    print(f"task {saved.name}: success={saved.success} result={saved.result}")
    return saved.success


def _stop_at(point: str, *, batch: int, after: int, marker: Path) -> None:
    """Patch the engine's edges so that the run stops at ``point``."""
    import requests
    from django.conf import settings

    from integrations.quickbooks.backend import QuickBooksBackend
    from sync.binder import Binder

    seen = {"batches": 0, "recorded": 0}
    counting = threading.Lock()  # batches in flight together are sent from threads
    real_write_batch = QuickBooksBackend.write_batch
    real_save_settled = Binder.save_settled

    def stop() -> None:
        _mark(marker, point)
        time.sleep(STOP_WAIT_SECONDS)
        print(f"Stopped at {point!r} and nobody killed this worker.", file=sys.stderr)
        os._exit(3)

    @functools.wraps(real_write_batch)
    def write_batch(self, entity, writes, *, request_id, **kwargs):
        if entity != "Invoice":
            return real_write_batch(self, entity, writes, request_id=request_id, **kwargs)
        with counting:
            seen["batches"] += 1
            this = seen["batches"]
        if this != batch:
            return real_write_batch(self, entity, writes, request_id=request_id, **kwargs)
        if point == "claimed":
            stop()
        if point == "sent":
            requests.post(
                f"{settings.QBO_EMULATOR_URL}/_emulator/options",
                json={"hold_answers_ms": HOLD_ANSWERS_MS},
                timeout=5,
            ).raise_for_status()
            _mark(marker, point)
        answer = real_write_batch(self, entity, writes, request_id=request_id, **kwargs)
        if point == "answered":
            stop()
        return answer

    @functools.wraps(real_save_settled)
    def save_settled(self, records, fields):
        real_save_settled(self, records, fields)
        invoices = [r for r in records if r.object_type == "invoice"]
        if invoices and seen["batches"] == batch:
            seen["recorded"] += len(invoices)
            if seen["recorded"] >= after:
                stop()  # inside the transaction that records the batch's answers

    QuickBooksBackend.write_batch = write_batch
    if point == "recording":
        Binder.save_settled = save_settled


def _mark(marker: Path, point: str) -> None:
    """Write the marker whole or not at all (the test waits for it to exist, then kills this
    process and reads it: a marker seen before its text is written would read empty)."""
    partial = marker.with_name(marker.name + ".partial")
    partial.write_text(f"{os.getpid()} {point}\n")
    partial.replace(marker)


if __name__ == "__main__":
    sys.exit(main())
