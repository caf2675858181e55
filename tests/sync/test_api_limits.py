"""Runs within QuickBooks' limits: every API call counted on the run that made it, a push past
the batch budget with no 429, and creates sent one request each as safe to replay as a batch."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
import requests
from django.core.management import call_command

from integrations import crypto
from integrations.models import Connection
from integrations.quickbooks.backend import SINGLE_WRITES, parse_batch_ref
from integrations.quickbooks.client import QBOClient
from integrations.quickbooks.errors import ConnectionFailedError
from integrations.quickbooks.limiter import RealmLimiter
from integrations.services import connection_client
from portal.models import Customer, Invoice, InvoiceLine, Item, TaxRate
from sync.models import SyncEvent, SyncRecord, SyncRun
from sync.services import conflict_resolve, sync_run
from tests.conftest import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET
from tests.sync.conftest import qbo_invoices


def api_log(emulator) -> list[dict]:
    """The requests the emulator saw on the Accounting API (OAuth and its levers excluded)."""
    return [r for r in emulator.app.requests_log() if "/v3/" in r.get("path", "")]


@pytest.fixture
def faults(qbo):
    """Turn on the emulator's transient faults (5xx, 429, dropped connections, lost answers)
    for one test; they are off again afterwards."""

    def turn_on(rate: float, seed: int) -> None:
        options = {"fault_rate": rate, "seed": seed}
        requests.post(f"{qbo.base_url}/_emulator/options", json=options, timeout=5)

    yield turn_on
    requests.post(
        f"{qbo.base_url}/_emulator/options", json={"fault_rate": 0, "seed": None}, timeout=5
    )


def _stale_access_token(connection) -> None:
    """QuickBooks will refuse the stored access token: the client refreshes it once."""
    Connection.objects.filter(pk=connection.pk).update(
        access_token_encrypted=crypto.encrypt("an-access-token-quickbooks-no-longer-takes")
    )


def test_api_calls_of_a_push_a_pull_and_an_items_sync_are_the_requests_quickbooks_saw(
    run_sync, ready, make_invoice, qbo, qbo_ui, faults
):
    """What counts: every request that reached the Accounting API, retries after 5xx, 429 or
    a dropped connection, and the request repeated after a token refresh included. The
    refresh itself goes to Intuit's OAuth service and is not an API call."""
    for n in range(45):
        make_invoice(number=f"AC-{n:02}", customer=f"Counted Customer {n % 4}")
    customer = qbo_ui.find("Customer", DisplayName="Amy's Bird Sanctuary")
    item = qbo_ui.find("Item", Name="Hours")
    for n in range(3):
        qbo_ui.create(
            "Invoice",
            {
                "DocNumber": f"QB-{n}",
                "CustomerRef": {"value": customer["Id"]},
                "Line": [
                    {
                        "DetailType": "SalesItemLineDetail",
                        "Amount": 40,
                        "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": 1},
                    }
                ],
            },
        )
    faults(0.25, seed=11)
    seen_by_run = {}
    for direction in ("push", "pull", "items"):
        _stale_access_token(ready)
        qbo.app.clear_log()

        run = run_sync(direction)

        seen = seen_by_run[direction] = api_log(qbo)
        assert run.api_calls == len(seen) > 0, (direction, [r["status"] for r in seen])
    everything = [r for seen in seen_by_run.values() for r in seen]
    # Each run's first request was refused for its token, and faults made others retry.
    assert [seen[0]["status"] for seen in seen_by_run.values()] == [401, 401, 401]
    assert len([r for r in everything if r["fault"]]) >= 3


def test_the_sync_command_prints_each_runs_api_calls(ready, make_invoice, qbo, capsys):
    for n in range(3):
        make_invoice(number=f"CMD-{n}")
    qbo.app.clear_log()

    call_command("qbo_sync", "--push")

    out = capsys.readouterr().out
    [printed] = re.findall(r"(\d+) API calls", out)
    run = SyncRun.objects.latest("pk")
    assert int(printed) == run.api_calls == len(api_log(qbo))


def test_runs_made_by_staff_buttons_count_their_api_calls_too(
    run_sync, ready, make_invoice, qbo, qbo_ui
):
    assert run_sync("pull").status == "done"
    invoice = make_invoice(number="BTN-1")
    run_sync("push")
    [obj] = qbo_invoices(qbo_ui, "BTN-1")
    qbo_ui.update("Invoice", {"Id": obj["Id"], "PrivateNote": "QuickBooks note"})
    invoice.private_note = "Portal note"
    invoice.save()
    run_sync("both")
    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "conflict"
    qbo.app.clear_log()

    run = conflict_resolve(record=record, keep="quickbooks")

    assert run.api_calls == len(api_log(qbo)) == 1
    run.refresh_from_db()
    assert run.api_calls == 1


# --- one request each ------------------------------------------------------------------------


@pytest.fixture
def no_batch_free(monkeypatch):
    """Other workers have used this minute's batch budget: every write goes alone."""
    monkeypatch.setattr(RealmLimiter, "try_batch", lambda self: False)


