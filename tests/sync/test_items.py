from decimal import Decimal

from portal.models import Item
from sync.models import SyncConfiguration, SyncRecord


def test_quick_sync_pushes_local_items_and_pulls_qbo_items(run_sync, ready, qbo_ui):
    Item.objects.create(name="Drone survey", type="service", sales_price=Decimal("300"))
    Item.objects.create(
        name="Irrigation timer",
        type="inventory",
        sales_price=Decimal("89.50"),
        purchase_cost=Decimal("40"),
        quantity_on_hand=Decimal("12"),
    )
    run = run_sync("items")
    assert run.status == "done", run.message
    drone = qbo_ui.find("Item", Name="Drone survey")
    assert drone["Type"] == "Service"
    assert drone["IncomeAccountRef"]["value"] == ready.income_account.qbo_id
    timer = qbo_ui.find("Item", Name="Irrigation timer")
    assert timer["Type"] == "Inventory"
    assert timer["AssetAccountRef"]["value"] == ready.asset_account.qbo_id
    assert timer["ExpenseAccountRef"]["value"] == ready.expense_account.qbo_id
    assert Decimal(str(timer["QtyOnHand"])) == 12
    # QuickBooks' own items are now in the portal, linked.
    pump = Item.objects.get(name="Pump")
    assert pump.type == "inventory"
    assert SyncRecord.objects.get(item=pump).status == "synced"


def test_items_need_an_income_account(run_sync, ready):
    ready.income_account = None
    ready.save()
    item = Item.objects.create(name="Drone survey", sales_price=Decimal("300"))
    run_sync("items")
    record = SyncRecord.objects.get(item=item)
    assert record.status == "failed"
    assert record.details == (
        "Item Drone survey cannot be created in QuickBooks: no Income account is chosen. "
        "Pick one on the Journals tab."
    )


def test_one_way_quick_sync_does_not_pull_items(run_sync, ready):
    SyncConfiguration.objects.update_or_create(connection=ready, defaults={"sync_type": "one_way"})
    run_sync("items")
    assert not Item.objects.filter(name="Pump").exists()


def test_auto_create_off_fails_the_invoice_with_the_fix(run_sync, ready, make_invoice):
    SyncConfiguration.objects.update_or_create(
        connection=ready, defaults={"auto_create_customers": False}
    )
    invoice = make_invoice(customer="Brand New Customer")
    run_sync("push")
    record = SyncRecord.objects.get(invoice=invoice)
    assert record.status == "failed"
    assert "creating customers automatically is off" in record.details
