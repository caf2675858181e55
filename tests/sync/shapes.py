"""Invoice lines as accountants make them in QuickBooks, built for the emulator's API, and the
checks the lossless tests share (write requests, totals, lines by id)."""

from decimal import Decimal


def _make_in_qbo(qbo_ui, doc, lines, **extra):
    """An invoice for Amy's Bird Sanctuary made in QuickBooks with ``lines``."""
    customer = qbo_ui.find("Customer", DisplayName="Amy's Bird Sanctuary")
    body = {"CustomerRef": {"value": customer["Id"]}, "TxnDate": "2026-11-20", "Line": lines}
    if doc is not None:
        body["DocNumber"] = doc
    body.update(extra)
    return qbo_ui.create("Invoice", body)


def _paid_in_qbo(qbo_ui, invoice: dict, amount) -> None:
    """A payment of ``amount`` received in QuickBooks against ``invoice``."""
    qbo_ui.create(
        "Payment",
        {
            "CustomerRef": invoice["CustomerRef"],
            "TotalAmt": amount,
            "Line": [
                {"Amount": amount, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}
            ],
        },
    )


def _item(qbo_ui, name):
    return {"value": qbo_ui.find("Item", Name=name)["Id"], "name": name}


def _sale(qbo_ui, item, amount, qty=None, price=None, taxable=False, description=""):
    detail = {"ItemRef": _item(qbo_ui, item), "TaxCodeRef": {"value": "TAX" if taxable else "NON"}}
    if qty is not None:
        detail["Qty"] = qty
    if price is not None:
        detail["UnitPrice"] = price
    line = {"DetailType": "SalesItemLineDetail", "Amount": amount, "SalesItemLineDetail": detail}
    if description:
        line["Description"] = description
    return line


def _discount(qbo_ui, *, percent=None, amount=None):
    account = next(a for a in qbo_ui.rows("Account") if a.get("AccountType") == "Income")
    detail = {"DiscountAccountRef": {"value": account["Id"]}}
    if percent is not None:
        detail.update(PercentBased=True, DiscountPercent=percent)
    else:
        detail["PercentBased"] = False
    return {"DetailType": "DiscountLineDetail", "Amount": amount or 0, "DiscountLineDetail": detail}


def _text(words):
    return {"DetailType": "DescriptionOnly", "Description": words, "DescriptionLineDetail": {}}


def _bundle(qbo_ui, taxable=False):
    parts = [
        _sale(qbo_ui, "Design", 75, 1, 75, taxable=taxable),
        _sale(qbo_ui, "Hours", 45, 3, 15, taxable=taxable),
    ]
    return {
        "DetailType": "GroupLineDetail",
        "Amount": 120,
        "Description": "Garden design package",
        "GroupLineDetail": {
            "GroupItemRef": _item(qbo_ui, "Design Package"),
            "Quantity": 1,
            "Line": parts,
        },
    }


def _tax(qbo_ui, name="California"):
    code = next(c for c in qbo_ui.rows("TaxCode") if c["Name"] == name)
    return {"TxnTaxCodeRef": {"value": code["Id"]}}


def _writes(qbo) -> list[dict]:
    """The write requests the emulator received (its request log is cleared by the tests)."""
    return [r for r in qbo.app.requests_log() if r.get("method") == "POST"]


def _money(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _totals(obj) -> tuple[Decimal, Decimal]:
    """QuickBooks' (TotalAmt, TotalTax) of an invoice."""
    return _money(obj["TotalAmt"]), _money((obj.get("TxnTaxDetail") or {}).get("TotalTax", 0))


def _lines(obj) -> dict[str, dict]:
    """An invoice's lines by their QuickBooks Line.Id."""
    return {line["Id"]: line for line in obj["Line"] if line.get("Id")}


def _euro_customer(qbo_ui) -> dict:
    """Multicurrency turned on in QuickBooks (home currency USD) and a customer billed in EUR."""
    prefs = qbo_ui.rows("Preferences")[0]
    qbo_ui.update(
        "Preferences",
        {
            "Id": prefs["Id"],
            "CurrencyPrefs": {"MultiCurrencyEnabled": True, "HomeCurrency": {"value": "USD"}},
        },
    )
    return qbo_ui.create(
        "Customer", {"DisplayName": "Euro Gardens GmbH", "CurrencyRef": {"value": "EUR"}}
    )


def _euro_invoice(customer: dict, doc: str, lines: list) -> dict:
    """An invoice body in EUR at 1.0825 USD per EUR for ``customer``."""
    return {
        "DocNumber": doc,
        "CustomerRef": {"value": customer["Id"]},
        "CurrencyRef": {"value": "EUR"},
        "ExchangeRate": 1.0825,
        "Line": lines,
    }
