from decimal import Decimal

import pytest
from django.urls import reverse

from portal.models import Customer, Invoice, InvoiceLine, Item, TaxRate
from portal.roles import AUDITORS, BILLING_STAFF, SYNC_ADMINISTRATORS


@pytest.fixture
def records(db):
    customer = Customer.objects.create(display_name="Bayside Dental", email="a@b.example")
    item = Item.objects.create(
        name="Consulting", sales_price=Decimal("150.00"), description="Hourly"
    )
    rate = TaxRate.objects.create(name="California", percent=Decimal("8"))
    invoice = Invoice.objects.create(number="INV-1", customer=customer)
    InvoiceLine.objects.create(invoice=invoice, item=item, quantity=1, unit_price=10)
    return {"customer": customer, "item": item, "rate": rate, "invoice": invoice}


def _invoice_post(customer, item, rate, **overrides):
    data = {
        "number": "INV-2",
        "status": "draft",
        "customer": customer.pk,
        "issue_date": "2026-11-01",
        "due_date": "2026-12-01",
        "currency": "USD",
        "billing_email": "",
        "customer_memo": "",
        "private_note": "",
        "lines-TOTAL_FORMS": "2",
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
        "lines-0-item": item.pk,
        "lines-0-description": "",
        "lines-0-quantity": "3",
        "lines-0-unit_price": "0.335",
        "lines-0-tax_rate": rate.pk,
        "lines-1-item": item.pk,
        "lines-1-description": "",
        "lines-1-quantity": "2",
        "lines-1-unit_price": "",
        "lines-1-tax_rate": "",
    }
    data.update(overrides)
    return data


def test_invoice_created_in_admin_gets_computed_totals(client, user_factory, records):
    client.force_login(user_factory(role=BILLING_STAFF))
    response = client.post(
        reverse("admin:portal_invoice_add"),
        _invoice_post(records["customer"], records["item"], records["rate"], total="1"),
    )
    assert response.status_code == 302, response.content
    invoice = Invoice.objects.get(number="INV-2")
    lines = list(invoice.lines.all())
    assert [line.amount for line in lines] == [Decimal("1.01"), Decimal("300.00")]
    # The empty unit price and description came from the item.
    assert lines[1].unit_price == Decimal("150.00")
    assert lines[1].description == "Hourly"
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (
        Decimal("301.01"),
        Decimal("0.08"),
        Decimal("301.09"),
    )
    page = client.get(reverse("admin:portal_invoice_change", args=[invoice.pk]))
    assert "301.09" in page.content.decode()


def test_due_date_before_issue_date_saves_and_warns_naming_the_field(client, user_factory, records):
    client.force_login(user_factory(role=BILLING_STAFF))
    response = client.post(
        reverse("admin:portal_invoice_add"),
        _invoice_post(records["customer"], records["item"], records["rate"], due_date="2026-10-15"),
        follow=True,
    )
    assert response.redirect_chain, response.content
    invoice = Invoice.objects.get(number="INV-2")
    assert str(invoice.due_date) == "2026-10-15"
    shown = [(m.level_tag, str(m)) for m in response.context["messages"]]
    assert (
        "warning",
        "Saved, with a warning: Due date 2026-10-15 is before the issue date 2026-11-01; the "
        "invoice is overdue from the day it is issued. Check the due date if that is not "
        "intended.",
    ) in shown


def test_deleting_a_customer_with_invoices_is_refused_with_a_message(client, user_factory, records):
    client.force_login(user_factory(role=SYNC_ADMINISTRATORS))
    customer = records["customer"]
    url = reverse("admin:portal_customer_delete", args=[customer.pk])
    page = client.get(url).content.decode()
    assert "would require deleting the following protected related objects" in page
    assert "INV-1" in page
    response = client.post(url, {"post": "yes"})
    assert Customer.objects.filter(pk=customer.pk).exists()
    assert response.status_code in (200, 403)


