"""A sync finds what changed without loading the book: every change to an invoice or its lines
moves the invoice's version, however it is made, and settled invoices at their agreed version
are not loaded."""

from decimal import Decimal

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext

from portal.models import Invoice, InvoiceLine
from sync.models import FieldMapping, SyncRecord
from tests.sync.conftest import qbo_invoices


@pytest.fixture
def synced(run_sync, make_invoice):
    invoices = [make_invoice(number=f"CS-{n}") for n in range(4)]
    assert run_sync("push").status == "done"
    return invoices


def _memos(qbo_ui):
    return {
        r["DocNumber"]: (r.get("CustomerMemo") or {}).get("value") for r in qbo_invoices(qbo_ui)
    }


@pytest.mark.parametrize(
    "change",
    [
        "queryset update",
        "bulk_update",
        "bulk_update with its versions",
        "line queryset update",
        "line bulk_create",
        "line delete",
    ],
)
def test_changes_made_in_bulk_are_found_and_sent(change, synced, run_sync, qbo_ui):
    first, second = synced[0], synced[1]
    ids = [first.pk, second.pk]
    if change == "queryset update":
        Invoice.objects.filter(pk__in=ids).update(customer_memo="Fixed in bulk")
    elif change == "bulk_update":
        for invoice in (first, second):
            invoice.customer_memo = "Fixed in bulk"
        Invoice.objects.bulk_update([first, second], ["customer_memo"])
    elif change == "bulk_update with its versions":  # as a data fix that moves them itself
        for invoice in (first, second):
            invoice.refresh_from_db()
            invoice.customer_memo, invoice.version = "Fixed in bulk", invoice.version + 1
        Invoice.objects.bulk_update([first, second], ["customer_memo", "version"])
    elif change == "line queryset update":
        InvoiceLine.objects.filter(invoice_id__in=ids).update(description="Bulk words")
    elif change == "line bulk_create":
        item = first.lines.first().item
        InvoiceLine.objects.bulk_create(
            [
                InvoiceLine(
                    invoice_id=pk,
                    position=9,
                    item=item,
                    quantity=Decimal("1"),
                    unit_price=Decimal("5"),
                    amount=Decimal("5.00"),
                )
                for pk in ids
            ]
        )
    else:
        InvoiceLine.objects.filter(invoice_id__in=ids, position=1).delete()
        for pk in ids:
            InvoiceLine.objects.create(
                invoice_id=pk, position=1, description="Only line", quantity=1, unit_price=7
            )

    run = run_sync("push")

    assert run.status == "done", run.message
    assert (run.updated, run.created) == (2, 0), (run.updated, run.created, run.failed)
    after = run_sync("push")
    assert (after.updated, after.unchanged) == (0, 4)


def test_an_idle_push_costs_the_same_queries_whatever_the_number_of_invoices(
    run_sync, make_invoice
):
    def idle_queries() -> int:
        with CaptureQueriesContext(db) as captured:
            run = run_sync("push")
        assert (run.created, run.updated) == (0, 0)
        return len(captured.captured_queries)

    for n in range(3):
        make_invoice(number=f"IDLE-{n}")
    run_sync("push")
    small = idle_queries()
    for n in range(3, 40):
        make_invoice(number=f"IDLE-{n}")
    run_sync("push")
    large = idle_queries()
    assert large == small, (small, large)


def test_saving_an_invoice_without_a_change_is_agreed_again_without_a_write(synced, run_sync, qbo):
    invoice = synced[0]
    invoice.refresh_from_db()
    invoice.save()
    qbo.app.clear_log()
    run = run_sync("push")
    assert run.updated == 0
    assert [r for r in qbo.app.requests_log() if r.get("method") == "POST"] == []
    record = SyncRecord.objects.get(invoice=invoice)
    invoice.refresh_from_db()
    assert record.agreed_version == invoice.version


def test_a_mapping_change_compares_every_invoice_again(ready, run_sync, make_invoice, qbo_ui):
    # Private notes not mapped: what the portal writes there stays in the portal.
    FieldMapping.objects.update_or_create(
        connection=ready, local_field="private_note", defaults={"qbo_field": ""}
    )
    synced = [make_invoice(number=f"MC-{n}", private_note="Internal") for n in range(3)]
    assert run_sync("push").status == "done"
    notes = {r["DocNumber"]: r.get("PrivateNote") for r in qbo_invoices(qbo_ui)}
    assert {notes[i.number] for i in synced} == {None}

    FieldMapping.objects.filter(connection=ready, local_field="private_note").update(
        qbo_field="PrivateNote"
    )
    run = run_sync("push")

    assert run.updated == 3, (run.updated, run.unchanged)
    notes = {r["DocNumber"]: r.get("PrivateNote") for r in qbo_invoices(qbo_ui)}
    assert {notes[i.number] for i in synced} == {"Internal"}


def _flagged() -> set[str]:
    return set(Invoice.objects.filter(needs_sync=True).values_list("number", flat=True))


def test_a_push_clears_the_change_flag_only_at_the_version_quickbooks_agreed_on(
    synced, run_sync, ready
):
    from sync.entities.invoice import needs_sync_clear
    from sync.models import SyncConfiguration

    assert _flagged() == set()
    first = synced[0]
    first.customer_memo = "Changed"
    first.save()
    assert _flagged() == {first.number}
    assert run_sync("push").updated == 1
    assert _flagged() == set()

    # A change made while a push is on its way (after QuickBooks agreed on the version
    # before it) keeps its flag, so the next push still finds it.
    Invoice.objects.filter(pk=first.pk).update(customer_memo="Changed again")
    record = SyncRecord.objects.get(invoice=first)
    config = SyncConfiguration.objects.get(connection=ready)
    assert needs_sync_clear(config=config, signature=record.agreed_mapping) == 0
    assert _flagged() == {first.number}
    run = run_sync("push")
    assert (run.updated, run.unchanged) == (1, 3)
    assert _flagged() == set()


def test_an_idle_push_reads_no_invoice_and_counts_the_settled_ones(synced, run_sync):
    run_sync("push")  # the push after the first looks only at what changed
    with CaptureQueriesContext(db) as captured:
        run = run_sync("push")
    assert (run.updated, run.unchanged) == (0, 4)
    loads = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith('SELECT "portal_invoice"."id", "portal_invoice"."created_at"')
    ]
    assert loads == [], loads


def test_a_change_stays_flagged_until_every_company_linked_to_it_agrees(
    synced, run_sync, ready, connection_factory, qbo, qbo_ui
):
    from sync.services import sync_run
    from tests.qbo import set_up_for_sync

    other = set_up_for_sync(connection_factory(qbo.realm_ids[1]))
    invoice = synced[0]
    # Staff sent this invoice to the other company on purpose: it is linked to both.
    sent = sync_run(connection=other, trigger="button", direction="push", invoice_ids=[invoice.pk])
    assert sent.status == "done", sent.message
    assert SyncRecord.objects.get(connection=other, invoice=invoice).qbo_id
    run_sync("push")
    assert _flagged() == set()

    invoice.customer_memo = "For both books"
    invoice.save()
    assert run_sync("push").updated == 1
    assert _flagged() == {invoice.number}, "the other company has not taken the change yet"
    run = run_sync("push", connection=other)
    assert run.updated == 1, (run.updated, run.unchanged, run.failed)
    assert _flagged() == set()
