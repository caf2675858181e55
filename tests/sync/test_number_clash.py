"""An invoice number taken on both sides: held for review with both invoices named, QuickBooks'
number never changed, and staff choose to link them as one or renumber the portal's."""

import pytest

from portal.models import Invoice
from sync.models import SyncRecord
from sync.services import ClashError, number_clash_link, number_clash_renumber
from tests.sync.conftest import qbo_invoices


def _accountants_invoice(qbo_ui, number, amount=120):
    customer = qbo_ui.find("Customer", DisplayName="Amy's Bird Sanctuary")
    item = qbo_ui.find("Item", Name="Hours")
    return qbo_ui.create(
        "Invoice",
        {
            "DocNumber": number,
            "CustomerRef": {"value": customer["Id"]},
            "CustomerMemo": {"value": "Made in QuickBooks"},
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": amount,
                    "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}},
                }
            ],
        },
    )


@pytest.fixture
def clash(run_sync, ready, make_invoice, qbo_ui):
    """Portal invoice 1050, not in QuickBooks yet, and an invoice 1050 made in QuickBooks."""
    from sync.models import SyncConfiguration

    # The portal's invoice waits (no push-on-save here); the pull meets QuickBooks' one.
    SyncConfiguration.objects.filter(connection=ready).update(push_on_save=False)
    portal = make_invoice(number="1050")
    made = _accountants_invoice(qbo_ui, "1050")
    assert run_sync("pull").status == "done"
    return portal, made


def test_a_number_taken_on_both_sides_is_held_and_never_renamed_in_quickbooks(
    clash, run_sync, qbo_ui
):
    portal, made = clash
    copy_record = SyncRecord.objects.get(qbo_id=made["Id"])
    assert copy_record.status == "clash"
    assert copy_record.invoice.number == f"1050-QBO{made['Id']}"
    assert copy_record.details.startswith("Invoice number 1050 is taken on both sides")
    held = SyncRecord.objects.get(invoice=portal)
    assert (held.status, held.qbo_id) == ("clash", "")
    assert f"kept in the portal as 1050-QBO{made['Id']}" in held.details

    for _ in range(3):
        assert run_sync("both").status == "done"
    [row] = qbo_invoices(qbo_ui, "1050")
    assert row["Id"] == made["Id"]
    assert not [r for r in qbo_invoices(qbo_ui) if "QBO" in (r.get("DocNumber") or "")]
    assert SyncRecord.objects.get(invoice=portal).status == "clash"


def test_link_as_one_takes_quickbooks_version_and_removes_the_copy(clash, run_sync, qbo_ui):
    portal, made = clash
    record = SyncRecord.objects.get(qbo_id=made["Id"])
    copy_pk = record.invoice_id

    number_clash_link(record=record)

    record.refresh_from_db()
    assert (record.invoice_id, record.status) == (portal.pk, "synced")
    portal.refresh_from_db()
    assert portal.customer_memo == "Made in QuickBooks"
    assert str(portal.total) == "120.00"
    assert not Invoice.objects.filter(pk=copy_pk).exists()
    assert run_sync("both").status == "done"
    [row] = qbo_invoices(qbo_ui, "1050")
    assert row["SyncToken"] == made["SyncToken"]
    assert SyncRecord.objects.filter(invoice=portal).count() == 1


def test_renumbering_the_portals_invoice_sends_it_and_keeps_quickbooks_number(
    clash, run_sync, qbo_ui
):
    portal, made = clash
    record = SyncRecord.objects.get(qbo_id=made["Id"])
    with pytest.raises(ClashError, match="Number 1050 is taken in the portal too"):
        number_clash_renumber(record=record, number="1050")

    run = number_clash_renumber(record=record, number="1050-A")

    assert run.status == "done", run.message
    portal.refresh_from_db()
    assert portal.number == "1050-A"
    assert SyncRecord.objects.get(invoice=portal).status == "synced"
    record.refresh_from_db()
    assert (record.invoice.number, record.status) == ("1050", "synced")
    assert [r["Id"] for r in qbo_invoices(qbo_ui, "1050")] == [made["Id"]]
    assert len(qbo_invoices(qbo_ui, "1050-A")) == 1
    assert run_sync("both").status == "done"
    assert [r["Id"] for r in qbo_invoices(qbo_ui, "1050")] == [made["Id"]]


def test_renumbered_in_quickbooks_the_hold_ends_and_both_go_on(clash, run_sync, qbo_ui):
    portal, made = clash
    current = qbo_ui.find("Invoice", Id=made["Id"])
    qbo_ui.update(
        "Invoice", {"Id": made["Id"], "SyncToken": current["SyncToken"], "DocNumber": "1050-Q"}
    )

    assert run_sync("both").status == "done"

    record = SyncRecord.objects.get(qbo_id=made["Id"])
    assert (record.invoice.number, record.status) == ("1050-Q", "synced")
    assert run_sync("push").status == "done"
    assert SyncRecord.objects.get(invoice=portal).status == "synced"
    numbers = sorted(r["DocNumber"] for r in qbo_invoices(qbo_ui))
    assert [n for n in numbers if n.startswith("1050")] == ["1050", "1050-Q"]


def test_a_copy_number_itself_taken_gets_the_next_free_one(run_sync, ready, make_invoice, qbo_ui):
    """The portal already has both 1060 and 1060-QBO<id>: QuickBooks' 1060 is kept under
    1060-QBO<id>-2, and the pull ends without an error."""
    from sync.models import SyncConfiguration

    SyncConfiguration.objects.filter(connection=ready).update(push_on_save=False)
    made = _accountants_invoice(qbo_ui, "1060")
    make_invoice(number="1060")
    make_invoice(number=f"1060-QBO{made['Id']}")

    assert run_sync("pull").status == "done"

    copy_record = SyncRecord.objects.get(qbo_id=made["Id"])
    assert copy_record.status == "clash"
    assert copy_record.invoice.number == f"1060-QBO{made['Id']}-2"
    assert Invoice.objects.filter(number__startswith="1060").count() == 3
