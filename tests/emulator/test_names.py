"""Vendors and employees, and the one DisplayName space they share with customers."""

from __future__ import annotations

import pytest

from .conftest import Qbo, fault, unique

NAME_SPACE = ("Customer", "Vendor", "Employee")
TAKEN = (
    "The name supplied already exists. : Another customer, vendor or employee is already "
    "using this name. Please use a different name."
)


def named(qbo: Qbo, entity: str, name: str) -> dict:
    """A customer, vendor or employee with DisplayName ``name``."""
    return getattr(qbo, entity.lower())(DisplayName=name)


def body_named(entity: str, name: str) -> dict:
    body = {"DisplayName": name}
    if entity == "Employee":
        body.update(GivenName="Pat", FamilyName="Doe")
    return body


# --- Vendors ---------------------------------------------------------------------------------


def test_create_and_read_vendor_use_qbo_envelopes(qbo):
    name = unique("Supplies")
    response = qbo.post("vendor", {"DisplayName": name, "CompanyName": "Supplies Inc"})
    assert response.status_code == 200
    assert set(response.json()) == {"Vendor", "time"}
    vendor = response.json()["Vendor"]
    assert (vendor["SyncToken"], vendor["domain"], vendor["sparse"]) == ("0", "QBO", False)
    assert set(vendor["MetaData"]) == {"CreateTime", "LastUpdatedTime"}
    assert vendor["Active"] is True
    assert vendor["PrintOnCheckName"] == name
    assert vendor["Vendor1099"] is False
    assert vendor["Balance"] == 0
    assert vendor["CurrencyRef"]["value"] == "USD"
    assert qbo.read("Vendor", vendor["Id"]) == vendor


def test_vendor_needs_a_name_and_builds_one_from_its_parts(qbo):
    assert fault(qbo.post("vendor", {"CompanyName": "Nameless"}))["code"] == "6080"
    family = unique("Vendorson")
    vendor = qbo.create("Vendor", {"GivenName": "Val", "FamilyName": family})
    assert vendor["DisplayName"] == f"Val {family}"


def test_vendor_refuses_unknown_fields_and_colons(qbo):
    error = fault(qbo.post("vendor", {"DisplayName": unique("V"), "Job": True}))
    assert (error["code"], error["element"]) == ("2010", "Job")
    error = fault(qbo.post("vendor", {"DisplayName": unique("A:B")}))
    assert (error["code"], error["element"]) == ("6000", "DisplayName")


def test_vendor_sparse_update_changes_only_sent_fields(qbo):
    vendor = qbo.vendor(CompanyName="Acme", AcctNum="V-1")
    updated = qbo.sparse("Vendor", vendor, AcctNum="V-2", DisplayName="")
    assert updated["SyncToken"] == "1"
    assert updated["AcctNum"] == "V-2"
    assert updated["CompanyName"] == "Acme"
    assert updated["DisplayName"] == vendor["DisplayName"]  # cannot be cleared
    stale = {"Id": vendor["Id"], "SyncToken": "0", "sparse": True, "AcctNum": "V-3"}
    assert fault(qbo.post("vendor", stale))["code"] == "5010"


def test_deactivating_a_vendor_renames_it_and_hides_it_from_queries(qbo):
    vendor = qbo.vendor()
    gone = qbo.sparse("Vendor", vendor, Active=False)
    assert gone["Active"] is False
    assert gone["DisplayName"] == vendor["DisplayName"] + " (deleted)"
    where = f"Id = '{vendor['Id']}'"
    assert qbo.query(f"select * from Vendor where {where}") == {}
    listed = qbo.query(f"select * from Vendor where {where} and Active in (true, false)")
    assert [v["DisplayName"] for v in listed["Vendor"]] == [gone["DisplayName"]]
    back = qbo.sparse("Vendor", gone, Active=True)
    assert back["DisplayName"] == vendor["DisplayName"]


