"""The currency service: ExchangeRate reads, updates and queries, and the rate a
foreign-currency invoice takes when it sends none (qbo-api.md section 13)."""

from __future__ import annotations

import pytest
import requests

from .conftest import Qbo, fault, sales_line, unique


@pytest.fixture
def company(make_emulator) -> Qbo:
    """A private emulator: these tests change the rate table and the currency settings."""
    emu = make_emulator()
    return Qbo(emu, emu.realm_ids[0])


def _rate(qbo: Qbo, code: str, as_of: str | None = None) -> requests.Response:
    params = {"sourcecurrencycode": code}
    if as_of:
        params["asofdate"] = as_of
    return qbo.get("exchangerate", **params)


def _set_rate(qbo: Qbo, code: str, as_of: str, rate: float, token: str = "0") -> dict:
    body = {"SourceCurrencyCode": code, "Rate": rate, "AsOfDate": as_of, "SyncToken": token}
    return qbo.create("ExchangeRate", body)


def _multicurrency(qbo: Qbo) -> None:
    prefs = qbo.get("preferences").json()["Preferences"]
    qbo.create(
        "Preferences",
        {
            "Id": prefs["Id"],
            "SyncToken": prefs["SyncToken"],
            "sparse": True,
            "CurrencyPrefs": {"MultiCurrencyEnabled": True},
        },
    )


def _foreign_invoice(qbo: Qbo, currency: str, txn_date: str, **extra) -> requests.Response:
    customer = qbo.customer(CurrencyRef={"value": currency})
    item = qbo.service_item()
    body = {
        "CustomerRef": {"value": customer["Id"]},
        "CurrencyRef": {"value": currency},
        "TxnDate": txn_date,
        "Line": [sales_line(item, qty=1, price=100)],
        **extra,
    }
    return qbo.post("invoice", body)


def test_a_read_answers_the_latest_rate_on_or_before_the_date(company):
    response = _rate(company, "EUR", "2025-06-15")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"ExchangeRate", "time"}
    rate = body["ExchangeRate"]
    assert rate["SourceCurrencyCode"] == "EUR"
    assert rate["TargetCurrencyCode"] == "USD"
    assert rate["AsOfDate"] == "2025-06-15"
    assert rate["SyncToken"] == "0"
    assert set(rate["MetaData"]) == {"LastUpdatedTime"}
    seeded = _rate(company, "EUR", "2025-01-01").json()["ExchangeRate"]
    assert rate["Rate"] == seeded["Rate"]
    earlier = _rate(company, "EUR", "2024-12-31").json()["ExchangeRate"]
    assert earlier["Rate"] != seeded["Rate"]
    assert _rate(company, "eur").json()["ExchangeRate"]["AsOfDate"] == (
        company.emulator.clock.today().isoformat()
    )


def test_an_update_sets_the_rate_from_its_date_on(company):
    before = _rate(company, "GBP", "2025-05-31").json()["ExchangeRate"]["Rate"]
    saved = _set_rate(company, "GBP", "2025-06-01", 1.3)
    assert (saved["Rate"], saved["AsOfDate"], saved["SyncToken"]) == (1.3, "2025-06-01", "1")
    assert saved["TargetCurrencyCode"] == "USD"
    assert _rate(company, "GBP", "2025-06-20").json()["ExchangeRate"]["Rate"] == 1.3
    assert _rate(company, "GBP", "2025-05-31").json()["ExchangeRate"]["Rate"] == before
    stale = company.post(
        "exchangerate",
        {"SourceCurrencyCode": "GBP", "Rate": 1.31, "AsOfDate": "2025-06-01", "SyncToken": "0"},
    )
    assert fault(stale)["code"] == "5010"
    assert _set_rate(company, "GBP", "2025-06-01", 1.31, token="1")["SyncToken"] == "2"


