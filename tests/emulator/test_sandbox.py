import datetime as dt
import json
from decimal import ROUND_HALF_UP, Decimal

import pytest

from qbo_emulator.sandbox import DEFAULT_REALMS, ENTITY_NAMES, build_company

NOW = dt.datetime(2025, 11, 20, 18, 30, 15, 123456, tzinfo=dt.UTC)
CENT = Decimal("0.01")
LIST_ENTITIES = [name for name in ENTITY_NAMES if name not in ("CompanyInfo", "Preferences")]

# Which entity a ref key points at; AgencyRef (TaxAgency) and Term refs have no objects here.
REF_TARGETS = {
    "CustomerRef": "Customer",
    "ItemRef": "Item",
    "IncomeAccountRef": "Account",
    "ExpenseAccountRef": "Account",
    "AssetAccountRef": "Account",
    "ItemAccountRef": "Account",
    "DepositToAccountRef": "Account",
    "ParentRef": "Account",
    "TaxCodeRef": "TaxCode",
    "TxnTaxCodeRef": "TaxCode",
    "TaxRateRef": "TaxRate",
}
NOT_RESOLVED = {"AgencyRef", "CurrencyRef", "HomeCurrency", "DefaultTerms"}


def money(value) -> Decimal:
    return Decimal(str(value))


def name_of(entity: str, obj: dict) -> str:
    if entity == "Customer":
        return obj["DisplayName"]
    if entity == "Account":
        return obj["FullyQualifiedName"]
    return obj["Name"]


def iter_refs(node, key=None):
    if isinstance(node, dict):
        is_ref = key is not None and (key.endswith("Ref") or key in NOT_RESOLVED)
        if is_ref and "value" in node:
            yield key, node
            return
        for child_key, child in node.items():
            yield from iter_refs(child, child_key)
    elif isinstance(node, list):
        for child in node:
            yield from iter_refs(child, key)


@pytest.fixture(params=DEFAULT_REALMS, ids=[name for _, name in DEFAULT_REALMS])
def company(request):
    realm_id, name = request.param
    return build_company(realm_id, company_name=name, now=NOW)


def by_id(company, entity):
    return {obj["Id"]: obj for obj in company[entity]}


def test_default_realms_are_two_digit_string_realms_with_names():
    assert len(DEFAULT_REALMS) == 2
    assert len({realm for realm, _ in DEFAULT_REALMS}) == 2
    for realm_id, name in DEFAULT_REALMS:
        assert realm_id.isdigit() and len(realm_id) >= 10
        assert name
    assert DEFAULT_REALMS[0][1] == "Craig's Design and Landscaping Services"


def test_company_has_every_entity_in_wire_shape(company):
    assert list(company) == list(ENTITY_NAMES)
    objects = [company["CompanyInfo"], company["Preferences"]]
    for entity in LIST_ENTITIES:
        assert company[entity], entity
        objects.extend(company[entity])
    for obj in objects:
        assert obj["domain"] == "QBO"
        assert obj["sparse"] is False
        assert isinstance(obj["Id"], str) and obj["Id"]
        assert obj["SyncToken"] == "0"
        assert set(obj["MetaData"]) == {"CreateTime", "LastUpdatedTime"}
        assert all(key[0].isupper() for key in obj if key not in ("domain", "sparse"))
    json.dumps(company)  # plain JSON types only


def test_ids_are_unique_per_entity_and_transactions_share_a_sequence(company):
    for entity in LIST_ENTITIES:
        ids = [obj["Id"] for obj in company[entity]]
        assert len(ids) == len(set(ids)), entity
    txn_ids = [obj["Id"] for obj in company["Invoice"] + company["Payment"]]
    assert len(txn_ids) == len(set(txn_ids))


def test_sample_company_ids_match_intuits_fixture(company):
    assert by_id(company, "Customer")["1"]["DisplayName"] == "Amy's Bird Sanctuary"
    assert by_id(company, "Customer")["6"]["DisplayName"] == "Dylan Sollfrank"
    items = by_id(company, "Item")
    assert [items[i]["Name"] for i in ("1", "2", "4", "11")] == [
        "Services",
        "Hours",
        "Design",
        "Pump",
    ]
    accounts = by_id(company, "Account")
    assert accounts["33"]["AccountType"] == "Accounts Payable"
    assert accounts["35"]["Name"] == "Checking"
    assert [accounts[i]["AccountSubType"] for i in ("79", "80", "81")] == [
        "SalesOfProductIncome",
        "SuppliesMaterialsCogs",
        "Inventory",
    ]
    assert by_id(company, "TaxCode")["2"]["Name"] == "California"


