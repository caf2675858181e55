"""A push records QuickBooks' answers set-based (``BatchWriter.record_settled``): whatever
stops a run, every answer QuickBooks gave before it stopped is recorded, so a write the portal
made never comes back as a change from QuickBooks, and nothing is written twice."""

from decimal import Decimal

import pytest

import sync.writer
from integrations import crypto
from integrations.models import Connection
from integrations.quickbooks import backend as qbo_backend
from integrations.quickbooks.backend import QuickBooksBackend
from integrations.quickbooks.errors import AuthenticationError, ReconnectRequired
from portal.models import Invoice
from portal.services import invoice_save_lines
from sync.models import SyncLock, SyncRecord
from tests.sync.conftest import qbo_invoices
from tests.sync.shapes import _writes


def _add_line(invoice: Invoice, price: str) -> None:
    """The portal's line editor: the lines saved again (without their QuickBooks ids), plus
    one more."""
    invoice = Invoice.objects.get(pk=invoice.pk)
    lines = [
        {
            "item": line.item,
            "quantity": line.quantity,
            "unit_price": line.unit_price,
            "tax_rate": line.tax_rate,
        }
        for line in invoice.lines.all()
    ]
    lines.append({**lines[0], "quantity": Decimal(1), "unit_price": Decimal(price)})
    invoice_save_lines(invoice=invoice, lines=lines)


def test_updates_answered_before_the_lease_is_lost_are_recorded_and_never_echo(
    run_sync, make_invoice, qbo_ui, qbo, settings, monkeypatch
):
    first, second = make_invoice(number="LL-1"), make_invoice(number="LL-2")
    assert run_sync("push").status == "done"
    _add_line(first, "10.00")
    _add_line(second, "20.00")
    # The lease is renewed at every check; another run takes it once QuickBooks has answered
    # the first update, so this run stops before sending the second.
    settings.SYNC_LOCK_LEASE_SECONDS = 0
    real_update = QuickBooksBackend.update

    def update_then_lose_lease(self, entity, body):
        answer = real_update(self, entity, body)
        SyncLock.objects.update(holder="another-run")
        return answer

    monkeypatch.setattr(QuickBooksBackend, "update", update_then_lose_lease)

    stopped = run_sync("push")

    monkeypatch.undo()
    assert stopped.status == "failed" and "another sync took over" in stopped.message
    [obj] = qbo_invoices(qbo_ui, "LL-1")
    assert obj["SyncToken"] == "1"  # QuickBooks saved the first update
    record = SyncRecord.objects.get(invoice=first)
    assert (record.status, record.sync_token) == ("synced", obj["SyncToken"])
    assert SyncRecord.objects.get(invoice=second).sync_token == "0"  # never sent

    SyncLock.objects.update(holder="", expires_at=None)
    qbo.app.clear_log()
    run = run_sync("both")

    assert run.status == "done", run.message
    # The portal's own update of LL-1 is not taken back in as QuickBooks' change, and only
    # LL-2 is written.
    messages = list(run.events.values_list("message", flat=True))
    assert not [m for m in messages if "LL-1" in m], messages
    assert len(_writes(qbo)) == 1
    [obj] = qbo_invoices(qbo_ui, "LL-1")
    assert obj["SyncToken"] == "1"
    assert [line.amount for line in Invoice.objects.get(pk=first.pk).lines.all()] == [
        Decimal("300.00"),
        Decimal("10.00"),
    ]


@pytest.fixture
def wave_of_single_batches(monkeypatch, settings):
    """A write per batch, four batches in flight at once (as 120 invoices would go)."""
    monkeypatch.setattr(sync.writer, "chunks", lambda values: qbo_backend.chunks(values, 1))
    settings.QBO_WRITES_IN_FLIGHT = 4


def _edited(make_invoice, run_sync, prefix: str) -> list[Invoice]:
    invoices = [make_invoice(number=f"{prefix}-{n}") for n in range(3)]
    assert run_sync("push").status == "done"
    for invoice in invoices:
        invoice.refresh_from_db()
        invoice.customer_memo = "Edited in the portal"
        invoice.save()
    return invoices