def test_vendors_cannot_be_deleted(qbo):
    vendor = qbo.vendor()
    response = qbo.post("vendor", {"Id": vendor["Id"], "SyncToken": "0"}, operation="delete")
    assert fault(response)["code"] == "500"


def test_query_finds_a_vendor_by_display_name(qbo):
    vendor = qbo.vendor()
    found = qbo.query(f"select * from Vendor where DisplayName = '{vendor['DisplayName']}'")
    assert [v["Id"] for v in found["Vendor"]] == [vendor["Id"]]
    assert qbo.query("select count(*) from Vendor")["totalCount"] >= 1


def test_vendor_changes_show_in_cdc_and_batch(make_emulator):
    emu = make_emulator()
    qbo = Qbo(emu, emu.realm_ids[0])
    emu.advance_clock(5)
    since = emu.clock.now().isoformat(timespec="seconds")
    vendor = qbo.vendor()
    employee = qbo.employee()
    cdc = qbo.get("cdc", entities="Vendor,Employee", changedSince=since).json()
    (vendors, employees) = cdc["CDCResponse"][0]["QueryResponse"]
    assert [v["Id"] for v in vendors["Vendor"]] == [vendor["Id"]]
    assert [e["Id"] for e in employees["Employee"]] == [employee["Id"]]
    batch = {"BatchItemRequest": [{"bId": "v1", "Vendor": {"DisplayName": unique("Batch")}}]}
    (item,) = qbo.post("batch", batch).json()["BatchItemResponse"]
    assert item["Vendor"]["SyncToken"] == "0"


# --- Employees -------------------------------------------------------------------------------


def test_employee_needs_a_given_or_family_name(qbo):
    error = fault(qbo.post("employee", {"DisplayName": unique("Only Display")}))
    assert (error["code"], error["element"]) == ("2020", "GivenName")
    family = unique("Platt")
    employee = qbo.create("Employee", {"FamilyName": family})
    assert employee["DisplayName"] == family


def test_create_read_and_sparse_update_an_employee(qbo):
    family = unique("Jones")
    employee = qbo.create(
        "Employee",
        {"GivenName": "Ann", "FamilyName": family, "HiredDate": "2024-03-01", "SSN": "123-45-6789"},
    )
    assert employee["DisplayName"] == f"Ann {family}"
    assert employee["PrintOnCheckName"] == f"Ann {family}"
    assert employee["SSN"] == "XXX-XX-6789"
    assert qbo.read("Employee", employee["Id"]) == employee
    updated = qbo.sparse("Employee", employee, EmployeeNumber="E-77")
    assert (updated["EmployeeNumber"], updated["HiredDate"]) == ("E-77", "2024-03-01")
    assert updated["SSN"] == "XXX-XX-6789"
    assert fault(qbo.post("employee", {"FamilyName": "X", "BirthDate": "soon"}))["code"] == "2010"


def test_deactivating_an_employee_renames_it_deleted(qbo):
    employee = qbo.employee()
    gone = qbo.sparse("Employee", employee, Active=False)
    assert gone["DisplayName"] == employee["DisplayName"] + " (deleted)"
    where = f"DisplayName = '{employee['DisplayName']}'"
    assert qbo.query(f"select * from Employee where {where}") == {}


def test_sandbox_company_has_vendors_and_an_employee(qbo):
    vendors = qbo.query("select * from Vendor")["Vendor"]
    employees = qbo.query("select * from Employee")["Employee"]
    assert "Tania's Nursery" in {v["DisplayName"] for v in vendors}
    assert {e["DisplayName"] for e in employees} >= {"Emily Platt"}
    customers = {c["DisplayName"] for c in qbo.rows("Customer")}
    assert not customers & {row["DisplayName"] for row in vendors + employees}


def test_customers_vendors_and_employees_share_one_id_sequence(qbo):
    ids = [int(qbo.customer()["Id"]), int(qbo.vendor()["Id"]), int(qbo.employee()["Id"])]
    assert ids == sorted(set(ids))
    sandbox = [int(row["Id"]) for entity in NAME_SPACE for row in qbo.rows(entity)]
    assert len(sandbox) == len(set(sandbox))