def test_names_are_unique(company):
    for entity in LIST_ENTITIES:
        if entity in ("Invoice", "Payment"):
            continue
        names = [name_of(entity, obj) for obj in company[entity]]
        assert len(names) == len(set(names)), entity
    doc_numbers = [invoice["DocNumber"] for invoice in company["Invoice"]]
    assert len(doc_numbers) == len(set(doc_numbers))
    assert doc_numbers[0] == "1001"


def test_every_ref_points_to_an_existing_object_with_the_same_name(company):
    index = {entity: by_id(company, entity) for entity in LIST_ENTITIES}
    checked = 0
    for entity in ENTITY_NAMES:
        for key, ref in iter_refs(company[entity]):
            if key in NOT_RESOLVED:
                if key in ("CurrencyRef", "HomeCurrency"):
                    assert ref["value"] == "USD"
                continue
            target = index[REF_TARGETS[key]].get(ref["value"])
            assert target is not None, (entity, key, ref)
            assert target["Active"] is True, (entity, key, ref)
            if "name" in ref:
                assert ref["name"] == name_of(REF_TARGETS[key], target), (entity, key, ref)
            checked += 1
    assert checked > 50
    discount_account = company["Preferences"]["SalesFormsPrefs"]["DefaultDiscountAccount"]
    assert index["Account"][discount_account]["AccountSubType"] == "DiscountsRefundsGiven"


def test_linked_transactions_point_both_ways(company):
    invoices = by_id(company, "Invoice")
    payments = by_id(company, "Payment")
    links = 0
    for payment in company["Payment"]:
        for line in payment["Line"]:
            for linked in line["LinkedTxn"]:
                assert linked["TxnType"] == "Invoice"
                invoice = invoices[linked["TxnId"]]
                assert invoice["CustomerRef"] == payment["CustomerRef"]
                assert {"TxnId": payment["Id"], "TxnType": "Payment"} in invoice["LinkedTxn"]
                links += 1
        assert money(payment["TotalAmt"]) == sum(money(line["Amount"]) for line in payment["Line"])
        assert payment["DepositToAccountRef"]["name"] == "Undeposited Funds"
    for invoice in company["Invoice"]:
        for linked in invoice["LinkedTxn"]:
            assert linked["TxnType"] == "Payment" and linked["TxnId"] in payments
    assert links == 1


def test_invoice_lines_tax_and_totals_add_up(company):
    codes = by_id(company, "TaxCode")
    rates = by_id(company, "TaxRate")
    for invoice in company["Invoice"]:
        item_lines = [
            line for line in invoice["Line"] if line["DetailType"] != "SubTotalLineDetail"
        ]
        subtotal_lines = [line for line in invoice["Line"] if line not in item_lines]
        assert len(subtotal_lines) == 1 and invoice["Line"][-1] is subtotal_lines[0]
        subtotal = Decimal(0)
        taxable = Decimal(0)
        for line in item_lines:
            detail = line["SalesItemLineDetail"]
            assert money(line["Amount"]) == money(detail["Qty"]) * money(detail["UnitPrice"])
            assert detail["TaxCodeRef"]["value"] in ("TAX", "NON")
            subtotal += money(line["Amount"])
            if detail["TaxCodeRef"]["value"] == "TAX":
                taxable += money(line["Amount"])
        assert money(subtotal_lines[0]["Amount"]) == subtotal

        tax_detail = invoice["TxnTaxDetail"]
        code = codes[tax_detail["TxnTaxCodeRef"]["value"]]
        assert code["TaxGroup"] is True
        rate_ids = [d["TaxRateRef"]["value"] for d in code["SalesTaxRateList"]["TaxRateDetail"]]
        assert [
            t["TaxLineDetail"]["TaxRateRef"]["value"] for t in tax_detail["TaxLine"]
        ] == rate_ids
        total_tax = Decimal(0)
        for tax_line in tax_detail["TaxLine"]:
            line_detail = tax_line["TaxLineDetail"]
            percent = money(rates[line_detail["TaxRateRef"]["value"]]["RateValue"])
            assert money(line_detail["TaxPercent"]) == percent
            assert money(line_detail["NetAmountTaxable"]) == taxable
            expected = (taxable * percent / 100).quantize(CENT, rounding=ROUND_HALF_UP)
            assert money(tax_line["Amount"]) == expected
            total_tax += expected
        assert money(tax_detail["TotalTax"]) == total_tax
        assert money(invoice["TotalAmt"]) == subtotal + total_tax

        paid = sum(
            (
                money(line["Amount"])
                for payment in company["Payment"]
                for line in payment["Line"]
                if {"TxnId": invoice["Id"], "TxnType": "Invoice"} in line["LinkedTxn"]
            ),
            Decimal(0),
        )
        assert money(invoice["Balance"]) == money(invoice["TotalAmt"]) - paid
        assert (
            invoice["BillEmail"]
            == by_id(company, "Customer")[invoice["CustomerRef"]["value"]]["PrimaryEmailAddr"]
        )


