"""A push records QuickBooks' answers set-based (``BatchWriter.record_settled``): whatever
stops a run, every answer QuickBooks gave before it stopped is recorded, so a write the portal
made never comes back as a change from QuickBooks, and nothing is written twice."""

from decimal import Decimal

from integrations.quickbooks.backend import QuickBooksBackend
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
