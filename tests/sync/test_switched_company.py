"""After switching QuickBooks company, the old company's records are not pushed into the new
one by themselves: bindings are per company, so *not synced* for the new company must not mean
"send it"."""

from __future__ import annotations

import pytest

from integrations import services
from integrations.models import Connection
from portal.models import Item
from sync.models import SyncRecord
from sync.selectors import invoice_status_counts, invoices_linked_elsewhere
from sync.services import sync_run
from tests.qbo import EmulatorUI, set_up_for_sync
from tests.sync.conftest import qbo_invoices


@pytest.fixture
def switched(ready, run_sync, make_invoice, qbo):
    """Craig's (``ready``) synced both ways, then the switch to the second sandbox company:
    Craig's disconnected, the new company set up and started."""
    make_invoice(number="INV-A1")
    lonely = Item.objects.create(name="Only at Craigs", sales_price=3)
    assert run_sync("both").status == "done"
    SyncRecord.objects.create(
        connection=ready, object_type="item", item=lonely, qbo_id="9999", status="synced"
    )
    services.connection_disconnect(connection=ready)
    qbo.app.reset_realm(qbo.realm_ids[1])
    from tests.qbo import connect_with_tokens

    other = set_up_for_sync(connect_with_tokens(qbo, qbo.realm_ids[1]))
    return other


def push(connection, trigger="command", **kwargs):
    client = services.connection_client(connection=connection, sleep=lambda seconds: None)
    return sync_run(connection=connection, trigger=trigger, client=client, **kwargs)


def test_a_push_to_the_new_company_leaves_the_old_companys_invoices_out(
    switched, ready, make_invoice, qbo
):
    other_ui = EmulatorUI(qbo, qbo.realm_ids[1])
    from_craigs = SyncRecord.objects.filter(connection=ready, invoice__isnull=False).count()
    assert from_craigs > 1  # the one sent and those pulled from Craig's
    make_invoice(number="INV-B1")

    run = push(switched, direction="push")

    assert run.status == "done", run.message
    assert qbo_invoices(other_ui, "INV-B1")
    assert qbo_invoices(other_ui, "INV-A1") == []
    bound = SyncRecord.objects.filter(connection=switched, object_type="invoice")
    assert list(bound.values_list("invoice__number", flat=True)) == ["INV-B1"]
    assert invoices_linked_elsewhere(connection=switched) == from_craigs
    # The dashboard's "not synced" does not count them either.
    assert invoice_status_counts(connection=switched).get("not_synced", 0) == 0


def test_saving_an_old_companys_invoice_does_not_send_it_to_the_new_one(switched, ready, qbo):
    other_ui = EmulatorUI(qbo, qbo.realm_ids[1])
    invoice = SyncRecord.objects.get(connection=ready, invoice__number="INV-A1").invoice

    push(switched, trigger="save", direction="push", invoice_ids=[invoice.pk])

    assert qbo_invoices(other_ui, "INV-A1") == []


def test_staff_send_one_on_purpose_with_its_own_sync_now(switched, ready, qbo):
    other_ui = EmulatorUI(qbo, qbo.realm_ids[1])
    invoice = SyncRecord.objects.get(connection=ready, invoice__number="INV-A1").invoice

    run = push(switched, trigger="button", direction="push", invoice_ids=[invoice.pk])

    assert run.status == "done", run.message
    assert len(qbo_invoices(other_ui, "INV-A1")) == 1
    # Linked to both companies now, and so pushed to the new one like any other from here on.
    assert SyncRecord.objects.filter(invoice=invoice).count() == 2
    assert invoices_linked_elsewhere(connection=switched) == (
        SyncRecord.objects.filter(connection=ready, invoice__isnull=False).count() - 1
    )


def test_quick_sync_does_not_push_the_old_companys_items(switched, qbo):
    other_ui = EmulatorUI(qbo, qbo.realm_ids[1])
    fresh = Item.objects.create(name="New after the switch", sales_price=2)

    run = push(switched, trigger="button", direction="items")

    assert run.status == "done", run.message
    assert other_ui.find("Item", Name="New after the switch") is not None
    assert other_ui.find("Item", Name="Only at Craigs") is None
    assert SyncRecord.objects.filter(connection=switched, item=fresh).exists()
    assert not SyncRecord.objects.filter(connection=switched, item__name="Only at Craigs").exists()
    assert Connection.objects.get(pk=switched.pk).status == "connected"