def test_tax_rounds_half_up_to_cents(company):
    dukes = next(
        i for i in company["Invoice"] if i["CustomerRef"]["name"] == "Dukes Basketball Camp"
    )
    tucson_city = next(
        t for t in dukes["TxnTaxDetail"]["TaxLine"] if t["TaxLineDetail"]["TaxPercent"] == 0.5
    )
    assert tucson_city["TaxLineDetail"]["NetAmountTaxable"] == 321.0
    assert tucson_city["Amount"] == 1.61  # 1.605, half up


def test_a_payment_reduced_one_invoice_balance(company):
    paid = [i for i in company["Invoice"] if i["Balance"] != i["TotalAmt"]]
    assert len(paid) == 1
    assert 0 < paid[0]["Balance"] < paid[0]["TotalAmt"]
    assert paid[0]["MetaData"]["LastUpdatedTime"] > paid[0]["MetaData"]["CreateTime"]


def test_customer_and_receivable_balances_match_open_invoices(company):
    open_by_customer = {}
    for invoice in company["Invoice"]:
        key = invoice["CustomerRef"]["value"]
        open_by_customer[key] = open_by_customer.get(key, Decimal(0)) + money(invoice["Balance"])
    for customer in company["Customer"]:
        expected = open_by_customer.get(customer["Id"], Decimal(0))
        assert money(customer["Balance"]) == expected, customer["DisplayName"]
        assert money(customer["BalanceWithJobs"]) == expected
    accounts = {a["AccountSubType"]: a for a in company["Account"]}
    assert money(accounts["AccountsReceivable"]["CurrentBalance"]) == sum(open_by_customer.values())
    assert money(accounts["UndepositedFunds"]["CurrentBalance"]) == sum(
        money(p["TotalAmt"]) for p in company["Payment"]
    )
    inventory_value = sum(
        money(item["PurchaseCost"]) * item["QtyOnHand"]
        for item in company["Item"]
        if item["Type"] == "Inventory"
    )
    assert money(accounts["Inventory"]["CurrentBalance"]) == inventory_value


def test_money_is_numbers_with_at_most_two_decimals(company):
    money_keys = {"Amount", "TotalAmt", "Balance", "TotalTax", "CurrentBalance", "UnitPrice"}

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in money_keys or key.endswith("Balance") or key.endswith("Amt"):
                    assert isinstance(value, int | float) and not isinstance(value, bool), key
                    assert money(value) == money(value).quantize(CENT), (key, value)
                walk(value)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(company)


def test_accounts_cover_the_chart_invoice_sync_needs(company):
    accounts = company["Account"]
    pairs = {(a["AccountType"], a["Classification"], a["AccountSubType"]) for a in accounts}
    for pair in [
        ("Bank", "Asset", "Checking"),
        ("Accounts Receivable", "Asset", "AccountsReceivable"),
        ("Other Current Asset", "Asset", "Inventory"),
        ("Other Current Asset", "Asset", "UndepositedFunds"),
        ("Accounts Payable", "Liability", "AccountsPayable"),
        ("Income", "Revenue", "SalesOfProductIncome"),
        ("Income", "Revenue", "ServiceFeeIncome"),
        ("Cost of Goods Sold", "Expense", "SuppliesMaterialsCogs"),
        ("Expense", "Expense", "AdvertisingPromotional"),
    ]:
        assert pair in pairs
    assert any(a["AccountType"] == "Equity" for a in accounts)
    assert len(accounts) >= 15
    inactive = [a for a in accounts if not a["Active"]]
    assert len(inactive) == 1 and inactive[0]["Name"].endswith(" (deleted)")
    by_account_id = {a["Id"]: a for a in accounts}
    for account in accounts:
        assert account["CurrencyRef"] == {"value": "USD", "name": "United States Dollar"}
        if account["SubAccount"]:
            parent = by_account_id[account["ParentRef"]["value"]]
            assert account["FullyQualifiedName"] == (
                f"{parent['FullyQualifiedName']}:{account['Name']}"
            )
        else:
            assert account["FullyQualifiedName"] == account["Name"]
        if account["Classification"] in ("Revenue", "Expense"):
            assert account["CurrentBalance"] == 0


