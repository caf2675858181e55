"""Entering an invoice: the suggested number, and what choosing an item fills in."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from portal.models import Customer, Invoice, InvoiceLine, Item, TaxRate
from portal.roles import AUDITORS, BILLING_STAFF
from portal.selectors import invoice_number_next


@pytest.fixture
def customer(db):
    return Customer.objects.create(display_name="Bayside Dental")


def numbered(customer, *numbers):
    for number in numbers:
        Invoice.objects.create(number=number, customer=customer)


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        ((), "INV-1001"),
        (("INV-1001", "INV-1006", "INV-1002"), "INV-1007"),
        # The trailing number decides, compared as a number, whatever the prefix.
        (("INV-1006", "QB-5001", "9"), "QB-5002"),
        (("INV-999", "INV-1000"), "INV-1001"),
        # Zero-padding is kept, and grows when it must.
        (("A-0099",), "A-0100"),
        # Numbers without trailing digits are not counted.
        (("DRAFT", "INV-7-B", "INV-0007"), "INV-0008"),
    ],
)
def test_next_invoice_number_follows_the_highest_trailing_number(customer, existing, expected):
    numbered(customer, *existing)
    assert invoice_number_next() == expected


def test_the_add_form_suggests_the_next_number_and_says_how(client, login, customer):
    numbered(customer, "INV-1041")
    login(BILLING_STAFF)
    response = client.get(reverse("admin:portal_invoice_add"))
    page = response.content.decode()
    assert response.context["adminform"].form.initial["number"] == "INV-1042"
    assert 'value="INV-1042"' in page
    assert "the next number after the highest one ending in digits" in page
    # The form carries what the line script needs: the defaults URL and every rate's percent.
    assert 'id="ll-invoice-form"' in page
    assert "portal/invoice_form.js" in page


@pytest.fixture
def catalogue(db, customer):
    rate = TaxRate.objects.create(name="California", percent=Decimal("8"))
    taxed = Item.objects.create(
        name="Garden lights", sales_price=Decimal("39.99"), description="Pack of 6"
    )
    untaxed = Item.objects.create(name="Consulting hour", sales_price=Decimal("150"), taxable=False)
    return {"rate": rate, "taxed": taxed, "untaxed": untaxed}


def defaults(client, item):
    return client.get(reverse("admin:portal_item_defaults", args=[item.pk]))


def test_item_defaults_give_price_description_and_the_only_active_rate(client, login, catalogue):
    login(BILLING_STAFF)
    response = defaults(client, catalogue["taxed"])
    assert response.status_code == 200
    assert response.json() == {
        "id": catalogue["taxed"].pk,
        "name": "Garden lights",
        "unit_price": "39.99",
        "description": "Pack of 6",
        "taxable": True,
        "tax_rate": catalogue["rate"].pk,
        "active": True,
    }
    untaxed = defaults(client, catalogue["untaxed"]).json()
    assert (untaxed["unit_price"], untaxed["taxable"], untaxed["tax_rate"]) == ("150", False, None)


def test_a_taxable_item_takes_the_rate_it_was_last_invoiced_at(client, login, catalogue, customer):
    nevada = TaxRate.objects.create(name="Nevada", percent=Decimal("6.85"))
    invoice = Invoice.objects.create(number="INV-1", customer=customer)
    InvoiceLine.objects.create(
        invoice=invoice, item=catalogue["taxed"], quantity=1, unit_price=1, tax_rate=nevada
    )
    login(AUDITORS)
    assert defaults(client, catalogue["taxed"]).json()["tax_rate"] == nevada.pk
    # With two active rates and no invoice to go by, the line keeps the rate staff chose.
    other = Item.objects.create(name="Timer", sales_price=Decimal("89.5"))
    assert defaults(client, other).json()["tax_rate"] is None


def test_item_defaults_are_refused_without_the_view_permission(client, user_factory, catalogue):
    client.force_login(user_factory(role=None))
    assert defaults(client, catalogue["taxed"]).status_code == 403
    client.logout()
    response = defaults(client, catalogue["taxed"])
    assert response.status_code == 302 and "/login/" in response["Location"]
