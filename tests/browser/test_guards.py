"""The guards around a sync, in a real browser: nothing syncs before the set-up is complete
and started, another company is an explicit choice, forms refuse what their page says is
required, and a run's figures read true (done with failures, API calls, Sync unavailable
while it goes)."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

import pytest

from portal.roles import SYNC_ADMINISTRATORS
from tests.browser.conftest import wait_for_tasks

pytestmark = pytest.mark.browser


def api_requests(qbo_live) -> list[dict]:
    return [r for r in qbo_live.app.requests_log() if "/v3/" in r.get("path", "")]


@contextmanager
def clock_at(monkeypatch, moment):
    """The portal's clock (django.utils.timezone.now) at ``moment``, as the schedule reads it."""
    with monkeypatch.context() as patch:
        patch.setattr("django.utils.timezone.now", lambda: moment)
        yield


def connect_in_the_browser(screen, qbo_live, company_index: int = 0) -> str:
    """Connection tab, Connect (or Reconnect), pick the company on the consent page, Connect.
    Returns the company's name."""
    page = screen.page
    screen.visit("/admin/quickbooks/?tab=connection")
    screen.click("#qbo-connect, #qbo-reconnect")
    assert page.url.startswith(qbo_live.base_url), page.url
    company = qbo_live.app.companies[company_index][1]
    page.get_by_label(company).check()
    screen.click("#connect")
    return company


def test_a_half_done_set_up_makes_no_request_for_two_minutes_of_schedule(
    screen, staff, qbo_live, monkeypatch
):
    """Connected, configuration and journals saved, the tax rate NOT mapped: the schedule
    finds the company due at every tick (so it would have synced three times) and QuickBooks
    gets no request; the history says once what is missing."""
    from django.utils import timezone

    from portal.models import Customer, Invoice, TaxRate
    from sync.models import SyncConfiguration, SyncRun
    from sync.tasks import schedule_due, scheduled_sync

    page = screen.page
    Customer.objects.create(display_name="Bayside Dental")
    TaxRate.objects.create(name="California", percent=Decimal("8"))
    screen.sign_in_as(staff(SYNC_ADMINISTRATORS))

    connect_in_the_browser(screen, qbo_live)
    screen.click("#tab-configuration")
    page.fill("#id_pull_interval_minutes", "1")
    screen.click("#qbo-save-config")
    assert "Configuration saved" in screen.messages(), screen.messages()
    assert "Sync has not been started." in page.inner_text("#qbo-started")
    screen.click("#tab-journals")
    screen.click("#qbo-fetch-accounts")
    page.select_option("#id_income_account", label="Sales of Product Income")
    screen.click("#qbo-save-journals")
    assert "Journals saved" in screen.messages(), screen.messages()
    assert "not mapped to a QuickBooks tax code: California" in page.inner_text("#qbo-readiness")
    assert page.is_disabled("#qbo-sync")

    qbo_live.app.clear_log()
    # Staff save an invoice meanwhile: push on save is on, and gated too.
    Invoice.objects.create(number="INV-6001", customer=Customer.objects.get())
    start = timezone.now()
    for tick in range(3):  # 0, 1 and 2 minutes: two minutes of a one-minute schedule
        moment = start + timedelta(minutes=tick, seconds=1)
        with clock_at(monkeypatch, moment):
            config = SyncConfiguration.objects.select_related("connection").get()
            assert schedule_due(config, now=moment) == "both", f"not due at minute {tick}"
            scheduled_sync()
    wait_for_tasks(screen.worker)  # the save's push, queued to the worker
    screen.visit("/admin/quickbooks/?tab=history")

    assert qbo_live.app.requests_log() == [], "QuickBooks was asked something"
    skipped = SyncRun.objects.filter(trigger="schedule")
    assert skipped.count() == 1
    [run] = skipped
    assert run.status == "skipped"
    assert "1 tax rate is not mapped to a QuickBooks tax code: California." in run.message
    row = page.locator(f"#run-{run.pk}")
    assert "Skipped" in row.inner_text()
    assert "not mapped to a QuickBooks tax code: California" in row.inner_text()
    screen.shot("guard-half-done-history", docs=False)


