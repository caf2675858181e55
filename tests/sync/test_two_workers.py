"""Two worker processes share two companies, and never sync one company at once.

Two real ``manage.py qcluster`` processes (one worker each) take tasks from one Redis queue,
against the test database and the emulator over HTTP, as two machines would: the schedule's
fan-out (the ``scheduled_sync`` task, which queues a ``run_sync`` per due company) and staff's
*Sync now* on both companies, pushed in pairs so that one company's runs are offered to both
processes at once. Afterwards:

- no two runs of one company overlapped in time (the lease), and each request QuickBooks got
  for a company came inside one of that company's runs;
- both processes ran syncs, and the two companies were synced at the same time;
- each company holds every invoice exactly once.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from tests.sync.conftest import ROOT

REDIS_URL = "redis://127.0.0.1:6379/8"
INVOICES = 45
CUSTOMERS = ("Osprey Dental", "Osprey Optics", "Osprey Physio")
ITEMS = ("Osprey check-up", "Osprey follow-up")
LATENCY_MS = 40
STARTUP_SECONDS = 20
WORK_SECONDS = 25
# The emulator stamps a request when its answer is written; the client may have it a moment
# before, and the run end soon after.
STAMP_SLACK = timedelta(milliseconds=50)


@pytest.fixture
def redis_db():
    """An empty Redis database for the broker, the cache and the leases; skipped without
    Redis."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (.ci/run starts it)")
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def on_redis(redis_db, settings, monkeypatch):
    """This process queues tasks to Redis and sees the leases and cache the workers use."""
    from django_q.conf import Conf

    settings.REDIS_URL = REDIS_URL
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
    q_cluster = {k: v for k, v in settings.Q_CLUSTER.items() if k not in ("orm", "poll", "sync")}
    settings.Q_CLUSTER = {**q_cluster, "redis": REDIS_URL}
    # django-q2 reads its configuration once, at import.
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", REDIS_URL)
    monkeypatch.setattr(Conf, "SYNC", False)
    return redis_db


# ``manage.py qcluster`` with django-q2's own log lines (which task each worker takes) shown.
QCLUSTER = """
import logging, django
django.setup()
logging.getLogger("django-q").setLevel(logging.INFO)
from django.core.management import execute_from_command_line
execute_from_command_line(["manage.py", "qcluster"])
"""


