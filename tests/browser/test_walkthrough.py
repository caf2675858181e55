"""The walk staff take, in a real browser: sign in, connect QuickBooks, set it up, sync.

Each step saves a 1280x800 screenshot under docs/screenshots/ (the README's walkthrough) and
artifacts/screenshots/ (kept by CI). Every page visited is checked for console errors and for
fitting at 1280 px and 390 px wide (see conftest.py).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from portal.roles import SYNC_ADMINISTRATORS
from tests.conftest import totp_code

pytestmark = pytest.mark.browser

CUSTOMER = "Bayside Dental"


@pytest.fixture
def records(transactional_db):
    """What the portal holds before the walk: a customer and the one tax rate in use."""
    from portal.models import Customer, TaxRate

    Customer.objects.create(display_name=CUSTOMER, email="accounts@baysidedental.example")
    TaxRate.objects.create(name="California", percent=Decimal("8.000"))


def pick(screen, field_id: str, text: str) -> None:
    """Choose ``text`` in one of the admin's autocomplete (select2) fields."""
    page = screen.page
    page.click(f"#{field_id} + .select2 .select2-selection")
    page.fill(".select2-container--open .select2-search__field", text)
    page.click(f".select2-results__option:has-text({text!r})")
    assert text in page.inner_text(f"#select2-{field_id}-container")


def invoice_status(screen, number: str) -> str:
    """The QuickBooks Sync Status badge of ``number`` on the invoice list."""
    screen.visit(f"/admin/portal/invoice/?q={number}")
    row = screen.page.locator("#result_list tbody tr", has_text=number)
    assert row.count() == 1, f"{number} is not on the invoice list"
    badge = row.locator("td.field-qbo_sync_status")
    # The QuickBooks columns sit at the right of a wide table: scroll them into view (the
    # table scrolls sideways inside the page), as a person would, for the screenshot.
    badge.scroll_into_view_if_needed()
    return badge.inner_text().strip()


