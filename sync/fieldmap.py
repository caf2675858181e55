"""The invoice fields Ledgerlink can map, QuickBooks' fields they may map to, and the checks.

A mapping names a portal invoice field, a QuickBooks Invoice field and the direction. Defaults
are pre-mapped; a few fields (currency, reference) are left for the user, and QuickBooks'
custom sales-form fields appear as ``CustomField:<DefinitionId>``.
"""

from __future__ import annotations

from dataclasses import dataclass

# QBO limits (qbo-api.md §8 Invoice): DocNumber <= 21, CustomerMemo <= 1000, PrivateNote
# <= 4000. Custom field values: Intuit's UI caps sales custom fields at 31 characters; the
# API limit is not documented (UNCONFIRMED), so the UI's limit is applied, the safer choice.
DOC_NUMBER_MAX = 21
CUSTOMER_MEMO_MAX = 1000
PRIVATE_NOTE_MAX = 4000
CUSTOM_FIELD_MAX = 31
CUSTOM_FIELD_SLOTS = 3  # only the first three string custom fields reach the classic API
CUSTOM_PREFIX = "CustomField:"


@dataclass(frozen=True)
class LocalField:
    name: str
    label: str
    kind: str  # text, date, email, customer, lines, currency
    default: str  # default QuickBooks field ("" = not mapped by default)
    fixed: bool = False  # must stay mapped to its default (the invoice cannot exist without it)
    # Must map to some QuickBooks field (why, for the message when it is left unmapped).
    required: str = ""


LOCAL_FIELDS: tuple[LocalField, ...] = (
    LocalField(
        "number",
        "Invoice number",
        "text",
        "DocNumber",
        required="both sides recognise an invoice by its number, and without it QuickBooks "
        "would number portal invoices itself",
    ),
    LocalField(
        "issue_date",
        "Issue date",
        "date",
        "TxnDate",
        required="without it QuickBooks would date every invoice the day it is sent",
    ),
    LocalField("due_date", "Due date", "date", "DueDate"),
    LocalField("customer", "Customer", "customer", "CustomerRef", fixed=True),
    LocalField("lines", "Lines", "lines", "Line", fixed=True),
    LocalField("customer_memo", "Customer memo", "text", "CustomerMemo"),
    LocalField("private_note", "Private note", "text", "PrivateNote"),
    LocalField("billing_email", "Billing email", "email", "BillEmail"),
    LocalField("reference", "Reference / PO number", "text", ""),
    LocalField("currency", "Currency", "currency", ""),
)
LOCAL_BY_NAME = {f.name: f for f in LOCAL_FIELDS}

# QuickBooks Invoice fields a portal field of each kind may map to.
QBO_FIELDS_BY_KIND = {
    "text": ("DocNumber", "CustomerMemo", "PrivateNote"),
    "date": ("TxnDate", "DueDate", "ShipDate"),
    "email": ("BillEmail",),
    "customer": ("CustomerRef",),
    "lines": ("Line",),
    "currency": ("CurrencyRef",),
}
QBO_FIELD_LABELS = {
    "DocNumber": "Invoice no. (DocNumber)",
    "CustomerMemo": "Message on invoice (CustomerMemo)",
    "PrivateNote": "Message on statement (PrivateNote)",
    "TxnDate": "Invoice date (TxnDate)",
    "DueDate": "Due date (DueDate)",
    "ShipDate": "Ship date (ShipDate)",
    "BillEmail": "Customer email (BillEmail)",
    "CustomerRef": "Customer (CustomerRef)",
    "Line": "Product/service lines (Line)",
    "CurrencyRef": "Currency (CurrencyRef)",
}
MAX_LENGTH = {
    "DocNumber": DOC_NUMBER_MAX,
    "CustomerMemo": CUSTOMER_MEMO_MAX,
    "PrivateNote": PRIVATE_NOTE_MAX,
}


