"""``portal.bulk`` and ``InvoiceQuerySet.bulk_update`` at their edges."""

from __future__ import annotations

import pytest
from django.db import OperationalError, models

from portal.models import Customer, Invoice, InvoiceLine


@pytest.fixture
def stamp_fails(monkeypatch):
    """Call it to make every UPDATE that moves an invoice's version fail as a deadlock
    would; ``stamp_fails.undo()`` puts updates back."""
    real_update = models.QuerySet.update

    def deadlock(self, **kwargs):
        if "version" in kwargs:
            raise OperationalError("deadlock detected")
        return real_update(self, **kwargs)

    def fail() -> None:
        monkeypatch.setattr(models.QuerySet, "update", deadlock)

    fail.undo = monkeypatch.undo
    return fail


def test_a_bulk_edit_of_invoices_is_never_saved_without_moving_their_versions(db, stamp_fails):
    """The edit and the version stamp are one change: should the stamp fail (a deadlock with
    a sync clearing ``needs_sync``, a statement timeout), the edit is not saved either, since
    an edit saved at an agreed version would never be sent to QuickBooks."""
    customer = Customer.objects.create(display_name="Stamped")
    invoice = Invoice.objects.create(number="ST-1", customer=customer)
    Invoice.objects.filter(pk=invoice.pk).update(needs_sync=False)
    invoice.refresh_from_db()
    before = invoice.version
    stamp_fails()
    invoice.customer_memo = "Edited in bulk"
    with pytest.raises(OperationalError):
        Invoice.objects.bulk_update([invoice], ["customer_memo"])
    stamp_fails.undo()

    saved = Invoice.objects.get(pk=invoice.pk)
    edited = saved.customer_memo == "Edited in bulk"
    stamped = saved.version != before and saved.needs_sync
    assert stamped or not edited, (saved.customer_memo, saved.version, saved.needs_sync)


def test_a_bulk_edit_of_lines_is_never_saved_without_moving_their_invoice_version(db, stamp_fails):
    customer = Customer.objects.create(display_name="Stamped lines")
    invoice = Invoice.objects.create(number="ST-2", customer=customer)
    line = InvoiceLine.objects.create(invoice=invoice, quantity=1, unit_price=1)
    Invoice.objects.filter(pk=invoice.pk).update(needs_sync=False)
    before = Invoice.objects.get(pk=invoice.pk).version
    stamp_fails()
    line.description = "Edited in bulk"
    with pytest.raises(OperationalError):
        InvoiceLine.objects.bulk_update([line], ["description"])
    stamp_fails.undo()

    edited = InvoiceLine.objects.get(pk=line.pk).description == "Edited in bulk"
    saved = Invoice.objects.get(pk=invoice.pk)
    assert (saved.version != before and saved.needs_sync) or not edited
