import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from portal.models import Customer, Invoice, InvoiceLine, Item


@pytest.mark.django_db
def test_customer_display_name_is_unique_whatever_the_case():
    Customer.objects.create(display_name="Cooper's Hardware")
    duplicate = Customer(display_name="COOPER'S hardware")
    with pytest.raises(ValidationError) as excinfo:
        duplicate.full_clean()
    assert "A customer with this display name already exists" in str(excinfo.value)
    with pytest.raises(IntegrityError), transaction.atomic():
        duplicate.save()


@pytest.mark.django_db
def test_item_name_and_invoice_number_are_unique():
    Item.objects.create(name="Pump")
    with pytest.raises(ValidationError) as excinfo:
        Item(name="Pump", sales_price=1).full_clean()
    assert "Item with this Name already exists" in str(excinfo.value)
    customer = Customer.objects.create(display_name="A")
    Invoice.objects.create(number="1001", customer=customer)
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.create(number="1001", customer=customer)


@pytest.mark.django_db
def test_customer_or_item_used_by_an_invoice_cannot_be_deleted():
    customer = Customer.objects.create(display_name="A")
    item = Item.objects.create(name="Pump")
    invoice = Invoice.objects.create(number="1001", customer=customer)
    InvoiceLine.objects.create(invoice=invoice, item=item, quantity=1, unit_price=5)
    with pytest.raises(ProtectedError):
        customer.delete()
    with pytest.raises(ProtectedError):
        item.delete()
    assert Customer.objects.filter(pk=customer.pk).exists()
    assert Item.objects.filter(pk=item.pk).exists()


@pytest.mark.django_db
def test_due_date_before_issue_date_is_accepted_with_a_warning_naming_the_field():
    """QuickBooks accepts a due date before the invoice date, so the portal saves it too and
    only warns (a portal-only rule)."""
    import datetime

    invoice = Invoice(
        number="1",
        customer=Customer.objects.create(display_name="A"),
        issue_date=datetime.date(2026, 5, 2),
        due_date=datetime.date(2026, 5, 1),
    )
    invoice.full_clean()
    assert invoice.warnings() == [
        "Due date 2026-05-01 is before the issue date 2026-05-02; the invoice is overdue from "
        "the day it is issued. Check the due date if that is not intended."
    ]
    invoice.due_date = datetime.date(2026, 5, 2)
    assert invoice.warnings() == []
