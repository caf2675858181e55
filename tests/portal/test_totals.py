from decimal import Decimal

import pytest

from portal.models import Customer, Invoice, InvoiceLine, Item, TaxRate
from portal.money import round_money
from portal.services import invoice_save_lines


@pytest.fixture
def invoice(db):
    customer = Customer.objects.create(display_name="Bayside Dental")
    return Invoice.objects.create(number="INV-1", customer=customer)


@pytest.fixture
def item(db):
    return Item.objects.create(name="Consulting", sales_price=Decimal("150"))


def test_round_money_rounds_half_up_to_the_cent():
    assert round_money(Decimal("1.005")) == Decimal("1.01")
    assert round_money(Decimal("2.675")) == Decimal("2.68")
    assert round_money(Decimal("1.004")) == Decimal("1.00")
    assert round_money(Decimal("-1.005")) == Decimal("-1.01")


def test_line_of_three_at_0_335_is_1_01(invoice, item):
    line = InvoiceLine.objects.create(
        invoice=invoice, item=item, quantity=Decimal("3"), unit_price=Decimal("0.335")
    )
    line.refresh_from_db()
    assert line.amount == Decimal("1.01")

    swapped = InvoiceLine.objects.create(
        invoice=invoice, item=item, quantity=Decimal("0.335"), unit_price=Decimal("3")
    )
    assert swapped.amount == Decimal("1.01")


def test_line_amount_is_computed_not_taken_from_input(invoice, item):
    line = InvoiceLine(invoice=invoice, item=item, quantity=2, unit_price=Decimal("10.10"))
    line.amount = Decimal("999")
    line.save()
    assert InvoiceLine.objects.get(pk=line.pk).amount == Decimal("20.20")


def test_invoice_totals_tax_each_rate_once_on_its_lines(invoice, item):
    state = TaxRate.objects.create(name="State", percent=Decimal("8.25"))
    city = TaxRate.objects.create(name="City", percent=Decimal("0.5"))
    invoice_save_lines(
        invoice=invoice,
        lines=[
            {
                "item": item,
                "quantity": Decimal("3"),
                "unit_price": Decimal("0.335"),
                "tax_rate": state,
            },
            {
                "item": item,
                "quantity": Decimal("1"),
                "unit_price": Decimal("10.07"),
                "tax_rate": state,
            },
            {
                "item": item,
                "quantity": Decimal("2"),
                "unit_price": Decimal("12.50"),
                "tax_rate": city,
            },
            {"item": item, "quantity": Decimal("1"), "unit_price": Decimal("5"), "tax_rate": None},
        ],
    )
    invoice.refresh_from_db()
    # 1.01 + 10.07 + 25.00 + 5.00
    assert invoice.subtotal == Decimal("41.08")
    # State: 11.08 x 8.25% = 0.9141 -> 0.91; City: 25.00 x 0.5% = 0.125 -> 0.13
    assert invoice.tax_total == Decimal("1.04")
    assert invoice.total == Decimal("42.12")


def test_replacing_lines_recomputes_totals(invoice, item):
    invoice_save_lines(invoice=invoice, lines=[{"item": item, "quantity": 2, "unit_price": 100}])
    invoice_save_lines(invoice=invoice, lines=[{"item": item, "quantity": 1, "unit_price": 100}])
    invoice.refresh_from_db()
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (
        Decimal("100.00"),
        Decimal("0.00"),
        Decimal("100.00"),
    )
    assert invoice.lines.count() == 1
