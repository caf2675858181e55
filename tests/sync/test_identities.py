"""Identities that survive what accountants do in QuickBooks: names compared as QuickBooks
compares them, a refused look-up failing only the invoices that need it, inactive entries
under their own names, and reasons that tell the cases apart."""

from integrations.quickbooks.client import QBOClient
from integrations.quickbooks.errors import ReconnectRequired, error_from_fault
from portal.models import Customer, Item
from sync.models import SyncRecord
from tests.sync.conftest import qbo_invoices


def test_a_name_differing_only_by_spaces_and_case_links_to_the_quickbooks_customer(
    run_sync, make_invoice, qbo_ui
):
    made = qbo_ui.create("Customer", {"DisplayName": "Harbor Freight Co"})
    invoice = make_invoice(number="ID-1", customer="  harbor freight co ")

    run = run_sync("push")

    assert run.status == "done", run.message
    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "synced", record.details
    customer = SyncRecord.objects.get(customer=invoice.customer)
    assert customer.qbo_id == made["Id"]
    names = [c["DisplayName"] for c in qbo_ui.rows("Customer")]
    assert names.count("Harbor Freight Co") == 1
    assert not any(
        n.strip().lower() == "harbor freight co" and n != "Harbor Freight Co" for n in names
    )


def test_a_refused_look_up_fails_only_the_invoices_that_need_that_customer(
    run_sync, make_invoice, qbo_ui, monkeypatch
):
    real_batch, real_query = QBOClient.batch, QBOClient.query
    odd = "Ünïcode \\ Trading"
    parser_error = {
        "type": "ValidationFault",
        "Error": [
            {
                "code": "4000",
                "Message": "Error parsing query",
                "Detail": "QueryParserError: Encountered an unexpected character",
            }
        ],
    }

    def refuse_one(self, items, **kwargs):
        results = real_batch(self, items, **kwargs)
        return [
            error_from_fault(parser_error, status=400)
            if "Trading" in item.get("query", "")
            else result
            for item, result in zip(items, results, strict=True)
        ]

    def refuse_query(self, statement):
        # A statement naming the customer is refused however it is sent: in a batch, or
        # alone (a look-up of several names at once).
        if "Trading" in statement:
            raise error_from_fault(parser_error, status=400)
        return real_query(self, statement)

    monkeypatch.setattr(QBOClient, "batch", refuse_one)
    monkeypatch.setattr(QBOClient, "query", refuse_query)
    blocked = make_invoice(number="ID-2", customer=odd)
    fine = [make_invoice(number=f"ID-3{n}", customer="Bayside Dental") for n in range(3)]

    run = run_sync("push")

    assert run.status == "done", run.message
    record = SyncRecord.objects.get(invoice=blocked)
    assert record.status == "failed"
    assert record.details.startswith(f"QuickBooks refused to look up the customer {odd}")
    assert {SyncRecord.objects.get(invoice=i).status for i in fine} == {"synced"}
    assert [r["DocNumber"] for r in qbo_invoices(qbo_ui) if r["DocNumber"].startswith("ID-3")]


def test_an_item_made_inactive_in_quickbooks_keeps_its_own_name_in_the_portal(
    run_sync, ready, qbo_ui
):
    assert run_sync("items").status == "done"
    pruning = qbo_ui.find("Item", Name="Gardening")
    qbo_ui.update("Item", {"Id": pruning["Id"], "SyncToken": pruning["SyncToken"], "Active": False})
    assert qbo_ui.find("Item", Id=pruning["Id"])["Name"] == "Gardening (deleted)"

    assert run_sync("items").status == "done"

    item = Item.objects.get(sync_records__qbo_id=pruning["Id"])
    assert (item.name, item.active) == ("Gardening", False)
    assert not Item.objects.filter(name__endswith="(deleted)").exists()
    assert not Customer.objects.filter(display_name__endswith="(deleted)").exists()


def _make_inactive(qbo_ui, entity, qbo_id):
    obj = qbo_ui.find(entity, Id=qbo_id)
    qbo_ui.update(entity, {"Id": qbo_id, "SyncToken": obj["SyncToken"], "Active": False})


