"""Invoices as accountants make them in QuickBooks round-trip without changing the books.

Each invoice of the corpus is made in the emulator over HTTP, pulled, then pushed (a) with no
edit, (b) after a memo edit and (c) after a portal line edit. QuickBooks' totals and every line
not edited must stay exactly as they were, (a) must write nothing, and the portal's totals must
be QuickBooks' to the cent after each step.
"""

from decimal import Decimal

import pytest

from portal.models import Invoice, InvoiceLine
from sync.models import SyncRecord
from tests.sync.shapes import (
    _bundle,
    _discount,
    _euro_customer,
    _euro_invoice,
    _lines,
    _money,
    _sale,
    _tax,
    _text,
    _totals,
    _writes,
)

# name -> (lines, extra invoice fields); every corpus invoice has an item line to edit.
CORPUS = {
    "amount-only line": lambda q: ([_sale(q, "Hours", 250)], {}),
    "percent discount": lambda q: ([_sale(q, "Hours", 100, 2, 50), _discount(q, percent=10)], {}),
    "amount discount": lambda q: ([_sale(q, "Design", 120, 3, 40), _discount(q, amount=15)], {}),
    "description line between sales": lambda q: (
        [_sale(q, "Hours", 100, 2, 50), _text("Work done on site"), _sale(q, "Design", 75, 1, 75)],
        {},
    ),
    "bundle": lambda q: ([_bundle(q), _sale(q, "Hours", 30, 2, 15)], {}),
    "seven-decimal unit price": lambda q: ([_sale(q, "Services", 100, 3, 33.3333333)], {}),
    "credit line": lambda q: ([_sale(q, "Hours", 200, 4, 50), _sale(q, "Hours", -50, -1, 50)], {}),
    "taxed lines": lambda q: (
        [_sale(q, "Hours", 100, 2, 50, taxable=True), _sale(q, "Design", 75, 1, 75)],
        {"TxnTaxDetail": _tax(q)},
    ),
    "discount before tax": lambda q: (
        [_sale(q, "Hours", 200, 4, 50, taxable=True), _discount(q, percent=10)],
        {"TxnTaxDetail": _tax(q), "ApplyTaxAfterDiscount": True},
    ),
    "everything at once": lambda q: (
        [
            _sale(q, "Hours", 100, 2, 50, taxable=True, description="Consulting"),
            _text("Phase two"),
            _bundle(q),
            _sale(q, "Services", 80),
            _discount(q, amount=20),
        ],
        {"TxnTaxDetail": _tax(q)},
    ),
    "zero invoice": lambda q: ([_sale(q, "Services", 0, 1, 0)], {}),
    "discount after tax": lambda q: (
        [_sale(q, "Hours", 200, 4, 50, taxable=True), _discount(q, amount=25)],
        {"TxnTaxDetail": _tax(q), "ApplyTaxAfterDiscount": False},
    ),
    "several billing emails": lambda q: (
        [_sale(q, "Hours", 100, 2, 50)],
        {"BillEmail": {"Address": "ap@amysbirds.example, owner@amysbirds.example"}},
    ),
    "high-precision quantity and amount-only mix": lambda q: (
        [_sale(q, "Hours", 12.35, 0.247, 50), _sale(q, "Design", 99.99)],
        {},
    ),
    "long description and service fields": lambda q: (
        [
            {
                **_sale(q, "Services", 150, 1, 150, description="Pruning, " * 400),
                "SalesItemLineDetail": {
                    **_sale(q, "Services", 150, 1, 150)["SalesItemLineDetail"],
                    "ServiceDate": "2026-11-18",
                },
            }
        ],
        {},
    ),
}


def _assert_portal_has_qbo_totals(invoice, obj):
    invoice.refresh_from_db()
    total, tax = _totals(obj)
    assert (invoice.total, invoice.tax_total) == (total, tax)


