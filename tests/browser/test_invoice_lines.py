"""A QuickBooks invoice with a discount, a bundle and a description line, in the admin."""

from __future__ import annotations

import pytest

from portal.roles import BILLING_STAFF
from tests.sync.shapes import _bundle, _discount, _lines, _sale, _text, _totals

pytestmark = pytest.mark.browser


def test_pulled_invoice_shows_every_line_and_a_memo_edit_keeps_them(screen, staff, ready, qbo_ui):
    from portal.models import Invoice
    from sync.services import sync_run

    page = screen.page
    sync_run(connection=ready, trigger="command", direction="pull")
    customer = qbo_ui.find("Customer", DisplayName="Amy's Bird Sanctuary")
    made = qbo_ui.create(
        "Invoice",
        {
            "DocNumber": "7201",
            "CustomerRef": {"value": customer["Id"]},
            "Line": [
                _sale(qbo_ui, "Hours", 100, 2, 50, description="Consulting"),
                _text("Materials are billed separately"),
                _bundle(qbo_ui),
                _discount(qbo_ui, percent=10),
            ],
        },
    )
    assert sync_run(connection=ready, trigger="command", direction="pull").status == "done"
    invoice = Invoice.objects.get(number="7201")

    screen.sign_in_as(staff(BILLING_STAFF))
    screen.visit(f"/admin/portal/invoice/{invoice.pk}/change/")
    rows = page.locator("#lines-group tbody tr.has_original")
    kinds = [cell.split("\n")[0] for cell in rows.locator("td.field-line_kind").all_inner_texts()]
    assert kinds == ["Item", "Description", "Bundle", "Discount"]
    note = "From QuickBooks, kept as it is there; edit it in QuickBooks."
    assert rows.locator("td.field-line_kind", has_text=note).count() == 3
    # Only the item line can be edited here; the others say where they are edited.
    assert page.locator("#id_lines-0-quantity").is_enabled()
    for row in (1, 2, 3):
        assert page.locator(f"#id_lines-{row}-description").is_disabled()
    assert page.input_value("#id_lines-1-description") == "Materials are billed separately"
    amounts = [cell.strip() for cell in rows.locator("td.field-amount").all_inner_texts()]
    assert amounts == ["100.00", "0.00", "120.00", "22.00"]
    assert page.locator(".field-total .readonly").inner_text().strip() == "198.00"
    page.locator("#lines-group").scroll_into_view_if_needed()
    screen.shot("20-invoice-with-quickbooks-lines")

    page.fill("#id_customer_memo", "Thank you for your business")
    screen.click("input[name=_continue]")
    assert "was changed successfully" in screen.messages(), screen.messages()

    after = qbo_ui.find("Invoice", Id=made["Id"])
    assert after["CustomerMemo"]["value"] == "Thank you for your business"
    assert _lines(after) == _lines(made)
    assert _totals(after) == _totals(made)
    invoice.refresh_from_db()
    assert str(invoice.total) == "198.00"
