"""The History page of invoices, customers and items: who or what changed which field, when."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from portal.models import Customer, Invoice, Item, TaxRate
from portal.roles import AUDITORS, BILLING_STAFF
from sync.models import SyncRun
from tests.sync.conftest import qbo_invoices


def history_page(client, obj) -> str:
    name = type(obj)._meta.model_name
    response = client.get(reverse(f"admin:portal_{name}_history", args=[obj.pk]))
    assert response.status_code == 200
    return response.content.decode()


def entries(page: str) -> list[str]:
    """The History page's rows as text (newest first), whitespace collapsed."""
    rows = re.findall(r'<tr class="ll-history-entry">(.*?)</tr>', page, re.S)
    text = (re.sub(r"<[^>]+>", " ", row).replace("&rarr;", "->") for row in rows)
    return [" ".join(row.split()).replace(" :", ":") for row in text]


def _invoice_form(invoice: Invoice, **changes) -> dict:
    """The invoice's change form as the admin posts it, with ``changes`` (``lines-0-...``
    for its first line)."""
    lines = list(invoice.lines.all())
    data = {
        "number": invoice.number,
        "status": invoice.status,
        "customer": invoice.customer_id,
        "issue_date": invoice.issue_date.isoformat(),
        "due_date": invoice.due_date.isoformat() if invoice.due_date else "",
        "currency": invoice.currency,
        "billing_email": invoice.billing_email,
        "reference": invoice.reference,
        "customer_memo": invoice.customer_memo,
        "private_note": invoice.private_note,
        "lines-TOTAL_FORMS": str(len(lines)),
        "lines-INITIAL_FORMS": str(len(lines)),
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
    }
    for n, line in enumerate(lines):
        data.update(
            {
                f"lines-{n}-id": line.pk,
                f"lines-{n}-invoice": invoice.pk,
                f"lines-{n}-item": line.item_id or "",
                f"lines-{n}-description": line.description,
                f"lines-{n}-quantity": f"{line.quantity.normalize():f}",
                f"lines-{n}-unit_price": f"{line.unit_price.normalize():f}",
                f"lines-{n}-tax_rate": line.tax_rate_id or "",
            }
        )
    data.update(changes)
    return data


@pytest.fixture
def staff_invoice(db, user_factory):
    customer = Customer.objects.create(display_name="Bayside Dental")
    item = Item.objects.create(name="Consulting hour", sales_price=Decimal("150"))
    rate = TaxRate.objects.create(name="California", percent=Decimal("8"))
    return {"customer": customer, "item": item, "rate": rate}


def test_an_invoice_added_and_edited_in_the_admin_lists_each_save_with_its_person(
    client, user_factory, staff_invoice
):
    alex = user_factory(role=BILLING_STAFF, username="alex")
    client.force_login(alex)
    data = {
        "number": "INV-7",
        "status": "draft",
        "customer": staff_invoice["customer"].pk,
        "issue_date": "2026-11-01",
        "due_date": "2026-12-01",
        "currency": "USD",
        "lines-TOTAL_FORMS": "1",
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
        "lines-0-item": staff_invoice["item"].pk,
        "lines-0-quantity": "2",
        "lines-0-unit_price": "",
        "lines-0-tax_rate": staff_invoice["rate"].pk,
    }
    assert client.post(reverse("admin:portal_invoice_add"), data).status_code == 302
    invoice = Invoice.objects.get(number="INV-7")
    response = client.post(
        reverse("admin:portal_invoice_change", args=[invoice.pk]),
        _invoice_form(invoice, customer_memo="Thank you", **{"lines-0-quantity": "3"}),
    )
    assert response.status_code == 302

    changed, created = entries(history_page(client, invoice))
    # One entry per save: the invoice, its lines and the totals the lines make.
    assert " alex Changed " in changed
    assert "Customer memo: Thank you (was empty)" in changed
    assert "Line 1 quantity: 2 -> 3" in changed
    assert "Total: 324.00 -> 486.00" in changed
    assert " alex Created " in created
    assert "Number: INV-7" in created
    assert "Total: 324.00" in created
    assert "Line 1 added: Item Consulting hour; Quantity 2; Unit price 150" in created


def test_a_pull_is_listed_as_the_sync_with_its_run_and_each_field_it_changed(
    client, user_factory, ready, run_sync, make_invoice, qbo_ui
):
    invoice = make_invoice(number="INV-8", customer_memo="Thanks", due_date="2026-12-01")
    run_sync("push")
    run_sync("pull")
    [obj] = qbo_invoices(qbo_ui, "INV-8")
    qbo_ui.update(
        "Invoice",
        {"Id": obj["Id"], "CustomerMemo": {"value": "Paid by card"}, "DueDate": "2026-12-24"},
    )
    run = run_sync("pull")
    assert run.updated == 1

    client.force_login(user_factory(role=AUDITORS))
    rows = entries(history_page(client, invoice))
    pulled = rows[0]
    assert f"QuickBooks sync (pull, run {run.pk}) Changed" in pulled
    assert "Customer memo: Thanks -> Paid by card" in pulled
    assert "Due date: 2026-12-01 -> 2026-12-24" in pulled
    # What the push sent is listed too, linked to its run.
    push = SyncRun.objects.filter(direction="push").first()
    sent = next(row for row in rows if "Sent to QuickBooks (created)" in row)
    assert f"QuickBooks sync (run {push.pk})" in sent
    assert "Invoice INV-8 created in QuickBooks" in sent
    page = history_page(client, invoice)
    assert reverse("admin:quickbooks_run", args=[push.pk]) in page


