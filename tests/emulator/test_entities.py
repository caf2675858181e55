"""Create, read, update and the name-list rules (Customer, Item, Account, reads of others)."""

from __future__ import annotations

import requests

from .conftest import fault, unique


def test_create_and_read_customer_use_qbo_envelopes(qbo):
    name = unique("Amy")
    response = qbo.post("customer", {"DisplayName": name, "GivenName": "Amy"}, minorversion=75)
    assert response.status_code == 200
    assert response.headers["intuit_tid"].startswith("1-")
    body = response.json()
    assert set(body) == {"Customer", "time"}
    customer = body["Customer"]
    assert customer["SyncToken"] == "0"
    assert isinstance(customer["Id"], str)
    assert customer["domain"] == "QBO" and customer["sparse"] is False
    assert set(customer["MetaData"]) == {"CreateTime", "LastUpdatedTime"}
    assert qbo.read("Customer", customer["Id"])["DisplayName"] == name


def test_every_answer_carries_intuit_tid(emulator, qbo):
    assert qbo.get("customer/99999999").headers["intuit_tid"]
    discovery = f"{emulator.base_url}/.well-known/openid_configuration/"
    assert requests.get(discovery, timeout=5).headers["intuit_tid"]


def test_minorversion_below_75_or_missing_is_served_as_75(emulator, qbo):
    qbo.get("preferences", minorversion=40)
    qbo.get("preferences")
    log = emulator.app.requests_log()
    assert [entry["minorversion"] for entry in log[-2:]] == [75, 75]


def test_reading_a_missing_object_is_610(qbo):
    response = qbo.get("customer/99999999")
    assert response.status_code == 400
    error = fault(response)
    assert error["code"] == "610"
    assert error["Message"] == "Object Not Found"


def test_unknown_or_wrongly_cased_url_is_404(qbo):
    assert qbo.get("Customer/1").status_code == 404
    assert qbo.get("frobnicator/1").status_code == 404


def test_companyinfo_and_preferences_are_readable(qbo, realm_id):
    info = qbo.read("CompanyInfo", realm_id)
    assert info["CompanyName"]
    prefs = qbo.get("preferences").json()["Preferences"]
    assert "SalesFormsPrefs" in prefs


def test_unknown_property_is_2010(qbo):
    response = qbo.post("customer", {"DisplayName": unique("C"), "Nickname": "x"})
    error = fault(response)
    assert error["code"] == "2010"
    assert "Nickname" in error["Detail"]


def test_display_name_must_be_unique_ignoring_case(qbo):
    name = unique("Dup")
    qbo.customer(DisplayName=name)
    response = qbo.post("customer", {"DisplayName": name.upper()})
    assert response.status_code == 400
    error = fault(response)
    assert error["code"] == "6240"
    assert error["Message"] == "Duplicate Name Exists Error"


def test_display_name_is_built_from_name_parts(qbo):
    family = unique("Smith")
    customer = qbo.create("Customer", {"Title": "Dr", "GivenName": "Ann", "FamilyName": family})
    assert customer["DisplayName"] == f"Dr Ann {family}"


def test_customer_without_any_name_is_6080(qbo):
    assert fault(qbo.post("customer", {"CompanyName": "Nameless"}))["code"] == "6080"


def test_name_fields_reject_colon_tab_and_newline(qbo):
    for bad in ("A:B", "A\tB", "A\nB"):
        error = fault(qbo.post("customer", {"DisplayName": unique(bad)}))
        assert error["code"] == "6000"
        assert error["element"] == "DisplayName"


def test_string_length_limit_is_2050(qbo):
    error = fault(qbo.post("customer", {"DisplayName": unique("C"), "Title": "x" * 17}))
    assert error["code"] == "2050"
    assert error["element"] == "Title"


def test_invalid_email_is_refused(qbo):
    body = {"DisplayName": unique("C"), "PrimaryEmailAddr": {"Address": "nobody"}}
    assert qbo.post("customer", body).status_code == 400