def test_items_have_the_accounts_their_type_requires(company):
    accounts = by_id(company, "Account")
    types = {item["Type"] for item in company["Item"]}
    assert {"Service", "NonInventory", "Inventory"} <= types
    assert len(company["Item"]) >= 6
    for item in company["Item"]:
        assert accounts[item["IncomeAccountRef"]["value"]]["AccountType"] == "Income"
        if item["Type"] == "Inventory":
            assert item["TrackQtyOnHand"] is True
            assert isinstance(item["QtyOnHand"], int) and item["QtyOnHand"] > 0
            assert item["InvStartDate"] <= min(i["TxnDate"] for i in company["Invoice"])
            assert accounts[item["ExpenseAccountRef"]["value"]]["AccountType"] == (
                "Cost of Goods Sold"
            )
            assert accounts[item["AssetAccountRef"]["value"]]["AccountSubType"] == "Inventory"
        else:
            assert item["TrackQtyOnHand"] is False
            assert "QtyOnHand" not in item and "AssetAccountRef" not in item


def test_us_sales_tax_codes_and_rates(company):
    codes = by_id(company, "TaxCode")
    for pseudo, taxable in (("TAX", True), ("NON", False)):
        assert codes[pseudo]["Name"] == pseudo
        assert codes[pseudo]["Taxable"] is taxable
        assert codes[pseudo]["TaxGroup"] is False
    assert codes["2"]["TaxGroup"] is True
    assert codes["2"]["SalesTaxRateList"]["TaxRateDetail"] == [
        {
            "TaxRateRef": {"value": "3", "name": "California"},
            "TaxTypeApplicable": "TaxOnAmount",
            "TaxOrder": 0,
        }
    ]
    assert any(
        len(c.get("SalesTaxRateList", {}).get("TaxRateDetail", [])) > 1 for c in codes.values()
    )
    for rate in company["TaxRate"]:
        assert rate["SpecialTaxType"] == "NONE"
        assert rate["DisplayType"] == "ReadOnly"
        assert rate["Active"] is True
        assert rate["AgencyRef"]["value"]
        assert 0 < rate["RateValue"] < 15
    assert by_id(company, "TaxRate")["3"]["RateValue"] == 8


def test_customers_look_like_the_sample_company(company):
    customers = company["Customer"]
    assert len(customers) >= 6
    assert "Amy's Bird Sanctuary" in {c["DisplayName"] for c in customers}
    for customer in customers:
        assert "@" in customer["PrimaryEmailAddr"]["Address"]
        assert customer["BillAddr"]["CountrySubDivisionCode"] in ("CA", "AZ")
        assert customer["FullyQualifiedName"] == customer["DisplayName"]
        assert customer["Active"] is True
    address_ids = [
        obj[key]["Id"]
        for entity in ("Customer", "Invoice")
        for obj in company[entity]
        for key in ("BillAddr", "ShipAddr")
    ]
    assert len(address_ids) == len(set(address_ids))


