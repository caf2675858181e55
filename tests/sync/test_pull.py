from decimal import Decimal

import pytest

from portal.models import Customer, Invoice
from sync.models import SyncConfiguration, SyncRecord
from tests.sync.conftest import qbo_invoices


def _qbo_invoice_body(
    qbo_ui,
    *,
    customer="Amy's Bird Sanctuary",
    item="Hours",
    qty=2,
    price=50,
    taxable=False,
    doc="9001",
):
    cust = qbo_ui.find("Customer", DisplayName=customer)
    it = qbo_ui.find("Item", Name=item)
    body = {
        "DocNumber": doc,
        "CustomerRef": {"value": cust["Id"]},
        "TxnDate": "2026-11-20",
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": qty * price,
                "SalesItemLineDetail": {
                    "ItemRef": {"value": it["Id"]},
                    "Qty": qty,
                    "UnitPrice": price,
                    "TaxCodeRef": {"value": "TAX" if taxable else "NON"},
                },
            }
        ],
    }
    if taxable:
        code = next(c for c in qbo_ui.rows("TaxCode") if c["Name"] == "California")
        body["TxnTaxDetail"] = {"TxnTaxCodeRef": {"value": code["Id"]}}
    return body


@pytest.fixture
def first_pull(run_sync):
    run = run_sync("pull")
    assert run.status == "done", run.message
    return run


def test_invoice_made_in_qbo_appears_in_the_portal(first_pull, run_sync, qbo_ui):
    qbo_ui.create("Invoice", _qbo_invoice_body(qbo_ui, doc="9001", taxable=True))
    run = run_sync("pull")
    assert run.created >= 1
    invoice = Invoice.objects.get(number="9001")
    assert invoice.customer.display_name == "Amy's Bird Sanctuary"
    assert invoice.subtotal == Decimal("100.00")
    assert invoice.tax_total == Decimal("8.00")
    assert invoice.total == Decimal("108.00")
    line = invoice.lines.get()
    assert (line.item.name, line.quantity, line.unit_price) == ("Hours", 2, 50)
    assert line.tax_rate.name == "California"
    assert SyncRecord.objects.get(invoice=invoice).status == "synced"


def test_invoice_edited_in_qbo_updates_the_portal(first_pull, run_sync, qbo_ui):
    obj = qbo_ui.create("Invoice", _qbo_invoice_body(qbo_ui, doc="9002"))
    run_sync("pull")
    qbo_ui.update("Invoice", {"Id": obj["Id"], "PrivateNote": "Call before delivery"})
    run = run_sync("pull")
    assert run.updated == 1
    assert Invoice.objects.get(number="9002").private_note == "Call before delivery"


def test_own_writes_do_not_echo_back(run_sync, make_invoice, first_pull):
    invoice = make_invoice(number="INV-3001")
    run_sync("push")
    invoice.refresh_from_db()
    updated_at = invoice.updated_at
    run = run_sync("pull")
    assert (run.updated, run.conflicts) == (0, 0)
    invoice.refresh_from_db()
    assert invoice.updated_at == updated_at
    run = run_sync("push")
    assert (run.created, run.updated) == (0, 0)


def test_void_in_qbo_marks_the_portal_invoice_void(first_pull, run_sync, make_invoice, qbo_ui):
    invoice = make_invoice(number="INV-3002")
    run_sync("push")
    [obj] = qbo_invoices(qbo_ui, "INV-3002")
    qbo_ui.void("Invoice", obj["Id"])
    run_sync("pull")
    invoice.refresh_from_db()
    assert invoice.status == "void"
    assert invoice.lines.count() == 1  # the portal keeps its lines for the record


def test_delete_in_qbo_marks_void_never_deletes(first_pull, run_sync, make_invoice, qbo_ui):
    invoice = make_invoice(number="INV-3003")
    run_sync("push")
    [obj] = qbo_invoices(qbo_ui, "INV-3003")
    qbo_ui.delete("Invoice", obj["Id"])
    run_sync("pull")
    invoice.refresh_from_db()
    assert invoice.status == "void"
    record = SyncRecord.objects.get(invoice=invoice)
    assert "Deleted in QuickBooks; marked void in the portal" in record.details
    # A later edit in the portal never resurrects the deleted QuickBooks invoice.
    invoice.customer_memo = "edited after delete"
    invoice.save()
    run_sync("push")
    assert qbo_invoices(qbo_ui, "INV-3003") == []


def test_payment_in_qbo_updates_balance_and_status(first_pull, run_sync, make_invoice, qbo_ui):
    invoice = make_invoice(number="INV-3004", lines=[("Consulting hour", 1, "100.00", False)])
    run_sync("push")
    [obj] = qbo_invoices(qbo_ui, "INV-3004")
    payment = {
        "CustomerRef": obj["CustomerRef"],
        "TotalAmt": 40,
        "Line": [{"Amount": 40, "LinkedTxn": [{"TxnId": obj["Id"], "TxnType": "Invoice"}]}],
    }
    qbo_ui.create("Payment", payment)
    run_sync("pull")
    invoice.refresh_from_db()
    assert invoice.amount_paid == Decimal("40.00")
    assert invoice.status == "partially_paid"
    assert invoice.balance_due == Decimal("60.00")
    payment["TotalAmt"] = 60
    payment["Line"][0]["Amount"] = 60
    qbo_ui.create("Payment", payment)
    run_sync("pull")
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    assert invoice.balance_due == 0


