"""Failures link to their record, reasons link to the settings tab they name, and an unmapped
tax rate says so where it is used (the tax rate pages, the invoice's save message)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from integrations.admin_text import settings_links
from portal.models import Customer, Invoice, Item, TaxRate
from portal.roles import BILLING_STAFF, SYNC_ADMINISTRATORS
from sync.models import SyncConfiguration, SyncEvent, SyncRun
from tests.portal.test_admin import _invoice_post

TAX_TAB = '<a href="/admin/quickbooks/?tab=mapping&amp;sub=tax">Mapping &gt; Tax tab</a>'


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_settings_links_escape_the_text_and_link_each_tab_named():
    text = 'Customer "<b>A&B</b>": fix it on the Journals tab, then the Mapping > Invoices tab.'
    assert settings_links(text) == (
        "Customer &quot;&lt;b&gt;A&amp;B&lt;/b&gt;&quot;: fix it on the "
        '<a href="/admin/quickbooks/?tab=journals">Journals tab</a>, then the '
        '<a href="/admin/quickbooks/?tab=mapping&amp;sub=invoices">Mapping &gt; Invoices tab</a>.'
    )
    assert settings_links("") == ""
    assert settings_links("<script>x</script> on the Conflicts tab") == (
        '&lt;script&gt;x&lt;/script&gt; on the <a href="/admin/quickbooks/?tab=conflicts">'
        "Conflicts tab</a>"
    )


def test_failure_events_link_to_their_invoice_customer_and_item(
    client, login, ready, run_sync, make_invoice
):
    """Each record failed in the run is a link on the run page, to its own admin page; the
    reasons that name a settings tab link to it."""
    from integrations.models import Connection

    # An invoice with an unmapped tax rate (never sent: its binding is new when it fails).
    unmapped = make_invoice(number="INV-<9001>")
    unmapped.lines.update(tax_rate=TaxRate.objects.create(name="Nowhere", percent=1))
    # An inventory item QuickBooks cannot create without the Expense and Asset journals.
    Connection.objects.filter(pk=ready.pk).update(expense_account=None, asset_account=None)
    hose = Item.objects.create(name="Garden hose", type=Item.Type.INVENTORY, sales_price=5)
    make_invoice(number="INV-9002", lines=[("Garden hose", 1, "5.00", False)])
    # A customer QuickBooks does not have, with creating customers turned off.
    SyncConfiguration.objects.update_or_create(
        connection=ready, defaults={"auto_create_customers": False}
    )
    make_invoice(
        number="INV-9003", customer="Nobody Known", lines=[("Consulting hour", 1, "1", False)]
    )
    ready.refresh_from_db()

    run = run_sync("push")
    assert run.outcome == "done_with_failures", run.message

    login(BILLING_STAFF)
    page = client.get(reverse("admin:quickbooks_run", args=[run.pk])).content.decode()
    failed = SyncEvent.objects.filter(run=run, action="failed")
    assert failed.count() >= 4
    assert not failed.filter(record__isnull=True).exists()
    invoice = Invoice.objects.get(number="INV-<9001>")
    customer = Customer.objects.get(display_name="Nobody Known")
    assert (
        f'<a href="{reverse("admin:portal_invoice_change", args=[invoice.pk])}">'
        "Invoice INV-&lt;9001&gt;</a>" in page
    )
    assert f'<a href="{reverse("admin:portal_item_change", args=[hose.pk])}">Garden hose' in page
    assert (
        f'<a href="{reverse("admin:portal_customer_change", args=[customer.pk])}">Nobody Known'
        in page
    )
    assert f"Map it on the {TAX_TAB}, then retry." in page
    assert '<a href="/admin/quickbooks/?tab=journals">Journals tab</a>' in page
    assert '<a href="/admin/quickbooks/?tab=configuration">Configuration tab</a>' in page


def test_the_run_page_shows_a_dash_only_for_events_about_the_run(client, login, connection):
    run = SyncRun.objects.create(
        connection=connection, trigger="button", direction="both", status="failed"
    )
    SyncEvent.objects.create(run=run, action="failed", level="error", message="It stopped.")
    login(BILLING_STAFF)
    page = client.get(reverse("admin:quickbooks_run", args=[run.pk])).content.decode()
    assert "<td>-</td>" in page


@pytest.fixture
def rates(connection, tax_setup):
    """California mapped, Nevada not (the company set up before Nevada was added)."""
    from sync.models import TaxMapping

    TaxMapping.objects.create(
        connection=connection, tax_rate=tax_setup["rate"], tax_code=tax_setup["code"]
    )
    return tax_setup


NEVADA_NOTE = (
    "Tax rate Nevada is not mapped to a QuickBooks tax code of Sandbox Company: invoices that "
    f"use it are not sent to QuickBooks (they would go untaxed). Map it on the {TAX_TAB}."
)


def test_the_tax_rate_list_and_page_say_which_rate_needs_mapping(client, login, rates):
    login(BILLING_STAFF)
    page = client.get(reverse("admin:portal_taxrate_changelist"))
    assert _messages(page) == [NEVADA_NOTE]
    assert NEVADA_NOTE in page.content.decode()  # rendered as a link, not as escaped text

    page = client.get(reverse("admin:portal_taxrate_change", args=[rates["other"].pk]))
    assert _messages(page) == [NEVADA_NOTE]
    page = client.get(reverse("admin:portal_taxrate_change", args=[rates["rate"].pk]))
    assert _messages(page) == []


def test_a_new_tax_rate_says_it_needs_mapping_once_added(client, login, rates):
    login(SYNC_ADMINISTRATORS)
    response = client.post(
        reverse("admin:portal_taxrate_add"),
        {"name": "Tucson City", "percent": "0.5", "active": "on"},
        follow=True,
    )
    [added, note] = _messages(response)
    assert "Tucson City (0.5%)</a>” was added successfully." in added
    assert note.startswith("Tax rates Nevada, Tucson City are not mapped to a QuickBooks tax")


def test_no_tax_note_without_a_company(client, login, db):
    TaxRate.objects.create(name="Nevada", percent=Decimal("6.85"))
    login(BILLING_STAFF)
    assert _messages(client.get(reverse("admin:portal_taxrate_changelist"))) == []


def test_saving_an_invoice_with_an_unmapped_tax_rate_says_it_is_not_sent(client, login, rates):
    customer = Customer.objects.create(display_name="Bayside Dental")
    item = Item.objects.create(name="Consulting", sales_price=Decimal("150"))
    login(BILLING_STAFF)
    response = client.post(
        reverse("admin:portal_invoice_add"),
        _invoice_post(customer, item, rates["other"]),
        follow=True,
    )
    note = (
        "Invoice INV-2 uses tax rate Nevada, not mapped to a QuickBooks tax code, so the "
        f"invoice is not sent to QuickBooks (it would go untaxed). Map it on the {TAX_TAB}, "
        "then press Retry on the invoice."
    )
    assert note in _messages(response)
    assert note in response.content.decode()

    response = client.post(
        reverse("admin:portal_invoice_add"),
        _invoice_post(customer, item, rates["rate"], number="INV-3"),
        follow=True,
    )
    assert not [m for m in _messages(response) if "not mapped" in m]
