"""Bundles: Group items and the invoice lines that sell them (qbo-api.md sections 8 and 13)."""

from __future__ import annotations

from .conftest import fault, sales_line, unique


def _group_line(bundle: dict, quantity: float, parts: list | None = None) -> dict:
    detail: dict = {"GroupItemRef": {"value": bundle["Id"]}, "Quantity": quantity}
    if parts is not None:
        detail["Line"] = parts
    return {"DetailType": "GroupLineDetail", "GroupLineDetail": detail}


def _components(line: dict) -> list[dict]:
    return line["GroupLineDetail"]["Line"]


def test_group_item_needs_no_income_account_and_reads_and_queries_like_other_items(qbo):
    service = qbo.service_item(UnitPrice=40)
    bundle = qbo.bundle_item((service, 2))
    assert bundle["Type"] == "Group"
    assert "IncomeAccountRef" not in bundle
    assert bundle["ItemGroupDetail"] == {
        "ItemGroupLine": [{"ItemRef": {"value": service["Id"], "name": service["Name"]}, "Qty": 2}]
    }
    assert qbo.read("Item", bundle["Id"]) == bundle
    found = qbo.query(f"select * from Item where Name = '{bundle['Name']}'")
    assert found["Item"] == [bundle]
    groups = qbo.query("select * from Item where Type = 'Group'")["Item"]
    assert bundle["Id"] in {item["Id"] for item in groups}


def test_bundle_components_must_be_active_products_or_services(qbo):
    service = qbo.service_item()
    body = {"Name": unique("Bundle"), "Type": "Group"}
    missing = fault(qbo.post("item", body))
    assert (missing["code"], missing["element"]) == ("2020", "ItemGroupDetail.ItemGroupLine")

    def with_component(item_id: str) -> dict:
        line = {"ItemRef": {"value": item_id}, "Qty": 1}
        return {**body, "ItemGroupDetail": {"ItemGroupLine": [line]}}

    assert fault(qbo.post("item", with_component("987654")))["code"] == "2500"
    nested = fault(qbo.post("item", with_component(qbo.bundle_item((service, 1))["Id"])))
    assert nested["code"] == "6000"
    assert nested["element"] == "ItemGroupDetail.ItemGroupLine.ItemRef"
    assert "a bundle can hold only products and services" in nested["Detail"]
    category = qbo.create("Item", {"Name": unique("Category"), "Type": "Category"})
    assert fault(qbo.post("item", with_component(category["Id"])))["code"] == "6000"
    retired = qbo.service_item()
    qbo.create("Item", {"Id": retired["Id"], "SyncToken": "0", "sparse": True, "Active": False})
    assert fault(qbo.post("item", with_component(retired["Id"])))["code"] == "610"


def test_bundle_line_without_components_is_expanded_from_the_group_item(qbo):
    hours = qbo.service_item(UnitPrice=50, Description="Garden hours")
    bulbs = qbo.service_item(UnitPrice=1.405, Taxable=True)
    bundle = qbo.bundle_item((hours, 2), (bulbs, 2.5))
    invoice = qbo.invoice(lines=[_group_line(bundle, 2)])

    group = invoice["Line"][0]
    first, second = _components(group)
    assert first["SalesItemLineDetail"] == {
        "ItemRef": {"value": hours["Id"], "name": hours["Name"]},
        "Qty": 4,
        "UnitPrice": 50,
        "TaxCodeRef": {"value": "NON"},
    }
    assert (first["Amount"], first["Description"]) == (200.0, "Garden hours")
    # 5 x 1.405 = 7.025, rounded half up to the cent (half-even would give 7.02).
    assert second["SalesItemLineDetail"]["Qty"] == 5
    assert second["SalesItemLineDetail"]["UnitPrice"] == 1.405
    assert second["SalesItemLineDetail"]["TaxCodeRef"] == {"value": "TAX"}
    assert second["Amount"] == 7.03
    assert group["Amount"] == 207.03
    assert group["GroupLineDetail"]["GroupItemRef"] == {
        "value": bundle["Id"],
        "name": bundle["Name"],
    }
    assert invoice["TotalAmt"] == 207.03
    ids = [group["Id"], first["Id"], second["Id"]]
    assert len(set(ids)) == 3 and all(ids)