def test_bulk_delete_of_an_item_in_use_is_refused(client, user_factory, records):
    client.force_login(user_factory(role=BILLING_STAFF))
    response = client.post(
        reverse("admin:portal_item_changelist"),
        {"action": "delete_selected", "_selected_action": [records["item"].pk], "post": "yes"},
    )
    assert "protected related objects" in response.content.decode()
    assert Item.objects.filter(pk=records["item"].pk).exists()


@pytest.mark.parametrize(
    ("role", "can_view", "can_add", "can_delete"),
    [
        (SYNC_ADMINISTRATORS, True, True, True),
        (BILLING_STAFF, True, True, True),
        (AUDITORS, True, False, False),
    ],
)
def test_roles_on_invoicing_records_server_side(
    client, user_factory, records, role, can_view, can_add, can_delete
):
    client.force_login(user_factory(role=role))
    changelist = client.get(reverse("admin:portal_invoice_changelist"))
    assert (changelist.status_code == 200) is can_view
    add_page = client.get(reverse("admin:portal_invoice_add"))
    assert (add_page.status_code == 200) is can_add
    # The server refuses the write itself, not only the button.
    response = client.post(
        reverse("admin:portal_invoice_add"),
        _invoice_post(records["customer"], records["item"], records["rate"]),
    )
    assert Invoice.objects.filter(number="INV-2").exists() is can_add
    if not can_add:
        assert response.status_code == 403
    change = client.post(
        reverse("admin:portal_customer_change", args=[records["customer"].pk]),
        {"display_name": "Renamed", "active": "on"},
    )
    records["customer"].refresh_from_db()
    assert (records["customer"].display_name == "Renamed") is can_add
    if not can_add:
        assert change.status_code == 403
    unused = Customer.objects.create(display_name="Unused")
    client.post(reverse("admin:portal_customer_delete", args=[unused.pk]), {"post": "yes"})
    assert Customer.objects.filter(pk=unused.pk).exists() is not can_delete


def test_auditor_sees_no_add_or_delete_controls(client, user_factory, records):
    client.force_login(user_factory(role=AUDITORS))
    page = client.get(reverse("admin:portal_invoice_changelist")).content.decode()
    assert reverse("admin:portal_invoice_add") not in page
    assert "delete_selected" not in page
    detail = client.get(reverse("admin:portal_invoice_change", args=[records["invoice"].pk]))
    body = detail.content.decode()
    assert detail.status_code == 200
    assert 'name="_save"' not in body


def test_only_superusers_manage_staff_accounts(client, user_factory):
    for role in (SYNC_ADMINISTRATORS, BILLING_STAFF, AUDITORS):
        client.force_login(user_factory(role=role))
        assert client.get(reverse("admin:portal_user_changelist")).status_code == 403
        index = client.get(reverse("admin:index")).content.decode()
        assert reverse("admin:portal_user_changelist") not in index
    client.force_login(user_factory(superuser=True))
    assert client.get(reverse("admin:portal_user_changelist")).status_code == 200


def test_staff_without_a_role_sees_nothing(client, user_factory, records):
    client.force_login(user_factory())
    assert client.get(reverse("admin:portal_invoice_changelist")).status_code == 403
    assert (
        "You don\N{RIGHT SINGLE QUOTATION MARK}t have permission to view or edit anything"
        in client.get(reverse("admin:index")).content.decode()
    )


def test_changelists_cost_a_fixed_number_of_queries(
    client, user_factory, records, django_assert_max_num_queries
):
    client.force_login(user_factory(superuser=True))
    for n in range(30):
        Invoice.objects.create(number=f"X-{n}", customer=records["customer"])
    with django_assert_max_num_queries(12):
        assert client.get(reverse("admin:portal_invoice_changelist")).status_code == 200
    with django_assert_max_num_queries(12):
        assert client.get(reverse("admin:portal_customer_changelist")).status_code == 200
