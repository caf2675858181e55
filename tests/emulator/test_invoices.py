"""Invoice totals, tax, DocNumber rules, void, delete and payments bringing Balance down."""

from __future__ import annotations

from .conftest import fault, sales_line, unique


def _line_kinds(invoice: dict) -> list[str]:
    return [line["DetailType"] for line in invoice["Line"]]


def test_invoice_totals_subtotal_line_and_balance(qbo):
    item = qbo.service_item()
    invoice = qbo.invoice(
        lines=[sales_line(item, qty=3, price=12.5), sales_line(item, qty=1, price=4)]
    )
    assert _line_kinds(invoice) == ["SalesItemLineDetail"] * 2 + ["SubTotalLineDetail"]
    assert invoice["Line"][-1]["Amount"] == 41.5
    assert invoice["TotalAmt"] == 41.5
    assert invoice["Balance"] == 41.5
    assert invoice["TxnTaxDetail"]["TotalTax"] == 0
    assert [line["Id"] for line in invoice["Line"][:2]] == ["1", "2"]


def test_sent_subtotal_lines_are_replaced_by_the_servers(qbo):
    item = qbo.service_item()
    lines = [
        sales_line(item, qty=1, price=10),
        {"Amount": 999, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
    ]
    invoice = qbo.invoice(lines=lines)
    assert invoice["Line"][-1]["Amount"] == 10.0
    assert _line_kinds(invoice).count("SubTotalLineDetail") == 1


def test_us_sales_tax_from_the_transaction_tax_code(qbo):
    code = qbo.tax_code()
    rates = [
        qbo.read("TaxRate", d["TaxRateRef"]["value"])
        for d in code["SalesTaxRateList"]["TaxRateDetail"]
    ]
    item = qbo.service_item()
    invoice = qbo.invoice(
        lines=[
            sales_line(item, qty=2, price=50, tax="TAX"),
            sales_line(item, qty=1, price=30, tax="NON"),
        ],
        TxnTaxDetail={"TxnTaxCodeRef": {"value": code["Id"]}},
    )
    expected_tax = sum(round(100 * float(rate["RateValue"]) / 100, 2) for rate in rates)
    assert invoice["TxnTaxDetail"]["TotalTax"] == round(expected_tax, 2)
    assert invoice["TotalAmt"] == round(130 + expected_tax, 2)
    tax_line = invoice["TxnTaxDetail"]["TaxLine"][0]
    assert tax_line["TaxLineDetail"]["NetAmountTaxable"] == 100.0


def test_line_tax_code_must_be_tax_or_non(qbo):
    item = qbo.service_item()
    response = qbo.post(
        "invoice",
        {
            "CustomerRef": {"value": qbo.customer()["Id"]},
            "Line": [sales_line(item, qty=1, price=5, tax="2")],
        },
    )
    assert fault(response)["code"] == "6100"


def test_amount_must_equal_qty_times_unit_price(qbo):
    item = qbo.service_item()
    line = sales_line(item, qty=2, price=5)
    line["Amount"] = 11
    body = {"CustomerRef": {"value": qbo.customer()["Id"]}, "Line": [line]}
    error = fault(qbo.post("invoice", body))
    assert error["code"] == "6070"


def test_invoice_requires_customer_and_lines(qbo):
    item = qbo.service_item()
    assert (
        fault(qbo.post("invoice", {"Line": [sales_line(item, qty=1, price=1)]}))["element"]
        == "CustomerRef"
    )
    error = fault(qbo.post("invoice", {"CustomerRef": {"value": qbo.customer()["Id"]}, "Line": []}))
    assert (error["code"], error["element"]) == ("2020", "Line")


def test_invoice_references_must_exist_and_be_active(qbo):
    item = qbo.service_item()
    body = {"CustomerRef": {"value": "987654"}, "Line": [sales_line(item, qty=1, price=1)]}
    assert fault(qbo.post("invoice", body))["code"] == "2500"
    customer = qbo.customer()
    qbo.create(
        "Customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Active": False}
    )
    body["CustomerRef"] = {"value": customer["Id"]}
    assert fault(qbo.post("invoice", body))["code"] == "610"


def test_doc_number_is_auto_assigned_and_unique(qbo):
    first = qbo.invoice()
    second = qbo.invoice()
    assert first["DocNumber"].isdigit()
    assert int(second["DocNumber"]) == int(first["DocNumber"]) + 1


def test_doc_number_longer_than_21_is_2050(qbo):
    item = qbo.service_item()
    body = {
        "CustomerRef": {"value": qbo.customer()["Id"]},
        "Line": [sales_line(item, qty=1, price=1)],
        "DocNumber": "X" * 22,
    }
    error = fault(qbo.post("invoice", body))
    assert (error["code"], error["element"]) == ("2050", "DocNumber")


