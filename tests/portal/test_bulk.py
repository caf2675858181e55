"""``portal.bulk``: bulk updates as one ``UPDATE ... FROM (VALUES ...)`` on PostgreSQL, with
the values Django's own ``bulk_update`` would write, whatever their type."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from integrations.models import Connection
from portal.models import Customer, Invoice, InvoiceLine
from sync.models import SyncRecord


@pytest.fixture
def bindings(db):
    company = Connection.objects.create(realm_id="9341", company_name="Bulk Co")
    customer = Customer.objects.create(display_name="Bulk Customer")
    invoices = [Invoice.objects.create(number=f"B-{n}", customer=customer) for n in range(3)]
    return [
        SyncRecord.objects.create(connection=company, object_type="invoice", invoice=invoice)
        for invoice in invoices
    ]


def test_each_row_gets_its_own_values_of_every_type(bindings):
    when = datetime(2026, 11, 30, 12, 30, 15, 123456, tzinfo=UTC)
    values = [
        ("101", {"memo": "caf\u00e9 \u2018quoted\u2019", "n": [1, 2]}, {"total": "1.10"}, 7),
        ("102", {}, None, None),
        ("", None, {"total": "0.00"}, 9_007_199_254_740_993),
    ]
    for record, (qbo_id, agreed, totals, version) in zip(bindings, values, strict=True):
        record.qbo_id, record.agreed, record.qbo_totals = qbo_id, agreed, totals
        record.agreed_version, record.uncertain, record.last_pushed_at = version, True, when
        record.status = SyncRecord.Status.SYNCED
    fields = ["qbo_id", "agreed", "qbo_totals", "agreed_version", "uncertain", "last_pushed_at"]
    with CaptureQueriesContext(connection) as queries:
        matched = SyncRecord.objects.bulk_update(bindings, fields)

    assert matched == 3
    statements = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    if connection.vendor == "postgresql":
        assert len(statements) == 1 and "FROM (VALUES" in statements[0]
    for record, (qbo_id, agreed, totals, version) in zip(bindings, values, strict=True):
        saved = SyncRecord.objects.get(pk=record.pk)
        assert (saved.qbo_id, saved.agreed, saved.qbo_totals) == (qbo_id, agreed, totals)
        assert (saved.agreed_version, saved.uncertain, saved.last_pushed_at) == (
            version,
            True,
            when,
        )
        # Not named, not written.
        assert saved.status == SyncRecord.Status.NOT_SYNCED


def test_decimals_dates_and_foreign_keys_keep_their_precision(db):
    customer = Customer.objects.create(display_name="Precise")
    other = Customer.objects.create(display_name="Other")
    invoice = Invoice.objects.create(number="P-1", customer=customer)
    lines = [
        InvoiceLine.objects.create(invoice=invoice, quantity=1, unit_price=Decimal("1"))
        for _ in range(2)
    ]
    lines[0].unit_price, lines[0].qbo_line_id = Decimal("0.3350000"), "7"
    lines[1].unit_price, lines[1].qbo_line_id = Decimal("12345.1234567"), ""
    InvoiceLine.objects.bulk_update(lines, ["unit_price", "qbo_line_id"])
    assert [
        (line.unit_price, line.qbo_line_id)
        for line in InvoiceLine.objects.filter(invoice=invoice).order_by("pk")
    ] == [(Decimal("0.3350000"), "7"), (Decimal("12345.1234567"), "")]

    before = Invoice.objects.get(pk=invoice.pk).version
    invoice.customer, invoice.due_date, invoice.total = other, date(2027, 1, 31), Decimal("9.99")
    Invoice.objects.bulk_update([invoice], ["customer", "due_date", "total"])
    saved = Invoice.objects.get(pk=invoice.pk)
    assert (saved.customer_id, saved.due_date, saved.total) == (
        other.pk,
        date(2027, 1, 31),
        Decimal("9.99"),
    )
    # A change made in bulk is still a change the sync sees (``portal.changes``).
    assert saved.needs_sync and saved.version == before + 1


def test_more_rows_than_one_statement_takes_are_split(bindings, settings):
    from portal import bulk

    original = bulk.MAX_PARAMETERS
    bulk.MAX_PARAMETERS = 4  # two values a row: two rows a statement
    try:
        for n, record in enumerate(bindings):
            record.qbo_id = f"split-{n}"
        assert SyncRecord.objects.bulk_update(bindings, ["qbo_id"]) == 3
    finally:
        bulk.MAX_PARAMETERS = original
    assert sorted(SyncRecord.objects.values_list("qbo_id", flat=True)) == [
        "split-0",
        "split-1",
        "split-2",
    ]


def test_an_unsaved_object_is_refused(bindings):
    with pytest.raises(ValueError, match="primary key"):
        SyncRecord.objects.bulk_update([SyncRecord(object_type="invoice")], ["qbo_id"])