def test_a_wave_sent_with_an_access_token_quickbooks_refuses_is_sent_again_after_a_refresh(
    run_sync, make_invoice, ready, qbo_ui, wave_of_single_batches
):
    """QuickBooks refuses the access token (401) while the refresh token is good: the run
    refreshes it and goes on, as it does for a single batch, instead of asking staff to
    reconnect."""
    invoices = _edited(make_invoice, run_sync, "TK")
    Connection.objects.filter(pk=ready.pk).update(
        access_token_encrypted=crypto.encrypt("an-access-token-quickbooks-no-longer-takes")
    )

    run = run_sync("push")

    assert run.status == "done", run.message
    assert run.updated == 3
    for invoice in invoices:
        [obj] = qbo_invoices(qbo_ui, invoice.number)
        assert obj["CustomerMemo"]["value"] == "Edited in the portal"
        assert SyncRecord.objects.get(invoice=invoice).sync_token == obj["SyncToken"] == "1"


def test_the_batches_of_a_wave_quickbooks_saved_are_recorded_when_another_needs_a_reconnect(
    run_sync, make_invoice, qbo_ui, wave_of_single_batches, monkeypatch
):
    """One batch of a wave is refused for its token (it ran out in flight) and the refresh is
    refused too: the run stops for a reconnect, and the updates QuickBooks saved from the
    other batches are on their bindings, not taken back later as QuickBooks' changes."""
    invoices = _edited(make_invoice, run_sync, "RW")
    real_write = QuickBooksBackend.write_batch
    refused = set()

    def token_runs_out(self, entity, writes, *, request_id, positions=None):
        if not refused and writes[0][0] == "update" and writes[0][1]["Id"] == first_id:
            refused.add(request_id)
        if request_id in refused:
            if self.client._pinned is None:  # sent again: the refresh is refused
                raise ReconnectRequired(reason="QuickBooks must be reconnected.")
            raise AuthenticationError("token expired", status=401)
        return real_write(self, entity, writes, request_id=request_id, positions=positions)

    first_id = SyncRecord.objects.get(invoice=invoices[0]).qbo_id
    monkeypatch.setattr(QuickBooksBackend, "write_batch", token_runs_out)

    run = run_sync("push")

    monkeypatch.undo()
    assert run.status == "failed" and "reconnect" in run.message.lower()
    for invoice in invoices[1:]:
        [obj] = qbo_invoices(qbo_ui, invoice.number)
        assert obj["SyncToken"] == "1"  # QuickBooks saved it
        assert SyncRecord.objects.get(invoice=invoice).sync_token == "1"
    assert SyncRecord.objects.get(invoice=invoices[0]).sync_token == "0"  # never saved


def test_a_lease_lost_with_batches_in_flight_records_their_answers_and_sends_no_more(
    run_sync, make_invoice, qbo_ui, qbo, settings, monkeypatch
):
    """Batches go out several at once (``QBO_WRITES_IN_FLIGHT``). A run told to stop while
    some are in flight sends nothing more, but records what QuickBooks answered to those: no
    invoice QuickBooks holds is left pending, and the next run writes only the rest."""
    settings.QBO_WRITES_IN_FLIGHT = 2
    invoices = [make_invoice(number=f"PIPE-{n:03}") for n in range(70)]  # batches 30, 30, 10
    claims = []
    real_claim = sync.writer.BatchWriter._claim

    def claim_then_lose_lease(self, group):
        claimed = real_claim(self, group)
        if isinstance(group[0][0][1], Invoice):
            claims.append(len(group))
            # Another run takes the lease once the first two invoice batches are claimed:
            # the next checkpoint (before claiming the third) stops this run.
            SyncLock.objects.update(holder="another-run")
        return claimed

    settings.SYNC_LOCK_LEASE_SECONDS = 0
    monkeypatch.setattr(sync.writer.BatchWriter, "_claim", claim_then_lose_lease)

    stopped = run_sync("push")

    monkeypatch.undo()
    assert stopped.status == "failed" and "another sync took over" in stopped.message
    assert claims == [2]  # the third batch was never claimed, so never sent
    in_quickbooks = {
        obj["DocNumber"] for obj in qbo_invoices(qbo_ui) if obj["DocNumber"].startswith("PIPE-")
    }
    assert len(in_quickbooks) == 60
    records = SyncRecord.objects.filter(invoice__in=invoices)
    synced = records.filter(status="synced", uncertain=False).exclude(qbo_id="")
    # Both batches in flight when the lease went were answered and recorded, the second
    # while the run was already stopping.
    assert set(synced.values_list("invoice__number", flat=True)) == in_quickbooks
    assert not records.filter(uncertain=True).exists()

    SyncLock.objects.update(holder="", expires_at=None)
    qbo.app.clear_log()
    run = run_sync("push")

    assert run.status == "done", run.message
    assert run.created == 10
    assert len([o for o in qbo_invoices(qbo_ui) if o["DocNumber"].startswith("PIPE-")]) == 70
    assert len(_writes(qbo)) == 1  # one batch: the 10 never sent, nothing twice