def test_duplicate_doc_number_is_6140_unless_allowed(qbo):
    doc = unique("INV").replace(" ", "")[:20]
    qbo.invoice(DocNumber=doc)
    item = qbo.service_item()
    body = {
        "CustomerRef": {"value": qbo.customer()["Id"]},
        "Line": [sales_line(item, qty=1, price=1)],
        "DocNumber": doc,
    }
    error = fault(qbo.post("invoice", body))
    assert error["code"] == "6140"
    assert error["Message"] == "Duplicate Document Number Error"
    allowed = qbo.post("invoice", body, include="allowduplicatedocnum")
    assert allowed.status_code == 200


def test_custom_transaction_numbers_turn_off_auto_numbering(emulator, qbo):
    prefs = qbo.get("preferences").json()["Preferences"]
    sales = {**prefs["SalesFormsPrefs"], "CustomTxnNumbers": True}
    body = {"Id": prefs["Id"], "SyncToken": prefs["SyncToken"], "sparse": True}
    updated = qbo.create("Preferences", {**body, "SalesFormsPrefs": sales})
    try:
        assert "DocNumber" not in qbo.invoice()
        assert qbo.invoice(DocNumber="AUTO_GENERATE")["DocNumber"].isdigit()
    finally:
        sales["CustomTxnNumbers"] = False
        qbo.create(
            "Preferences",
            {
                "Id": prefs["Id"],
                "SyncToken": updated["SyncToken"],
                "sparse": True,
                "SalesFormsPrefs": sales,
            },
        )


def test_sparse_invoice_update_revalidates_required_fields(qbo):
    invoice = qbo.invoice()
    body = {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"], "sparse": True}
    assert fault(qbo.post("invoice", {**body, "CustomerRef": None}))["code"] == "2020"
    updated = qbo.create("Invoice", {**body, "PrivateNote": "hello"})
    assert updated["TotalAmt"] == invoice["TotalAmt"]
    assert updated["SyncToken"] == "1"


def test_void_zeroes_amounts_and_keeps_the_invoice(qbo):
    invoice = qbo.invoice()
    response = qbo.post(
        "invoice", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]}, operation="void"
    )
    voided = response.json()["Invoice"]
    assert voided["TotalAmt"] == 0 and voided["Balance"] == 0
    assert voided["PrivateNote"] == "Voided"
    assert all(line["Amount"] == 0 for line in voided["Line"])
    assert voided["SyncToken"] == "1"
    assert qbo.read("Invoice", invoice["Id"])["TotalAmt"] == 0


def test_delete_invoice_then_read_is_610(qbo):
    invoice = qbo.invoice()
    response = qbo.post("invoice", {"Id": invoice["Id"], "SyncToken": "0"}, operation="delete")
    assert response.json()["Invoice"] == {"domain": "QBO", "status": "Deleted", "Id": invoice["Id"]}
    assert fault(qbo.get(f"invoice/{invoice['Id']}"))["code"] == "610"


