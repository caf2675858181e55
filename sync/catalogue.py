"""One catalogue of QuickBooks errors in plain words: what went wrong and how to fix it.

Every reason stored on a sync record comes from here, so staff read the same sentence for the
same problem wherever it shows. QuickBooks ids in QBO's own text are replaced by the names the
portal knows.
"""

from __future__ import annotations

import re

from integrations.quickbooks.errors import ConnectionFailedError, QBOError

# code -> (what happened, the fix). ``{element}`` is QBO's element, ``{name}`` the record.
CATALOGUE: dict[str, tuple[str, str]] = {
    "610": (
        "QuickBooks cannot find something this {kind} uses, or it was made inactive there",
        "check that the customer and items are active in QuickBooks, then retry",
    ),
    "620": (
        "QuickBooks could not link this {kind} to the transaction",
        "retry; if it persists, check the linked payment in QuickBooks",
    ),
    "630": ("QuickBooks already has an object like this", "link or rename one of them, then retry"),
    "2010": ("QuickBooks does not accept the field {element}", "remove that field mapping"),
    "2020": ("QuickBooks needs a value for {element}", "fill it in, then retry"),
    "2050": ("{element} is longer than QuickBooks allows", "shorten it, then retry"),
    "2500": (
        "QuickBooks does not know the {element} this {kind} points to",
        "sync or re-create it in QuickBooks, then retry",
    ),
    "5010": (
        "the {kind} was changed in QuickBooks while Ledgerlink was saving it",
        "Ledgerlink will compare both versions on the next sync",
    ),
    "6000": ("QuickBooks refused the {kind}: {detail}", "fix what QuickBooks names, then retry"),
    "6070": ("a line's amount is not quantity times unit price", "correct the line, then retry"),
    "6080": ("the customer has no name", "give the customer a display name, then retry"),
    "6100": ("a line's sales tax code is not valid in QuickBooks", "check the tax mapping"),
    "6140": (
        "QuickBooks already has an invoice with number {number}",
        "give this invoice another number (or turn on 'allow duplicate numbers' in QuickBooks), "
        "then retry",
    ),
    "6190": ("the QuickBooks subscription is not active", "renew it in QuickBooks"),
    "6210": (
        "the invoice date falls in a period closed in QuickBooks",
        "change the date or reopen the period in QuickBooks",
    ),
    "6240": (
        "a customer with this name already exists in QuickBooks (possibly a vendor or employee)",
        "rename one of them, then retry",
    ),
    "6270": (
        "the invoice is dated before an inventory item's start date in QuickBooks",
        "change the invoice date or the item's start date",
    ),
    "6520": ("an inventory item has no quantity", "enter the quantity, then retry"),
}


def describe(
    error: Exception,
    *,
    kind: str = "invoice",
    name: str = "",
    number: str = "",
    id_names: dict[str, str] | None = None,
) -> str:
    """The plain-words reason for ``error`` on a record (sentence and fix)."""
    if isinstance(error, ConnectionFailedError) and error.uncertain:
        return (
            "QuickBooks did not answer in time, so it is not known yet whether the change was "
            "saved. Ledgerlink will ask again with the same request and settle it; no duplicate "
            "will be made."
        )
    if not isinstance(error, QBOError):
        return f"Unexpected problem: {error}"
    code = str(error.code or "")
    detail = _with_names(error.detail or error.message or "", id_names or {})
    if code == "6240" and kind == "item":
        what, fix = (
            "an item with this name already exists in QuickBooks",
            "rename one of them, then retry",
        )
    elif code in CATALOGUE:
        what, fix = CATALOGUE[code]
    else:
        what, fix = (error.user_message.rstrip("."), "")
    element = error.element or "a field"
    what = what.format(kind=kind, element=element, detail=detail, number=number, name=name)
    sentence = what[0].upper() + what[1:]
    if fix:
        sentence += f": {fix}."
    elif not sentence.endswith("."):
        sentence += "."
    if detail and code and code not in ("6000",) and detail not in sentence:
        sentence += f" (QuickBooks said: {detail})"
    return sentence


def _with_names(text: str, id_names: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        name = id_names.get(match.group(2))
        return f"{match.group(1)}{name}" if name else match.group(0)

    # "Invalid Reference Id: 42" -> "Invalid Reference Id: Pump"
    return re.sub(r"(\bId\s*[:=]?\s*)(\d+)\b", replace, text) if id_names else text


def error_fields(error: Exception) -> dict:
    """The QBO fields kept on a sync record next to the reason."""
    if not isinstance(error, QBOError):
        return {"error_code": "", "error_element": "", "intuit_tid": ""}
    return {
        "error_code": str(error.code or "")[:16],
        "error_element": str(error.element or "")[:100],
        "intuit_tid": str(error.intuit_tid or "")[:100],
    }
