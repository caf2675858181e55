"""Writes on the portal's invoicing records."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.contrib.auth.models import Group
from django.db import transaction

from portal.history import change_unit
from portal.models import Customer, Invoice, InvoiceLine, Item, TaxRate, User
from portal.roles import SYNC_ADMINISTRATORS


@transaction.atomic
def invoice_save_lines(*, invoice: Invoice, lines: list[dict]) -> Invoice:
    """Replace the invoice's lines with ``lines`` (dicts of InvoiceLine fields) and re-total.

    Each line's amount and the invoice's totals are computed, never taken from input.
    """
    with change_unit():
        invoice.lines.all().delete()
        for position, values in enumerate(lines, start=1):
            InvoiceLine.objects.create(invoice=invoice, position=position, **values)
        invoice.refresh_totals()
    return invoice


DEMO_TAX_RATES = [("California", Decimal("8.000")), ("Tucson City", Decimal("0.500"))]
DEMO_CUSTOMERS = [
    ("Bayside Dental", "Bayside Dental Group", "accounts@baysidedental.example", "San Mateo"),
    ("Cooper's Hardware", "Cooper's Hardware Inc.", "ap@coopershardware.example", "Fresno"),
    ("Greenleaf Cafe", "", "owner@greenleaf.example", "Oakland"),
    ("Northwind Traders", "Northwind Traders LLC", "billing@northwind.example", "Sacramento"),
    ("Rivera Architecture", "Rivera & Partners", "finance@rivera.example", "San Jose"),
]
DEMO_ITEMS = [
    ("Consulting hour", Item.Type.SERVICE, Decimal("150.00"), "Consulting, per hour", False),
    ("Site survey", Item.Type.SERVICE, Decimal("420.00"), "On-site survey and report", False),
    ("Garden lights (pack)", Item.Type.NON_INVENTORY, Decimal("39.99"), "Pack of 6", True),
    ("Irrigation timer", Item.Type.INVENTORY, Decimal("89.50"), "Smart irrigation timer", True),
    ("Maintenance plan", Item.Type.SERVICE, Decimal("75.00"), "Monthly maintenance", False),
]


@dataclass
class DemoResult:
    username: str
    password: str
    created: dict[str, int]
    # How the login's password came to be: "new" (the login was made), "kept" (it already
    # had this password) or "reset" (it had another, and now has this one).
    password_state: str = "new"


@transaction.atomic
def demo_data_load(
    *, today: date | None = None, username: str = "demo", password: str = ""
) -> DemoResult:
    """Load a small, idempotent demo data set and make sure the ``demo`` staff login exists
    with ``password`` (a fresh one when empty, for a login that is new or whose password is
    not known).

    The same ``password`` on every start keeps the login's password as it is; the result says
    whether it was kept, set on a new login, or reset from another one.
    """
    today = today or date.today()
    created = {"tax rates": 0, "customers": 0, "items": 0, "invoices": 0}
    rates = {}
    for name, percent in DEMO_TAX_RATES:
        rates[name], new = TaxRate.objects.get_or_create(name=name, defaults={"percent": percent})
        created["tax rates"] += new
    customers = []
    for display_name, company, email, city in DEMO_CUSTOMERS:
        customer, new = Customer.objects.get_or_create(
            display_name=display_name,
            defaults={
                "company_name": company,
                "email": email,
                "billing_city": city,
                "billing_region": "CA",
                "billing_country": "USA",
            },
        )
        customers.append(customer)
        created["customers"] += new
    items = []
    for name, kind, price, description, taxable in DEMO_ITEMS:
        item, new = Item.objects.get_or_create(
            name=name,
            defaults={
                "type": kind,
                "sales_price": price,
                "purchase_cost": (price * Decimal("0.55")).quantize(Decimal("0.01")),
                "description": description,
                "taxable": taxable,
                "quantity_on_hand": Decimal("40") if kind == Item.Type.INVENTORY else 0,
            },
        )
        items.append(item)
        created["items"] += new
    for number in range(1, 7):
        customer = customers[number % len(customers)]
        issue = today - timedelta(days=7 * (6 - number))
        invoice, new = Invoice.objects.get_or_create(
            number=f"INV-{1000 + number}",
            defaults={
                "customer": customer,
                "issue_date": issue,
                "due_date": issue + timedelta(days=30),
                "status": Invoice.Status.SENT if number < 5 else Invoice.Status.DRAFT,
                "billing_email": customer.email,
                "customer_memo": "Thank you for your business.",
            },
        )
        if new:
            first, second = items[number % len(items)], items[(number + 2) % len(items)]
            invoice_save_lines(
                invoice=invoice,
                lines=[
                    {
                        "item": item,
                        "description": item.description,
                        "quantity": Decimal(quantity),
                        "unit_price": item.sales_price,
                        "tax_rate": rates["California"] if item.taxable else None,
                    }
                    for item, quantity in ((first, number), (second, 1))
                ],
            )
        created["invoices"] += new

    user, new = User.objects.get_or_create(
        username=username, defaults={"email": f"{username}@ledgerlink.example"}
    )
    password = password or secrets.token_urlsafe(12)
    if new or not user.has_usable_password():
        state = "new"
    elif user.check_password(password):
        state = "kept"
    else:
        state = "reset"
    if state != "kept":
        user.set_password(password)
    user.is_staff = True
    user.is_active = True
    user.save()
    user.groups.add(Group.objects.get(name=SYNC_ADMINISTRATORS))
    return DemoResult(username=username, password=password, created=created, password_state=state)