@pytest.mark.parametrize("shape", list(CORPUS))
def test_invoice_made_in_quickbooks_round_trips_unchanged(shape, run_sync, qbo_ui, qbo):
    assert run_sync("pull").status == "done"
    lines, extra = CORPUS[shape](qbo_ui)
    customer = qbo_ui.find("Customer", DisplayName="Amy's Bird Sanctuary")
    made = qbo_ui.create(
        "Invoice",
        {
            "DocNumber": "7001",
            "CustomerRef": {"value": customer["Id"]},
            "TxnDate": "2026-11-20",
            "Line": lines,
            **extra,
        },
    )
    run = run_sync("pull")
    assert run.status == "done", run.message
    invoice = Invoice.objects.get(number="7001")
    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "synced", record.details
    _assert_portal_has_qbo_totals(invoice, made)
    kept = [line for line in made["Line"] if line["DetailType"] != "SubTotalLineDetail"]
    assert invoice.lines.count() == len(kept)
    assert [line.amount for line in invoice.lines.all()] == [
        _money(x.get("Amount", 0)) for x in kept
    ]

    # (a) Nothing edited: nothing is written, either way.
    qbo.app.clear_log()
    for direction in ("push", "both"):
        assert run_sync(direction).status == "done"
    assert _writes(qbo) == []

    # (b) Only the memo: QuickBooks' lines and totals stay exactly as they were.
    Invoice.objects.filter(pk=invoice.pk).update(customer_memo="Thank you for your business")
    assert run_sync("push").updated == 1
    after = qbo_ui.find("Invoice", Id=made["Id"])
    assert after["CustomerMemo"]["value"] == "Thank you for your business"
    assert _totals(after) == _totals(made)
    assert _lines(after) == _lines(made)
    _assert_portal_has_qbo_totals(invoice, after)

    # (c) One line's description in the portal: every other line is sent back as it was.
    edited = invoice.lines.filter(kind=InvoiceLine.Kind.ITEM).first()
    edited.description = "Edited in the portal"
    edited.save()
    assert run_sync("push").updated == 1
    final = qbo_ui.find("Invoice", Id=made["Id"])
    assert _totals(final) == _totals(made)
    before_lines, final_lines = _lines(made), _lines(final)
    assert set(final_lines) == set(before_lines), "lines were dropped or re-created"
    for line_id, line in final_lines.items():
        if line_id == edited.qbo_line_id:
            assert line["Description"] == "Edited in the portal"
            assert {k: v for k, v in line.items() if k != "Description"} == {
                k: v for k, v in before_lines[line_id].items() if k != "Description"
            }
        else:
            assert line == before_lines[line_id]
    _assert_portal_has_qbo_totals(invoice, final)

    # And it has converged: another sync writes nothing.
    qbo.app.clear_log()
    assert run_sync("both").status == "done"
    assert _writes(qbo) == []


def test_an_amount_only_line_keeps_quickbooks_amount(run_sync, qbo_ui):
    run_sync("pull")
    customer = qbo_ui.find("Customer", DisplayName="Amy's Bird Sanctuary")
    qbo_ui.create(
        "Invoice",
        {
            "DocNumber": "7100",
            "CustomerRef": {"value": customer["Id"]},
            "Line": [_sale(qbo_ui, "Hours", 250)],
        },
    )
    run_sync("pull")
    line = Invoice.objects.get(number="7100").lines.get()
    assert (line.quantity, line.unit_price, line.amount) == (None, None, Decimal("250.00"))
    assert Invoice.objects.get(number="7100").total == Decimal("250.00")


def test_a_seven_decimal_price_is_kept_to_the_last_place(run_sync, qbo_ui):
    run_sync("pull")
    customer = qbo_ui.find("Customer", DisplayName="Amy's Bird Sanctuary")
    qbo_ui.create(
        "Invoice",
        {
            "DocNumber": "7101",
            "CustomerRef": {"value": customer["Id"]},
            "Line": [_sale(qbo_ui, "Services", 100, 3, 33.3333333)],
        },
    )
    run_sync("pull")
    line = Invoice.objects.get(number="7101").lines.get()
    assert line.unit_price == Decimal("33.3333333")
    assert line.amount == Decimal("100.00")


