from decimal import Decimal

import pytest

from portal.models import Customer, Invoice, Item, TaxRate
from portal.services import invoice_save_lines


@pytest.fixture
def ready(connection_factory):
    """A connection set up as staff would: accounts fetched, journals picked, tax mapped."""
    from tests.qbo import set_up_for_sync

    return set_up_for_sync(connection_factory())


@pytest.fixture
def inline_tasks(settings):
    """Tasks run inline, as in a single process (``Q_CLUSTER["sync"]``): the schedule syncs
    the due companies itself instead of queueing a task for each."""
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}


@pytest.fixture
def make_invoice(db):
    counter = {"n": 0}

    def make(number=None, customer="Bayside Dental", lines=None, **fields):
        counter["n"] += 1
        customer_obj, _ = Customer.objects.get_or_create(
            display_name=customer, defaults={"email": "ap@example.com"}
        )
        invoice = Invoice.objects.create(
            number=number or f"INV-{1000 + counter['n']}", customer=customer_obj, **fields
        )
        lines = lines or [("Consulting hour", 2, "150.00", True)]
        values = []
        for name, qty, price, taxed in lines:
            item, _ = Item.objects.get_or_create(name=name, defaults={"sales_price": price})
            values.append(
                {
                    "item": item,
                    "quantity": Decimal(str(qty)),
                    "unit_price": Decimal(price),
                    "tax_rate": TaxRate.objects.get(name="California") if taxed else None,
                }
            )
        invoice_save_lines(invoice=invoice, lines=values)
        return invoice

    return make


@pytest.fixture
def run_sync(ready):
    """Run the engine for real against the emulator; tests never sleep through backoff."""
    from integrations.services import connection_client
    from sync.services import sync_run

    def run(direction="both", *, connection=None, **kwargs):
        connection = connection or ready
        client = connection_client(connection=connection, sleep=lambda seconds: None)
        return sync_run(
            connection=connection, trigger="command", direction=direction, client=client, **kwargs
        )

    return run


def qbo_invoices(qbo_ui, doc_number=None):
    rows = [r for r in qbo_ui.rows("Invoice") if r.get("status") != "Deleted"]
    if doc_number is not None:
        rows = [r for r in rows if r.get("DocNumber") == doc_number]
    return rows