def test_delete_with_stale_sync_token_is_5010(qbo):
    invoice = qbo.invoice()
    qbo.create(
        "Invoice", {"Id": invoice["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "x"}
    )
    response = qbo.post("invoice", {"Id": invoice["Id"], "SyncToken": "0"}, operation="delete")
    assert fault(response)["code"] == "5010"


def _pay(qbo, invoice: dict, amount: float, total: float | None = None) -> dict:
    return qbo.create(
        "Payment",
        {
            "CustomerRef": invoice["CustomerRef"],
            "TotalAmt": amount if total is None else total,
            "Line": [
                {"Amount": amount, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}
            ],
        },
    )


def test_payment_brings_invoice_balance_down_and_bumps_its_sync_token(qbo):
    invoice = qbo.invoice()  # 100.00
    payment = _pay(qbo, invoice, 40, total=50)
    assert payment["UnappliedAmt"] == 10.0
    assert payment["DepositToAccountRef"]["value"]
    after = qbo.read("Invoice", invoice["Id"])
    assert after["Balance"] == 60.0
    assert after["LinkedTxn"] == [{"TxnId": payment["Id"], "TxnType": "Payment"}]
    assert after["SyncToken"] == "1"
    stale = {"Id": invoice["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "x"}
    assert fault(qbo.post("invoice", stale))["code"] == "5010"
    _pay(qbo, invoice, 60)
    assert qbo.read("Invoice", invoice["Id"])["Balance"] == 0


def test_payment_cannot_exceed_the_open_balance(qbo):
    invoice = qbo.invoice()
    response = qbo.post(
        "payment",
        {
            "CustomerRef": invoice["CustomerRef"],
            "TotalAmt": 150,
            "Line": [
                {"Amount": 150, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}
            ],
        },
    )
    assert fault(response)["code"] == "6000"


def test_payment_requires_customer_and_total(qbo):
    assert fault(qbo.post("payment", {"TotalAmt": 5}))["element"] == "CustomerRef"
    customer = qbo.customer()
    assert (
        fault(qbo.post("payment", {"CustomerRef": {"value": customer["Id"]}}))["element"]
        == "TotalAmt"
    )


def test_voiding_a_payment_restores_the_invoice_balance(qbo):
    invoice = qbo.invoice()
    payment = _pay(qbo, invoice, 100)
    assert qbo.read("Invoice", invoice["Id"])["Balance"] == 0
    response = qbo.post(
        "payment",
        {"Id": payment["Id"], "SyncToken": payment["SyncToken"], "sparse": True},
        operation="update",
        include="void",
    )
    voided = response.json()["Payment"]
    assert voided["TotalAmt"] == 0 and voided["PrivateNote"] == "Voided"
    assert qbo.read("Invoice", invoice["Id"])["Balance"] == 100.0


def test_deleting_a_payment_restores_the_invoice_balance(qbo):
    invoice = qbo.invoice()
    payment = _pay(qbo, invoice, 25)
    qbo.post("payment", {"Id": payment["Id"], "SyncToken": "0"}, operation="delete")
    restored = qbo.read("Invoice", invoice["Id"])
    assert restored["Balance"] == 100.0
    assert "LinkedTxn" not in restored


def test_voiding_an_invoice_unapplies_its_payment(qbo):
    invoice = qbo.invoice()
    payment = _pay(qbo, invoice, 30)
    current = qbo.read("Invoice", invoice["Id"])
    qbo.post("invoice", {"Id": invoice["Id"], "SyncToken": current["SyncToken"]}, operation="void")
    assert qbo.read("Payment", payment["Id"])["UnappliedAmt"] == 30.0


def test_inventory_line_needs_a_quantity_and_a_date_after_start(qbo):
    income = qbo.find("Account", AccountType="Income", Active=True)
    cogs = qbo.find("Account", AccountType="Cost of Goods Sold")
    asset = qbo.find("Account", AccountSubType="Inventory")
    item = qbo.create(
        "Item",
        {
            "Name": unique("Pump"),
            "Type": "Inventory",
            "IncomeAccountRef": {"value": income["Id"]},
            "ExpenseAccountRef": {"value": cogs["Id"]},
            "AssetAccountRef": {"value": asset["Id"]},
            "TrackQtyOnHand": True,
            "QtyOnHand": 5,
            "InvStartDate": "2024-01-01",
        },
    )
    customer = qbo.customer()
    no_qty = {
        "Amount": 10,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}},
    }
    body = {"CustomerRef": {"value": customer["Id"]}, "Line": [no_qty]}
    assert fault(qbo.post("invoice", body))["code"] == "6520"
    early = {**body, "Line": [sales_line(item, qty=1, price=10)], "TxnDate": "2023-06-01"}
    assert fault(qbo.post("invoice", early))["code"] == "6270"
    qbo.create("Invoice", {**early, "TxnDate": "2024-06-01"})
    assert qbo.read("Item", item["Id"])["QtyOnHand"] == 4


def test_custom_field_gets_its_name_from_preferences(qbo):
    invoice = qbo.invoice(
        CustomField=[{"DefinitionId": "1", "StringValue": "Crew 7", "Type": "StringType"}]
    )
    field = invoice["CustomField"][0]
    assert field["StringValue"] == "Crew 7"
    assert field["Name"]


def test_transactions_share_one_id_sequence(qbo):
    payment_ids = {row["Id"] for row in qbo.rows("Payment")}
    created = qbo.invoice(lines=[sales_line(qbo.service_item(), qty=1, price=10)])
    assert created["Id"] not in payment_ids
    invoice_ids = {row["Id"] for row in qbo.rows("Invoice")}
    assert not invoice_ids & payment_ids


def test_a_bundle_is_the_sum_of_its_components_and_the_page_shows_every_line(qbo):
    import requests

    item = qbo.service_item()
    bundle = {
        "DetailType": "GroupLineDetail",
        "Amount": 1,  # QuickBooks sums the components, whatever the client says
        "Description": "Starter package",
        "GroupLineDetail": {
            "GroupItemRef": {"value": qbo.bundle_item((item, 3))["Id"]},
            "Quantity": 1,
            "Line": [sales_line(item, qty=2, price=30), sales_line(item, qty=1, price=15)],
        },
    }
    discount = {
        "DetailType": "DiscountLineDetail",
        "Amount": 0,
        "DiscountLineDetail": {"PercentBased": True, "DiscountPercent": 10},
    }
    text = {
        "DetailType": "DescriptionOnly",
        "Description": "Thank you",
        "DescriptionLineDetail": {},
    }
    invoice = qbo.invoice(lines=[bundle, text, discount])

    assert invoice["Line"][0]["Amount"] == 75.0
    assert invoice["Line"][2]["Amount"] == 7.5
    assert invoice["TotalAmt"] == 67.5
    page = requests.get(
        f"{qbo.emulator.base_url}/app/invoice",
        params={"txnId": invoice["Id"], "realmId": qbo.realm_id},
        timeout=5,
    ).text
    for shown in ("Starter package", "Thank you", "Discount 10%", "-7.5", "75.0"):
        assert shown in page, shown