def test_rate_reads_and_updates_are_validated(company):
    missing = fault(company.get("exchangerate"))
    assert (missing["code"], missing["element"]) == ("2020", "sourcecurrencycode")
    assert fault(_rate(company, "JPY", "2025-01-01"))["code"] == "610"
    assert fault(_rate(company, "EUR", "2014-12-31"))["code"] == "610"
    good = {"SourceCurrencyCode": "EUR", "Rate": 1.1, "AsOfDate": "2025-03-01", "SyncToken": "0"}
    for change, code, element in (
        ({"SourceCurrencyCode": "USD"}, "6000", "SourceCurrencyCode"),
        ({"TargetCurrencyCode": "GBP"}, "6000", "TargetCurrencyCode"),
        ({"Rate": 0}, "6000", "Rate"),
        ({"Rate": None}, "2020", "Rate"),
        ({"AsOfDate": None}, "2020", "AsOfDate"),
        ({"SyncToken": None}, "2020", "SyncToken"),
        ({"SourceCurrencyCode": "EURO"}, "2050", "SourceCurrencyCode"),
    ):
        body = {k: v for k, v in {**good, **change}.items() if v is not None}
        error = fault(company.post("exchangerate", body))
        assert (error["code"], error["element"]) == (code, element), change


def test_the_rate_table_is_queryable(company):
    gbp = company.query("select * from ExchangeRate where SourceCurrencyCode = 'GBP'")
    rows = gbp["ExchangeRate"]
    assert rows and {row["SourceCurrencyCode"] for row in rows} == {"GBP"}
    assert [row["AsOfDate"] for row in rows] == sorted(row["AsOfDate"] for row in rows)
    total = company.query("select count(*) from exchangerate")["totalCount"]
    _set_rate(company, "CAD", "2025-07-01", 0.73)
    assert company.query("select count(*) from exchangerate")["totalCount"] == total + 1


def test_a_foreign_invoice_without_a_rate_takes_the_tables_rate_for_its_date(company):
    _multicurrency(company)
    table_rate = _rate(company, "EUR", "2025-06-15").json()["ExchangeRate"]["Rate"]
    invoice = _foreign_invoice(company, "EUR", "2025-06-15").json()["Invoice"]
    assert invoice["ExchangeRate"] == table_rate

    _set_rate(company, "EUR", "2025-06-10", 1.2)
    later = _foreign_invoice(company, "EUR", "2025-06-15").json()["Invoice"]
    assert later["ExchangeRate"] == 1.2
    earlier = _foreign_invoice(company, "EUR", "2025-06-09").json()["Invoice"]
    assert earlier["ExchangeRate"] == table_rate
    own = _foreign_invoice(company, "EUR", "2025-06-15", ExchangeRate=1.5).json()["Invoice"]
    assert own["ExchangeRate"] == 1.5


def test_a_currency_without_rates_is_still_refused_until_the_control_api_sets_one(company):
    _multicurrency(company)
    refused = fault(_foreign_invoice(company, "JPY", "2025-06-15"))
    assert (refused["code"], refused["element"]) == ("2020", "ExchangeRate")

    base = f"{company.emulator.base_url}/_emulator/realms/{company.realm_id}/ExchangeRate"
    response = requests.post(
        base,
        json={"SourceCurrencyCode": "JPY", "Rate": 0.0067, "AsOfDate": "2025-01-01"},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    assert response.json()["ExchangeRate"]["SyncToken"] == "1"
    listed = requests.get(base, timeout=5).json()["ExchangeRate"]
    assert {"JPY", "EUR", "GBP", "CAD"} <= {row["SourceCurrencyCode"] for row in listed}
    invoice = _foreign_invoice(company, "JPY", "2025-06-15")
    assert invoice.status_code == 200, invoice.text
    assert invoice.json()["Invoice"]["ExchangeRate"] == 0.0067
    bad = requests.post(base, json={"SourceCurrencyCode": "USD", "Rate": 1}, timeout=5)
    assert bad.status_code == 400


def test_home_currency_invoices_carry_rate_one(company):
    _multicurrency(company)
    invoice = company.invoice(customer=company.customer(DisplayName=unique("Home")))
    assert invoice["ExchangeRate"] == 1
