"""A worker killed with SIGKILL in the middle of a push, and the worker that comes after it.

A real django-q2 worker process (``tests/sync/worker_process.py``) takes the queued push of
40 new invoices (two batches: 30 and 10) and is killed at one point of a batch. django-q2
delivers the task again to the next worker once the company's lease has lapsed. Afterwards
each invoice is in QuickBooks once, bound to its own QuickBooks invoice, and synced; nothing
failed; the dead worker's lease lapsed within one lease and its run is not left "running".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LEASE = 2.0
# Polling the lock adds a little to the moment it is seen free.
LEASE_SLACK = 0.5
INVOICES = 40
CUSTOMERS = ("Kestrel Dental", "Kestrel Optics", "Kestrel Physio", "Kestrel Vets")
ITEMS = ("Kestrel check-up", "Kestrel follow-up")


class RunLeftRunning(AssertionError):
    """The run of the killed worker still says "running" once the next run, started as soon
    as the lease lapsed, has finished."""


class NextWorkerFailed(AssertionError):
    """The task delivered again to the next worker did not succeed."""


@dataclass(frozen=True)
class Kill:
    """Where the worker is killed, and what each side holds at that moment."""

    point: str
    batch: int = 1
    after: int = 0
    in_quickbooks: int = 0  # of the 40 invoices
    synced: int = 0  # bindings settled
    claimed: int = 0  # bindings claimed with a requestid, answer not recorded
    in_flight: int = 1  # batches sent at once (QBO_WRITES_IN_FLIGHT)


CASES = [
    pytest.param(
        Kill("claimed", batch=1, claimed=30),
        id="a-claimed-not-sent-batch-1",
    ),
    pytest.param(
        Kill("claimed", batch=2, in_quickbooks=30, synced=30, claimed=10),
        id="a-claimed-not-sent-batch-2",
    ),
    pytest.param(
        Kill("sent", in_quickbooks=30, claimed=30),
        id="b-sent-answer-not-back",
    ),
    pytest.param(
        Kill("answered", in_quickbooks=30, claimed=30),
        id="c-answered-not-recorded",
    ),
    # A batch's answers are recorded in one transaction: killed while writing them, the
    # worker leaves none of them recorded, and its bindings claimed for the replay.
    pytest.param(
        Kill("recording", in_quickbooks=30, claimed=30),
        id="d-answers-being-recorded",
    ),
    # Both batches claimed and sent at once; the first's answer held when the worker dies,
    # so neither is recorded (answers are recorded in order, once all have come).
    pytest.param(
        Kill("sent", in_flight=2, in_quickbooks=40, claimed=40),
        id="e-two-batches-in-flight",
    ),
]


@pytest.fixture
def start_worker(worker_env, tmp_path):
    """Start ``python -m tests.sync.worker_process`` with options; killed at the end if alive."""
    started = []

    def start(*options: str) -> subprocess.Popen:
        log = open(tmp_path / f"worker-{len(started)}.log", "w")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.sync.worker_process", "--lease", str(LEASE), *options],
            cwd=ROOT,
            env=worker_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        process.log_path = Path(log.name)
        started.append((process, log))
        return process

    yield start
    for process, log in started:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        log.close()


def _output(process: subprocess.Popen) -> str:
    return process.log_path.read_text()


def _wait_for(what: str, condition, *, process: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the worker ended before {what}:\n{_output(process)}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{_output(process)}"
        time.sleep(0.02)


def _make_invoices(make_invoice) -> list[str]:
    numbers = []
    for n in range(INVOICES):
        invoice = make_invoice(
            number=f"KW-{n:03}",
            customer=CUSTOMERS[n % len(CUSTOMERS)],
            lines=[(ITEMS[n % len(ITEMS)], 1 + n % 3, "120.00", True)],
        )
        numbers.append(invoice.number)
    return numbers


def _ours_in_quickbooks(client, numbers: list[str]) -> Counter:
    """How many times QuickBooks holds each of ``numbers``, read with the API."""
    return Counter(
        row.get("DocNumber")
        for row in client.query_all("Invoice")
        if row.get("DocNumber") in set(numbers)
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kill", CASES)
def test_worker_killed_during_a_push_leaves_nothing_twice_and_the_next_worker_finishes(
    kill: Kill, ready, make_invoice, start_worker, qbo, tmp_path
):
    from django_q.models import OrmQ, Task

    from integrations.quickbooks.backend import parse_batch_ref
    from integrations.services import connection_client
    from portal.models import Customer, Invoice, Item
    from portal.tasks import queue
    from sync.locks import lock_held
    from sync.models import SyncRecord, SyncRun

    numbers = _make_invoices(make_invoice)
    client = connection_client(connection=ready, sleep=lambda seconds: None)
    before_in_quickbooks = client.count("Invoice")
    invoice_records = SyncRecord.objects.filter(connection=ready, object_type="invoice")
    queue("sync.tasks.push_invoices", ready.pk, None, "save")
    assert OrmQ.objects.count() == 1

    # --- the first worker, killed at the point ----------------------------------------------
    marker = tmp_path / "stopped"
    first = start_worker(
        *("--stop", kill.point, "--batch", str(kill.batch), "--after", str(kill.after)),
        *("--marker", str(marker), "--in-flight", str(kill.in_flight)),
    )
    _wait_for(f"the worker to reach {kill.point!r}", marker.exists, process=first)
    if kill.point == "sent":
        # The batch reached QuickBooks, which saved it and holds the answer.
        _wait_for(
            "QuickBooks to save the batch",
            lambda: sum(_ours_in_quickbooks(client, numbers).values()) == kill.in_quickbooks,
            process=first,
        )
    os.kill(first.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    assert first.wait(5) == -signal.SIGKILL
    assert marker.read_text() == f"{first.pid} {kill.point}\n"
    assert lock_held(connection=ready), "the killed worker did not hold the company's lease"
    qbo.app.set_hold_answers(0)

    # Where the worker died: each side holds what the point says.
    [dead_run] = SyncRun.objects.filter(connection=ready)
    assert dead_run.status == "running"
    in_quickbooks = _ours_in_quickbooks(client, numbers)
    assert sum(in_quickbooks.values()) == kill.in_quickbooks, in_quickbooks
    assert set(in_quickbooks.values()) <= {1}
    assert invoice_records.filter(status="synced", uncertain=False).count() == kill.synced
    claimed = invoice_records.filter(status="pending", uncertain=True).exclude(request_id="")
    assert claimed.count() == kill.claimed
    assert invoice_records.count() == kill.synced + kill.claimed
    request_ids = {parse_batch_ref(r.request_id)[0] for r in claimed}
    assert len(request_ids) == kill.in_flight

    # --- the lease lapses within one lease; the task comes back to the next worker ----------
    while lock_held(connection=ready):
        assert time.monotonic() - killed_at <= LEASE + LEASE_SLACK, "the lease outlived itself"
        time.sleep(0.02)
    second = start_worker()
    if second.wait(30) != 0:
        raise NextWorkerFailed(_output(second))
    [task] = Task.objects.all()
    assert (task.func, task.args, task.success) == (
        "sync.tasks.push_invoices",
        (ready.pk, None, "save"),
        True,
    ), task.result
    assert not OrmQ.objects.exists(), "the redelivered task was not acknowledged"
    run = SyncRun.objects.get(pk=task.result)
    assert (run.status, run.message, run.failed) == ("done", "", 0), _output(second)
    assert run.created == INVOICES - kill.synced
    assert not lock_held(connection=ready)
    # The killed batch went out again with its own requestid: QuickBooks answered the replay
    # with its first answer when it had saved the batch, and saved it once when it had not.
    for request_id in request_ids:
        sent = [
            (entry["held"], entry["replayed"])
            for entry in qbo.app.requests_log()
            if (entry["requestid"] or "").startswith(request_id)
        ]
        if kill.in_flight > 1:
            # Each batch was saved once and its replay answered from the first answer.
            assert [replayed for _held, replayed in sent] == [False, True], sent
            continue
        assert sent == {
            "claimed": [(False, False)],
            "sent": [(True, False), (False, True)],
        }.get(kill.point, [(False, False), (False, True)])

    # --- QuickBooks: every invoice once, no customer or item twice ---------------------------
    assert client.count("Invoice") == before_in_quickbooks + INVOICES
    in_quickbooks = _ours_in_quickbooks(client, numbers)
    assert set(in_quickbooks) == set(numbers)
    assert set(in_quickbooks.values()) == {1}, in_quickbooks
    names = Counter(c["DisplayName"] for c in client.query_all("Customer"))
    assert [names[name] for name in CUSTOMERS] == [1] * len(CUSTOMERS)
    names = Counter(i["Name"] for i in client.query_all("Item"))
    assert [names[name] for name in ITEMS] == [1] * len(ITEMS)

    # --- the portal: every invoice once, bound to its own QuickBooks invoice, synced ----------
    assert sorted(Invoice.objects.values_list("number", flat=True)) == numbers
    qbo_ids = {row.get("DocNumber"): row["Id"] for row in client.query_all("Invoice")}
    bound = {
        r.invoice.number: (r.qbo_id, r.qbo_doc_number, r.status, r.uncertain, r.request_id)
        for r in invoice_records.select_related("invoice")
    }
    assert invoice_records.count() == INVOICES
    assert bound == {n: (qbo_ids[n], n, "synced", False, "") for n in numbers}
    assert not SyncRecord.objects.filter(status="failed").exists()
    for kind, model in (("customer", Customer), ("item", Item)):
        records = SyncRecord.objects.filter(connection=ready, object_type=kind)
        assert records.count() == model.objects.count()
        assert set(records.values_list("status", flat=True)) == {"synced"}

    # --- the dead worker's run ---------------------------------------------------------------
    dead_run.refresh_from_db()
    if dead_run.status == "running" or dead_run.finished_at is None:
        raise RunLeftRunning(
            f"run {dead_run.pk} of the killed worker is still {dead_run.status!r} after run "
            f"{run.pk} finished"
        )
    assert dead_run.status == "failed"
    assert dead_run.message
