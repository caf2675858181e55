"""Items: bound by name, created in QuickBooks with the Journals' accounts, pulled back."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from portal.models import Item
from sync.entities.base import NameListAdapter
from sync.mappers import item as mapper

# QuickBooks needs an inventory start date; without a first invoice date this one is used.
DEFAULT_INVENTORY_START = date(2000, 1, 1)


class ItemAdapter(NameListAdapter):
    kind = "item"
    qbo_entity = "Item"
    model = Item
    name_field = "name"
    qbo_name_field = "Name"
    name_label = "Name"
    name_max = 100  # QuickBooks' Item Name limit
    auto_create_setting = "auto_create_items"

    def create_preflight(self, local: Item) -> str:
        """QuickBooks needs the Journals' accounts to create an item."""
        c = self.ctx.connection
        if not c.income_account_id:
            return (
                f"Item {local.name} cannot be created in QuickBooks: no Income account is "
                "chosen. Pick one on the Journals tab."
            )
        if local.type == Item.Type.INVENTORY and not (c.expense_account_id and c.asset_account_id):
            return (
                f"Inventory item {local.name} needs an Expense and an Inventory Asset account: "
                "pick them on the Journals tab."
            )
        return ""

    def neutral_local(self, local: Item) -> dict:
        return mapper.item_neutral_local(local)

    def neutral_qbo(self, obj: dict) -> dict:
        return mapper.item_neutral_qbo(obj)

    def body(self, local: Item) -> dict:
        c = self.ctx.connection
        start = self.ctx.config.first_invoice_date or DEFAULT_INVENTORY_START
        return mapper.item_to_qbo(
            mapper.item_neutral_local(local),
            income_account=c.income_account.qbo_id if c.income_account else "",
            expense_account=c.expense_account.qbo_id if c.expense_account else None,
            asset_account=c.asset_account.qbo_id if c.asset_account else None,
            quantity_on_hand=local.quantity_on_hand,
            start_date=start.isoformat(),
        )

    def apply_remote(self, local: Item, neutral: dict) -> None:
        local.name = neutral["name"]
        local.sku = neutral["sku"]
        local.type = neutral["type"]
        local.description = neutral["description"]
        local.sales_price = Decimal(neutral["sales_price"])
        local.purchase_cost = Decimal(neutral["purchase_cost"])
        local.taxable = neutral["taxable"]
        local.active = neutral["active"]
        local.save()

    def sellable(self, obj: dict) -> bool:
        """Whether a QuickBooks item is of a type the portal keeps (not a category or bundle)."""
        return obj.get("Type") in mapper.ITEM_TYPES_FROM_QBO
