"""How runs read on the history tab, the run page and the dashboard: done with failures, API
calls, progress that adds up and never 0/0 while running."""

from __future__ import annotations

from django.urls import reverse

from portal.roles import AUDITORS
from sync.models import SyncRun


def _run(connection, **fields):
    defaults = {"trigger": "button", "direction": "both", "status": "done"}
    return SyncRun.objects.create(connection=connection, **{**defaults, **fields})


def _history(client) -> str:
    return client.get(reverse("admin:quickbooks"), {"tab": "history"}).content.decode()


def test_a_run_with_failed_records_reads_done_with_failures_everywhere(client, login, connection):
    run = _run(connection, total=4, done=4, created=2, unchanged=1, failed=1, api_calls=7)
    login(AUDITORS)

    history = _history(client)
    row = history.split(f'id="run-{run.pk}"')[1].split("</tr>")[0]
    assert 'data-outcome="done_with_failures"' in row
    assert '<span class="ll-badge run-done_with_failures">Done with failures</span>' in row
    assert "<td>7</td>" in row  # API calls
    assert "<span>4 / 4</span>" in row

    page = client.get(reverse("admin:quickbooks_run", args=[run.pk])).content.decode()
    assert 'id="run-status">Done with failures</span>' in page
    assert "The run went to its end, but 1 record failed" in page
    assert '<dd id="run-api-calls">7</dd>' in page
    assert (
        '<dd id="run-counts">2 created, 0 updated, 1 unchanged, 1 failed, 0 conflicts, 0 skipped'
        in page
    )

    dashboard = client.get(reverse("admin:index")).content.decode()
    assert "Push and pull, done with failures</a>" in dashboard


def test_a_clean_run_reads_done(client, login, connection):
    run = _run(connection, total=2, done=2, created=2)
    login(AUDITORS)
    page = client.get(reverse("admin:quickbooks_run", args=[run.pk])).content.decode()
    assert 'id="run-status">Done</span>' in page
    assert "run-failures-note" not in page


def test_progress_while_running_is_never_0_of_0(client, login, connection):
    starting = _run(connection, status="running")
    nothing = _run(connection, status="done")
    going = _run(connection, status="running", total=30, done=12, api_calls=3)
    login(AUDITORS)

    history = _history(client)
    assert "0 / 0" not in history
    row = history.split(f'id="run-{starting.pk}"')[1].split("</tr>")[0]
    assert f'<progress aria-label="Run {starting.pk} progress">starting</progress>' in row
    row = history.split(f'id="run-{nothing.pk}"')[1].split("</tr>")[0]
    assert "<span>nothing to do</span>" in row
    row = history.split(f'id="run-{going.pk}"')[1].split("</tr>")[0]
    assert '<progress max="100" value="40"' in row and "<span>12 / 30</span>" in row

    page = client.get(reverse("admin:quickbooks_run", args=[going.pk])).content.decode()
    assert '<dd id="run-api-calls">3 so far</dd>' in page
    assert '<meta http-equiv="refresh" content="2">' in page


def test_the_chart_counts_what_the_runs_count(client, login, connection):
    # A pull that made invoices from QuickBooks counts them as created, as its run does.
    _run(connection, created=3, updated=2, unchanged=5, failed=1, conflicts=1)
    _run(connection, created=1)
    _run(connection, created=9, dry_run=True)  # a dry run changed nothing
    login(AUDITORS)
    page = client.get(reverse("admin:index")).content.decode()
    assert "4 created, 2 updated, 1 failed, 1 conflicts" in page
    for label, total in (("Created", 4), ("Updated", 2), ("Failed", 1), ("Conflicts", 1)):
        assert f"{label}: {total}</li>" in page


def test_skipped_records_are_counted_with_the_rest(client, login, connection):
    # 3 done = 1 unchanged + 2 skipped (voids never sent): the row says so.
    run = _run(connection, total=3, done=3, unchanged=1, skipped=2)
    login(AUDITORS)
    row = _history(client).split(f'id="run-{run.pk}"')[1].split("</tr>")[0]
    assert '<td>1 <span class="ll-muted">(and 2 skipped)</span></td>' in row
    page = client.get(reverse("admin:quickbooks_run", args=[run.pk])).content.decode()
    assert "1 unchanged, 0 failed, 0 conflicts, 2 skipped</dd>" in page