def _edited_after_its_customer_went_inactive(run_sync, make_invoice, qbo_ui, number):
    """An invoice of Pier 9 Bakery, synced; the customer made inactive in QuickBooks, then
    the invoice edited in the portal."""
    invoice = make_invoice(number=number, customer="Pier 9 Bakery")
    assert run_sync("push").status == "done"
    customer = SyncRecord.objects.get(customer=invoice.customer)
    _make_inactive(qbo_ui, "Customer", customer.qbo_id)
    invoice.customer_memo = "Edited after the customer went inactive"
    invoice.save()
    return invoice


def test_an_inactive_customer_is_named_with_its_fix_not_read_as_a_deleted_invoice(
    run_sync, make_invoice, qbo_ui
):
    invoice = _edited_after_its_customer_went_inactive(run_sync, make_invoice, qbo_ui, "ID-40")

    assert run_sync("push").status == "done"

    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "failed"
    assert record.details == (
        "The customer Pier 9 Bakery is inactive in QuickBooks, so QuickBooks refused invoice "
        "ID-40: reactivate customer Pier 9 Bakery in QuickBooks, then press Retry."
    )
    assert "void" not in record.details.lower()


def test_an_inactive_item_is_named_with_its_fix(run_sync, make_invoice, qbo_ui):
    invoice = make_invoice(number="ID-41", lines=[("Sourdough starter kit", 1, "20.00", False)])
    assert run_sync("push").status == "done"
    line = invoice.lines.get()
    item = SyncRecord.objects.get(item=line.item)
    _make_inactive(qbo_ui, "Item", item.qbo_id)
    invoice.customer_memo = "Edited after the item went inactive"
    invoice.save()

    assert run_sync("push").status == "done"

    record = SyncRecord.objects.get(invoice=invoice)
    assert record.details == (
        f"The item {line.item.name} is inactive in QuickBooks, so QuickBooks refused invoice "
        f"ID-41: reactivate item {line.item.name} in QuickBooks, then press Retry."
    )


def test_a_deleted_invoice_is_named_as_deleted_with_a_safe_fix(run_sync, make_invoice, qbo_ui):
    invoice = make_invoice(number="ID-42")
    assert run_sync("push").status == "done"
    record = SyncRecord.objects.get(invoice=invoice)
    qbo_ui.delete("Invoice", record.qbo_id)
    invoice.customer_memo = "Edited after QuickBooks deleted it"
    invoice.save()

    assert run_sync("push").status == "done"

    record.refresh_from_db()
    assert record.details.startswith("Invoice ID-42 was deleted in QuickBooks")
    assert len(qbo_invoices(qbo_ui, "ID-42")) == 0


def test_a_refusal_retrying_cannot_fix_is_not_sent_again_until_something_changes(
    run_sync, make_invoice, qbo_ui, qbo
):
    invoice = make_invoice(number="ID-50", customer="Dockside: Fish Market")
    assert run_sync("push").status == "done"
    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "failed"
    first = record.details

    qbo.app.clear_log()
    for _ in range(3):
        assert run_sync("push").status == "done"
    # Nothing was sent: neither the customer nor the invoice.
    assert [r for r in qbo.app.requests_log() if "/v3/" in r.get("path", "")] == []
    record.refresh_from_db()
    assert (record.status, record.details) == ("failed", first)

    # The customer is fixed in the portal: what the invoice uses changed, so it goes.
    invoice.customer.display_name = "Dockside Fish Market"
    invoice.customer.save()
    assert run_sync("push").status == "done"
    record.refresh_from_db()
    assert record.status == "synced", record.details
    assert len(qbo_invoices(qbo_ui, "ID-50")) == 1


def test_a_sub_customer_shows_its_parent_in_the_portal(
    run_sync, ready, qbo_ui, client, user_factory
):
    from django.urls import reverse

    from portal.roles import BILLING_STAFF

    parent = qbo_ui.create("Customer", {"DisplayName": "Evergreen Holdings"})
    child = qbo_ui.create(
        "Customer",
        {"DisplayName": "Evergreen Garden Project", "ParentRef": {"value": parent["Id"]}},
    )
    assert child["FullyQualifiedName"] == "Evergreen Holdings:Evergreen Garden Project"
    assert run_sync("pull").status == "done"

    project = Customer.objects.get(display_name="Evergreen Garden Project")
    assert project.parent.display_name == "Evergreen Holdings"
    assert Customer.objects.get(display_name="Evergreen Holdings").parent is None
    client.force_login(user_factory(role=BILLING_STAFF))
    page = client.get(reverse("admin:portal_customer_changelist"), {"q": "Evergreen"})
    text = page.content.decode()
    assert "Evergreen Garden Project" in text and text.count("Evergreen Holdings") >= 2
    # A second pull with nothing changed changes nothing.
    again = run_sync("pull")
    assert (again.created, again.updated) == (0, 0)


