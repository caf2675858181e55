"""Pure mappers between portal records, QuickBooks objects and a neutral form.

Both sides map into the same *neutral form* (plain JSON values, only the mapped fields), so
"did this side change since both agreed?" is a dict comparison, and an echo of the sync's own
write compares equal and is ignored. ``*_to_qbo`` builds request bodies from a neutral form.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal

from integrations.fieldmap import CUSTOM_PREFIX
from portal.money import round_money

QUANTITY_PLACES = Decimal("0.0001")


def number(value) -> str:
    """A decimal as a canonical string ("3", "0.335", "150"), whatever its source type."""
    if value is None or value == "":
        return "0"
    d = Decimal(str(value)).quantize(QUANTITY_PLACES).normalize()
    text = format(d, "f")
    return "0" if text in ("-0", "") else text


def money(value) -> str:
    return format(round_money(Decimal(str(value or 0))), "f")


def neutral_hash(neutral: dict) -> str:
    return hashlib.sha256(json.dumps(neutral, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class InvoiceMapping:
    """The field mapping in effect for one connection: local field -> (qbo field, direction)."""

    fields: dict[str, tuple[str, str]] = field(default_factory=dict)

    def to_qbo(self, name: str) -> bool:
        qbo, direction = self.fields.get(name, ("", ""))
        return bool(qbo) and direction in ("both", "to_qbo")

    def from_qbo(self, name: str) -> bool:
        qbo, direction = self.fields.get(name, ("", ""))
        return bool(qbo) and direction in ("both", "from_qbo")

    def qbo_field(self, name: str) -> str:
        return self.fields.get(name, ("", ""))[0]

    @property
    def mapped(self) -> list[str]:
        return [name for name, (qbo, _) in self.fields.items() if qbo]


# --- Portal -> neutral ------------------------------------------------------------------------


def invoice_neutral_local(
    invoice,
    mapping: InvoiceMapping,
    *,
    tax_codes: dict[int, str],
    customer_ids: dict[int, str] | None = None,
    item_ids: dict[int, str] | None = None,
) -> dict:
    """The neutral form of a portal invoice (lines, customer and tax rates prefetched).

    ``tax_codes`` maps a portal TaxRate id to its QuickBooks TaxCode id (the tax mapping).
    Customers and items are named by their QuickBooks id once bound (``customer_ids`` /
    ``item_ids``: portal id -> QBO id), so renaming one is not a change of the invoice.
    """
    customer_ids = customer_ids or {}
    item_ids = item_ids or {}
    lines = list(invoice.lines.all())
    values = {
        "number": invoice.number,
        "issue_date": invoice.issue_date.isoformat() if invoice.issue_date else None,
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
        "customer": _party(customer_ids.get(invoice.customer_id), invoice.customer.display_name),
        "customer_memo": invoice.customer_memo,
        "private_note": invoice.private_note,
        "billing_email": invoice.billing_email,
        "reference": invoice.reference,
        "currency": invoice.currency,
        "lines": [
            {
                "item": _party(item_ids.get(line.item_id), line.item.name),
                "description": line.description,
                "quantity": number(line.quantity),
                "unit_price": number(line.unit_price),
                "amount": money(line.amount),
                "taxable": line.tax_rate_id is not None,
            }
            for line in lines
        ],
    }
    neutral = {name: values[name] for name in mapping.mapped if name in values}
    if "lines" in neutral:
        codes = sorted({tax_codes.get(line.tax_rate_id, "?") for line in lines if line.tax_rate_id})
        neutral["tax_code"] = codes[0] if len(codes) == 1 else ",".join(codes)
    neutral["void"] = invoice.status == "void"
    return _void_form(neutral)


def _void_form(neutral: dict) -> dict:
    """A void invoice is compared as void only: QuickBooks zeroes its lines and notes
    "Voided", the portal keeps them for the record, and neither difference is a change."""
    if neutral.get("void"):
        return {k: neutral[k] for k in ("number", "customer", "void") if k in neutral}
    return neutral


# --- QuickBooks -> neutral --------------------------------------------------------------------


def _party(qbo_id: str | None, name: str) -> str:
    return f"qbo:{qbo_id}" if qbo_id else f"name:{name}"


def _ref(ref: dict | None) -> str:
    return _party(str(ref.get("value")), "") if ref else ""


def qbo_is_void(obj: dict) -> bool:
    """QuickBooks keeps a voided invoice with zero amounts and "Voided" in its PrivateNote.

    How CDC reports voids is UNCONFIRMED (qbo-api.md §4): Ledgerlink treats an invoice whose
    total is zero, whose sales lines are all zero and whose PrivateNote starts with "Voided" as
    void, which is how QuickBooks' own void looks when read back.
    """
    if obj.get("status") == "Deleted":
        return True
    note = (obj.get("PrivateNote") or "").strip().lower()
    zero = Decimal(str(obj.get("TotalAmt", 0) or 0)) == 0
    return zero and note.startswith("voided")


def invoice_neutral_qbo(
    obj: dict,
    mapping: InvoiceMapping,
    *,
    customer_names: dict[str, str] | None = None,
    item_names: dict[str, str] | None = None,
) -> dict:
    """The neutral form of a QuickBooks invoice (customer and items by QuickBooks id)."""
    custom = {
        f"{CUSTOM_PREFIX}{c.get('DefinitionId')}": c.get("StringValue", "")
        for c in obj.get("CustomField") or []
    }
    lines = []
    taxable_any = False
    for line in obj.get("Line") or []:
        if line.get("DetailType") != "SalesItemLineDetail":
            continue
        detail = line.get("SalesItemLineDetail") or {}
        taxable = (detail.get("TaxCodeRef") or {}).get("value") == "TAX"
        taxable_any = taxable_any or taxable
        lines.append(
            {
                "item": _ref(detail.get("ItemRef")),
                "description": line.get("Description", "") or "",
                "quantity": number(detail.get("Qty", 0)),
                "unit_price": number(detail.get("UnitPrice", 0)),
                "amount": money(line.get("Amount", 0)),
                "taxable": taxable,
            }
        )
    values = {
        "number": obj.get("DocNumber", "") or "",
        "issue_date": obj.get("TxnDate"),
        "due_date": obj.get("DueDate"),
        "customer": _ref(obj.get("CustomerRef")),
        "customer_memo": (obj.get("CustomerMemo") or {}).get("value", ""),
        "private_note": obj.get("PrivateNote", "") or "",
        "billing_email": (obj.get("BillEmail") or {}).get("Address", ""),
        "currency": (obj.get("CurrencyRef") or {}).get("value", ""),
        "lines": lines,
    }
    neutral = {}
    for name in mapping.mapped:
        qbo_field = mapping.qbo_field(name)
        if qbo_field.startswith(CUSTOM_PREFIX):
            neutral[name] = custom.get(qbo_field, "")
        elif qbo_field == "ShipDate":
            neutral[name] = obj.get("ShipDate")
        elif name in values:
            neutral[name] = values[name]
    if "lines" in neutral:
        tax_ref = (obj.get("TxnTaxDetail") or {}).get("TxnTaxCodeRef") or {}
        neutral["tax_code"] = str(tax_ref.get("value", "")) if taxable_any else ""
    neutral["void"] = qbo_is_void(obj)
    return _void_form(neutral)


# --- neutral -> QuickBooks body ---------------------------------------------------------------


def invoice_to_qbo(
    neutral: dict,
    mapping: InvoiceMapping,
    *,
    customer_id: str,
    item_ids: dict[str, str],
) -> dict:
    """A QuickBooks Invoice body (without Id/SyncToken) for the fields that flow to QBO.

    ``item_ids`` maps each line's neutral ``item`` to its QuickBooks id.
    """
    body: dict = {"CustomerRef": {"value": customer_id}}
    custom = []
    for name in mapping.mapped:
        if not mapping.to_qbo(name) or name in ("customer", "lines"):
            continue
        qbo_field = mapping.qbo_field(name)
        value = neutral.get(name)
        if qbo_field.startswith(CUSTOM_PREFIX):
            definition = qbo_field[len(CUSTOM_PREFIX) :]
            custom.append(
                {"DefinitionId": definition, "Type": "StringType", "StringValue": value or ""}
            )
        elif qbo_field in ("TxnDate", "DueDate", "ShipDate", "DocNumber", "PrivateNote"):
            if value:
                body[qbo_field] = value
            elif qbo_field in ("DueDate", "ShipDate", "PrivateNote"):
                body[qbo_field] = None if qbo_field != "PrivateNote" else ""
        elif qbo_field == "CustomerMemo":
            body["CustomerMemo"] = {"value": value or ""}
        elif qbo_field == "BillEmail":
            if value:
                body["BillEmail"] = {"Address": value}
        elif qbo_field == "CurrencyRef" and value:
            body["CurrencyRef"] = {"value": value}
    if custom:
        body["CustomField"] = custom
    if mapping.to_qbo("lines"):
        body["Line"] = [
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": float(Decimal(line["amount"])),
                "Description": line["description"],
                "SalesItemLineDetail": {
                    "ItemRef": {"value": item_ids[line["item"]]},
                    "Qty": float(Decimal(line["quantity"])),
                    "UnitPrice": float(Decimal(line["unit_price"])),
                    "TaxCodeRef": {"value": "TAX" if line["taxable"] else "NON"},
                },
            }
            for line in neutral.get("lines", [])
        ]
        if neutral.get("tax_code"):
            body["TxnTaxDetail"] = {"TxnTaxCodeRef": {"value": neutral["tax_code"]}}
    return body


# --- Customers and items ------------------------------------------------------------------------


def customer_neutral_local(customer) -> dict:
    return {
        "name": customer.display_name,
        "company": customer.company_name,
        "email": customer.email,
        "phone": customer.phone,
        "line1": customer.billing_line1,
        "city": customer.billing_city,
        "region": customer.billing_region,
        "postal_code": customer.billing_postal_code,
        "country": customer.billing_country,
        "active": customer.active,
    }


def customer_neutral_qbo(obj: dict) -> dict:
    addr = obj.get("BillAddr") or {}
    name = obj.get("DisplayName", "")
    if obj.get("Active") is False and name.endswith(" (deleted)"):
        name = name.removesuffix(" (deleted)")
    return {
        "name": name,
        "company": obj.get("CompanyName", "") or "",
        "email": (obj.get("PrimaryEmailAddr") or {}).get("Address", ""),
        "phone": (obj.get("PrimaryPhone") or {}).get("FreeFormNumber", ""),
        "line1": addr.get("Line1", ""),
        "city": addr.get("City", ""),
        "region": addr.get("CountrySubDivisionCode", ""),
        "postal_code": addr.get("PostalCode", ""),
        "country": addr.get("Country", ""),
        "active": obj.get("Active", True) is not False,
    }


def customer_to_qbo(neutral: dict) -> dict:
    body: dict = {"DisplayName": neutral["name"], "Active": neutral["active"]}
    if neutral["company"]:
        body["CompanyName"] = neutral["company"]
    if neutral["email"]:
        body["PrimaryEmailAddr"] = {"Address": neutral["email"]}
    if neutral["phone"]:
        body["PrimaryPhone"] = {"FreeFormNumber": neutral["phone"]}
    addr = {
        "Line1": neutral["line1"],
        "City": neutral["city"],
        "CountrySubDivisionCode": neutral["region"],
        "PostalCode": neutral["postal_code"],
        "Country": neutral["country"],
    }
    addr = {k: v for k, v in addr.items() if v}
    if addr:
        body["BillAddr"] = addr
    return body


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
        "name": obj.get("Name", ""),
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
