"""A run's figures add up: its API calls are the requests QuickBooks received, its progress
is its counts, and a run that ended with failed records says so."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests
from django.core.management import call_command

from portal.models import TaxRate
from sync.models import SyncRun

COUNTS = ("created", "updated", "unchanged", "failed", "conflicts", "skipped")


def api_requests(qbo) -> list[dict]:
    return [r for r in qbo.app.requests_log() if "/v3/" in r.get("path", "")]


def counted(run: SyncRun) -> int:
    return sum(getattr(run, name) for name in COUNTS)


@pytest.fixture
def faults(qbo):
    """Turn on the emulator's faults (500, 503, 429, dropped connections) for one test."""

    def set_rate(rate: float, seed: int | None = None) -> None:
        answer = requests.post(
            f"{qbo.base_url}/_emulator/options",
            json={"fault_rate": rate, "lost_rate": 0, "seed": seed},
            timeout=10,
        )
        answer.raise_for_status()

    yield set_rate
    set_rate(0)


def test_api_calls_are_the_requests_quickbooks_received(run_sync, make_invoice, qbo, qbo_ui):
    for n in range(5):
        make_invoice(number=f"INV-8{n:03}", customer=f"Customer {n % 2}")
    qbo_ui.create(
        "Invoice",
        {
            "DocNumber": "QB-8100",
            "CustomerRef": {"value": "1"},
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": 10,
                    "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": 10},
                }
            ],
        },
    )
    qbo.app.clear_log()

    run = run_sync("both")

    assert run.status == "done", run.message
    assert run.api_calls == len(api_requests(qbo)) > 0
    assert SyncRun.objects.get(pk=run.pk).api_calls == run.api_calls

    qbo.app.clear_log()
    idle = run_sync("both")
    assert idle.api_calls == len(api_requests(qbo))


def test_api_calls_count_each_retry(run_sync, make_invoice, qbo, faults):
    for n in range(8):
        make_invoice(number=f"INV-81{n:02}")
    faults(0.3, seed=7)
    qbo.app.clear_log()

    run = run_sync("push")

    sent = api_requests(qbo)
    assert any(entry.get("fault") for entry in sent), "the seed gave no fault to retry"
    assert run.api_calls == len(sent)


def test_api_calls_are_written_while_the_run_goes(ready, make_invoice, qbo):
    from django.conf import settings

    from integrations.services import connection_client
    from sync.services import sync_run

    # One wave of batches in flight, then one more batch: the first wave is counted before
    # the last batch goes.
    for n in range(30 * settings.QBO_WRITES_IN_FLIGHT + 10):
        make_invoice(number=f"INV-82{n:03}")
    seen: list[int] = []

    def watch(run):
        seen.append(SyncRun.objects.get(pk=run.pk).api_calls)

    client = connection_client(connection=ready, sleep=lambda seconds: None)
    run = sync_run(
        connection=ready, trigger="command", direction="push", client=client, on_progress=watch
    )

    assert run.status == "done", run.message
    assert any(0 < calls < run.api_calls for calls in seen), (seen, run.api_calls)


def test_progress_is_the_counts_and_never_stops_short(run_sync, make_invoice, qbo_ui):
    for n in range(3):
        make_invoice(number=f"INV-83{n:02}")
    first = run_sync("push")
    # Two invoices more: the three sent before are unchanged, customer and item are known.
    for n in range(3, 5):
        make_invoice(number=f"INV-83{n:02}")
    second = run_sync("push")
    # A pull of the sandbox company: customers, items and invoices of every kind.
    third = run_sync("both")

    for run in (first, second, third):
        assert run.status == "done", run.message
        assert run.done == run.total == counted(run) > 0
        assert run.progress_percent == 100
    # Invoices, their customer and item: each created record is one of the records done.
    assert (first.created, first.unchanged) == (5, 0)
    assert (second.created, second.unchanged) == (2, 3)


def test_a_run_that_ended_with_failed_records_is_done_with_failures(
    ready, run_sync, make_invoice, capsys
):
    make_invoice(number="INV-8400")
    bad = make_invoice(number="INV-8401")
    TaxRate.objects.create(name="Nowhere", percent=Decimal("1"))
    bad.lines.update(tax_rate=TaxRate.objects.get(name="Nowhere"))

    run = run_sync("push")

    assert run.status == "done"  # the run went to its end ...
    assert (run.outcome, run.outcome_label) == ("done_with_failures", "Done with failures")
    assert run.failed == 1
    assert run.done == run.total == counted(run)

    call_command("qbo_sync", "--push")
    out = capsys.readouterr().out
    assert "Done with failures: 0 created, 0 updated, 1 unchanged, 1 failed" in out


def test_a_clean_run_is_plain_done(run_sync, make_invoice):
    make_invoice(number="INV-8500")
    run = run_sync("push")
    assert (run.outcome, run.outcome_label) == ("done", "Done")


def test_batches_of_a_push_are_in_flight_together(ready, make_invoice, qbo, run_sync):
    from django.conf import settings

    width = settings.QBO_WRITES_IN_FLIGHT
    assert width > 1
    for n in range(30 * width):
        make_invoice(number=f"PL-{n:03}")
    qbo.app.options.latency_ms = 400
    try:
        qbo.app.clear_log()
        run = run_sync("push")
    finally:
        qbo.app.options.latency_ms = 0
    assert (run.status, run.created >= 30 * width, run.failed) == ("done", True, 0)
    batches = [
        entry["time"]
        for entry in qbo.app.requests_log()
        if entry["path"].endswith("/batch") and entry["method"] == "POST"
    ]
    invoice_batches = batches[-width:]
    # Sent one after another they would end at least 400 ms apart; in flight together, they
    # end within the same latency.
    assert max(invoice_batches) - min(invoice_batches) < 0.4, invoice_batches