@pytest.fixture
def clusters(worker_env, on_redis, tmp_path):
    """Start qcluster processes (one worker each) on Redis; stopped (SIGTERM, then SIGKILL
    for the whole process group) at the end."""
    started = []

    def start(count: int) -> list[subprocess.Popen]:
        env = {**worker_env, "REDIS_URL": REDIS_URL, "Q_WORKERS": "1"}
        for n in range(count):
            log = open(tmp_path / f"qcluster-{n}.log", "w")  # noqa: SIM115 - closed below
            process = subprocess.Popen(
                [sys.executable, "-c", QCLUSTER],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            process.log_path = Path(log.name)
            started.append((process, log))
        return [process for process, _ in started]

    yield start
    for process, _log in started:
        if process.poll() is None:
            process.terminate()
    for process, log in started:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
        log.close()


def _logs(processes) -> str:
    return "\n".join(f"--- {p.log_path.name}\n{p.log_path.read_text()}" for p in processes)


def _wait_until(what: str, condition, *, processes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for process in processes:
            assert process.poll() is None, f"a qcluster stopped before {what}:\n{_logs(processes)}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{_logs(processes)}"
        time.sleep(0.05)


def _work_done(broker, seen: dict) -> bool:
    """The queue is empty, no run is going, and no task has ended for a second."""
    from django_q.models import Task

    from sync.models import SyncRun

    tasks = Task.objects.count()
    busy = broker.queue_size() or SyncRun.objects.filter(status="running").exists()
    if busy or tasks != seen.get("tasks"):
        seen.update(tasks=tasks, since=time.monotonic())
        return False
    return time.monotonic() - seen["since"] >= 1.0


def _processed_by(processes) -> dict[str, int]:
    """Each task's name, to the index of the qcluster process that ran it (from its log)."""
    names = {}
    for index, process in enumerate(processes):
        for name in re.findall(r"processing (\S+) '", process.log_path.read_text()):
            names[name] = index
    return names


@pytest.mark.django_db(transaction=True)
def test_two_qcluster_processes_share_two_companies_and_never_sync_one_company_at_once(
    ready, connection_factory, make_invoice, clusters, qbo
):
    from django_q.brokers import get_broker
    from django_q.models import Schedule, Task
    from django_q.tasks import async_task

    from integrations.services import connection_client
    from sync.models import SyncConfiguration, SyncRecord, SyncRun
    from tests.qbo import set_up_for_sync

    second_realm = qbo.realm_ids[1]
    qbo.app.reset_realm(second_realm)
    companies = [ready, set_up_for_sync(connection_factory(second_realm))]
    for connection in companies:
        # Push only: the two sandbox companies' own invoices stay out of the portal.
        SyncConfiguration.objects.update_or_create(
            connection=connection, defaults={"sync_type": "one_way", "push_on_save": False}
        )
    # The tasks below are the only ones: the every-minute schedule is ticked by hand.
    Schedule.objects.all().delete()
    invoice_ids = [
        make_invoice(
            number=f"TW-{n:03}",
            customer=CUSTOMERS[n % len(CUSTOMERS)],
            lines=[(ITEMS[n % len(ITEMS)], 1 + n % 3, "90.00", True)],
        ).pk
        for n in range(INVOICES)
    ]
    numbers = {f"TW-{n:03}" for n in range(INVOICES)}
    qbo.app.clear_log()
    qbo.app.options.latency_ms = LATENCY_MS
    broker = get_broker()

    processes = clusters(2)
    _wait_until(
        "both clusters to start",
        lambda: all("running" in p.log_path.read_text() for p in processes),
        processes=processes,
        timeout=STARTUP_SECONDS,
    )
    try:
        # The schedule's tick (it queues one run per company), then staff's Sync now on each
        # company twice in a row, twice over, and another tick.
        first, second = (connection.pk for connection in companies)
        async_task("sync.tasks.scheduled_sync")
        for connection_id in (first, first, second, second, first, second):
            async_task("sync.tasks.push_invoices", connection_id, invoice_ids, "button")
        async_task("sync.tasks.scheduled_sync")
        seen: dict = {}
        _wait_until(
            "the workers to finish",
            lambda: _work_done(broker, seen),
            processes=processes,
            timeout=WORK_SECONDS,
        )
    finally:
        qbo.app.options.latency_ms = 0

    tasks = list(Task.objects.all())
    failed = [(t.func, t.args, t.result) for t in tasks if not t.success]
    assert not failed, f"{failed}\n{_logs(processes)}"
    assert Counter(t.func for t in tasks)["sync.tasks.push_invoices"] == 6

    # --- one company's runs never overlap ---------------------------------------------------
    processed_by = _processed_by(processes)
    run_process = {
        t.result: processed_by[t.name] for t in tasks if t.func != "sync.tasks.scheduled_sync"
    }
    runs = list(SyncRun.objects.exclude(status="skipped").order_by("started_at"))
    assert {run.status for run in runs} == {"done"}, [(r.pk, r.status, r.message) for r in runs]
    for connection in companies:
        mine = [run for run in runs if run.connection_id == connection.pk]
        assert mine
        for before, after in itertools.pairwise(mine):
            assert before.finished_at <= after.started_at, (
                f"runs {before.pk} (process {run_process.get(before.pk)}) and {after.pk} "
                f"(process {run_process.get(after.pk)}) of company {connection.pk} overlapped"
            )
        # Every request QuickBooks got for the company came inside one of its runs.
        offset = qbo.clock.offset
        for entry in qbo.app.requests_log(realm_id=connection.realm_id):
            if "/v3/" not in entry["path"]:
                continue
            sent = entry["time"] - offset - entry["duration_ms"] / 1000
            answered = entry["time"] - offset
            inside = [
                run
                for run in mine
                if run.started_at.timestamp() <= sent
                and answered <= (run.finished_at + STAMP_SLACK).timestamp()
            ]
            assert len(inside) == 1, (entry, [(r.pk, r.started_at, r.finished_at) for r in mine])

    # --- both processes worked, on the two companies at once ---------------------------------
    by_process = Counter(run_process[run.pk] for run in runs if run.pk in run_process)
    assert set(by_process) == {0, 1}, (by_process, _logs(processes))
    assert any(
        a.connection_id != b.connection_id
        and a.started_at < b.finished_at
        and b.started_at < a.finished_at
        for a in runs
        for b in runs
    ), "the two companies were never synced at the same time"

    # --- each company holds every invoice exactly once --------------------------------------
    for connection in companies:
        client = connection_client(connection=connection, sleep=lambda seconds: None)
        ours = Counter(
            row.get("DocNumber")
            for row in client.query_all("Invoice")
            if row.get("DocNumber") in numbers
        )
        assert set(ours) == numbers, sorted(numbers - set(ours))
        assert set(ours.values()) == {1}, ours
        records = SyncRecord.objects.filter(connection=connection, object_type="invoice")
        assert sorted(records.values_list("status", flat=True)) == ["synced"] * INVOICES
