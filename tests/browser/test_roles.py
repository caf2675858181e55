"""Each role sees only the tabs and buttons it may use, checked in the browser.

Sync administrators set QuickBooks up; billing staff keep the records and may sync and retry;
auditors look. The server refusing what is hidden is tested without a browser (tests/portal).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from portal.roles import AUDITORS, BILLING_STAFF, SYNC_ADMINISTRATORS

pytestmark = pytest.mark.browser

TABS = ["connection", "configuration", "journals", "mapping", "items", "history", "conflicts"]
# The buttons of each QuickBooks tab (the Sync button sits above the tabs).
TAB_BUTTONS = {
    "connection": ["#qbo-reconnect", "#qbo-disconnect"],
    "configuration": ["#qbo-save-config"],
    "journals": ["#qbo-fetch-accounts", "#qbo-save-journals"],
    "mapping&sub=tax": ["#qbo-save-tax"],
    "mapping&sub=invoices": ["#qbo-save-mapping", "#qbo-fetch-custom-fields"],
    "items": ["#qbo-quick-sync"],
}
SETUP = {
    "#qbo-reconnect",
    "#qbo-disconnect",
    "#qbo-save-config",
    "#qbo-fetch-accounts",
    "#qbo-save-journals",
    "#qbo-save-tax",
    "#qbo-save-mapping",
    "#qbo-fetch-custom-fields",
}
SYNCING = {"#qbo-sync", "#qbo-quick-sync", "#qbo-invoice-sync", "#qbo-invoice-retry"}

MAY = {
    SYNC_ADMINISTRATORS: {"tabs": TABS, "buttons": SETUP | SYNCING, "edit_records": True},
    BILLING_STAFF: {"tabs": TABS, "buttons": SYNCING, "edit_records": True},
    AUDITORS: {"tabs": TABS, "buttons": set(), "edit_records": False},
}


@pytest.fixture
def failed_invoice(ready):
    """An invoice whose last push failed, so its page offers Retry to those who may."""
    from portal.models import Customer, Invoice
    from sync.models import SyncRecord

    customer = Customer.objects.create(display_name="Greenleaf Cafe")
    invoice = Invoice.objects.create(number="INV-3001", customer=customer)
    SyncRecord.objects.create(
        connection=ready,
        object_type="invoice",
        invoice=invoice,
        status=SyncRecord.Status.FAILED,
        details="QuickBooks refused the invoice: the customer is inactive.",
    )
    assert invoice.total == Decimal("0")
    return invoice


def post_status(screen, url: str) -> int:
    """POST ``url`` from the page, as a form would (same session, CSRF token from the cookie).

    The browser logs the refusal in the console; that line is expected and dropped.
    """
    status = screen.page.evaluate(
        """async (url) => {
            const token = document.cookie.split('; ').find(c => c.startsWith('csrftoken='));
            const response = await fetch(url, {
                method: 'POST',
                headers: {'X-CSRFToken': token ? token.split('=')[1] : ''},
                redirect: 'manual',
            });
            return response.status;
        }""",
        url,
    )
    expected = f"{screen.base_url}{url})"
    for _ in range(40):  # the console line arrives a moment later
        if any(expected in e for e in screen.errors):
            break
        screen.page.wait_for_timeout(25)
    screen.errors = [e for e in screen.errors if expected not in e]
    return status


@pytest.mark.parametrize("role", [SYNC_ADMINISTRATORS, BILLING_STAFF, AUDITORS])
def test_role_sees_what_it_may_use(screen, staff, failed_invoice, role):
    page = screen.page
    may = MAY[role]
    screen.sign_in_as(staff(role))
    slug = role.lower().replace(" ", "-")

    screen.visit("/admin/")
    assert page.locator("#qbo-dashboard").count() == 1
    screen.shot(f"role-{slug}-dashboard", docs=False)

    seen = set()
    for tab, buttons in TAB_BUTTONS.items():
        screen.visit(f"/admin/quickbooks/?tab={tab}")
        tabs = [
            t.removeprefix("tab-")
            for t in page.locator(".ll-tabs a").evaluate_all("links => links.map(a => a.id)")
        ]
        assert tabs == may["tabs"], f"{role} sees tabs {tabs}"
        for selector in [*buttons, "#qbo-sync"]:
            if page.locator(selector).count():
                seen.add(selector)
        if role != SYNC_ADMINISTRATORS and tab != "connection":
            # Read-only where the role may not change: the form fields are disabled.
            for field in page.locator(".ll-card select, .ll-card input[type=text]").all():
                assert field.is_disabled(), f"{role} may edit a field on the {tab} tab"
    screen.shot(f"role-{slug}-quickbooks", docs=False)

    screen.visit(f"/admin/portal/invoice/{failed_invoice.pk}/change/")
    for selector in ("#qbo-invoice-sync", "#qbo-invoice-retry"):
        if page.locator(selector).count():
            seen.add(selector)
    assert page.inner_text("#qbo-invoice-status") == "Failed"
    assert "customer is inactive" in page.inner_text("#qbo-invoice-details")
    can_save = page.locator("input[name=_save]").count() == 1
    assert can_save == may["edit_records"], f"{role}: Save shown={can_save}"
    screen.shot(f"role-{slug}-invoice", docs=False)

    screen.visit("/admin/portal/invoice/")
    actions = page.locator("select[name=action] option").evaluate_all(
        "options => options.map(o => o.value)"
    )
    if may["edit_records"]:
        assert {"sync_now", "retry_failed"} <= set(actions), actions
        assert page.locator(".object-tools a.addlink").count() == 1
    else:
        assert not {"sync_now", "retry_failed"} & set(actions), actions
        assert page.locator(".object-tools a.addlink").count() == 0

    # What is hidden is refused too: the same POST the hidden button would send, from this
    # person's browser with a valid CSRF token, answers 403.
    for url, needs in (
        ("/admin/quickbooks/mapping/tax/", "#qbo-save-tax"),
        ("/admin/quickbooks/disconnect/", "#qbo-disconnect"),
        ("/admin/quickbooks/sync/", "#qbo-sync"),
        (f"/admin/portal/invoice/{failed_invoice.pk}/quickbooks/retry/", "#qbo-invoice-retry"),
    ):
        if needs not in may["buttons"]:
            assert post_status(screen, url) == 403, f"{role} may POST {url}"

    assert seen == may["buttons"], (
        f"{role}: shown but may not use {sorted(seen - may['buttons'])}; "
        f"may use but not shown {sorted(may['buttons'] - seen)}"
    )