def _merge(qbo_ui, from_id, into_id):
    import requests

    base = qbo_ui.base.rsplit("/realms/", 1)[0]
    response = requests.post(
        f"{base}/realms/{qbo_ui.realm_id}/customer/merge",
        json={"from": from_id, "into": into_id},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def test_a_customer_merged_in_quickbooks_moves_its_portal_invoices_to_the_survivor(
    run_sync, make_invoice, qbo_ui
):
    from sync.models import SyncEvent

    survivor_obj = qbo_ui.create("Customer", {"DisplayName": "Merge Target Co"})
    assert run_sync("pull").status == "done"
    sent = [make_invoice(number=f"MG-{n}", customer="Merge Source Co") for n in range(2)]
    assert run_sync("push").status == "done"
    source = Customer.objects.get(display_name="Merge Source Co")
    source_id = SyncRecord.objects.get(customer=source).qbo_id
    waiting = make_invoice(number="MG-9", customer="Merge Source Co")

    _merge(qbo_ui, source_id, survivor_obj["Id"])
    assert run_sync("both").status == "done"
    assert run_sync("both").status == "done"

    survivor = Customer.objects.get(display_name="Merge Target Co")
    for invoice in [*sent, waiting]:
        invoice.refresh_from_db()
        assert invoice.customer == survivor, invoice.number
        [row] = qbo_invoices(qbo_ui, invoice.number)
        assert row["CustomerRef"]["value"] == survivor_obj["Id"]
        assert SyncRecord.objects.get(invoice=invoice).status == "synced"
        events = SyncEvent.objects.filter(record__invoice=invoice, action="pulled")
        assert any(
            e.message
            == f"Invoice {invoice.number} moved to customer Merge Target Co: Merge Source Co "
            "was merged into it in QuickBooks."
            for e in events
        ), [e.message for e in events]
    source.refresh_from_db()
    assert source.active is False
    record = SyncRecord.objects.get(customer=source)
    assert (record.qbo_id, record.status) == ("", "skipped")
    assert record.details.startswith("Merged into Merge Target Co in QuickBooks")


def test_a_customer_named_as_a_vendor_gets_the_reason_that_names_the_vendor_list(
    run_sync, make_invoice, qbo_ui
):
    qbo_ui.create("Vendor", {"DisplayName": "Harbor Supply"})
    invoice = make_invoice(number="ID-60", customer="Harbor Supply")

    assert run_sync("push").status == "done"

    customer = SyncRecord.objects.get(customer=invoice.customer)
    expected = (
        "The name Harbor Supply is already used by a vendor in QuickBooks: customers, vendors "
        "and employees share one list of names there. Rename the customer here (for example "
        "Harbor Supply (customer)), or the vendor in QuickBooks, then press Retry"
    )
    assert customer.details == expected
    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "failed"
    assert expected in record.details


def test_a_reconnect_needed_while_telling_the_cases_apart_stops_the_run_not_the_invoice(
    run_sync, make_invoice, qbo_ui, monkeypatch
):
    """QuickBooks refuses the update (610), and the read that tells a deleted invoice from an
    inactive customer is refused for the connection: the run stops for a reconnect, instead
    of failing the invoice with a reason nobody checked."""
    invoice = _edited_after_its_customer_went_inactive(run_sync, make_invoice, qbo_ui, "ID-42")

    def refused(self, entity, id):
        raise ReconnectRequired(reason="QuickBooks must be reconnected.")

    monkeypatch.setattr(QBOClient, "read", refused)
    run = run_sync("push")

    assert run.status == "failed" and "reconnect" in run.message.lower(), run.message
    record = SyncRecord.objects.get(invoice=invoice)
    assert "deleted in QuickBooks" not in record.details
    assert record.status != "failed", record.details