def test_company_info_and_preferences(company):
    realm_names = dict(DEFAULT_REALMS)
    info = company["CompanyInfo"]
    assert info["Id"] == "1"
    assert info["CompanyName"] in realm_names.values()
    assert info["LegalName"] == info["CompanyName"]
    assert info["Country"] == "US"
    assert info["FiscalYearStartMonth"] == "January"
    assert info["CompanyAddr"]["CountrySubDivisionCode"] == "CA"
    assert "@" in info["Email"]["Address"]

    prefs = company["Preferences"]
    assert prefs["Id"] == "1"
    assert prefs["CurrencyPrefs"] == {
        "MultiCurrencyEnabled": False,
        "HomeCurrency": {"value": "USD"},
    }
    assert prefs["TaxPrefs"] == {"UsingSalesTax": True, "PartnerTaxEnabled": False}
    sales = prefs["SalesFormsPrefs"]
    assert sales["CustomTxnNumbers"] is False
    assert sales["AllowDiscount"] is True
    assert sales["DefaultTerms"] == {"value": "3"}
    definitions = {
        field["Name"]: field for group in sales["CustomField"] for field in group["CustomField"]
    }
    assert definitions["SalesFormsPrefs.UseSalesCustom1"]["BooleanValue"] is True
    assert definitions["SalesFormsPrefs.UseSalesCustom2"]["BooleanValue"] is False
    assert definitions["SalesFormsPrefs.UseSalesCustom3"]["BooleanValue"] is False
    crew = definitions["SalesFormsPrefs.SalesCustomName1"]
    assert crew == {
        "Name": "SalesFormsPrefs.SalesCustomName1",
        "Type": "StringType",
        "StringValue": "Crew #",
    }
    for invoice in company["Invoice"]:
        (field,) = invoice["CustomField"]
        assert field["DefinitionId"] == "1"
        assert field["Name"] == crew["StringValue"]
        assert field["Type"] == "StringType" and field["StringValue"]


def test_metadata_times_fall_in_the_weeks_before_now(company):
    objects = [company["CompanyInfo"], company["Preferences"]]
    for entity in LIST_ENTITIES:
        objects.extend(company[entity])
    for obj in objects:
        created = dt.datetime.fromisoformat(obj["MetaData"]["CreateTime"])
        updated = dt.datetime.fromisoformat(obj["MetaData"]["LastUpdatedTime"])
        assert obj["MetaData"]["CreateTime"][-6:] in ("-08:00", "-07:00")
        assert created.microsecond == 0
        assert NOW - dt.timedelta(days=60) < created <= updated < NOW
    for txn in company["Invoice"] + company["Payment"]:
        created = dt.datetime.fromisoformat(txn["MetaData"]["CreateTime"])
        assert dt.date.fromisoformat(txn["TxnDate"]) <= created.date()
    for invoice in company["Invoice"]:
        assert invoice["DueDate"] > invoice["TxnDate"]


@pytest.mark.parametrize(
    ("now", "offset"),
    [
        (dt.datetime(2025, 7, 15, 12, tzinfo=dt.UTC), "-07:00"),
        (dt.datetime(2026, 2, 15, 12, tzinfo=dt.UTC), "-08:00"),
    ],
)
def test_timestamps_use_pacific_time_of_the_day(now, offset):
    company = build_company("9341453050298743", company_name="Test", now=now)
    invoice = company["Invoice"][-1]  # created about two weeks before `now`
    assert invoice["MetaData"]["CreateTime"].endswith(offset)


def test_naive_now_is_taken_as_utc():
    aware = build_company("1", company_name="Test", now=NOW)
    naive = build_company("1", company_name="Test", now=NOW.replace(tzinfo=None))
    assert aware == naive


def test_output_is_deterministic_for_the_same_inputs():
    realm_id, name = DEFAULT_REALMS[0]
    first = build_company(realm_id, company_name=name, now=NOW)
    second = build_company(realm_id, company_name=name, now=NOW)
    assert json.dumps(first) == json.dumps(second)
    later = build_company(realm_id, company_name=name, now=NOW + dt.timedelta(days=1))
    assert later != first


def test_builds_are_independent_objects():
    realm_id, name = DEFAULT_REALMS[0]
    first = build_company(realm_id, company_name=name, now=NOW)
    first["Customer"][0]["DisplayName"] = "changed"
    first["Invoice"][0]["Line"][0]["SalesItemLineDetail"]["ItemRef"]["name"] = "changed"
    second = build_company(realm_id, company_name=name, now=NOW)
    assert second["Customer"][0]["DisplayName"] == "Amy's Bird Sanctuary"
    assert second["Invoice"][0]["Line"][0]["SalesItemLineDetail"]["ItemRef"]["name"] != "changed"


def test_realms_differ_only_in_company_name():
    (first_id, first_name), (second_id, second_name) = DEFAULT_REALMS
    first = build_company(first_id, company_name=first_name, now=NOW)
    second = build_company(second_id, company_name=second_name, now=NOW)
    assert second["CompanyInfo"]["CompanyName"] == second_name
    for entity in LIST_ENTITIES:
        assert first[entity] == second[entity]


@pytest.mark.parametrize("realm_id", ["", "abc", "12-34"])
def test_realm_id_must_be_digits(realm_id):
    with pytest.raises(ValueError, match="digits"):
        build_company(realm_id, company_name="Test", now=NOW)