def test_a_lost_answer_of_a_create_sent_alone_is_replayed_without_a_duplicate(
    run_sync, make_invoice, qbo, qbo_ui, monkeypatch, no_batch_free
):
    real_create = QBOClient.create
    losing = {"on": True}
    lost: list[str] = []

    def create(self, entity, body, *, request_id=None):
        saved = real_create(self, entity, body, request_id=request_id)
        if entity == "Invoice" and body.get("DocNumber") == "SL-2" and losing["on"]:
            lost.append(request_id)
            raise ConnectionFailedError("connection dropped after sending", uncertain=True)
        return saved

    monkeypatch.setattr(QBOClient, "create", create)
    invoices = [make_invoice(number=f"SL-{n}") for n in range(3)]

    first = run_sync("push")

    record = SyncRecord.objects.get(invoice=invoices[2])
    assert first.status == "done", first.message
    assert record.uncertain and record.status == "pending"
    request_id, position = parse_batch_ref(record.request_id)
    assert request_id.startswith(SINGLE_WRITES)
    # Sent once, and once more by the replay at the end of the push: the same requestid.
    assert lost == [f"{request_id}-{position}"] * 2
    assert [r["DocNumber"] for r in qbo_invoices(qbo_ui, "SL-2")] == ["SL-2"]

    losing["on"] = False
    qbo.app.clear_log()
    second = run_sync("push")

    record.refresh_from_db()
    assert second.status == "done", second.message
    assert (record.status, record.uncertain, record.request_id) == ("synced", False, "")
    assert len(qbo_invoices(qbo_ui, "SL-2")) == 1
    [replayed] = [r for r in api_log(qbo) if r["requestid"] == lost[0]]
    assert replayed["replayed"] and replayed["path"].endswith("/invoice")
    assert SyncEvent.objects.filter(
        record=record, action="settled", message__contains="QuickBooks holds it once"
    ).exists()
    assert {SyncRecord.objects.get(invoice=i).status for i in invoices} == {"synced"}


# --- throttling on ---------------------------------------------------------------------------


@pytest.fixture
def throttled_qbo(db, settings):
    """An emulator of its own that throttles as QuickBooks does: 500 requests, 10 at once and
    40 batches a minute per company, answered with 429 past any of them."""
    from qbo_emulator import start_emulator

    emulator = start_emulator(
        client_id=EMULATOR_CLIENT_ID, client_secret=EMULATOR_CLIENT_SECRET, throttle=True
    )
    settings.QBO_ENVIRONMENT = "emulator"
    settings.QBO_EMULATOR_URL = emulator.base_url
    settings.QBO_CLIENT_ID = EMULATOR_CLIENT_ID
    settings.QBO_CLIENT_SECRET = EMULATOR_CLIENT_SECRET
    yield emulator
    emulator.stop()


def _book(invoices: int) -> None:
    rate = TaxRate.objects.get(name="California")
    customers = [Customer.objects.create(display_name=f"Busy Customer {n:02}") for n in range(20)]
    items = [
        Item.objects.create(name=f"Busy Item {n}", sales_price=Decimal(10 + n)) for n in range(5)
    ]
    for n in range(invoices):
        invoice = Invoice.objects.create(number=f"T-{n:05}", customer=customers[n % 20])
        item = items[n % 5]
        InvoiceLine.objects.create(
            invoice=invoice, item=item, quantity=2, unit_price=item.sales_price, tax_rate=rate
        )
        invoice.refresh_totals()


def test_pushing_1200_invoices_with_throttling_on_gets_no_429(throttled_qbo):
    from tests.qbo import connect_with_tokens, set_up_for_sync

    connection = set_up_for_sync(connect_with_tokens(throttled_qbo))
    _book(1200)
    throttled_qbo.app.clear_log()
    client = connection_client(connection=connection, sleep=lambda seconds: None)

    run = sync_run(connection=connection, trigger="command", direction="push", client=client)

    seen = api_log(throttled_qbo)
    assert run.status == "done", run.message
    assert (run.created, run.failed) == (1200 + 20 + 5, 0)
    assert [r for r in seen if r["status"] == 429 or r["fault"] == "throttled"] == []
    batches = [r for r in seen if r["path"].endswith("/batch")]
    alone = [r for r in seen if r["path"].endswith("/invoice")]
    # 42 batches' worth of writes: past the budget the rest went one request each.
    assert len(batches) <= 40 and alone
    assert len(batches) * 30 + len(alone) >= 1200
    assert run.api_calls == len(seen)
    print(f"\n{len(seen)} API calls: {len(batches)} batches, {len(alone)} invoices alone")
    docs = [r["DocNumber"] for r in throttled_qbo.realm(connection.realm_id).rows("Invoice")]
    assert sum(d.startswith("T-") for d in docs) == len({d for d in docs if d.startswith("T-")})
    assert sum(d.startswith("T-") for d in docs) == 1200