def _map_tucson(ready, percent):
    from integrations.models import QuickBooksTaxCode
    from portal.models import TaxRate
    from sync.models import TaxMapping

    rate = TaxRate.objects.create(name="Tucson City", percent=Decimal(percent))
    code = QuickBooksTaxCode.objects.get(connection=ready, name="Tucson")
    TaxMapping.objects.create(connection=ready, tax_rate=rate, tax_code=code)
    return rate


def test_a_rate_quickbooks_taxes_differently_is_flagged_not_synced(
    ready, run_sync, make_invoice, qbo_ui, qbo
):
    rate = _map_tucson(ready, "0.5")
    invoice = make_invoice(number="T-1", lines=[("Rock Fountain", 1, "500.00", False)])
    line = invoice.lines.get()
    line.tax_rate = rate
    line.save()
    invoice.refresh_totals()
    assert invoice.total == Decimal("502.50")

    run_sync("push")

    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "differs"
    assert record.get_status_display() == "Totals differ"
    assert record.details.startswith(
        "QuickBooks taxes this invoice at 7.6% (38.00 on 500.00); the portal rate Tucson City "
        "is 0.5% (2.50), so QuickBooks' total 538.00 is 35.50 more than the portal's rate "
        "makes it."
    )
    assert "Map Tucson City to a QuickBooks tax code of 0.5%" in record.details
    invoice.refresh_from_db()
    assert (invoice.tax_total, invoice.total) == (Decimal("38.00"), Decimal("538.00"))

    # Nothing changed: the next sync writes nothing and still says so.
    qbo.app.clear_log()
    run_sync("both")
    assert _writes(qbo) == []
    assert SyncRecord.objects.get(invoice=invoice).status == "differs"

    # The portal rate is corrected: the next sync checks again and clears it, writing nothing.
    rate.percent = Decimal("7.6")
    rate.save()
    run_sync("push")
    record.refresh_from_db()
    assert (record.status, record.details) == ("synced", "")
    assert _writes(qbo) == []


def test_a_pulled_invoice_taxed_at_another_rate_is_flagged(ready, run_sync, qbo_ui):
    _map_tucson(ready, "0.5")
    run_sync("pull")
    code = next(c for c in qbo_ui.rows("TaxCode") if c["Name"] == "Tucson")
    customer = qbo_ui.find("Customer", DisplayName="Amy's Bird Sanctuary")
    qbo_ui.create(
        "Invoice",
        {
            "DocNumber": "7300",
            "CustomerRef": {"value": customer["Id"]},
            "Line": [_sale(qbo_ui, "Hours", 500, 10, 50, taxable=True)],
            "TxnTaxDetail": {"TxnTaxCodeRef": {"value": code["Id"]}},
        },
    )
    run_sync("pull")
    invoice = Invoice.objects.get(number="7300")
    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "differs", record.details
    assert "7.6%" in record.details and "Tucson City is 0.5%" in record.details
    assert invoice.total == Decimal("538.00")


def test_reconcile_compares_totals_and_tax_not_only_mapped_fields(ready, run_sync, make_invoice):
    from sync.reconcile import reconcile_report

    rate = _map_tucson(ready, "0.5")
    invoice = make_invoice(number="T-2", lines=[("Rock Fountain", 1, "500.00", False)])
    line = invoice.lines.get()
    line.tax_rate = rate
    line.save()
    make_invoice(number="T-3")
    run_sync("push")
    # Someone changed a portal total behind the sync's back.
    Invoice.objects.filter(number="T-3").update(total=Decimal("1.00"))

    report = reconcile_report(connection=ready)

    differing = dict(report.differing)
    assert differing["T-2"] == ["tax rate"]
    assert differing["T-3"] == ["total"]
    assert "QuickBooks taxes this invoice at 7.6%" in report.render()
    assert "total: portal '1.00' / QuickBooks '324.00'" in report.render()


