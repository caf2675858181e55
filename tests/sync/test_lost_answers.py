"""Creates whose answer is lost, then a pull in the same run: the pull never imports the
portal's own invoices as new ones, the replay settles them, and a copy an older pull made is
merged rather than wedging the company."""

from collections import Counter

import pytest

from integrations.quickbooks.backend import QuickBooksBackend
from integrations.quickbooks.errors import ConnectionFailedError
from portal.models import Invoice
from sync.models import SyncRecord
from sync.reconcile import reconcile_report
from tests.sync.conftest import qbo_invoices

NUMBERS = [f"LA-{n:02}" for n in range(10)]


@pytest.fixture
def answers_lost(monkeypatch):
    """Every invoice batch reaches QuickBooks and is saved, and its answer is lost."""
    real_write = QuickBooksBackend.write_batch

    def lost(self, entity, *args, **kwargs):
        answer = real_write(self, entity, *args, **kwargs)
        if entity == "Invoice":
            raise ConnectionFailedError("connection dropped after sending", uncertain=True)
        return answer

    monkeypatch.setattr(QuickBooksBackend, "write_batch", lost)
    return monkeypatch


def _portal_numbers():
    return Counter(Invoice.objects.values_list("number", flat=True))


def _qbo_numbers(qbo_ui):
    return Counter(r.get("DocNumber") for r in qbo_invoices(qbo_ui))


def _accountants_invoice(qbo_ui, number):
    customer = qbo_ui.find("Customer", DisplayName="Amy's Bird Sanctuary")
    item = qbo_ui.find("Item", Name="Hours")
    return qbo_ui.create(
        "Invoice",
        {
            "DocNumber": number,
            "CustomerRef": {"value": customer["Id"]},
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": 80,
                    "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": 2},
                }
            ],
        },
    )


def test_lost_answers_then_a_pull_in_the_same_run_import_nothing_twice(
    run_sync, ready, make_invoice, qbo_ui, answers_lost
):
    assert run_sync("pull").status == "done"
    for number in NUMBERS:
        make_invoice(number=number)
    portal_before = _portal_numbers()

    _accountants_invoice(qbo_ui, "ACC-1")
    run = run_sync("both")

    assert run.status == "done", run.message
    # QuickBooks has each invoice once; the portal imported none of them back as new.
    assert all(_qbo_numbers(qbo_ui)[n] == 1 for n in NUMBERS)
    assert _portal_numbers() == portal_before
    records = SyncRecord.objects.filter(invoice__number__in=NUMBERS)
    assert {(r.status, r.uncertain) for r in records} == {("pending", True)}
    assert run.events.filter(message__startswith="New QuickBooks invoices are left").exists()

    answers_lost.undo()
    run = run_sync("both")

    assert run.status == "done", run.message
    records = {r.invoice.number: r for r in SyncRecord.objects.filter(invoice__number__in=NUMBERS)}
    assert {r.status for r in records.values()} == {"synced"}
    by_number = {r["DocNumber"]: r["Id"] for r in qbo_invoices(qbo_ui)}
    assert {n: r.qbo_id for n, r in records.items()} == {n: by_number[n] for n in NUMBERS}
    assert all(_qbo_numbers(qbo_ui)[n] == 1 for n in NUMBERS)
    # Nothing in the feed was lost: the accountant's invoice made meanwhile is in the portal.
    assert _portal_numbers() == portal_before + Counter(["ACC-1"])
    assert run_sync("both").status == "done"
    assert _portal_numbers() == portal_before + Counter(["ACC-1"])


def test_a_copy_an_older_pull_made_is_merged_when_the_replay_settles_the_original(
    run_sync, ready, make_invoice, qbo_ui, answers_lost
):
    assert run_sync("pull").status == "done"
    for number in NUMBERS:
        make_invoice(number=number)
    # As a sync before the fix did: the pull imported the portal's own creates as new invoices.
    answers_lost.setattr("sync.importer._made_since", lambda obj, since: False)
    assert run_sync("both").status == "done"
    copies = Invoice.objects.filter(number__contains="-QBO")
    assert copies.count() == len(NUMBERS)
    answers_lost.undo()
    report = reconcile_report(connection=ready)
    for copy in copies:
        original = copy.number.split("-QBO")[0]
        assert f"Portal invoice {copy.number} is a copy of portal invoice {original}" in (
            report.duplicates
        ), report.render()

    run = run_sync("both")

    assert run.status == "done", run.message
    originals = SyncRecord.objects.filter(invoice__number__in=NUMBERS)
    assert {r.status for r in originals} == {"synced"}
    assert all(r.qbo_id for r in originals)
    for copy in copies.all():
        record = copy.sync_records.get()
        assert copy.status == "void"
        assert (record.status, record.qbo_id) == ("skipped", "")
        original = copy.number.split("-QBO")[0]
        assert record.details.startswith(
            f"A copy of Invoice {original}: QuickBooks invoice {copy.number.split('-QBO')[1]} "
            f"is Invoice {original}, which the portal sent before this copy was pulled."
        )
    assert all(_qbo_numbers(qbo_ui)[n] == 1 for n in NUMBERS)
    again = run_sync("both")
    assert again.status == "done", again.message
    assert all(_qbo_numbers(qbo_ui)[n] == 1 for n in NUMBERS)


