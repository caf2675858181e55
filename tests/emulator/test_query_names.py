"""Names with characters the query language refuses or needs escaped (qbo-api.md section 3),
and the project's own quoting of them."""

from __future__ import annotations

import uuid

import pytest

from integrations.quickbooks.client import quote

from .conftest import fault

SPECIAL_NAMES = [
    "O'Brien's Garden",
    "Back\\slash Supply",
    "Ends in a backslash\\",
    "Backslash then quote \\'",
    "100% Organic",
    "Smith & Sons",
    "a + b = c; #1 (x) ? / ok",
    "Zoë Ångström Café",
    "Grüße \u2013 \u201cŒuvre\u201d",  # en dash and curly quotes
    "日本庭園",
]


def query_error(qbo, statement: str, *, post: bool = False) -> dict:
    if post:
        response = qbo.session.post(
            f"{qbo.base}/query",
            data=statement.encode("utf-8"),
            headers={"Content-Type": "application/text"},
            timeout=10,
        )
    else:
        response = qbo.get("query", query=statement)
    assert response.status_code == 400, response.text
    return fault(response)


@pytest.mark.parametrize("post", [False, True], ids=["GET", "POST"])
def test_an_unescaped_quote_in_a_name_is_a_query_parser_fault(qbo, post):
    error = query_error(
        qbo, "select * from Vendor where DisplayName = 'Tania's Nursery'", post=post
    )
    assert (error["code"], error["Message"]) == ("4000", "Error parsing query")
    assert error["Detail"].startswith('QueryParserError: Encountered " <IDENTIFIER> "s ""')
    # A doubled quote, SQL's escape, is not QBO's.
    error = query_error(qbo, "select * from Vendor where DisplayName = 'Tania''s Nursery'")
    assert error["code"] == "4000"


@pytest.mark.parametrize("literal", ["'C\\dir'", "'100\\%'", "'tab\\t'"])
def test_a_backslash_escaping_neither_quote_nor_backslash_is_a_query_parser_fault(qbo, literal):
    error = query_error(qbo, f"select * from Customer where DisplayName = {literal}")
    assert (error["code"], error["Message"]) == ("4000", "Error parsing query")
    assert error["Detail"].startswith("QueryParserError: Invalid content. Lexical error")


def test_escaped_quote_finds_a_sandbox_vendor(qbo):
    found = qbo.query("select * from Vendor where DisplayName = 'Tania\\'s Nursery'")
    assert [v["DisplayName"] for v in found["Vendor"]] == ["Tania's Nursery"]


@pytest.mark.parametrize("entity", ["Customer", "Vendor"])
@pytest.mark.parametrize("special", SPECIAL_NAMES)
def test_client_quote_finds_names_with_special_characters(qbo, entity, special):
    name = f"{uuid.uuid4().hex[:8]} {special}"
    created = qbo.create(entity, {"DisplayName": name})
    assert created["DisplayName"] == name
    statement = f"select * from {entity} where DisplayName = {quote(name)}"
    for response in (
        qbo.get("query", query=statement),
        qbo.session.post(
            f"{qbo.base}/query",
            data=statement.encode("utf-8"),
            headers={"Content-Type": "application/text"},
            timeout=10,
        ),
    ):
        assert response.status_code == 200, response.text
        rows = response.json()["QueryResponse"][entity]
        assert [(row["Id"], row["DisplayName"]) for row in rows] == [(created["Id"], name)]


def test_client_quote_works_in_an_in_list_of_item_names(qbo):
    names = [f"{uuid.uuid4().hex[:8]} {special}" for special in SPECIAL_NAMES[:4]]
    ids = {qbo.service_item(Name=name)["Id"] for name in names}
    listed = ", ".join(quote(name) for name in names)
    found = qbo.query(f"select * from Item where Name in ({listed})")
    assert {item["Id"] for item in found["Item"]} == ids