def test_a_foreign_currency_invoice_keeps_its_currency_and_rate(ready, run_sync, qbo_ui, qbo):
    customer = _euro_customer(qbo_ui)
    run_sync("pull")
    made = qbo_ui.create(
        "Invoice", _euro_invoice(customer, "7400", [_sale(qbo_ui, "Hours", 100, 2, 50)])
    )
    run_sync("pull")
    invoice = Invoice.objects.get(number="7400")
    # Taken from QuickBooks although the Currency field is not mapped by default.
    assert (invoice.currency, invoice.exchange_rate) == ("EUR", Decimal("1.0825"))
    assert invoice.total == Decimal("100.00")
    qbo.app.clear_log()
    run_sync("both")
    assert _writes(qbo) == []
    Invoice.objects.filter(pk=invoice.pk).update(customer_memo="Danke")
    run_sync("push")
    after = qbo_ui.find("Invoice", Id=made["Id"])
    assert (after["CurrencyRef"]["value"], after["ExchangeRate"]) == ("EUR", made["ExchangeRate"])
    assert _lines(after) == _lines(made)


def test_quickbooks_without_multicurrency_refuses_a_foreign_invoice(qbo_ui):
    customer = qbo_ui.find("Customer", DisplayName="Amy's Bird Sanctuary")
    body = {
        "CustomerRef": {"value": customer["Id"]},
        "CurrencyRef": {"value": "EUR"},
        "Line": [_sale(qbo_ui, "Hours", 100, 2, 50)],
    }
    with pytest.raises(AssertionError, match="Multicurrency is not enabled"):
        qbo_ui.create("Invoice", body)


def test_a_void_invoice_made_in_quickbooks_is_void_in_the_portal_and_left_alone(
    run_sync, qbo_ui, qbo
):
    run_sync("pull")
    customer = qbo_ui.find("Customer", DisplayName="Amy's Bird Sanctuary")
    made = qbo_ui.create(
        "Invoice",
        {
            "DocNumber": "7500",
            "CustomerRef": {"value": customer["Id"]},
            "Line": [_sale(qbo_ui, "Hours", 100, 2, 50)],
        },
    )
    run_sync("pull")
    qbo_ui.void("Invoice", made["Id"])
    run_sync("pull")
    assert Invoice.objects.get(number="7500").status == "void"
    qbo.app.clear_log()
    run_sync("both")
    assert _writes(qbo) == []


def test_a_note_that_says_voided_does_not_void_an_invoice(run_sync, qbo_ui, qbo):
    """Void is read from QuickBooks' zeroed amounts and quantities, not from a memo's words:
    an accountant's note "Voided the old one" on a live invoice, or on a $0 invoice whose line
    still has a quantity, leaves both open in the portal and untouched in QuickBooks."""
    run_sync("pull")
    customer = qbo_ui.find("Customer", DisplayName="Amy's Bird Sanctuary")
    for number, price in (("7510", 50), ("7511", 0)):
        qbo_ui.create(
            "Invoice",
            {
                "DocNumber": number,
                "PrivateNote": "Voided the old one; this invoice replaces it",
                "CustomerRef": {"value": customer["Id"]},
                "Line": [_sale(qbo_ui, "Hours", 2 * price, 2, price)],
            },
        )
    run_sync("pull")
    assert Invoice.objects.get(number="7510").status != "void"
    assert Invoice.objects.get(number="7511").status != "void"
    assert str(Invoice.objects.get(number="7510").total) == "100.00"
    qbo.app.clear_log()
    run_sync("both")
    assert _writes(qbo) == []