# --- One name space --------------------------------------------------------------------------


@pytest.mark.parametrize("holder", NAME_SPACE)
@pytest.mark.parametrize("newcomer", NAME_SPACE)
def test_a_display_name_is_unique_across_customers_vendors_and_employees(qbo, holder, newcomer):
    name = unique("Shared")
    named(qbo, holder, name)
    # Compared ignoring case and surrounding spaces.
    response = qbo.post(newcomer.lower(), body_named(newcomer, f"  {name.upper()} "))
    assert response.status_code == 400
    error = fault(response)
    assert error["code"] == "6240"
    assert error["Message"] == "Duplicate Name Exists Error"
    assert error["Detail"] == TAKEN
    assert error["element"] == f"{holder}.DisplayName"


def test_a_sandbox_vendor_name_is_refused_for_a_customer(qbo):
    error = fault(qbo.post("customer", {"DisplayName": "books by bessie"}))
    assert (error["code"], error["element"]) == ("6240", "Vendor.DisplayName")


@pytest.mark.parametrize("entity", NAME_SPACE)
def test_display_names_are_trimmed_on_save(qbo, entity):
    name = unique("Trim")
    saved = qbo.create(entity, body_named(entity, f"   {name}  "))
    assert saved["DisplayName"] == name


def test_renaming_to_a_name_held_in_another_list_is_6240(qbo):
    customer = qbo.customer()
    vendor = qbo.vendor()
    body = {"Id": vendor["Id"], "SyncToken": "0", "sparse": True}
    error = fault(qbo.post("vendor", {**body, "DisplayName": customer["DisplayName"]}))
    assert (error["code"], error["element"]) == ("6240", "Customer.DisplayName")
    # Its own name, in another case, is no clash.
    renamed = qbo.create("Vendor", {**body, "DisplayName": vendor["DisplayName"].lower()})
    assert renamed["DisplayName"] == vendor["DisplayName"].lower()


def test_a_deactivated_name_is_free_for_the_other_lists(qbo):
    vendor = qbo.vendor()
    qbo.sparse("Vendor", vendor, Active=False)
    customer = qbo.customer(DisplayName=vendor["DisplayName"])
    assert customer["DisplayName"] == vendor["DisplayName"]
    # The renamed, inactive name still counts, as QBO's renaming implies.
    error = fault(
        qbo.post("employee", body_named("Employee", vendor["DisplayName"] + " (deleted)"))
    )
    assert (error["code"], error["element"]) == ("6240", "Vendor.DisplayName")


def test_deactivation_numbers_deleted_names_across_the_lists(qbo):
    name = unique("Twice")
    customer = qbo.customer(DisplayName=name)
    assert qbo.sparse("Customer", customer, Active=False)["DisplayName"] == f"{name} (deleted)"
    vendor = qbo.vendor(DisplayName=name)
    assert qbo.sparse("Vendor", vendor, Active=False)["DisplayName"] == f"{name} (deleted-1)"


def test_reactivating_into_a_name_taken_meanwhile_is_6240(qbo):
    employee = qbo.employee()
    gone = qbo.sparse("Employee", employee, Active=False)
    qbo.customer(DisplayName=employee["DisplayName"])
    body = {"Id": gone["Id"], "SyncToken": gone["SyncToken"], "sparse": True, "Active": True}
    error = fault(qbo.post("employee", body))
    assert (error["code"], error["element"]) == ("6240", "Customer.DisplayName")


def test_items_and_accounts_keep_their_own_name_spaces(qbo):
    vendor = qbo.vendor()
    item = qbo.service_item(Name=vendor["DisplayName"])
    assert item["Name"] == vendor["DisplayName"]
    again = {"Name": item["Name"], "Type": "Service", "IncomeAccountRef": item["IncomeAccountRef"]}
    error = fault(qbo.post("item", again))
    assert (error["code"], error["element"]) == ("6240", "")
