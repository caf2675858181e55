"""Fixtures for the admin tests: roles, a connection without the emulator, captured tasks."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from integrations.models import Connection, QuickBooksAccount, QuickBooksTaxCode
from portal.models import Customer, Invoice, Item, TaxRate
from portal.roles import AUDITORS, BILLING_STAFF, SYNC_ADMINISTRATORS
from tests.qbo import record_start
from tests.sync.conftest import make_invoice, ready, run_sync  # noqa: F401  (re-exported)

ROLES = (SYNC_ADMINISTRATORS, BILLING_STAFF, AUDITORS)


@pytest.fixture
def queued(monkeypatch):
    """Capture what the admin queues instead of running django-q2 tasks."""
    calls: list[tuple] = []
    monkeypatch.setattr("sync.tasks.queue", lambda func, *args, **kw: calls.append((func, *args)))
    return calls


@pytest.fixture
def login(client, user_factory):
    def as_role(role: str):
        user = user_factory(role=role)
        client.force_login(user)
        return user

    return as_role


@pytest.fixture
def connection(db, settings):
    """A connected company as the admin sees it (no API calls are made with it)."""
    settings.QBO_ENVIRONMENT = "emulator"
    settings.QBO_EMULATOR_URL = "http://127.0.0.1:9"
    now = timezone.now()
    connection = Connection.objects.create(
        environment="emulator",
        realm_id="9130000000000001",
        company_name="Sandbox Company",
        status=Connection.Status.CONNECTED,
        connected_at=now,
        access_token_expires_at=now + timedelta(hours=1),
        refresh_token_expires_at=now + timedelta(days=100),
    )
    income = QuickBooksAccount.objects.create(
        connection=connection, qbo_id="79", name="Sales", account_type="Income"
    )
    connection.income_account = income
    connection.accounts_fetched_at = now
    connection.save()
    return connection


@pytest.fixture
def started(connection):
    """The same company once a Sync administrator has started sync (pressed Sync now)."""
    record_start(connection)
    return connection


@pytest.fixture
def tax_setup(connection):
    rate = TaxRate.objects.create(name="California", percent=Decimal("8"))
    other = TaxRate.objects.create(name="Nevada", percent=Decimal("6.85"))
    code = QuickBooksTaxCode.objects.create(
        connection=connection, qbo_id="2", name="California", rate_percent=Decimal("8")
    )
    return {"rate": rate, "other": other, "code": code}


@pytest.fixture
def invoices(db):
    """Invoices in the portal, without lines (the admin only lists them)."""

    def make(count: int, *, prefix: str = "INV-"):
        customer, _ = Customer.objects.get_or_create(display_name="Bayside Dental")
        Item.objects.get_or_create(name="Consulting")
        start = Invoice.objects.count()
        return [
            Invoice.objects.create(number=f"{prefix}{start + i + 1}", customer=customer)
            for i in range(count)
        ]

    return make