def custom_field_definitions(preferences: dict) -> dict[str, str]:
    """DefinitionId -> name of the custom sales-form fields in use, from QBO Preferences.

    Preferences nest them as SalesFormsPrefs.CustomField[].CustomField[] with names
    ``SalesFormsPrefs.UseSalesCustomN`` (on/off) and ``SalesFormsPrefs.SalesCustomNameN``
    (qbo-api.md §8 Preferences).
    """
    used: dict[str, bool] = {}
    names: dict[str, str] = {}
    groups = (preferences.get("SalesFormsPrefs") or {}).get("CustomField") or []
    for group in groups:
        for field in group.get("CustomField") or []:
            name = field.get("Name", "")
            if name.startswith("SalesFormsPrefs.UseSalesCustom"):
                used[name.removeprefix("SalesFormsPrefs.UseSalesCustom")] = bool(
                    field.get("BooleanValue")
                )
            elif name.startswith("SalesFormsPrefs.SalesCustomName"):
                names[name.removeprefix("SalesFormsPrefs.SalesCustomName")] = field.get(
                    "StringValue", ""
                )
    return {
        n: label
        for n, label in sorted(names.items())
        if used.get(n, True) and label and int(n) <= CUSTOM_FIELD_SLOTS
    }


def qbo_choices(field: LocalField, custom_fields: dict[str, str]) -> list[tuple[str, str]]:
    """The QuickBooks fields ``field`` may map to, as (value, label)."""
    choices = [(q, QBO_FIELD_LABELS[q]) for q in QBO_FIELDS_BY_KIND[field.kind]]
    if field.kind == "text":
        choices += [
            (f"{CUSTOM_PREFIX}{n}", f"Custom field {n}: {label}")
            for n, label in custom_fields.items()
        ]
    return choices


def validate_mappings(
    rows: dict[str, tuple[str, str]],
    *,
    custom_fields: dict[str, str],
    longest_values: dict[str, tuple[int, str]] | None = None,
) -> dict[str, str]:
    """Check a whole set of mappings; returns {local field: message} for each problem.

    ``rows`` maps each local field to (qbo_field, direction); ``longest_values`` gives, per
    local text field, the length and an example of the longest value in the portal, so a
    mapping that would overflow QuickBooks' limit is refused when saved.
    """
    errors: dict[str, str] = {}
    longest_values = longest_values or {}
    taken: dict[str, str] = {}
    for name, (qbo_field, _direction) in rows.items():
        field = LOCAL_BY_NAME.get(name)
        if field is None:
            errors[name] = f"{name} is not a portal invoice field."
            continue
        if field.fixed and qbo_field != field.default:
            errors[name] = f"{field.label} must stay mapped to {QBO_FIELD_LABELS[field.default]}."
            continue
        if not qbo_field and field.required:
            errors[name] = (
                f"{field.label} must be mapped to a QuickBooks field: {field.required}. "
                f"Its default is {QBO_FIELD_LABELS[field.default]}."
            )
            continue
        if not qbo_field:
            continue
        allowed = dict(qbo_choices(field, custom_fields))
        if qbo_field.startswith(CUSTOM_PREFIX) and qbo_field not in allowed:
            errors[name] = (
                f"{field.label}: QuickBooks has no custom field {qbo_field[len(CUSTOM_PREFIX) :]} "
                "in use (only the first three text custom fields can be synced). Turn it on in "
                "QuickBooks (Account and settings > Sales > Custom fields) and fetch again."
            )
            continue
        if qbo_field not in allowed:
            errors[name] = f"{field.label} cannot map to {qbo_field}; pick one of: " + ", ".join(
                allowed.values()
            )
            continue
        if qbo_field in taken:
            errors[name] = (
                f"{field.label} and {LOCAL_BY_NAME[taken[qbo_field]].label} both map to "
                f"{allowed[qbo_field]}; a QuickBooks field can take only one portal field."
            )
            continue
        taken[qbo_field] = name
        limit = MAX_LENGTH.get(qbo_field) or (
            CUSTOM_FIELD_MAX if qbo_field.startswith(CUSTOM_PREFIX) else None
        )
        longest = longest_values.get(name)
        if limit and longest and longest[0] > limit:
            errors[name] = (
                f"{field.label}: QuickBooks keeps at most {limit} characters in "
                f"{allowed[qbo_field]}, but the portal has values up to {longest[0]} (for "
                f"example {longest[1]!r}). Shorten them or map another field."
            )
    return errors