def test_stale_sync_token_is_5010(qbo):
    customer = qbo.customer()
    update = {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Notes": "first"}
    assert qbo.post("customer", update).json()["Customer"]["SyncToken"] == "1"
    response = qbo.post("customer", {**update, "Notes": "second"})
    error = fault(response)
    assert error["code"] == "5010"
    assert error["Message"] == "Stale Object Error"


def test_update_without_sync_token_is_2020(qbo):
    customer = qbo.customer()
    error = fault(qbo.post("customer", {"Id": customer["Id"], "sparse": True, "Notes": "x"}))
    assert (error["code"], error["element"]) == ("2020", "SyncToken")


def test_update_of_unknown_id_is_610(qbo):
    body = {"Id": "99999999", "SyncToken": "0", "sparse": True, "Notes": "x"}
    assert fault(qbo.post("customer", body))["code"] == "610"


def test_sparse_update_changes_only_sent_fields(qbo):
    customer = qbo.customer(Notes="keep me", CompanyName="Acme")
    updated = qbo.create(
        "Customer",
        {"Id": customer["Id"], "SyncToken": customer["SyncToken"], "sparse": True, "Notes": "new"},
    )
    assert updated["Notes"] == "new"
    assert updated["CompanyName"] == "Acme"
    assert updated["MetaData"]["CreateTime"] == customer["MetaData"]["CreateTime"]


def test_full_update_clears_fields_left_out(qbo):
    customer = qbo.customer(Notes="gone soon", CompanyName="Acme")
    updated = qbo.create(
        "Customer",
        {"Id": customer["Id"], "SyncToken": "0", "DisplayName": customer["DisplayName"]},
    )
    assert "Notes" not in updated and "CompanyName" not in updated


def test_sparse_update_is_still_checked_for_required_fields(qbo):
    """A sparse update that leaves the entity invalid is refused, as QBO refuses it."""
    item = qbo.service_item()
    response = qbo.post(
        "item",
        {"Id": item["Id"], "SyncToken": item["SyncToken"], "sparse": True, "Type": "Inventory"},
    )
    error = fault(response)
    assert error["code"] == "2020"
    assert qbo.read("Item", item["Id"])["Type"] == "Service"


def test_sparse_update_cannot_clear_display_name(qbo):
    customer = qbo.customer()
    body = {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "DisplayName": ""}
    assert qbo.create("Customer", body)["DisplayName"] == customer["DisplayName"]


def test_deactivating_a_customer_renames_it_deleted(qbo):
    customer = qbo.customer()
    body = {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Active": False}
    updated = qbo.create("Customer", body)
    assert updated["Active"] is False
    assert updated["DisplayName"] == customer["DisplayName"] + " (deleted)"
    # The original name is free again.
    qbo.customer(DisplayName=customer["DisplayName"])


def test_customers_cannot_be_deleted_only_made_inactive(qbo):
    customer = qbo.customer()
    response = qbo.post("customer", {"Id": customer["Id"], "SyncToken": "0"}, operation="delete")
    assert fault(response)["code"] == "500"


def test_item_name_must_be_unique(qbo):
    item = qbo.service_item()
    response = qbo.post(
        "item",
        {"Name": item["Name"], "Type": "Service", "IncomeAccountRef": item["IncomeAccountRef"]},
    )
    assert fault(response)["code"] == "6240"


def test_item_needs_a_name_and_an_income_account(qbo):
    assert fault(qbo.post("item", {"Type": "Service"}))["element"] == "Name"
    error = fault(qbo.post("item", {"Name": unique("I"), "Type": "Service"}))
    assert (error["code"], error["element"]) == ("2020", "IncomeAccountRef")


def test_item_reference_to_unknown_account_is_2500(qbo):
    body = {"Name": unique("I"), "Type": "Service", "IncomeAccountRef": {"value": "987654"}}
    assert fault(qbo.post("item", body))["code"] == "2500"


def test_item_reference_to_inactive_account_is_610(qbo):
    account = qbo.create("Account", {"Name": unique("Income"), "AccountType": "Income"})
    qbo.create("Account", {"Id": account["Id"], "SyncToken": "0", "sparse": True, "Active": False})
    body = {"Name": unique("I"), "Type": "Service", "IncomeAccountRef": {"value": account["Id"]}}
    assert fault(qbo.post("item", body))["code"] == "610"


def _inventory_body(qbo, **changes) -> dict:
    income = qbo.find("Account", AccountType="Income", Active=True)
    cogs = qbo.find("Account", AccountType="Cost of Goods Sold")
    asset = qbo.find("Account", AccountSubType="Inventory")
    body = {
        "Name": unique("Widget"),
        "Type": "Inventory",
        "IncomeAccountRef": {"value": income["Id"]},
        "ExpenseAccountRef": {"value": cogs["Id"]},
        "AssetAccountRef": {"value": asset["Id"]},
        "TrackQtyOnHand": True,
        "QtyOnHand": 10,
        "InvStartDate": "2020-01-01",
        "UnitPrice": 25,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def test_inventory_item_requires_accounts_quantity_and_start_date(qbo):
    assert qbo.create("Item", _inventory_body(qbo))["QtyOnHand"] == 10
    for missing in ("AssetAccountRef", "ExpenseAccountRef", "QtyOnHand", "InvStartDate"):
        error = fault(qbo.post("item", _inventory_body(qbo, **{missing: None})))
        assert (error["code"], error["element"]) == ("2020", missing)
    error = fault(qbo.post("item", _inventory_body(qbo, TrackQtyOnHand=False)))
    assert error["code"] == "6000"


def test_account_rules(qbo):
    name = unique("Sales")
    account = qbo.create("Account", {"Name": name, "AccountType": "Income"})
    assert account["Classification"] == "Revenue"
    assert account["AccountSubType"]
    assert fault(qbo.post("account", {"Name": name, "AccountType": "Income"}))["code"] == "6240"
    assert fault(qbo.post("account", {"Name": unique("N")}))["code"] == "6010"
    assert fault(qbo.post("account", {"Name": "A:B", "AccountType": "Income"}))["code"] == "6000"
    by_subtype = qbo.create("Account", {"Name": unique("Stock"), "AccountSubType": "Inventory"})
    assert by_subtype["AccountType"] == "Other Current Asset"


def test_tax_codes_are_read_only(qbo):
    code = qbo.tax_code()
    assert qbo.read("TaxCode", code["Id"])["Name"] == code["Name"]
    assert fault(qbo.post("taxcode", {"Name": "New"}))["code"] == "500"


def test_preferences_update_needs_sync_token(qbo):
    prefs = qbo.get("preferences").json()["Preferences"]
    response = qbo.post("preferences", {"Id": prefs["Id"], "sparse": True})
    assert fault(response)["code"] == "2020"


def test_deactivating_a_second_customer_of_the_same_name_does_not_clash(qbo):
    name = unique("Twice")
    for expected in (f"{name} (deleted)", f"{name} (deleted-1)"):
        customer = qbo.customer(DisplayName=name)
        body = {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Active": False}
        assert qbo.create("Customer", body)["DisplayName"] == expected


def test_reactivating_a_customer_restores_its_name(qbo):
    customer = qbo.customer()
    body = {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Active": False}
    qbo.create("Customer", body)
    again = qbo.create("Customer", {**body, "SyncToken": "1", "Active": True})
    assert again["DisplayName"] == customer["DisplayName"]
    assert again["Active"] is True