def test_reconnecting_to_the_other_company_asks_first_and_keep_changes_nothing(
    screen, staff, qbo_live, ready
):
    from django.forms.models import model_to_dict

    from integrations.models import Connection
    from sync.models import SyncRecord
    from sync.selectors import linked_counts
    from sync.services import sync_run

    page = screen.page
    # Craig's has synced: customers, items and invoices are linked to it.
    assert sync_run(connection=ready, trigger="command", direction="pull").status == "done"
    linked = linked_counts(connection=ready)
    assert linked["invoice"] and linked["customer"] and linked["item"]
    records = SyncRecord.objects.count()
    before = [model_to_dict(c) for c in Connection.objects.order_by("pk")]
    craigs = ready.company_name
    screen.sign_in_as(staff(SYNC_ADMINISTRATORS))

    other = connect_in_the_browser(screen, qbo_live, company_index=1)

    assert page.url.endswith("/admin/quickbooks/switch/"), page.url
    assert craigs in page.inner_text("#qbo-switch-from")
    assert ready.realm_id in page.inner_text("#qbo-switch-from")
    assert other in page.inner_text("#qbo-switch-to")
    assert page.inner_text("#qbo-switch-linked") == (
        f"{linked['invoice']} invoices, {linked['customer']} customers and {linked['item']} items"
    )
    assert f"not sent to {other}" in page.inner_text("#qbo-switch-effects")
    screen.shot("guard-switch-company", docs=False)

    screen.click("#qbo-switch-decline")

    assert f"Nothing changed: Ledgerlink stays with {craigs}" in screen.messages()
    assert [model_to_dict(c) for c in Connection.objects.order_by("pk")] == before
    assert SyncRecord.objects.count() == records
    screen.visit("/admin/quickbooks/?tab=connection")
    assert page.inner_text("#qbo-company") == craigs
    assert page.inner_text("#qbo-status") == "Connected"


def contrast(page, selector: str) -> float:
    """WCAG 2 contrast ratio of the element's text against its own background (1 to 21)."""
    fg, bg = page.eval_on_selector(
        selector, "e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]"
    )

    def luminance(css: str) -> float:
        channels = [int(part) / 255 for part in css[css.index("(") + 1 : -1].split(",")[:3]]
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_disconnect_asks_first(screen, staff, ready):
    from integrations.models import Connection

    page = screen.page
    screen.sign_in_as(staff(SYNC_ADMINISTRATORS))
    screen.visit("/admin/quickbooks/?tab=connection")
    # Readable (WCAG AA for text: 4.5), not red on the admin's blue.
    assert contrast(page, "#qbo-disconnect") >= 4.5
    screen.click("#qbo-disconnect")
    assert contrast(page, "#qbo-disconnect-confirm") >= 4.5
    assert "Disconnect from" in page.inner_text("#content-main")
    assert "the schedule, the push when an invoice is saved" in page.inner_text(
        "#qbo-disconnect-stops"
    )
    screen.click("#qbo-disconnect-cancel")
    assert Connection.objects.get().status == "connected"
    screen.click("#qbo-disconnect")
    screen.click("#qbo-disconnect-confirm")
    assert "Disconnected from" in screen.messages()
    assert Connection.objects.get().status == "disconnected"


def test_blank_journals_are_refused_naming_the_field(screen, staff, qbo_live):
    from integrations.models import Connection
    from tests.qbo import connect_with_tokens

    page = screen.page
    connect_with_tokens(qbo_live)
    screen.sign_in_as(staff(SYNC_ADMINISTRATORS))
    screen.visit("/admin/quickbooks/?tab=journals")
    screen.click("#qbo-fetch-accounts")
    assert page.input_value("#id_income_account") == ""
    assert "Income is required." in page.inner_text("#qbo-journals-required")

    screen.click("#qbo-save-journals")

    assert (
        "Income account: required. Every item Ledgerlink creates in QuickBooks needs one."
        in screen.messages()
    ), screen.messages()
    assert "Journals saved" not in screen.messages()
    assert Connection.objects.get().income_account_id is None


@pytest.fixture
def latency(qbo_live):
    """Slow every QuickBooks answer (ms), as a busy QuickBooks would; back to 0 after."""

    def set_to(ms: int) -> None:
        qbo_live.app.options.latency_ms = ms

    yield set_to
    set_to(0)


