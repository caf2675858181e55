"""Sync now starts sync for a company (once, by a Sync administrator), and is unavailable,
saying why, while a run of the company is going."""

from __future__ import annotations

from django.urls import reverse

from integrations.models import Connection
from portal.roles import BILLING_STAFF, SYNC_ADMINISTRATORS
from sync.locks import lock_acquire, lock_release
from sync.models import SyncRun

DISABLED = '<button type="button" class="button" id="qbo-sync" disabled'


def _page(client, **query) -> str:
    response = client.get(reverse("admin:quickbooks"), query)
    assert response.status_code == 200
    return response.content.decode()


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_the_first_sync_now_of_a_sync_administrator_starts_sync(client, login, connection, queued):
    admin = login(SYNC_ADMINISTRATORS)
    page = _page(client, tab="configuration")
    assert "Sync has not been started." in page
    assert 'id="qbo-sync-why">Starts sync for this company' in page
    assert (
        "not started: nothing syncs by itself"
        in client.get(reverse("admin:index")).content.decode()
    )

    response = client.post(reverse("admin:quickbooks_sync"), follow=True)

    started = Connection.objects.get()
    assert started.sync_started_by == admin and started.sync_started_at is not None
    assert queued == [("sync.tasks.run_sync", connection.pk, "both", "button")]
    assert _messages(response)[0] == (
        "Sync started for Sandbox Company: from now on the schedule, saving an invoice and "
        "QuickBooks' notifications keep it in step too."
    )
    page = _page(client, tab="configuration")
    assert f"Sync started {started.sync_started_at:%-d %b %Y}" in page
    assert f"by {admin.username}" in page

    # Pressed again, it only syncs.
    response = client.post(reverse("admin:quickbooks_sync"), follow=True)
    assert [m for m in _messages(response) if m.startswith("Sync started")] == []
    assert Connection.objects.get().sync_started_at == started.sync_started_at


def test_billing_staff_may_not_start_sync(client, login, connection, queued):
    login(BILLING_STAFF)
    page = _page(client)
    assert DISABLED in page
    assert (
        'id="qbo-sync-why">Sync is unavailable: sync has not been started for this company yet. '
        "A Sync administrator starts it the first time, with Sync now." in page
    )

    response = client.post(reverse("admin:quickbooks_sync"), follow=True)

    assert queued == []
    assert Connection.objects.get().sync_started_at is None
    assert _messages(response) == [
        "Sync cannot run yet: sync has not been started for this company yet. A Sync "
        "administrator starts it the first time, with Sync now."
    ]


def test_sync_is_unavailable_while_a_run_of_the_company_is_going(
    client, login, connection, started, queued
):
    run = SyncRun.objects.create(
        connection=connection, trigger="schedule", direction="both", status="running", total=40,
        done=12,
    )  # fmt: skip
    assert lock_acquire(connection=connection, holder=f"run-{run.pk}")
    login(BILLING_STAFF)

    page = _page(client, tab="items")
    assert DISABLED in page
    run_url = reverse("admin:quickbooks_run", args=[run.pk])
    assert (
        'Sync is unavailable while a sync of this company is running: <a href="'
        f'{run_url}" id="qbo-running-run">run #{run.pk}</a>, 12 of 40 records. It is available '
        "again when the run ends." in page
    )
    assert 'id="qbo-quick-sync" disabled' in page

    for name in ("quickbooks_sync", "quickbooks_quick_sync"):
        response = client.post(reverse(f"admin:{name}"), follow=True)
        assert _messages(response) == [
            "A sync of this company is running now; Sync is available again when it ends. Its "
            "progress is on the Sync history tab."
        ]
    assert queued == []

    lock_release(connection=connection, holder=f"run-{run.pk}")
    page = _page(client, tab="items")
    assert DISABLED not in page
    assert 'id="qbo-quick-sync" disabled' not in page


WATCH = 'id="ll-sync-watch"'


def _running(connection, **fields) -> SyncRun:
    run = SyncRun.objects.create(
        connection=connection, trigger="schedule", direction="both", status="running", **fields
    )
    assert lock_acquire(connection=connection, holder=f"run-{run.pk}")
    return run


def test_tabs_watch_a_run_of_the_company_only_while_it_goes(client, login, connection, started):
    login(SYNC_ADMINISTRATORS)
    for tab in ("connection", "configuration", "journals", "mapping", "items", "conflicts"):
        assert WATCH not in _page(client, tab=tab), tab

    run = _running(connection, total=40, done=12)
    state = reverse("admin:quickbooks_sync_state")
    for tab in ("connection", "configuration", "journals", "mapping", "items", "conflicts"):
        page = _page(client, tab=tab)
        assert (
            f'<script id="ll-sync-watch" type="application/json">{{"url": "{state}", '
            '"interval": 2000, "reload": true}</script>' in page
        ), tab
        assert "integrations/sync_watch.js" in page
        assert '<meta http-equiv="refresh"' not in page  # forms keep what is typed in them
    # The history tab showing the run refreshes itself, as before, and needs no script.
    page = _page(client, tab="history")
    assert '<meta http-equiv="refresh" content="2">' in page
    assert WATCH not in page

    lock_release(connection=connection, holder=f"run-{run.pk}")
    assert WATCH not in _page(client, tab="connection")


def test_a_form_shown_again_after_a_post_is_never_reloaded_by_the_watch(
    client, login, connection, started
):
    _running(connection)
    login(SYNC_ADMINISTRATORS)
    response = client.post(
        reverse("admin:quickbooks_configuration"),
        {"app": "invoices", "sync_type": "two_way", "pull_interval_minutes": "0"},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert '"reload": false}</script>' in page  # what was typed stays; Sync comes back


def test_sync_state_says_whether_the_run_goes_with_the_button_as_it_reads_now(
    client, login, connection, started
):
    run = _running(connection, total=40, done=12)
    login(BILLING_STAFF)
    url = reverse("admin:quickbooks_sync_state")

    state = client.get(url).json()
    assert state["running"] is True
    assert DISABLED in state["button"]
    assert (
        f"run #{run.pk}</a>, 12 of 40 records. It is available again when the run ends."
        in (state["button"])
    )

    lock_release(connection=connection, holder=f"run-{run.pk}")
    state = client.get(url).json()
    assert state["running"] is False
    assert DISABLED not in state["button"]
    assert (
        '<button type="submit" class="button default" id="qbo-sync">Sync now</button>'
        in (state["button"])
    )
    assert 'name="csrfmiddlewaretoken"' in state["button"]


def test_sync_state_has_no_button_for_auditors_and_refuses_others(
    client, login, connection, user_factory
):
    from portal.roles import AUDITORS

    url = reverse("admin:quickbooks_sync_state")
    login(AUDITORS)
    assert client.get(url).json() == {"running": False, "button": ""}
    client.force_login(user_factory())
    assert client.get(url).status_code == 403
