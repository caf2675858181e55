"""A read-only stand-in for QBO's web UI: the page "Open in QuickBooks" links land on.

Real QuickBooks shows an invoice at ``/app/invoice?txnId=ID``; the emulator serves the same
path (plus ``realmId``, since it hosts several companies) as a plain HTML page, no script.
"""

from __future__ import annotations

from html import escape

from .wire import Request, Response

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{title} - QuickBooks emulator</title>
<style>
body{{font-family:system-ui,sans-serif;margin:0;background:#f4f5f8;color:#393a3d}}
header{{background:#2ca01c;color:#fff;padding:12px 20px;font-weight:600}}
main{{max-width:900px;margin:20px auto;background:#fff;padding:20px;border-radius:6px}}
table{{width:100%;border-collapse:collapse}} td,th{{padding:6px;border-bottom:1px solid #ddd;
text-align:left}} .num{{text-align:right}} .wrap{{overflow-x:auto}}
</style></head>
<body><header>QuickBooks emulator &middot; {company}</header><main>{content}</main></body></html>
"""


def invoice_page(emulator, request: Request) -> Response:
    """The invoice ``txnId`` of company ``realmId`` as a QuickBooks user would see it."""
    realm_id = request.param("realmId") or (emulator.companies[0][0] if emulator.companies else "")
    txn_id = request.param("txnId") or ""
    realm = emulator.realms.get(realm_id)
    company = dict(emulator.companies).get(realm_id, realm_id)
    if realm is None:
        return Response.html(
            PAGE.format(
                title="Not found", company=escape(company), content="<p>No such company.</p>"
            ),
            status=404,
        )
    with realm.lock:
        invoice = realm.get("Invoice", txn_id)
    if invoice is None or invoice.get("status") == "Deleted":
        content = f"<h1>Invoice not found</h1><p>No invoice with id {escape(txn_id)}.</p>"
        return Response.html(
            PAGE.format(title="Not found", company=escape(company), content=content), status=404
        )
    rows = [_line_row(line) for line in invoice.get("Line") or []]
    tax = (invoice.get("TxnTaxDetail") or {}).get("TotalTax", 0)
    memo = (invoice.get("CustomerMemo") or {}).get("value", "")
    content = (
        f"<h1>Invoice {escape(str(invoice.get('DocNumber') or invoice.get('Id')))}</h1>"
        f"<p>Customer: <strong>{escape(str(invoice['CustomerRef'].get('name', '')))}</strong>"
        f" &middot; Date {escape(str(invoice.get('TxnDate', '')))}"
        f" &middot; Due {escape(str(invoice.get('DueDate', '')))}</p>"
        "<div class=wrap><table><thead><tr><th>Product/service</th><th>Description</th>"
        "<th class=num>Qty</th><th class=num>Rate</th><th class=num>Amount</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        f"<p>Tax: {escape(str(tax))} &middot; Total: <strong>{escape(str(invoice.get('TotalAmt')))}"
        f"</strong> &middot; Balance due: {escape(str(invoice.get('Balance')))}</p>"
        f"<p>Message on invoice: {escape(str(memo))}</p>"
        f"<p><small>Id {escape(str(invoice['Id']))}, SyncToken "
        f"{escape(str(invoice.get('SyncToken')))}</small></p>"
    )
    title = f"Invoice {invoice.get('DocNumber') or invoice['Id']}"
    return Response.html(PAGE.format(title=escape(title), company=escape(company), content=content))


# How QuickBooks' invoice screen labels the line kinds that are not products or services.
LINE_LABELS = {
    "DiscountLineDetail": "Discount",
    "SubTotalLineDetail": "Subtotal",
    "DescriptionOnly": "",
}


def _line_row(line: dict) -> str:
    """One row of the invoice page for any kind of line (bundles with their components)."""
    kind = line.get("DetailType", "")
    detail = line.get(kind) or {}
    if kind == "SalesItemLineDetail":
        cells = (
            (detail.get("ItemRef") or {}).get("name", ""),
            line.get("Description", ""),
            detail.get("Qty", ""),
            detail.get("UnitPrice", ""),
            line.get("Amount", ""),
        )
    elif kind == "GroupLineDetail":
        cells = (
            (detail.get("GroupItemRef") or {}).get("name", "Bundle"),
            line.get("Description", ""),
            detail.get("Quantity", ""),
            "",
            line.get("Amount", ""),
        )
    elif kind == "DiscountLineDetail":
        percent = detail.get("DiscountPercent") if detail.get("PercentBased") else None
        label = f"Discount {percent}%" if percent is not None else "Discount"
        cells = (label, line.get("Description", ""), "", "", f"-{line.get('Amount', '')}")
    else:
        cells = (LINE_LABELS.get(kind, kind), line.get("Description", ""), "", "", "")
        if kind == "SubTotalLineDetail":
            cells = (*cells[:4], line.get("Amount", ""))
    row = (
        "<tr><td>{}</td><td>{}</td><td class=num>{}</td><td class=num>{}</td>"
        "<td class=num>{}</td></tr>"
    )
    html = row.format(*(escape(str(cell)) for cell in cells))
    if kind == "GroupLineDetail":
        for part in detail.get("Line") or []:
            html += _line_row(part).replace("<td>", "<td>&nbsp;&nbsp;", 1)
    return html
