"""Invoice mappers: a portal invoice and a QuickBooks Invoice to the neutral form, and the
neutral form to a QuickBooks Invoice body, through the field mapping in effect.

Fields follow QuickBooks' Invoice entity (qbo-api.md section 8): DocNumber, TxnDate, DueDate,
CustomerRef, CustomerMemo, PrivateNote, BillEmail, CurrencyRef, CustomField and the sales
item lines (``SalesItemLineDetail``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from decimal import Decimal

from sync.fieldmap import CUSTOM_PREFIX
from sync.mappers.common import money, optional_number, party, ref

# QuickBooks line kinds (``DetailType``) and the portal's names for them. Item lines are the
# ones staff edit; the others are kept as QuickBooks holds them and sent back unchanged.
ITEM_LINE = "SalesItemLineDetail"
SUBTOTAL_LINE = "SubTotalLineDetail"
KEPT_LINES = {
    "DiscountLineDetail": "discount",
    "GroupLineDetail": "bundle",
    "DescriptionOnly": "description",
}
# Server-assigned per-line keys, not part of what a line says.
LINE_KEYS_SERVER = ("Id", "LineNum")

# Fields the tax code and the void flag follow: the tax code travels with the lines, and a
# void always flows (it is how both sides say an invoice no longer counts).
ALWAYS_FLOWS = ("void",)
FLOWS_WITH_LINES = ("tax_code",)


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

    def flows(self, name: str, side: str) -> bool:
        """Whether neutral field ``name`` flows towards ``side`` ("to" or "from" QuickBooks)."""
        if name in ALWAYS_FLOWS:
            return True
        field_name = "lines" if name in FLOWS_WITH_LINES else name
        return self.to_qbo(field_name) if side == "to" else self.from_qbo(field_name)

    def project(self, neutral: dict, side: str) -> dict:
        """Only the fields of ``neutral`` that flow towards ``side`` ("to" or "from" QBO)."""
        return {name: value for name, value in neutral.items() if self.flows(name, side)}


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
        "customer": party(customer_ids.get(invoice.customer_id), invoice.customer.display_name),
        "customer_memo": invoice.customer_memo,
        "private_note": invoice.private_note,
        "billing_email": invoice.billing_email,
        "reference": invoice.reference,
        "currency": invoice.currency,
        "lines": [_local_line(line, item_ids) for line in lines],
    }
    neutral = {name: values[name] for name in mapping.mapped if name in values}
    if "lines" in neutral:
        codes = sorted({tax_codes.get(line.tax_rate_id, "?") for line in lines if line.tax_rate_id})
        neutral["tax_code"] = codes[0] if len(codes) == 1 else ",".join(codes)
    neutral["void"] = invoice.status == "void"
    return _void_form(neutral)


def _local_line(line, item_ids: dict[int, str]) -> dict:
    """A portal invoice line in the neutral form: item lines by their fields, other kinds by
    the QuickBooks line they keep (so they compare equal while nobody changes them)."""
    if line.kind == "subtotal":
        return {"kind": "subtotal"}  # QuickBooks computes its amount
    if line.kind != "item":
        return {"kind": line.kind, "line": line.qbo_detail or {}}
    return {
        "item": party(item_ids.get(line.item_id), line.item.name) if line.item_id else "",
        "description": line.description,
        "quantity": optional_number(line.quantity),
        "unit_price": optional_number(line.unit_price),
        "amount": money(line.amount),
        "taxable": line.tax_rate_id is not None,
    }


def kept_line(line: dict) -> dict:
    """A QuickBooks line as the portal keeps it: without its server-assigned Id and LineNum
    (at its level and its components'), the amount in cents."""
    kept = {k: _plain_json(v) for k, v in line.items() if k not in LINE_KEYS_SERVER}
    if "Amount" in kept and kept["Amount"] is not None:
        kept["Amount"] = money(kept["Amount"])
    group = kept.get("GroupLineDetail")
    if isinstance(group, dict) and isinstance(group.get("Line"), list):
        group["Line"] = [kept_line(part) for part in group["Line"]]
    return kept


def _plain_json(value):
    """A copy with QuickBooks' numbers (read as Decimal) as JSON numbers, to be stored."""
    if isinstance(value, dict):
        return {k: _plain_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_json(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def invoice_lines(obj: dict) -> list[dict]:
    """A QuickBooks invoice's lines as the accountant made them: without the subtotal line
    QuickBooks adds at the end (its amount is the invoice's subtotal). Subtotal lines placed
    between other lines are kept."""
    lines = list(obj.get("Line") or [])
    if lines and lines[-1].get("DetailType") == SUBTOTAL_LINE:
        lines.pop()
    return lines


def line_kind(line: dict) -> str:
    """The portal's kind for a QuickBooks line ("item", "discount", "bundle", "description",
    "subtotal")."""
    detail_type = line.get("DetailType")
    if detail_type == SUBTOTAL_LINE:
        return "subtotal"
    return KEPT_LINES.get(detail_type, "item")


def _void_form(neutral: dict) -> dict:
    """A void invoice is compared as void only: QuickBooks zeroes its lines and notes
    "Voided", the portal keeps them for the record, and neither difference is a change."""
    if neutral.get("void"):
        return {k: neutral[k] for k in ("number", "customer", "void") if k in neutral}
    return neutral


# --- QuickBooks -> neutral --------------------------------------------------------------------


def qbo_is_void(obj: dict) -> bool:
    """Whether QuickBooks voided this invoice, read from the marks its void leaves.

    QuickBooks keeps a voided invoice and zeroes it: ``TotalAmt`` and ``Balance`` 0, every
    line's ``Amount`` 0 and every sales line's ``Qty`` 0, and "Voided" in ``PrivateNote``
    (qbo-api.md section 8, B-VOID2016). All of these must hold: a note that merely says
    "Voided", or a $0 invoice whose lines still carry quantities, is not a void. The API has no
    status field for it and how CDC reports voids is UNCONFIRMED (section 4), so the zeroed
    shape is the marker Ledgerlink trusts. A deleted invoice (CDC ``status: Deleted``) counts
    as void for the portal, which keeps its copy for the record.
    """
    if obj.get("status") == "Deleted":
        return True
    if not (obj.get("PrivateNote") or "").strip().lower().startswith("voided"):
        return False
    if any(_nonzero(obj.get(key)) for key in ("TotalAmt", "Balance")):
        return False
    for line in obj.get("Line") or []:
        if _nonzero(line.get("Amount")):
            return False
        if _nonzero((line.get(ITEM_LINE) or {}).get("Qty")):
            return False
    return True


def _nonzero(value) -> bool:
    return value not in (None, "") and Decimal(str(value)) != 0


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
    for line in invoice_lines(obj):
        kind = line_kind(line)
        if kind == "subtotal":
            lines.append({"kind": "subtotal"})
            continue
        if kind != "item":
            lines.append({"kind": kind, "line": kept_line(line)})
            continue
        detail = line.get(ITEM_LINE) or {}
        taxable = (detail.get("TaxCodeRef") or {}).get("value") == "TAX"
        taxable_any = taxable_any or taxable
        lines.append(
            {
                "item": ref(detail.get("ItemRef")),
                "description": line.get("Description", "") or "",
                "quantity": optional_number(detail.get("Qty")),
                "unit_price": optional_number(detail.get("UnitPrice")),
                "amount": money(line.get("Amount", 0)),
                "taxable": taxable,
            }
        )
    values = {
        "number": obj.get("DocNumber", "") or "",
        "issue_date": obj.get("TxnDate"),
        "due_date": obj.get("DueDate"),
        "customer": ref(obj.get("CustomerRef")),
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
    stored_lines: list[tuple[str, dict | None]] | None = None,
    only: set[str] | None = None,
) -> dict:
    """A QuickBooks Invoice body (without Id/SyncToken) for the fields that flow to QBO.

    ``item_ids`` maps each line's neutral ``item`` to its QuickBooks id. ``stored_lines``
    gives, for each neutral line in order, its QuickBooks ``Line.Id`` and the line as
    QuickBooks last held it: lines of kinds the portal does not edit go back exactly so, and
    item lines keep the QuickBooks fields the portal does not model (service date, class...).
    ``only`` limits the body to the neutral fields named (a sparse update of what changed);
    the lines go when "lines" or "tax_code" is named.
    """

    def wanted(name: str) -> bool:
        return only is None or name in only

    body: dict = {}
    if wanted("customer"):
        body["CustomerRef"] = {"value": customer_id}
    custom = []
    for name in mapping.mapped:
        if not mapping.to_qbo(name) or name in ("customer", "lines") or not wanted(name):
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
    if mapping.to_qbo("lines") and (wanted("lines") or wanted("tax_code")):
        lines = neutral.get("lines", [])
        # A void invoice's neutral form has no lines (see _void_form); nothing to pair then.
        if stored_lines is None or len(stored_lines) != len(lines):
            stored_lines = [("", None)] * len(lines)
        stored = stored_lines
        body["Line"] = [
            _line_to_qbo(line, item_ids, line_id, kept)
            for line, (line_id, kept) in zip(lines, stored, strict=True)
        ]
        if neutral.get("tax_code"):
            body["TxnTaxDetail"] = {"TxnTaxCodeRef": {"value": neutral["tax_code"]}}
    return body


def _line_to_qbo(line: dict, item_ids: dict[str, str], line_id: str, kept: dict | None) -> dict:
    if line.get("kind") == "subtotal":
        out = {"DetailType": SUBTOTAL_LINE, SUBTOTAL_LINE: {}}
    elif line.get("kind", "item") != "item":
        out = copy.deepcopy(line["line"])
    else:
        out = copy.deepcopy(kept) if kept and kept.get("DetailType") == ITEM_LINE else {}
        out["DetailType"] = ITEM_LINE
        out["Amount"] = float(Decimal(line["amount"]))
        if line["description"] or "Description" in out:
            out["Description"] = line["description"]
        detail = out.setdefault(ITEM_LINE, {})
        if line["item"]:
            detail["ItemRef"] = {"value": item_ids[line["item"]]}
        for key, value in (("Qty", line["quantity"]), ("UnitPrice", line["unit_price"])):
            if value is None:
                detail.pop(key, None)
            else:
                detail[key] = float(Decimal(value))
        detail["TaxCodeRef"] = {"value": "TAX" if line["taxable"] else "NON"}
    out = _wire_amounts(out)
    if line_id:
        out["Id"] = line_id
    return out


def _wire_amounts(line: dict) -> dict:
    """Amounts kept as cents text go back to QuickBooks as numbers (components too)."""
    if isinstance(line.get("Amount"), str):
        line["Amount"] = float(Decimal(line["Amount"]))
    group = line.get("GroupLineDetail")
    if isinstance(group, dict) and isinstance(group.get("Line"), list):
        group["Line"] = [_wire_amounts(part) for part in group["Line"]]
    return line
