"""Item mappers: a portal item and a QuickBooks Item to the neutral form, and the neutral
form to a QuickBooks Item body with its accounts (qbo-api.md section 8, Item)."""

from __future__ import annotations

from decimal import Decimal

from sync.mappers.common import active_name, number

ITEM_TYPES_TO_QBO = {
    "service": "Service",
    "non_inventory": "NonInventory",
    "inventory": "Inventory",
}
ITEM_TYPES_FROM_QBO = {v: k for k, v in ITEM_TYPES_TO_QBO.items()}


def item_neutral_local(item) -> dict:
    return {
        "name": item.name,
        "sku": item.sku,
        "type": item.type,
        "description": item.description,
        "sales_price": number(item.sales_price),
        "purchase_cost": number(item.purchase_cost),
        "taxable": item.taxable,
        "active": item.active,
    }


def item_neutral_qbo(obj: dict) -> dict:
    return {
        "name": active_name(obj, "Name"),
        "sku": obj.get("Sku", "") or "",
        "type": ITEM_TYPES_FROM_QBO.get(obj.get("Type", ""), "service"),
        "description": obj.get("Description", "") or "",
        "sales_price": number(obj.get("UnitPrice", 0)),
        "purchase_cost": number(obj.get("PurchaseCost", 0)),
        "taxable": bool(obj.get("Taxable", False)),
        "active": obj.get("Active", True) is not False,
    }


def item_to_qbo(
    neutral: dict,
    *,
    income_account: str,
    expense_account: str | None,
    asset_account: str | None,
    quantity_on_hand=None,
    start_date: str | None = None,
) -> dict:
    body: dict = {
        "Name": neutral["name"],
        "Type": ITEM_TYPES_TO_QBO[neutral["type"]],
        "Description": neutral["description"],
        "UnitPrice": float(Decimal(neutral["sales_price"])),
        "PurchaseCost": float(Decimal(neutral["purchase_cost"])),
        "Taxable": neutral["taxable"],
        "Active": neutral["active"],
        "IncomeAccountRef": {"value": income_account},
    }
    if neutral["sku"]:
        body["Sku"] = neutral["sku"]
    if neutral["type"] == "inventory":
        body["TrackQtyOnHand"] = True
        body["ExpenseAccountRef"] = {"value": expense_account}
        body["AssetAccountRef"] = {"value": asset_account}
        if quantity_on_hand is not None:
            body["QtyOnHand"] = float(Decimal(str(quantity_on_hand)))
            body["InvStartDate"] = start_date
    return body