def test_a_replay_of_part_of_a_batch_binds_each_invoice_to_its_own(
    run_sync, ready, make_invoice, qbo_ui, answers_lost
):
    """Three creates went in one batch whose answer was lost; the first portal invoice is then
    deleted, so the replay sends only the other two. Each must read its answer from its own
    place in the first batch, never its neighbour's."""
    invoices = [make_invoice(number=number) for number in NUMBERS[:3]]
    assert run_sync("push").status == "done"
    records = SyncRecord.objects.filter(invoice__in=invoices)
    assert {(r.status, r.uncertain) for r in records} == {("pending", True)}
    invoices[0].delete()

    answers_lost.undo()
    assert run_sync("push").status == "done"

    by_number = {r["DocNumber"]: r["Id"] for r in qbo_invoices(qbo_ui)}
    for invoice in invoices[1:]:
        record = SyncRecord.objects.get(invoice=invoice)
        assert (record.status, record.qbo_id) == ("synced", by_number[invoice.number])
    assert all(_qbo_numbers(qbo_ui)[n] == 1 for n in NUMBERS[:3])


def test_an_update_whose_answer_was_lost_is_retried_and_applied_once(
    run_sync, ready, make_invoice, qbo_ui, answers_lost
):
    answers_lost.undo()
    edited = [make_invoice(number=f"UP-{n}") for n in range(3)]
    assert run_sync("push").status == "done"
    Invoice.objects.filter(pk__in=[i.pk for i in edited]).update(customer_memo="Edited")
    real_write = QuickBooksBackend.write_batch
    lost = []

    def lost_once(self, entity, writes, **kwargs):
        answer = real_write(self, entity, writes, **kwargs)
        if entity == "Invoice" and not lost:
            lost.append([operation for operation, _body in writes])
            raise ConnectionFailedError("connection dropped after sending", uncertain=True)
        return answer

    answers_lost.setattr(QuickBooksBackend, "write_batch", lost_once)
    assert run_sync("push").status == "done"
    assert lost == [["update"] * 3]
    # Retried with its SyncToken: QuickBooks has it already, so it is compared, not re-applied.
    updates = SyncRecord.objects.filter(invoice__in=edited)
    assert {r.status for r in updates} == {"failed"}
    tokens = {r["DocNumber"]: r["SyncToken"] for r in qbo_invoices(qbo_ui)}
    updates.update(next_retry_at=None)
    assert run_sync("push").status == "done"
    assert {r.status for r in updates.all()} == {"synced"}
    for invoice in edited:
        [row] = qbo_invoices(qbo_ui, invoice.number)
        assert row["CustomerMemo"]["value"] == "Edited"
        assert row["SyncToken"] == tokens[invoice.number]


def test_reconcile_names_duplicates_in_quickbooks_and_bindings_to_missing_invoices(
    run_sync, ready, make_invoice, qbo_ui, answers_lost
):
    answers_lost.undo()
    make_invoice(number="RC-1"), make_invoice(number="RC-2")
    assert run_sync("push").status == "done"
    [original] = qbo_invoices(qbo_ui, "RC-1")
    twin = qbo_ui.create(
        "Invoice",
        {
            "CustomerRef": original["CustomerRef"],
            "TxnDate": original["TxnDate"],
            "Line": [x for x in original["Line"] if x["DetailType"] != "SubTotalLineDetail"],
            "TxnTaxDetail": {"TxnTaxCodeRef": original["TxnTaxDetail"]["TxnTaxCodeRef"]},
        },
    )
    assert twin["TotalAmt"] == original["TotalAmt"]
    [missing] = qbo_invoices(qbo_ui, "RC-2")
    qbo_ui.delete("Invoice", missing["Id"])

    report = reconcile_report(connection=ready)

    assert report.duplicates == [
        f"QuickBooks invoice {twin['Id']} ({twin.get('DocNumber') or 'no number'}) is bound "
        f"to no portal invoice and may duplicate QuickBooks invoice {original['Id']} (RC-1): "
        "same customer, date and total"
    ], report.render()
    assert (
        "RC-2",
        f"bound to QuickBooks invoice {missing['Id']}, which QuickBooks no longer has",
    ) in report.only_portal
    assert "  duplicates: 1" in report.render()


def test_a_portal_edit_made_before_the_replay_still_reaches_quickbooks(
    run_sync, ready, make_invoice, qbo_ui, answers_lost
):
    """The replay's answer is QuickBooks' invoice as first sent; an edit made in the portal
    since must still be sent, not taken as agreed."""
    invoice = make_invoice(number="LA-EDIT")
    assert run_sync("push").status == "done"
    assert SyncRecord.objects.get(invoice=invoice).uncertain
    Invoice.objects.filter(pk=invoice.pk).update(customer_memo="Edited while unconfirmed")

    answers_lost.undo()
    assert run_sync("push").status == "done"

    [row] = qbo_invoices(qbo_ui, "LA-EDIT")
    assert row["CustomerMemo"]["value"] == "Edited while unconfirmed"
    assert SyncRecord.objects.get(invoice=invoice).status == "synced"