def test_a_portal_invoice_in_another_currency_is_not_sent_as_home_currency(
    run_sync, make_invoice, qbo_ui
):
    invoice = make_invoice(number="E-1", currency="EUR")
    run_sync("push")
    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "failed"
    assert record.details.startswith(
        "The invoice is in EUR, and the Currency field is not mapped, so QuickBooks would "
        "record it in its home currency."
    )
    assert qbo_ui.find("Invoice", DocNumber="E-1") is None


@pytest.mark.parametrize("rule", ["hold", "qbo_wins"])
def test_lines_synced_before_they_kept_quickbooks_ids_are_compared_before_any_is_sent(
    rule, ready, run_sync, qbo_ui, qbo
):
    from sync.models import SyncConfiguration

    SyncConfiguration.objects.update_or_create(connection=ready, defaults={"conflict_rule": rule})
    run_sync("pull")
    customer = qbo_ui.find("Customer", DisplayName="Amy's Bird Sanctuary")
    made = qbo_ui.create(
        "Invoice",
        {
            "DocNumber": "7600",
            "CustomerRef": {"value": customer["Id"]},
            "Line": [_sale(qbo_ui, "Hours", 100, 2, 50), _discount(qbo_ui, percent=10)],
        },
    )
    run_sync("pull")
    # As an older Ledgerlink left it: only item lines, no QuickBooks line ids.
    invoice = Invoice.objects.get(number="7600")
    invoice.lines.exclude(kind=InvoiceLine.Kind.ITEM).delete()
    invoice.lines.update(qbo_line_id="", qbo_detail=None)
    record = SyncRecord.objects.get(invoice=invoice)
    record.agreed["lines"] = [line for line in record.agreed["lines"] if "kind" not in line]
    record.save()
    line = invoice.lines.get()
    line.quantity = Decimal("3")
    line.save()

    run_sync("push")

    after = qbo_ui.find("Invoice", Id=made["Id"])
    kinds = [x["DetailType"] for x in after["Line"]]
    record.refresh_from_db()
    if rule == "hold":
        assert record.status == "conflict"
        assert _lines(after) == _lines(made), "QuickBooks' discount must not be dropped"
    else:
        assert "DiscountLineDetail" in kinds
        assert invoice.lines.filter(kind=InvoiceLine.Kind.DISCOUNT).exists()


def test_a_portal_recount_of_unchanged_lines_never_replaces_quickbooks_totals(
    run_sync, qbo_ui, qbo
):
    """Saving an invoice's lines unchanged recomputes the portal's figures, which may round
    or apply a discount differently; nothing flows to QuickBooks, so its totals stand."""
    run_sync("pull")
    customer = qbo_ui.find("Customer", DisplayName="Amy's Bird Sanctuary")
    made = qbo_ui.create(
        "Invoice",
        {
            "DocNumber": "7520",
            "CustomerRef": {"value": customer["Id"]},
            "ApplyTaxAfterDiscount": True,
            "TxnTaxDetail": {"TxnTaxCodeRef": {"value": "2"}},
            "Line": [
                _sale(qbo_ui, "Hours", 33.33, 1, 33.33, taxable=True),
                _sale(qbo_ui, "Design", 33.34, 1, 33.34, taxable=True),
                _discount(qbo_ui, percent=5),
            ],
        },
    )
    run_sync("pull")
    invoice = Invoice.objects.get(number="7520")
    assert str(invoice.total) == str(Decimal(str(made["TotalAmt"])).quantize(Decimal("0.01")))
    invoice.refresh_totals()
    qbo.app.clear_log()

    assert run_sync("both").status == "done"

    invoice.refresh_from_db()
    assert str(invoice.total) == str(Decimal(str(made["TotalAmt"])).quantize(Decimal("0.01")))
    assert str(invoice.tax_total) == str(
        Decimal(str(made["TxnTaxDetail"]["TotalTax"])).quantize(Decimal("0.01"))
    )
    assert _writes(qbo) == []