def test_lines_a_pull_writes_anew_show_only_what_changed_in_them(
    client, user_factory, ready, run_sync, make_invoice, qbo_ui
):
    invoice = make_invoice(number="INV-9", lines=[("Consulting hour", 2, "150.00", False)])
    run_sync("push")
    [obj] = qbo_invoices(qbo_ui, "INV-9")
    line = dict(obj["Line"][0])
    line["SalesItemLineDetail"] = {**line["SalesItemLineDetail"], "Qty": 3}
    line["Amount"] = 450
    qbo_ui.update("Invoice", {"Id": obj["Id"], "Line": [line], "sparse": True})
    run = run_sync("pull")
    assert run.updated == 1

    client.force_login(user_factory(role=AUDITORS))
    pulled = entries(history_page(client, invoice))[0]
    assert f"QuickBooks sync (pull, run {run.pk})" in pulled
    assert "Line 1 quantity: 2 -> 3" in pulled
    assert "Line 1 amount: 300.00 -> 450.00" in pulled
    assert "added" not in pulled and "removed" not in pulled


def test_a_payment_pulled_from_quickbooks_is_listed_with_the_amount_paid(
    client, user_factory, ready, run_sync, make_invoice, qbo_ui
):
    invoice = make_invoice(number="INV-10", lines=[("Consulting hour", 1, "100.00", False)])
    run_sync("push")
    [obj] = qbo_invoices(qbo_ui, "INV-10")
    qbo_ui.create(
        "Payment",
        {
            "CustomerRef": obj["CustomerRef"],
            "TotalAmt": 40,
            "Line": [{"Amount": 40, "LinkedTxn": [{"TxnId": obj["Id"], "TxnType": "Invoice"}]}],
        },
    )
    run = run_sync("pull")

    client.force_login(user_factory(role=AUDITORS))
    pulled = entries(history_page(client, invoice))[0]
    assert f"QuickBooks sync (pull, run {run.pk}) Changed" in pulled
    assert "Amount paid: 0.00 -> 40.00" in pulled
    assert "Status: Draft -> Partially paid" in pulled


def test_customer_and_item_histories_name_the_person_or_the_sync(
    client, user_factory, ready, run_sync, make_invoice, qbo_ui
):
    make_invoice(customer="Greenleaf Cafe")
    run_sync("push")
    cust = qbo_ui.find("Customer", DisplayName="Greenleaf Cafe")
    qbo_ui.update("Customer", {"Id": cust["Id"], "DisplayName": "Greenleaf Coffee"})
    run = run_sync("pull")
    customer = Customer.objects.get(display_name="Greenleaf Coffee")

    sam = user_factory(role=BILLING_STAFF, username="sam")
    client.force_login(sam)
    item = Item.objects.get(name="Consulting hour")
    response = client.post(
        reverse("admin:portal_item_change", args=[item.pk]),
        {
            "name": item.name,
            "sku": "",
            "type": item.type,
            "description": "",
            "sales_price": "175",
            "purchase_cost": "0",
            "quantity_on_hand": "0",
            "taxable": "on",
            "active": "on",
        },
    )
    assert response.status_code == 302, response.content

    renamed = entries(history_page(client, customer))[0]
    assert f"QuickBooks sync (pull, run {run.pk}) Changed" in renamed
    assert "Display name: Greenleaf Cafe -> Greenleaf Coffee" in renamed
    priced = entries(history_page(client, item))[0]
    assert " sam Changed " in f" {priced} "
    assert "Sales price: 150 -> 175" in priced


def test_the_history_page_needs_the_view_permission(client, user_factory, staff_invoice):
    invoice = Invoice.objects.create(number="INV-11", customer=staff_invoice["customer"])
    client.force_login(user_factory(role=None))
    url = reverse("admin:portal_invoice_history", args=[invoice.pk])
    assert client.get(url).status_code == 403


def test_what_a_push_takes_from_quickbooks_answer_is_listed_as_the_push(
    client, user_factory, ready, run_sync, make_invoice
):
    invoice = make_invoice(number="INV-12")
    assert invoice.due_date is None
    run = run_sync("push")
    invoice.refresh_from_db()
    assert invoice.due_date is not None  # QuickBooks' default, from the terms

    client.force_login(user_factory(role=AUDITORS))
    rows = entries(history_page(client, invoice))
    taken = next(row for row in rows if f"QuickBooks sync (push, run {run.pk}) Changed" in row)
    assert f"Due date: {invoice.due_date.isoformat()} (was empty)" in taken


def test_a_line_removed_in_the_admin_is_listed_with_what_it_held(
    client, user_factory, staff_invoice
):
    from portal.services import invoice_save_lines

    invoice = Invoice.objects.create(number="INV-13", customer=staff_invoice["customer"])
    item = staff_invoice["item"]
    invoice_save_lines(
        invoice=invoice,
        lines=[
            {"item": item, "quantity": Decimal(1), "unit_price": Decimal(150)},
            {"item": item, "quantity": Decimal(2), "unit_price": Decimal(150)},
        ],
    )
    client.force_login(user_factory(role=BILLING_STAFF, username="kim"))
    response = client.post(
        reverse("admin:portal_invoice_change", args=[invoice.pk]),
        _invoice_form(invoice, **{"lines-1-DELETE": "on"}),
    )
    assert response.status_code == 302, response.content

    removed = entries(history_page(client, invoice))[0]
    assert " kim Changed " in f" {removed} "
    assert "Line 2 removed: Item Consulting hour; Quantity 2; Unit price 150; Amount 300.00" in (
        removed
    )
    assert "Total: 450.00 -> 150.00" in removed
    assert "Line 1" not in removed