def test_customer_renamed_in_qbo_follows_in_the_portal(first_pull, run_sync, make_invoice, qbo_ui):
    invoice = make_invoice(customer="Greenleaf Cafe")
    run_sync("push")
    cust = qbo_ui.find("Customer", DisplayName="Greenleaf Cafe")
    qbo_ui.update("Customer", {"Id": cust["Id"], "DisplayName": "Greenleaf Coffee"})
    run_sync("pull")
    invoice.refresh_from_db()
    assert invoice.customer.display_name == "Greenleaf Coffee"
    assert Customer.objects.filter(display_name="Greenleaf Cafe").count() == 0
    run = run_sync("push")
    assert (run.created, run.updated, run.failed) == (0, 0, 0)


@pytest.mark.parametrize("rule", ["hold", "qbo_wins", "portal_wins"])
def test_conflict_under_each_rule(first_pull, run_sync, make_invoice, qbo_ui, ready, rule):
    SyncConfiguration.objects.update_or_create(connection=ready, defaults={"conflict_rule": rule})
    invoice = make_invoice(number="INV-3005")
    run_sync("push")
    [obj] = qbo_invoices(qbo_ui, "INV-3005")
    qbo_ui.update("Invoice", {"Id": obj["Id"], "CustomerMemo": {"value": "From QuickBooks"}})
    invoice.customer_memo = "From the portal"
    invoice.save()
    run = run_sync("both")
    invoice.refresh_from_db()
    record = SyncRecord.objects.get(invoice=invoice)
    [obj] = qbo_invoices(qbo_ui, "INV-3005")
    if rule == "hold":
        assert run.conflicts == 1
        assert record.status == "conflict"
        assert record.conflict_portal["customer_memo"] == "From the portal"
        assert record.conflict_qbo["customer_memo"] == "From QuickBooks"
        assert invoice.customer_memo == "From the portal"
        assert obj["CustomerMemo"]["value"] == "From QuickBooks"
    elif rule == "qbo_wins":
        assert record.status == "synced"
        assert invoice.customer_memo == "From QuickBooks"
        assert obj["CustomerMemo"]["value"] == "From QuickBooks"
    else:
        assert record.status == "synced"
        assert invoice.customer_memo == "From the portal"
        assert obj["CustomerMemo"]["value"] == "From the portal"


def test_held_conflict_resolved_by_keeping_either_side(
    first_pull, run_sync, make_invoice, qbo_ui, ready
):
    from sync.services import conflict_resolve

    invoice = make_invoice(number="INV-3006")
    run_sync("push")
    [obj] = qbo_invoices(qbo_ui, "INV-3006")
    qbo_ui.update("Invoice", {"Id": obj["Id"], "PrivateNote": "QBO note"})
    invoice.private_note = "Portal note"
    invoice.save()
    run_sync("both")
    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "conflict"
    conflict_resolve(record=record, keep="portal")
    record.refresh_from_db()
    assert record.status == "synced"
    [obj] = qbo_invoices(qbo_ui, "INV-3006")
    assert obj["PrivateNote"] == "Portal note"


def test_stale_sync_token_on_update_goes_through_the_conflict_rule(
    first_pull, run_sync, make_invoice, qbo_ui
):
    invoice = make_invoice(number="INV-3007")
    run_sync("push")
    [obj] = qbo_invoices(qbo_ui, "INV-3007")
    qbo_ui.update("Invoice", {"Id": obj["Id"], "PrivateNote": "changed in QBO"})
    invoice.private_note = "changed in portal"
    invoice.save()
    run = run_sync("push")  # no pull first: the update meets a stale SyncToken
    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "conflict"
    assert run.conflicts == 1


def test_qbo_invoice_that_cannot_be_pulled_says_why_and_comes_after_the_fix(
    first_pull, run_sync, ready
):
    from integrations.models import QuickBooksTaxCode
    from portal.models import TaxRate
    from sync.models import TaxMapping

    # The sandbox's invoice 1003 is taxed with code 3 (Tucson), which is not mapped yet.
    record = SyncRecord.objects.get(qbo_doc_number="1003", invoice__isnull=True)
    assert record.status == "failed"
    assert record.details == (
        "QuickBooks tax code 3 is not mapped to a portal tax rate, so the invoice's tax cannot "
        "be recorded. Map it on the Mapping > Tax tab, then retry."
    )
    assert str(record) == "QuickBooks invoice 1003 (Failed)"
    tucson = TaxRate.objects.create(name="Tucson", percent=Decimal("7.6"))
    TaxMapping.objects.create(
        connection=ready,
        tax_rate=tucson,
        tax_code=QuickBooksTaxCode.objects.get(connection=ready, qbo_id="3"),
    )
    run_sync("pull")
    record.refresh_from_db()
    assert record.status == "synced"
    assert record.invoice.number == "1003"
