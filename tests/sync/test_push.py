from decimal import Decimal

from portal.models import Invoice
from sync.models import SyncRecord
from tests.sync.conftest import qbo_invoices


def test_new_invoice_is_pushed_with_its_customer_and_item(run_sync, make_invoice, qbo_ui):
    invoice = make_invoice(
        number="INV-2001",
        customer="Cooper's Hardware",
        lines=[("Site survey", 1, "420.00", True), ("Garden lights", 3, "0.335", False)],
        customer_memo="Thanks!",
    )
    run = run_sync("push")
    assert run.status == "done", run.message
    assert (run.created, run.failed) == (3 + 1, 0)  # customer, 2 items, invoice
    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "synced"
    assert record.details == ""
    [obj] = qbo_invoices(qbo_ui, "INV-2001")
    assert obj["Id"] == record.qbo_id
    assert obj["CustomerRef"]["name"] == "Cooper's Hardware"
    assert obj["CustomerMemo"]["value"] == "Thanks!"
    # 420.00 taxed at 8% = 33.60, plus 1.01 untaxed.
    assert Decimal(str(obj["TotalAmt"])) == Decimal("454.61") == invoice.total
    customer = qbo_ui.find("Customer", DisplayName="Cooper's Hardware")
    assert customer is not None


def test_edited_invoice_updates_the_same_qbo_invoice(run_sync, make_invoice, qbo_ui):
    invoice = make_invoice(number="INV-2002")
    run_sync("push")
    invoice.customer_memo = "Updated memo"
    invoice.save()
    run = run_sync("push")
    assert (run.updated, run.created) == (1, 0)
    [obj] = qbo_invoices(qbo_ui, "INV-2002")
    assert obj["CustomerMemo"]["value"] == "Updated memo"
    assert obj["SyncToken"] == "1"


def test_nothing_changed_means_no_write(run_sync, make_invoice, qbo):
    make_invoice()
    run_sync("push")
    qbo.app.clear_log()
    run = run_sync("push")
    assert (run.created, run.updated, run.unchanged) == (0, 0, 1)
    writes = [r for r in qbo.app.requests_log() if r.get("method") == "POST"]
    assert writes == []


def test_existing_qbo_customer_is_matched_by_name_with_an_apostrophe(
    run_sync, make_invoice, qbo_ui
):
    make_invoice(customer="Amy's Bird Sanctuary")
    run = run_sync("push")
    assert run.failed == 0, list(run.events.values_list("message", flat=True))
    matches = [c for c in qbo_ui.rows("Customer") if c["DisplayName"] == "Amy's Bird Sanctuary"]
    assert len(matches) == 1


def test_unmapped_tax_rate_fails_without_a_request(run_sync, make_invoice, qbo):
    from portal.models import TaxRate

    invoice = make_invoice()
    line = invoice.lines.first()
    line.tax_rate = TaxRate.objects.create(name="Tucson City", percent=Decimal("0.5"))
    line.save()
    qbo.app.clear_log()
    run = run_sync("push")
    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "failed"
    assert record.details == (
        "Tax rate Tucson City is not mapped to a QuickBooks tax code, so the invoice was not "
        "sent (it would have gone untaxed). Map it on the Mapping > Tax tab, then retry."
    )
    assert run.failed == 1
    assert not any("/invoice" in r.get("path", "") for r in qbo.app.requests_log())


def test_doc_number_too_long_fails_in_preflight(run_sync, make_invoice):
    invoice = make_invoice(number="INV-2026-0000000000001")
    run_sync("push")
    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "failed"
    assert "QuickBooks allows at most 21 in DocNumber" in record.details


def test_customer_name_qbo_refuses_fails_with_plain_reason(run_sync, make_invoice, qbo_ui):
    # A vendor-like clash: the name exists in QBO on an inactive customer... simplest real case:
    # a name with a colon is refused by QuickBooks, caught before any request.
    invoice = make_invoice(customer="Smith: Jobs")
    run_sync("push")
    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "failed"
    assert "contains a colon, tab or line break" in record.details


def test_duplicate_name_refused_by_qbo_names_the_fix(run_sync, make_invoice, qbo_ui, monkeypatch):
    # Someone creates the customer in QuickBooks between the lookup and the create (or it is
    # a vendor's name, which the customer lookup cannot see): QuickBooks refuses with 6240.
    from sync.exporter import Exporter

    real_lookup = Exporter.lookup_by_name

    def lookup_then_clash(self, kind, locals_):
        if kind != "customer":
            return real_lookup(self, kind, locals_)
        qbo_ui.create("Customer", {"DisplayName": "Northwind Traders"})
        return {}, {}

    monkeypatch.setattr(Exporter, "lookup_by_name", lookup_then_clash)
    invoice = make_invoice(customer="Northwind Traders")
    run_sync("push")
    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "failed"
    assert "already exists in QuickBooks (possibly a vendor or employee)" in record.details


def test_void_in_portal_voids_in_qbo(run_sync, make_invoice, qbo_ui):
    invoice = make_invoice(number="INV-2003")
    run_sync("push")
    Invoice.objects.filter(pk=invoice.pk).update(status="void")
    run = run_sync("push")
    assert run.updated == 1
    [obj] = qbo_invoices(qbo_ui, "INV-2003")
    assert Decimal(str(obj["TotalAmt"])) == 0
    assert SyncRecord.objects.get(invoice=invoice).status == "synced"


def test_lost_answer_is_settled_by_replay_without_duplicate(run_sync, make_invoice, qbo, qbo_ui):
    invoice = make_invoice(number="INV-2004")
    run_sync("push")  # customer and item exist now
    invoice2 = make_invoice(number="INV-2005")
    real_draw = qbo.app.faults.draw
    qbo.app.faults.draw = lambda: "lost"
    try:
        run = run_sync("push")
    finally:
        qbo.app.faults.draw = real_draw
    record = SyncRecord.objects.get(invoice=invoice2)
    assert record.uncertain is True
    assert record.status == "pending"
    assert "not known yet whether the change was saved" in record.details
    assert run.status == "done"
    run = run_sync("push")
    record.refresh_from_db()
    assert record.status == "synced" and not record.uncertain
    assert len(qbo_invoices(qbo_ui, "INV-2005")) == 1
    assert record.qbo_id == qbo_invoices(qbo_ui, "INV-2005")[0]["Id"]
    assert invoice.pk != invoice2.pk


def test_one_way_mode_never_writes_into_the_portal(run_sync, ready, qbo_ui):
    from portal.models import Customer
    from sync.models import SyncConfiguration

    SyncConfiguration.objects.update_or_create(connection=ready, defaults={"sync_type": "one_way"})
    before = (Invoice.objects.count(), Customer.objects.count())
    run = run_sync("both")
    assert run.status == "done"
    assert (Invoice.objects.count(), Customer.objects.count()) == before


def test_open_in_quickbooks_link_shows_the_invoice(run_sync, make_invoice, ready, qbo):
    import requests

    from integrations.quickbooks.endpoints import endpoints_for

    invoice = make_invoice(number="INV-2099")
    run_sync("push")
    record = SyncRecord.objects.get(invoice=invoice)
    url = endpoints_for("emulator").invoice_web_url(ready.realm_id, record.qbo_id)
    page = requests.get(url, timeout=10)
    assert page.status_code == 200
    assert "Invoice INV-2099" in page.text
    assert "Bayside Dental" in page.text
