import os
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest

from portal.models import Customer, Invoice, Item, TaxRate
from portal.services import invoice_save_lines
from tests.conftest import (
    EMULATOR_CLIENT_ID,
    EMULATOR_CLIENT_SECRET,
    EMULATOR_REDIRECT_URI,
    EMULATOR_VERIFIER,
)

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.fixture
def worker_env(transactional_db, qbo):
    """The environment of a worker process: the test database and the emulator."""
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor != "postgresql":
        pytest.skip("a worker process needs a database it can open too (PostgreSQL)")
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "LEDGERLINK_ENV_FILE": os.devnull,
        "DATABASE_URL": f"postgres://{auth}@{host}:{port}/{db['NAME']}",
        "PYTHONPATH": str(ROOT),
        "QBO_ENVIRONMENT": "emulator",
        "QBO_EMULATOR_URL": qbo.base_url,
        "QBO_CLIENT_ID": EMULATOR_CLIENT_ID,
        "QBO_CLIENT_SECRET": EMULATOR_CLIENT_SECRET,
        "QBO_REDIRECT_URI": EMULATOR_REDIRECT_URI,
        "QBO_WEBHOOK_VERIFIER_TOKEN": EMULATOR_VERIFIER,
    }
    yield env
    qbo.app.set_hold_answers(0)
