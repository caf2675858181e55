"""The QuickBooks settings page: tabs per role, saves with messages, refusals."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.models import Invoice
from portal.roles import AUDITORS, BILLING_STAFF, SYNC_ADMINISTRATORS
from sync.configuration import readiness
from sync.models import FieldMapping, SyncConfiguration, TaxMapping
from tests.admin.conftest import ROLES

TAB_KEYS = ["connection", "configuration", "journals", "mapping", "items", "history", "conflicts"]
CHANGE_BUTTONS = {
    "configuration": 'id="qbo-save-config"',
    "journals": 'id="qbo-save-journals"',
    "mapping": 'id="qbo-save-tax"',
}


def _page(client, **query):
    response = client.get(reverse("admin:quickbooks"), query)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_tabs_are_in_order_with_stable_ids(client, login, connection):
    login(SYNC_ADMINISTRATORS)
    page = _page(client)
    positions = [page.index(f'id="tab-{key}"') for key in TAB_KEYS]
    assert positions == sorted(positions)
    for label in ("Connection", "Configuration", "Journals", "Mapping", "Items", "Sync history"):
        assert f">{label}</a>" in page


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("tab", TAB_KEYS)
def test_each_tab_renders_for_each_role_with_only_allowed_buttons(
    client, login, connection, tax_setup, role, tab
):
    login(role)
    page = _page(client, tab=tab)
    assert 'class="active"' in page
    may_change = role == SYNC_ADMINISTRATORS
    may_sync = role in (SYNC_ADMINISTRATORS, BILLING_STAFF)
    if tab in CHANGE_BUTTONS:
        assert (CHANGE_BUTTONS[tab] in page) is may_change
    if tab == "items":
        assert ('id="qbo-quick-sync"' in page) is may_sync
    # The Sync button sits in the page header on every tab for those who may sync.
    assert ('id="qbo-sync"' in page) is may_sync
    assert ('id="qbo-disconnect"' in page) is (may_change and tab == "connection")


def test_invoices_mapping_subtab_shows_defaults_and_save_only_to_administrators(
    client, login, connection
):
    login(SYNC_ADMINISTRATORS)
    page = _page(client, tab="mapping", sub="invoices")
    assert 'id="qbo-save-mapping"' in page
    assert 'id="qbo-fetch-custom-fields"' in page
    assert '<option value="DocNumber" selected>' in page
    assert '<option value="CustomerMemo" selected>' in page
    assert 'name="map-customer-qbo" id="id_map-customer-qbo" value="CustomerRef"' in page
    client.logout()
    login(AUDITORS)
    page = _page(client, tab="mapping", sub="invoices")
    assert 'id="qbo-save-mapping"' not in page
    assert 'id="qbo-fetch-custom-fields"' not in page


def test_readiness_names_what_is_missing_with_links_and_disables_sync(
    client, login, connection, tax_setup
):
    connection.income_account = None
    connection.save()
    assert [tab for _m, tab in readiness(connection)] == ["journals", "mapping"]
    login(BILLING_STAFF)
    page = _page(client, tab="history")
    assert "No income account is chosen for new items." in page
    assert "2 tax rates are not mapped to a QuickBooks tax code: California, Nevada." in page
    assert 'href="/admin/quickbooks/?tab=journals"' in page
    assert 'href="/admin/quickbooks/?tab=mapping"' in page
    assert '<button type="button" class="button" id="qbo-sync" disabled' in page
    assert 'id="qbo-sync-why">Sync is unavailable: No income account' in page


def test_readiness_without_a_connection(client, login, db):
    assert readiness(None) == [("QuickBooks is not connected yet.", "connection")]
    login(SYNC_ADMINISTRATORS)
    page = _page(client, tab="mapping")
    assert "QuickBooks is not connected yet." in page
    assert "Connect QuickBooks first" in page


def test_sync_button_queues_push_and_pull_and_goes_to_history(
    client, login, connection, started, queued
):
    login(BILLING_STAFF)
    response = client.post(reverse("admin:quickbooks_sync"))
    assert response.status_code == 302
    assert response.url.startswith("/admin/quickbooks/?tab=history&queued=")
    assert queued == [("sync.tasks.run_sync", connection.pk, "both", "button")]
    page = client.get(response.url)
    assert "Sync queued" in page.content.decode()
    # Until the worker starts the run, the history page keeps refreshing itself.
    assert '<meta http-equiv="refresh" content="2">' in page.content.decode()


def test_sync_button_refused_while_setup_is_incomplete(
    client, login, connection, tax_setup, queued
):
    login(SYNC_ADMINISTRATORS)
    response = client.post(reverse("admin:quickbooks_sync"), follow=True)
    assert queued == []
    assert any("Sync cannot run yet" in m and "Nevada" in m for m in _messages(response))


def test_quick_sync_queues_items_run(client, login, connection, queued):
    login(BILLING_STAFF)
    response = client.post(reverse("admin:quickbooks_quick_sync"))
    assert response.status_code == 302
    assert queued == [("sync.tasks.run_sync", connection.pk, "items", "button")]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("quickbooks_configuration", {"sync_type": "one_way"}),
        ("quickbooks_tax_mapping", {}),
        ("quickbooks_field_mapping", {}),
        ("quickbooks_custom_fields", {}),
        ("quickbooks_fetch_accounts", {}),
        ("quickbooks_journals", {}),
    ],
)
@pytest.mark.parametrize("role", [BILLING_STAFF, AUDITORS])
def test_changes_are_refused_to_billing_staff_and_auditors(
    client, login, connection, role, name, data
):
    login(role)
    assert client.post(reverse(f"admin:{name}"), data).status_code == 403


def test_auditors_may_not_sync(client, login, connection, queued):
    login(AUDITORS)
    assert client.post(reverse("admin:quickbooks_sync")).status_code == 403
    assert client.post(reverse("admin:quickbooks_quick_sync")).status_code == 403
    assert queued == []


def test_configuration_saves(client, login, connection):
    login(SYNC_ADMINISTRATORS)
    response = client.post(
        reverse("admin:quickbooks_configuration"),
        {
            "app": "invoices",
            "sync_type": "one_way",
            "enabled": "on",
            "pull_interval_minutes": "30",
            "conflict_rule": "portal_wins",
            "first_invoice_date": "2026-01-01",
            "auto_create_customers": "on",
        },
        follow=True,
    )
    assert "Configuration saved." in _messages(response)
    config = SyncConfiguration.objects.get(connection=connection)
    assert (config.sync_type, config.pull_interval_minutes, config.conflict_rule) == (
        "one_way",
        30,
        "portal_wins",
    )
    assert config.enabled and not config.push_on_save and not config.auto_create_items
    assert str(config.first_invoice_date) == "2026-01-01"


def test_configuration_errors_name_the_field(client, login, connection):
    login(SYNC_ADMINISTRATORS)
    response = client.post(
        reverse("admin:quickbooks_configuration"),
        {"app": "invoices", "sync_type": "two_way", "pull_interval_minutes": "0"},
    )
    assert response.status_code == 400
    assert any(m.startswith("Pull every (minutes):") for m in _messages(response))
    assert 'id="row-pull_interval_minutes"' in response.content.decode()
    assert not SyncConfiguration.objects.filter(connection=connection).exists()


def test_tax_mapping_saves_and_highlights_unmapped(client, login, connection, tax_setup):
    login(SYNC_ADMINISTRATORS)
    page = _page(client, tab="mapping", sub="tax")
    assert f'<tr class="ll-unmapped" id="tax-row-{tax_setup["rate"].pk}">' in page
    response = client.post(
        reverse("admin:quickbooks_tax_mapping"),
        {f"tax-{tax_setup['rate'].pk}": tax_setup["code"].pk, f"tax-{tax_setup['other'].pk}": ""},
        follow=True,
    )
    assert "Tax mapping saved: 1 mapped. Still not mapped: Nevada." in _messages(response)
    mapping = TaxMapping.objects.get(connection=connection)
    assert (mapping.tax_rate, mapping.tax_code) == (tax_setup["rate"], tax_setup["code"])
    page = response.content.decode()
    assert f'<tr class="" id="tax-row-{tax_setup["rate"].pk}">' in page
    assert f'<tr class="ll-unmapped" id="tax-row-{tax_setup["other"].pk}">' in page


def test_tax_mapping_to_a_code_of_another_rate_saves_and_warns_with_both_rates(
    client, login, connection, tax_setup
):
    login(SYNC_ADMINISTRATORS)
    response = client.post(
        reverse("admin:quickbooks_tax_mapping"),
        {f"tax-{tax_setup['other'].pk}": tax_setup["code"].pk},
        follow=True,
    )
    warning = (
        "Nevada (6.85%) is mapped to California (8%): QuickBooks taxes these invoices at 8%, "
        "the portal at 6.85%, so their totals differ. Map a code with the same rate, or correct "
        "the portal rate."
    )
    assert warning in _messages(response)
    assert TaxMapping.objects.get(connection=connection).tax_rate == tax_setup["other"]
    page = response.content.decode()
    assert f'id="tax-mismatch-{tax_setup["other"].pk}">{warning}</div>' in page
    assert f'id="tax-mismatch-{tax_setup["rate"].pk}"' not in page


def test_tax_mapping_refuses_a_code_of_another_company(client, login, connection, tax_setup):
    login(SYNC_ADMINISTRATORS)
    response = client.post(
        reverse("admin:quickbooks_tax_mapping"),
        {f"tax-{tax_setup['rate'].pk}": "999999"},
        follow=True,
    )
    assert any(m.startswith("Tax rate California: Pick one of") for m in _messages(response))
    assert not TaxMapping.objects.exists()


def _mapping_post(**overrides):
    from sync.fieldmap import LOCAL_FIELDS

    data = {}
    for field in LOCAL_FIELDS:
        data[f"map-{field.name}-qbo"] = field.default
        data[f"map-{field.name}-direction"] = "both"
    data.update(overrides)
    return data


def test_field_mapping_saves_defaults_and_choices(client, login, connection):
    connection.custom_fields = {"1": "Crew #"}
    connection.save()
    login(SYNC_ADMINISTRATORS)
    response = client.post(
        reverse("admin:quickbooks_field_mapping"),
        _mapping_post(
            **{"map-reference-qbo": "CustomField:1", "map-private_note-direction": "to_qbo"}
        ),
        follow=True,
    )
    assert "Invoice field mapping saved." in _messages(response)
    saved = {m.local_field: (m.qbo_field, m.direction) for m in FieldMapping.objects.all()}
    assert saved["reference"] == ("CustomField:1", "both")
    assert saved["private_note"] == ("PrivateNote", "to_qbo")
    assert saved["number"] == ("DocNumber", "both")
    assert '<option value="CustomField:1" selected>Custom field 1: Crew #</option>' in (
        response.content.decode()
    )


def test_field_mapping_errors_name_the_field_and_keep_the_input(
    client, login, connection, invoices
):
    [invoice] = invoices(1)
    Invoice.objects.filter(pk=invoice.pk).update(reference="PO-" + "9" * 40)
    connection.custom_fields = {"1": "Crew #"}
    connection.save()
    login(SYNC_ADMINISTRATORS)
    response = client.post(
        reverse("admin:quickbooks_field_mapping"),
        _mapping_post(
            **{"map-reference-qbo": "CustomField:1", "map-customer_memo-qbo": "PrivateNote"}
        ),
    )
    assert response.status_code == 400
    errors = _messages(response)
    too_long = "Reference / PO number: QuickBooks keeps at most 31 characters"
    assert any(m.startswith(too_long) for m in errors)
    assert any(m.startswith("Private note and Customer memo both map to") for m in errors) or any(
        m.startswith("Customer memo and Private note both map to") for m in errors
    )
    page = response.content.decode()
    assert 'id="map-error-reference"' in page
    assert '<option value="CustomField:1" selected>' in page
    assert not FieldMapping.objects.exists()


def test_fetch_custom_fields_stores_the_definitions(client, login, connection_factory):
    connection = connection_factory()
    login(SYNC_ADMINISTRATORS)
    response = client.post(reverse("admin:quickbooks_custom_fields"), follow=True)
    connection.refresh_from_db()
    assert connection.custom_fields == {"1": "Crew #"}
    assert "Custom fields in use in QuickBooks: 1: Crew #." in _messages(response)
    assert "Custom field 1: Crew #" in response.content.decode()