def test_a_run_with_a_failure_reads_done_with_failures_with_its_api_calls(
    screen, staff, qbo_live, ready, make_invoice
):
    from portal.models import TaxRate
    from sync.models import SyncConfiguration, SyncRun

    page = screen.page
    # Only Sync now sends these (no push on save), so its run meets the failure itself.
    SyncConfiguration.objects.update_or_create(connection=ready, defaults={"push_on_save": False})
    make_invoice(number="INV-6101")
    bad = make_invoice(number="INV-6102")
    # A rate no longer in use (inactive, so the set-up counts as complete) that an invoice
    # still carries and nobody mapped: that invoice fails, the others go.
    gone = TaxRate.objects.create(name="Nowhere", percent=Decimal("1"), active=False)
    bad.lines.update(tax_rate=gone)
    screen.sign_in_as(staff(SYNC_ADMINISTRATORS))
    screen.visit("/admin/quickbooks/")
    qbo_live.app.clear_log()

    screen.click("#qbo-sync")

    run = SyncRun.objects.get(trigger="button")
    assert run.status == "done" and run.failed >= 1, run.message
    screen.visit("/admin/quickbooks/?tab=history")
    row = page.locator(f"#run-{run.pk}")
    assert row.locator(".ll-badge").inner_text() == "Done with failures"
    screen.click(f"#run-link-{run.pk}")
    assert page.inner_text("#run-status") == "Done with failures"
    assert page.inner_text("#run-api-calls") == str(len(api_requests(qbo_live)))
    assert run.api_calls == len(api_requests(qbo_live)) > 0
    failed = page.locator("#run-events tr.event-error", has_text="INV-6102")
    assert failed.locator("a", has_text="Invoice INV-6102").count() == 1
    assert failed.locator("a", has_text="Mapping > Tax tab").count() == 1
    screen.shot("guard-done-with-failures", docs=False)


def test_sync_is_unavailable_while_a_run_of_the_company_is_going(
    screen, staff, qbo_live, ready, latency
):
    import time

    from sync.locks import lock_held
    from sync.models import SyncRun

    if screen.worker is None:
        pytest.skip("needs the task worker (PostgreSQL): a run inline ends before the page loads")
    page = screen.page
    screen.sign_in_as(staff(SYNC_ADMINISTRATORS))
    screen.visit("/admin/quickbooks/")
    latency(1500)
    with page.expect_navigation():
        page.click("#qbo-sync")  # not screen.click: no waiting for the run to end
    deadline = time.monotonic() + 30
    while not (SyncRun.objects.filter(status="running").exists() and lock_held(connection=ready)):
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.1)

    screen.visit("/admin/quickbooks/?tab=items")

    assert page.is_disabled("#qbo-sync")
    why = page.inner_text("#qbo-sync-why")
    assert why.startswith("Sync is unavailable while a sync of this company is running: run #")
    assert page.is_disabled("#qbo-quick-sync")
    screen.shot("guard-sync-while-running", docs=False)

    latency(0)
    wait_for_tasks(screen.worker)
    screen.visit("/admin/quickbooks/?tab=items")
    assert page.is_enabled("#qbo-sync")


def test_the_tabs_bring_sync_back_when_the_run_ends_without_a_reload(
    screen, staff, qbo_live, ready, latency
):
    """While a run goes, the Connection tab reloads itself when it ends (Sync available again,
    the figures the run's); a tab whose form staff changed is not reloaded: Sync comes back
    with a note, and what was typed stays."""
    import time

    from sync.locks import lock_held
    from sync.models import SyncRun

    if screen.worker is None:
        pytest.skip("needs the task worker (PostgreSQL): a run inline ends before the page loads")
    page = screen.page
    screen.sign_in_as(staff(SYNC_ADMINISTRATORS))
    screen.visit("/admin/quickbooks/")
    latency(1500)
    with page.expect_navigation():
        page.click("#qbo-sync")  # not screen.click: no waiting for the run to end
    deadline = time.monotonic() + 30
    while not (SyncRun.objects.filter(status="running").exists() and lock_held(connection=ready)):
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.1)

    screen.visit("/admin/quickbooks/?tab=connection")
    assert page.is_disabled("#qbo-sync")
    page.evaluate("window.llLoadedByTheTest = true")  # gone once the page reloads itself
    typing = page.context.new_page()
    errors: list[str] = []
    typing.on("pageerror", lambda exc: errors.append(str(exc)))
    typing.goto(screen.url("/admin/quickbooks/?tab=configuration"))
    assert typing.is_disabled("#qbo-sync")
    typing.fill("#id_pull_interval_minutes", "30")

    latency(0)
    wait_for_tasks(screen.worker)
    page.wait_for_selector("#qbo-sync:not([disabled])", timeout=30_000)
    assert page.evaluate("window.llLoadedByTheTest") is None
    assert page.inner_text("#qbo-sync-why").startswith("Pushes portal changes to QuickBooks")
    assert page.locator("#ll-sync-watch").count() == 0  # idle: nothing polls
    screen.check()

    typing.wait_for_selector("#qbo-run-ended", timeout=30_000)
    assert typing.is_enabled("#qbo-sync")
    assert typing.input_value("#id_pull_interval_minutes") == "30"
    assert "The sync run has ended." in typing.inner_text("#qbo-run-ended")
    assert not errors, errors
    typing.close()