def test_bundle_line_with_components_keeps_them_as_sent(qbo):
    item = qbo.service_item(UnitPrice=50)
    bundle = qbo.bundle_item((item, 1))
    parts = [sales_line(item, qty=3, price=20), sales_line(item, qty=1, price=7.5)]
    invoice = qbo.invoice(lines=[{**_group_line(bundle, 1, parts), "Amount": 1}])
    group = invoice["Line"][0]
    assert [(p["SalesItemLineDetail"]["Qty"], p["Amount"]) for p in _components(group)] == [
        (3, 60.0),
        (1, 7.5),
    ]
    assert group["Amount"] == 67.5
    assert invoice["TotalAmt"] == 67.5


def test_group_item_ref_must_name_a_group_item(qbo):
    item = qbo.service_item()
    body = {
        "CustomerRef": {"value": qbo.customer()["Id"]},
        "Line": [_group_line(item, 1, [sales_line(item, qty=1, price=10)])],
    }
    error = fault(qbo.post("invoice", body))
    assert (error["code"], error["element"]) == ("6000", "Line.GroupLineDetail.GroupItemRef")
    body["Line"] = [_group_line({"Id": "987654"}, 1)]
    assert fault(qbo.post("invoice", body))["code"] == "2500"


def test_component_ids_survive_an_update_that_sends_them_back(qbo):
    item = qbo.service_item(UnitPrice=10)
    bundle = qbo.bundle_item((item, 1), (qbo.service_item(UnitPrice=5), 2))
    invoice = qbo.invoice(lines=[_group_line(bundle, 1), sales_line(item, qty=1, price=10)])
    group = invoice["Line"][0]
    component_ids = [part["Id"] for part in _components(group)]

    lines = [line for line in invoice["Line"] if line["DetailType"] != "SubTotalLineDetail"]
    part = _components(lines[0])[1]
    part["SalesItemLineDetail"]["Qty"] = 4
    part["Amount"] = 20
    lines.append(sales_line(item, qty=2, price=10))
    updated = qbo.create(
        "Invoice",
        {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"], **_body(invoice), "Line": lines},
    )

    group_after = updated["Line"][0]
    assert group_after["Id"] == group["Id"]
    assert [p["Id"] for p in _components(group_after)] == component_ids
    assert group_after["Amount"] == 30.0
    assert updated["Line"][1]["Id"] == invoice["Line"][1]["Id"]
    taken = {group["Id"], *component_ids, invoice["Line"][1]["Id"]}
    assert updated["Line"][2]["Id"] not in taken
    assert updated["TotalAmt"] == 60.0


def _body(invoice: dict) -> dict:
    return {"CustomerRef": invoice["CustomerRef"], "TxnDate": invoice["TxnDate"]}


def test_selling_a_bundle_moves_its_inventory_components_and_a_void_zeroes_them(qbo):
    income = qbo.find("Account", AccountType="Income", Active=True)
    cogs = qbo.find("Account", AccountType="Cost of Goods Sold")
    pump = qbo.create(
        "Item",
        {
            "Name": unique("Pump"),
            "Type": "Inventory",
            "UnitPrice": 15,
            "IncomeAccountRef": {"value": income["Id"]},
            "ExpenseAccountRef": {"value": cogs["Id"]},
            "AssetAccountRef": {"value": qbo.find("Account", AccountSubType="Inventory")["Id"]},
            "TrackQtyOnHand": True,
            "QtyOnHand": 10,
            "InvStartDate": "2024-01-01",
        },
    )
    bundle = qbo.bundle_item((pump, 2))
    invoice = qbo.invoice(lines=[_group_line(bundle, 3)])
    assert invoice["TotalAmt"] == 90.0
    assert qbo.read("Item", pump["Id"])["QtyOnHand"] == 4
    voided = qbo.post(
        "invoice", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]}, operation="void"
    ).json()["Invoice"]
    (part,) = _components(voided["Line"][0])
    assert (part["Amount"], part["SalesItemLineDetail"]["Qty"]) == (0, 0)
    assert qbo.read("Item", pump["Id"])["QtyOnHand"] == 10


def test_the_sandbox_company_has_a_bundle(qbo):
    bundle = qbo.find("Item", Type="Group")
    components = bundle["ItemGroupDetail"]["ItemGroupLine"]
    assert components
    for component in components:
        item = qbo.read("Item", component["ItemRef"]["value"])
        assert item["Name"] == component["ItemRef"]["name"]
        assert item["Type"] not in ("Group", "Category")
    invoice = qbo.invoice(lines=[_group_line(bundle, 1)])
    assert len(_components(invoice["Line"][0])) == len(components)