def test_walkthrough(screen, staff, qbo_live, qbo_ui, records):
    from portal.models import Invoice, TaxRate

    page = screen.page
    admin = staff(SYNC_ADMINISTRATORS, username="alex", with_totp=True)
    today = date.today()

    # 1. Sign in: username and password, then the code from the authenticator app.
    screen.visit("/admin/")
    assert "/accounts/login/" in page.url
    page.fill("input[name=login]", admin.username)
    page.fill("input[name=password]", admin.plain_password)
    screen.shot("01-sign-in")
    screen.click("form button[type=submit]")
    assert "/accounts/2fa/authenticate/" in page.url, page.url
    page.fill("input[name=code]", totp_code(admin.totp_secret))
    screen.shot("02-two-factor")
    screen.click("form button[type=submit]")
    assert page.url == f"{screen.base_url}/admin/", page.url
    screen.shot("03-dashboard")

    # 2. Connect: QuickBooks page, Connect, pick the company on Intuit's page, Connect.
    screen.visit("/admin/quickbooks/")
    assert page.is_disabled("#qbo-sync"), "Sync must be disabled before QuickBooks is connected"
    assert "not connected" in page.inner_text("#qbo-sync-why")
    screen.shot("04-quickbooks-not-connected")
    screen.click("#qbo-connect")
    assert page.url.startswith(qbo_live.base_url), page.url
    company = qbo_live.app.companies[0][1]
    page.get_by_label(company).check()
    screen.shot("05-consent-page")
    screen.click("#connect")
    assert f"Connected to QuickBooks company {company}" in screen.messages()
    assert page.inner_text("#qbo-status") == "Connected"
    screen.shot("06-connected")
    screen.shot("connected-390px", narrow=True)

    # 3. Configuration: two-way, and leave QuickBooks' older sample invoices alone.
    screen.click("#tab-configuration")
    page.select_option("#id_sync_type", "two_way")
    page.fill("#id_first_invoice_date", (today - timedelta(days=3)).isoformat())
    screen.shot("07-configuration")
    screen.click("#qbo-save-config")
    assert "Configuration saved" in screen.messages(), screen.messages()

    # 4. Journals: fetch the chart of accounts, pick the three accounts, save.
    screen.click("#tab-journals")
    assert "No income account" in page.inner_text("#qbo-readiness")
    screen.click("#qbo-fetch-accounts")
    assert "Accounts fetched" in screen.messages()
    page.select_option("#id_income_account", label="Sales of Product Income")
    page.select_option("#id_expense_account", label="Cost of Goods Sold")
    page.select_option("#id_asset_account", label="Inventory Asset")
    screen.shot("08-journals")
    screen.click("#qbo-save-journals")
    assert "Journals saved" in screen.messages(), screen.messages()

    # 5. Mapping > Tax: each portal tax rate to a QuickBooks tax code.
    screen.click("#tab-mapping")
    screen.click("#subtab-tax")
    assert "not mapped" in page.inner_text("#qbo-readiness")
    row = page.locator("#qbo-tax-table tbody tr", has_text="California")
    row.locator("select").select_option(label="California (8%)")
    screen.shot("09-tax-mapping")
    screen.click("#qbo-save-tax")
    assert "Tax mapping saved: 1 mapped." in screen.messages(), screen.messages()
    assert page.locator("#qbo-readiness").count() == 0, page.inner_text("#qbo-readiness")
    assert page.is_enabled("#qbo-sync")

    # 6. Mapping > Invoices: the defaults are filled in; save them.
    screen.click("#subtab-invoices")
    assert page.input_value("#id_map-number-qbo") == "DocNumber"
    screen.shot("10-field-mapping")
    screen.click("#qbo-save-mapping")
    assert "Invoice field mapping saved" in screen.messages(), screen.messages()

    # 7. Items: Quick Sync brings QuickBooks' items into the portal.
    screen.click("#tab-items")
    screen.click("#qbo-quick-sync")
    screen.click("#tab-items")
    items_table = page.inner_text("#qbo-items-table")
    assert "Rock Fountain" in items_table, items_table
    screen.shot("11-items")

    # 8. An invoice in the portal, with an item that came from QuickBooks.
    screen.visit("/admin/portal/invoice/add/")
    page.fill("#id_number", "INV-2001")
    pick(screen, "id_customer", CUSTOMER)
    page.fill("#id_issue_date", today.isoformat())
    page.fill("#id_due_date", (today + timedelta(days=30)).isoformat())
    pick(screen, "id_lines-0-item", "Rock Fountain")
    page.fill("#id_lines-0-quantity", "2")
    page.fill("#id_lines-0-unit_price", "275.00")
    page.select_option("#id_lines-0-tax_rate", label="California (8%)")
    screen.shot("12-new-invoice")
    screen.click("input[name=_save]")
    assert Invoice.objects.filter(number="INV-2001").exists(), screen.messages()

    # 9. Sync: press Sync now; the invoice is Synced and is in QuickBooks.
    screen.visit("/admin/quickbooks/")
    screen.click("#qbo-sync")
    assert "Sync queued" in screen.messages(), screen.messages()
    screen.shot("13-sync-history")
    assert invoice_status(screen, "INV-2001") == "Synced"
    screen.shot("14-invoice-synced")
    assert qbo_ui.find("Invoice", DocNumber="INV-2001") is not None

    # 10. An invoice made in QuickBooks comes into the portal with the next pull.
    qbo_ui.create(
        "Invoice",
        {
            "DocNumber": "QB-5001",
            "TxnDate": today.isoformat(),
            "CustomerRef": {"value": "1"},
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": 150.0,
                    "SalesItemLineDetail": {
                        "ItemRef": {"value": "4"},
                        "Qty": 2,
                        "UnitPrice": 75,
                        "TaxCodeRef": {"value": "NON"},
                    },
                }
            ],
        },
    )
    screen.visit("/admin/quickbooks/")
    screen.click("#qbo-sync")
    assert invoice_status(screen, "QB-5001") == "Synced"
    screen.shot("15-invoice-from-quickbooks")

    # 11. A failing invoice says why, and syncs after the fix and Retry. Here a new tax rate
    # is used before it is mapped: the invoice is not sent untaxed, it fails with the reason.
    screen.visit("/admin/portal/taxrate/add/")
    page.fill("#id_name", "Tucson City")
    page.fill("#id_percent", "0.5")
    screen.click("input[name=_save]")
    screen.visit("/admin/portal/invoice/add/")
    page.fill("#id_number", "INV-2002")
    pick(screen, "id_customer", CUSTOMER)
    page.fill("#id_issue_date", today.isoformat())
    pick(screen, "id_lines-0-item", "Rock Fountain")
    page.fill("#id_lines-0-quantity", "1")
    page.fill("#id_lines-0-unit_price", "275.00")
    page.select_option("#id_lines-0-tax_rate", label="Tucson City (0.5%)")
    screen.click("input[name=_save]")
    assert invoice_status(screen, "INV-2002") == "Failed"
    details = page.locator("#result_list tbody tr", has_text="INV-2002").locator(
        "td.field-qbo_sync_details"
    )
    assert "Tucson City" in details.inner_text() and "not mapped" in details.inner_text()
    screen.shot("16-invoice-failed")

    screen.click("#result_list a:has-text('INV-2002')")
    assert page.inner_text("#qbo-invoice-status") == "Failed"
    assert "not mapped" in page.inner_text("#qbo-invoice-details")
    screen.shot("17-invoice-failed-details")

    # The only QuickBooks code for Tucson taxes at 7.6%: mapping it warns with both rates,
    # and the invoice is sent but says its totals differ, with QuickBooks' figures shown.
    screen.visit("/admin/quickbooks/?tab=mapping&sub=tax")
    row = page.locator("#qbo-tax-table tbody tr", has_text="Tucson City")
    row.locator("select").select_option(label="Tucson (7.6%)")
    screen.click("#qbo-save-tax")
    assert "Tax mapping saved: 2 mapped." in screen.messages(), screen.messages()
    assert "QuickBooks taxes these invoices at 7.6%, the portal at 0.5%" in screen.messages()

    invoice = Invoice.objects.get(number="INV-2002")
    screen.visit(f"/admin/portal/invoice/{invoice.pk}/change/")
    screen.click("#qbo-invoice-retry")
    assert page.inner_text("#qbo-invoice-status") == "Totals differ", page.inner_text("#qbo-panel")
    assert "QuickBooks taxes this invoice at 7.6%" in page.inner_text("#qbo-invoice-details")
    assert page.locator(".field-total .readonly").inner_text().strip() == "295.91"
    assert qbo_ui.find("Invoice", DocNumber="INV-2002") is not None

    # The portal rate was wrong: corrected, the next sync checks again and the invoice is synced.
    rate = TaxRate.objects.get(name="Tucson City")
    screen.visit(f"/admin/portal/taxrate/{rate.pk}/change/")
    page.fill("#id_percent", "7.6")
    screen.click("input[name=_save]")
    screen.visit(f"/admin/portal/invoice/{invoice.pk}/change/")
    screen.click("#qbo-invoice-sync")
    assert page.inner_text("#qbo-invoice-status") == "Synced", page.inner_text("#qbo-panel")
    screen.shot("18-invoice-retried")
    screen.shot("invoice-390px", narrow=True)

    # 12. The dashboard: connection health, counts by status, the outcomes of the last 30 days.
    screen.visit("/admin/")
    assert page.inner_text("#qbo-health-status") == "Connected"
    assert page.locator("#qbo-outcomes-chart").count() == 1
    screen.shot("19-dashboard-after-sync")
