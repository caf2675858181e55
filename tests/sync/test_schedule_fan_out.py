"""The schedule hands each due company to a worker: one ``run_sync`` task per company, never
a second while one waits or a sync of the company is going, and no skipped run a minute for
a busy company. ``test_two_workers.py`` runs those tasks in two real worker processes."""

from __future__ import annotations

import pytest

from sync.locks import lock_acquire, lock_release
from sync.models import SyncConfiguration, SyncRun
from sync.tasks import run_sync, scheduled_sync


@pytest.fixture
def two_companies(ready, connection_factory, qbo):
    """Two companies ready to sync and due (never synced)."""
    from tests.qbo import set_up_for_sync

    second_realm = qbo.realm_ids[1]
    qbo.app.reset_realm(second_realm)
    second = set_up_for_sync(connection_factory(second_realm))
    for connection in (ready, second):
        SyncConfiguration.objects.get_or_create(connection=connection)
    return ready, second


@pytest.fixture
def queued(monkeypatch):
    """The tasks the schedule queues, recorded instead of sent to a broker."""
    tasks = []
    monkeypatch.setattr("sync.tasks.queue", lambda func, *args: tasks.append((func, *args)))
    return tasks


def test_the_schedule_queues_one_task_per_due_company_and_runs_nothing_itself(
    two_companies, queued, qbo
):
    first, second = two_companies
    qbo.app.clear_log()

    assert scheduled_sync() == []

    assert queued == [
        ("sync.tasks.run_sync", first.pk, "both", "schedule"),
        ("sync.tasks.run_sync", second.pk, "both", "schedule"),
    ]
    assert not SyncRun.objects.exists()
    assert not [r for r in qbo.app.requests_log() if "/v3/" in r["path"]]


def test_a_company_is_not_queued_again_while_its_task_waits_or_its_sync_runs(two_companies, queued):
    first, second = two_companies
    scheduled_sync()
    assert len(queued) == 2

    # Both tasks still wait for a worker: the next ticks add nothing.
    scheduled_sync()
    scheduled_sync()
    assert len(queued) == 2

    # The first company's task is taken while another sync of it runs: no run, nothing in
    # the history, and the company is not queued while that sync holds the lease.
    assert lock_acquire(connection=first, holder="a-button-run")
    assert run_sync(first.pk, "both", "schedule") == 0
    assert not SyncRun.objects.exists()
    scheduled_sync()
    assert len(queued) == 2

    # The lease is free again and the company still due: queued again.
    lock_release(connection=first, holder="a-button-run")
    scheduled_sync()
    assert queued[2:] == [("sync.tasks.run_sync", first.pk, "both", "schedule")]

    # The second company's task runs: synced, and no longer due at the next tick.
    run = SyncRun.objects.get(pk=run_sync(second.pk, "both", "schedule"))
    assert (run.trigger, run.status, run.message) == ("schedule", "done", "")
    scheduled_sync()
    assert [args[1] for args in queued] == [first.pk, second.pk, first.pk]


def test_a_company_turned_off_or_not_due_is_not_queued(two_companies, queued):
    first, second = two_companies
    SyncConfiguration.objects.filter(connection=first).update(enabled=False)
    run_sync(second.pk, "both", "button")

    assert scheduled_sync() == []
    assert queued == []
