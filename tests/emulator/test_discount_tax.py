"""Discount before or after tax: each invoice's ApplyTaxAfterDiscount and the company's
default for it (SalesFormsPrefs.ApplyTaxAfterDiscount, an UNCONFIRMED name)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest
import requests

from .conftest import Qbo, fault, sales_line


@pytest.fixture
def company(make_emulator) -> Qbo:
    """A private emulator: these tests change the company's preferences."""
    emu = make_emulator()
    return Qbo(emu, emu.realm_ids[0])


def _rate(qbo: Qbo, code: dict) -> Decimal:
    details = code["SalesTaxRateList"]["TaxRateDetail"]
    return sum(
        (Decimal(str(qbo.read("TaxRate", d["TaxRateRef"]["value"])["RateValue"])) for d in details),
        Decimal(0),
    )


def _tax(amount: str, rate: Decimal) -> float:
    return float((Decimal(amount) * rate / 100).quantize(Decimal("0.01"), ROUND_HALF_UP))


def _invoice_body(qbo: Qbo, **extra) -> dict:
    """200.00 of taxable sales less a 10 % discount, taxed with the sandbox's tax code."""
    item = qbo.service_item(Taxable=True)
    discount = {
        "DetailType": "DiscountLineDetail",
        "Amount": 0,
        "DiscountLineDetail": {"PercentBased": True, "DiscountPercent": 10},
    }
    return {
        "CustomerRef": {"value": qbo.customer()["Id"]},
        "Line": [sales_line(item, qty=4, price=50, tax="TAX"), discount],
        "TxnTaxDetail": {"TxnTaxCodeRef": {"value": qbo.tax_code()["Id"]}},
        **extra,
    }


def _set_preference_as_a_user(qbo: Qbo, value: bool) -> requests.Response:
    return requests.post(
        f"{qbo.emulator.base_url}/_emulator/realms/{qbo.realm_id}/Preferences",
        json={"SalesFormsPrefs": {"ApplyTaxAfterDiscount": value}},
        timeout=5,
    )


def test_the_company_preference_decides_whether_tax_is_on_the_discounted_amount(company):
    rate = _rate(company, company.tax_code())
    body = _invoice_body(company)

    off = company.create("Invoice", body)
    assert off["ApplyTaxAfterDiscount"] is False
    assert off["TxnTaxDetail"]["TotalTax"] == _tax("200", rate)
    assert off["TxnTaxDetail"]["TaxLine"][0]["TaxLineDetail"]["NetAmountTaxable"] == 200.0
    assert off["TotalAmt"] == 180 + _tax("200", rate)

    assert _set_preference_as_a_user(company, True).status_code == 200
    on = company.create("Invoice", body)
    assert on["ApplyTaxAfterDiscount"] is True
    assert on["TxnTaxDetail"]["TotalTax"] == _tax("180", rate)
    assert on["TxnTaxDetail"]["TaxLine"][0]["TaxLineDetail"]["NetAmountTaxable"] == 180.0
    assert on["TotalAmt"] == 180 + _tax("180", rate)


def test_an_invoice_that_sends_the_flag_keeps_its_own_value(company):
    rate = _rate(company, company.tax_code())
    _set_preference_as_a_user(company, True)
    before_tax = company.create("Invoice", _invoice_body(company, ApplyTaxAfterDiscount=False))
    assert before_tax["ApplyTaxAfterDiscount"] is False
    assert before_tax["TxnTaxDetail"]["TotalTax"] == _tax("200", rate)

    _set_preference_as_a_user(company, False)
    after = company.create("Invoice", _invoice_body(company, ApplyTaxAfterDiscount=True))
    assert after["ApplyTaxAfterDiscount"] is True
    assert after["TxnTaxDetail"]["TotalTax"] == _tax("180", rate)
    # A sparse update that leaves the flag out keeps the invoice's value.
    kept = company.create(
        "Invoice",
        {"Id": after["Id"], "SyncToken": after["SyncToken"], "sparse": True, "PrivateNote": "x"},
    )
    assert kept["ApplyTaxAfterDiscount"] is True


def test_the_preference_is_set_by_a_preferences_update_and_keeps_the_other_settings(company):
    prefs = company.get("preferences").json()["Preferences"]
    assert prefs["SalesFormsPrefs"]["ApplyTaxAfterDiscount"] is False
    updated = company.create(
        "Preferences",
        {
            "Id": prefs["Id"],
            "SyncToken": prefs["SyncToken"],
            "sparse": True,
            "SalesFormsPrefs": {"ApplyTaxAfterDiscount": True},
        },
    )
    sales = updated["SalesFormsPrefs"]
    assert sales["ApplyTaxAfterDiscount"] is True
    assert {k: v for k, v in sales.items() if k != "ApplyTaxAfterDiscount"} == {
        k: v for k, v in prefs["SalesFormsPrefs"].items() if k != "ApplyTaxAfterDiscount"
    }
    assert company.create("Invoice", _invoice_body(company))["ApplyTaxAfterDiscount"] is True

    bad = company.post(
        "preferences",
        {
            "Id": prefs["Id"],
            "SyncToken": updated["SyncToken"],
            "sparse": True,
            "SalesFormsPrefs": {"ApplyTaxAfterDiscount": "yes"},
        },
    )
    assert fault(bad)["code"] == "2010"


def test_the_control_api_changes_the_preference_as_a_quickbooks_user(company):
    response = _set_preference_as_a_user(company, True)
    sales = response.json()["Preferences"]["SalesFormsPrefs"]
    assert sales["ApplyTaxAfterDiscount"] is True
    assert sales["CustomField"], "the other sales settings are kept"
    assert company.get("preferences").json()["Preferences"]["SalesFormsPrefs"] == sales
