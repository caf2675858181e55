"""Unit tests for the emulator's QBO query language (pure: no Django, no database)."""

import copy
from decimal import Decimal

import pytest

from qbo_emulator.query import (
    Condition,
    Query,
    QueryError,
    execute,
    parse,
)


def run(statement, rows):
    return execute(parse(statement), rows)


def ids(body, entity):
    return [row["Id"] for row in body.get(entity, [])]


def parse_error(statement):
    with pytest.raises(QueryError) as excinfo:
        parse(statement)
    return excinfo.value


def execute_error(statement, rows):
    query = parse(statement)
    with pytest.raises(QueryError) as excinfo:
        execute(query, rows)
    return excinfo.value


@pytest.fixture
def customers():
    return [
        {
            "Id": "1",
            "DisplayName": "Amy's Bird Sanctuary",
            "Active": True,
            "Balance": 239.0,
            "MetaData": {"LastUpdatedTime": "2025-06-01T10:00:00-07:00"},
        },
        {
            "Id": "2",
            "DisplayName": "Bill's Windsurf Shop",
            "Active": True,
            "Balance": 85,
            "MetaData": {"LastUpdatedTime": "2025-06-02T23:30:00-07:00"},
        },
        {
            "Id": "10",
            "DisplayName": "Cool Cars",
            "Active": False,
            "Balance": 0,
            "MetaData": {"LastUpdatedTime": "2025-06-03T08:00:00-07:00"},
        },
        {
            "Id": "5",
            "DisplayName": "Dylan Sollfrank",
            "Balance": 0,
            "MetaData": {"LastUpdatedTime": "2025-05-30T12:00:00-07:00"},
        },
    ]


@pytest.fixture
def invoices():
    return [
        {
            "Id": "130",
            "DocNumber": "1037",
            "TxnDate": "2025-06-01",
            "CustomerRef": {"value": "1", "name": "Amy's Bird Sanctuary"},
            "TotalAmt": 362.07,
            "Balance": 362.07,
            "Line": [{"Amount": 362.07}],
            "BillAddr": {"Line1": "4581 Finch St."},
        },
        {
            "Id": "9",
            "DocNumber": "1001",
            "TxnDate": "2025-05-15",
            "CustomerRef": {"value": "2", "name": "Bill's Windsurf Shop"},
            "TotalAmt": 50,
            "Balance": 0,
        },
        {
            "Id": "27",
            "DocNumber": "INV-27",
            "TxnDate": "2025-06-30",
            "CustomerRef": {"value": "1", "name": "Amy's Bird Sanctuary"},
            "TotalAmt": 1200,
            "Balance": 1200,
        },
    ]


# --- Parsing ---------------------------------------------------------------------------------


def test_parse_minimal_select_uses_defaults():
    assert parse("SELECT * FROM Invoice") == Query(entity="Invoice")
    query = parse("SELECT * FROM Invoice")
    assert query.start_position == 1
    assert query.max_results == 100
    assert query.conditions == []
    assert query.order_by == []
    assert query.is_count is False


def test_parse_count():
    query = parse("SELECT COUNT(*) FROM Customer")
    assert query.is_count is True
    assert query.entity == "Customer"
    assert parse("select count ( * ) from Customer").is_count is True


def test_keywords_and_entity_names_are_case_insensitive():
    query = parse(
        "sElEcT * fRoM cUsToMeR wHeRe Active = TRUE aNd DisplayName LiKe 'a%' "
        "OrDeRbY DisplayName DeSc StArTpOsItIoN 3 mAxReSuLtS 7"
    )
    assert query.entity == "Customer"
    assert query.conditions == [
        Condition("Active", "=", True),
        Condition("DisplayName", "LIKE", "a%"),
    ]
    assert query.order_by == [("DisplayName", True)]
    assert (query.start_position, query.max_results) == (3, 7)


@pytest.mark.parametrize(
    "name",
    [
        "Account",
        "TaxCode",
        "TaxRate",
        "Customer",
        "Item",
        "Invoice",
        "Payment",
        "CompanyInfo",
        "Preferences",
        "Vendor",
        "Employee",
        "Bill",
        "SalesReceipt",
        "CreditMemo",
        "Estimate",
    ],
)
def test_every_known_entity_parses_to_its_canonical_name(name):
    assert parse(f"select * from {name.lower()}").entity == name
    assert parse(f"select * from {name.upper()}").entity == name


def test_parse_where_with_each_comparison_operator():
    query = parse(
        "SELECT * FROM Invoice WHERE TotalAmt > '300.00' AND TotalAmt < 1000 "
        "AND TxnDate >= '2025-01-01' AND TxnDate <= '2025-12-31' AND DocNumber = '1037'"
    )
    assert query.conditions == [
        Condition("TotalAmt", ">", "300.00"),
        Condition("TotalAmt", "<", Decimal("1000")),
        Condition("TxnDate", ">=", "2025-01-01"),
        Condition("TxnDate", "<=", "2025-12-31"),
        Condition("DocNumber", "=", "1037"),
    ]


def test_parse_operators_without_surrounding_spaces():
    query = parse("SELECT * FROM Invoice WHERE Id>='5' AND Balance<=0 AND DocNumber='1'")
    assert [(c.op, c.value) for c in query.conditions] == [
        (">=", "5"),
        ("<=", Decimal("0")),
        ("=", "1"),
    ]


def test_parse_in_list_of_strings_and_booleans():
    query = parse("SELECT * FROM Customer WHERE Id IN ('1', '2','3') AND Active IN (true, false)")
    assert query.conditions == [
        Condition("Id", "IN", ("1", "2", "3")),
        Condition("Active", "IN", (True, False)),
    ]


def test_parse_number_literals():
    query = parse("SELECT * FROM Invoice WHERE Balance > -1.5 AND TotalAmt = 20")
    assert [c.value for c in query.conditions] == [Decimal("-1.5"), Decimal("20")]


def test_parse_apostrophe_escape_in_string():
    query = parse(r"SELECT * FROM Customer WHERE DisplayName = 'Amy\'s Bird Sanctuary'")
    assert query.conditions == [Condition("DisplayName", "=", "Amy's Bird Sanctuary")]


def test_parse_backslash_escape_and_refuse_other_backslashes():
    # A backslash escapes only a quote or a backslash; any other one is refused (UNCONFIRMED,
    # see query._read_string).
    query = parse(r"SELECT * FROM Item WHERE Name = 'a\\b' AND Sku = 'c\'d\\'")
    assert [c.value for c in query.conditions] == ["a\\b", "c'd\\"]
    error = parse_error(r"SELECT * FROM Item WHERE Sku = 'c\d'")
    assert (error.code, error.message) == ("4000", "Error parsing query")
    assert error.detail == (
        "QueryParserError: Invalid content. Lexical error at line 1, column 35.  "
        'Encountered: "d" (100), after : "\'c\\"'
    )


def test_parse_string_literal_keeps_keywords_and_symbols():
    query = parse("SELECT * FROM Item WHERE Name = 'select * from where (x) or y, 100%'")
    assert query.conditions[0].value == "select * from where (x) or y, 100%"


def test_parse_dotted_fields():
    query = parse(
        "SELECT * FROM Item WHERE MetaData.LastUpdatedTime >= '2025-06-01T00:00:00-07:00' "
        "ORDERBY MetaData.LastUpdatedTime STARTPOSITION 1 MAXRESULTS 1000"
    )
    assert query.conditions[0].field == "MetaData.LastUpdatedTime"
    assert query.order_by == [("MetaData.LastUpdatedTime", False)]
    assert query.max_results == 1000


def test_parse_orderby_several_fields_and_directions():
    query = parse("SELECT * FROM Invoice ORDERBY TxnDate DESC, DocNumber ASC, Id")
    assert query.order_by == [("TxnDate", True), ("DocNumber", False), ("Id", False)]


def test_parse_order_by_as_two_words():
    assert parse("SELECT * FROM Invoice ORDER BY TxnDate DESC").order_by == [("TxnDate", True)]


def test_parse_paging_clauses_in_either_order():
    query = parse("SELECT * FROM Invoice MAXRESULTS 5 STARTPOSITION 11")
    assert (query.start_position, query.max_results) == (11, 5)


def test_parse_tolerates_newlines_tabs_and_surrounding_whitespace():
    statement = (
        "\n  SELECT *\n\tFROM   Invoice\r\n WHERE  Id = '1'\n  ORDERBY Id\n  MAXRESULTS 3 \n\n"
    )
    query = parse(statement)
    assert query.entity == "Invoice"
    assert query.conditions == [Condition("Id", "=", "1")]
    assert query.max_results == 3


# --- Parse errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "",
        "   ",
        "SELECT",
        "SELECT * Invoice",
        "SELECT * FROM",
        "SELECT Id, DocNumber FROM Invoice",
        "SELECT COUNT(Id) FROM Invoice",
        "SELECT * FROM Invoice WHERE",
        "SELECT * FROM Invoice WHERE Id",
        "SELECT * FROM Invoice WHERE Id = ",
        "SELECT * FROM Invoice WHERE Id = '1' AND",
        "SELECT * FROM Invoice WHERE Id IN ()",
        "SELECT * FROM Invoice WHERE Id IN ('1'",
        "SELECT * FROM Invoice WHERE Id NOT IN ('1')",
        "SELECT * FROM Invoice WHERE Id <> '1'",
        "SELECT * FROM Invoice WHERE DocNumber LIKE 10",
        "SELECT * FROM Invoice WHERE Id = Balance",
        "SELECT * FROM Invoice ORDERBY",
        "SELECT * FROM Invoice ORDER TxnDate",
        "SELECT * FROM Invoice ORDERBY TxnDate DESC ASC",
        "SELECT * FROM Invoice STARTPOSITION",
        "SELECT * FROM Invoice STARTPOSITION '1'",
        "SELECT * FROM Invoice MAXRESULTS 1.5",
        "SELECT * FROM Invoice MAXRESULTS 10 MAXRESULTS 20",
        "SELECT * FROM Invoice MAXRESULTS 10 ORDERBY Id",
        "SELECT * FROM Invoice ORDERBY Id WHERE Id = '1'",
        "SELECT * FROM Invoice GROUP BY Id",
    ],
)
def test_syntax_errors_are_4000(statement):
    error = parse_error(statement)
    assert error.code == "4000"
    assert error.message == "Error parsing query"
    assert error.detail.startswith("QueryParserError: ")


def test_parse_error_detail_names_the_token_and_position():
    error = parse_error("SELECT * FROM Invoice WHERE Id = '1' foo")
    assert error.detail.startswith(
        'QueryParserError: Encountered " <IDENTIFIER> "foo "" at line 1, column 38.'
    )
    assert '"and"' in error.detail
    assert '"maxresults"' in error.detail


def test_parse_error_position_counts_lines():
    error = parse_error("SELECT *\nFROM Invoice\nWHERE Id ~ '1'")
    assert "line 3, column 10" in error.detail


def test_parse_error_at_end_of_statement():
    error = parse_error("SELECT * FROM Invoice WHERE Id =")
    assert error.detail.startswith('QueryParserError: Encountered "<EOF>" at line 1, column 33.')


def test_unescaped_apostrophe_is_a_parse_error():
    error = parse_error("SELECT * FROM Customer WHERE DisplayName = 'Amy's Bird Sanctuary'")
    assert error.code == "4000"
    assert '<IDENTIFIER> "s ""' in error.detail


def test_unterminated_string_is_a_lexical_error():
    error = parse_error("SELECT * FROM Customer WHERE DisplayName = 'Amy")
    assert error.code == "4000"
    assert "Lexical error at line 1, column 44" in error.detail


def test_not_equal_operator_is_not_supported():
    error = parse_error("SELECT * FROM Invoice WHERE Balance != '0'")
    assert error.code == "4000"
    assert 'Encountered: "!" (33)' in error.detail


def test_trailing_semicolon_is_a_parse_error():
    assert parse_error("SELECT * FROM Invoice;").code == "4000"


def test_or_is_refused_as_invalid_query():
    error = parse_error("SELECT * FROM Customer WHERE Id = '1' OR Id = '2'")
    assert error.code == "4001"
    assert error.message == "Invalid query"
    assert "OR" in error.detail


def test_unknown_entity_is_invalid_query():
    error = parse_error("SELECT * FROM Customers")
    assert error.code == "4001"
    assert error.message == "Invalid query"
    assert error.detail == "QueryValidationError: Metadata not found for Entity: Customers"


def test_dotted_entity_name_is_unknown():
    assert parse_error("SELECT * FROM Invoice.Line").code == "4001"


@pytest.mark.parametrize("clause", ["STARTPOSITION 0", "MAXRESULTS 0"])
def test_zero_paging_value_is_too_small(clause):
    error = parse_error(f"SELECT * FROM Invoice {clause}")
    assert error.code == "4001"
    assert error.message == "Invalid query"
    assert error.detail == "QueryValidationError: value 0 is too small. Min allowed value is 1"


def test_negative_start_position_is_too_small():
    error = parse_error("SELECT * FROM Invoice STARTPOSITION -3")
    assert error.detail == "QueryValidationError: value -3 is too small. Min allowed value is 1"


def test_max_results_above_1000_is_refused():
    error = parse_error("SELECT * FROM Invoice MAXRESULTS 1001")
    assert error.code == "4001"
    assert (
        error.detail == "QueryValidationError: value 1001 is too large. Max allowed value is 1000"
    )


def test_query_error_str_carries_code_message_and_detail():
    error = parse_error("SELECT * FROM Nope")
    assert (
        str(error)
        == "4001 Invalid query: QueryValidationError: Metadata not found for Entity: Nope"
    )


# --- Execution: response shape ---------------------------------------------------------------


def test_select_returns_rows_with_start_position_and_page_size(invoices):
    body = run("SELECT * FROM Invoice", invoices)
    assert list(body) == ["Invoice", "startPosition", "maxResults"]
    assert body["startPosition"] == 1
    assert body["maxResults"] == 3
    assert "totalCount" not in body


def test_no_match_returns_empty_body(invoices):
    assert run("SELECT * FROM Invoice WHERE DocNumber = 'nope'", invoices) == {}
    assert run("SELECT * FROM Invoice", []) == {}


def test_count_returns_total_only(invoices):
    assert run("SELECT COUNT(*) FROM Invoice", invoices) == {"totalCount": 3}
    assert run("SELECT COUNT(*) FROM Invoice WHERE Balance > '0'", invoices) == {"totalCount": 2}


def test_count_of_nothing_is_zero(invoices):
    assert run("SELECT COUNT(*) FROM Invoice WHERE Id = '999'", invoices) == {"totalCount": 0}


def test_count_ignores_paging(invoices):
    body = run("SELECT COUNT(*) FROM Invoice STARTPOSITION 3 MAXRESULTS 1", invoices)
    assert body == {"totalCount": 3}


def test_execute_accepts_any_iterable(invoices):
    body = execute(parse("SELECT * FROM Invoice"), (row for row in invoices))
    assert body["maxResults"] == 3


def test_execute_returns_copies_and_leaves_input_untouched(invoices):
    before = copy.deepcopy(invoices)
    body = run("SELECT * FROM Invoice ORDERBY TotalAmt DESC", invoices)
    assert invoices == before
    body["Invoice"][0]["CustomerRef"]["value"] = "changed"
    assert invoices == before


# --- Execution: filters ----------------------------------------------------------------------


def test_equality_on_names_ignores_case(customers):
    body = run("SELECT * FROM Customer WHERE DisplayName = 'dylan SOLLFRANK'", customers)
    assert ids(body, "Customer") == ["5"]


def test_escaped_apostrophe_matches_stored_name(customers):
    body = run(r"SELECT * FROM Customer WHERE DisplayName = 'Amy\'s Bird Sanctuary'", customers)
    assert ids(body, "Customer") == ["1"]


def test_id_compares_numerically(customers):
    body = run("SELECT * FROM Customer WHERE Id > '2' AND Active IN (true, false)", customers)
    assert ids(body, "Customer") == ["5", "10"]
    body = run("SELECT * FROM Customer WHERE Id = 5", customers)
    assert ids(body, "Customer") == ["5"]


def test_in_matches_any_listed_value(customers):
    body = run("SELECT * FROM Customer WHERE Id IN ('2', '5', '77')", customers)
    assert ids(body, "Customer") == ["2", "5"]


def test_in_on_names_ignores_case(customers):
    body = run("SELECT * FROM Customer WHERE DisplayName IN ('cool cars', 'COOL CARS')", customers)
    assert ids(body, "Customer") == []  # inactive: the default Active filter still applies
    body = run(
        "SELECT * FROM Customer WHERE DisplayName IN ('cool cars') AND Active = false", customers
    )
    assert ids(body, "Customer") == ["10"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("Amy%", ["1"]),
        ("%shop", ["2"]),
        ("%'s%", ["1", "2"]),
        ("%SOLL%", ["5"]),
        ("dylan sollfrank", ["5"]),
        ("Dylan", []),
        ("%", ["1", "2", "5"]),
        ("B%s%p", ["2"]),
    ],
)
def test_like_with_percent_wildcards_ignores_case(customers, pattern, expected):
    escaped = pattern.replace("'", "\\'")
    body = run(f"SELECT * FROM Customer WHERE DisplayName LIKE '{escaped}'", customers)
    assert ids(body, "Customer") == expected


def test_like_treats_underscore_and_regex_characters_literally():
    rows = [
        {"Id": "1", "Name": "A_B (x)"},
        {"Id": "2", "Name": "AxB (x)"},
        {"Id": "3", "Name": "A.B"},
    ]
    assert ids(run("SELECT * FROM Item WHERE Name LIKE 'A_B%'", rows), "Item") == ["1"]
    assert ids(run("SELECT * FROM Item WHERE Name LIKE '%(x)'", rows), "Item") == ["1", "2"]
    assert ids(run("SELECT * FROM Item WHERE Name LIKE 'A.B'", rows), "Item") == ["3"]


def test_reference_compares_its_value(invoices):
    body = run("SELECT * FROM Invoice WHERE CustomerRef = '1'", invoices)
    assert ids(body, "Invoice") == ["27", "130"]
    body = run("SELECT * FROM Invoice WHERE CustomerRef IN ('2')", invoices)
    assert ids(body, "Invoice") == ["9"]


def test_decimal_fields_compare_as_numbers(invoices):
    body = run("SELECT * FROM Invoice WHERE TotalAmt > '300.00'", invoices)
    assert ids(body, "Invoice") == ["27", "130"]
    body = run("SELECT * FROM Invoice WHERE TotalAmt <= 362.07", invoices)
    assert ids(body, "Invoice") == ["9", "130"]
    body = run("SELECT * FROM Invoice WHERE Balance = '0'", invoices)
    assert ids(body, "Invoice") == ["9"]


def test_numeric_strings_compare_as_numbers_and_others_as_text(invoices):
    # As text "1037" < "999"; as numbers it is greater. "INV-27" is text: "inv-27" > "999".
    body = run("SELECT * FROM Invoice WHERE DocNumber > '999'", invoices)
    assert ids(body, "Invoice") == ["9", "27", "130"]
    body = run("SELECT * FROM Invoice WHERE DocNumber < '1010'", invoices)
    assert ids(body, "Invoice") == ["9"]
    body = run("SELECT * FROM Invoice WHERE DocNumber > 'H'", invoices)
    assert ids(body, "Invoice") == ["27"]
    body = run("SELECT * FROM Invoice WHERE DocNumber = 'inv-27'", invoices)
    assert ids(body, "Invoice") == ["27"]


def test_date_field_compares_as_dates(invoices):
    body = run(
        "SELECT * FROM Invoice WHERE TxnDate >= '2025-06-01' AND TxnDate < '2025-06-30'",
        invoices,
    )
    assert ids(body, "Invoice") == ["130"]
    body = run("SELECT * FROM Invoice WHERE TxnDate = '2025-05-15'", invoices)
    assert ids(body, "Invoice") == ["9"]


def test_datetimes_compare_as_instants_across_offsets(customers):
    # 2025-06-02T23:30:00-07:00 is 2025-06-03T06:30:00Z.
    statement = (
        "SELECT * FROM Customer WHERE MetaData.LastUpdatedTime > '2025-06-03T06:00:00Z' "
        "AND Active IN (true, false)"
    )
    assert ids(run(statement, customers), "Customer") == ["2", "10"]
    statement = (
        "SELECT * FROM Customer WHERE MetaData.LastUpdatedTime >= '2025-06-03T06:30:00+00:00'"
    )
    assert ids(run(statement, customers), "Customer") == ["2"]
    statement = (
        "SELECT * FROM Customer WHERE MetaData.LastUpdatedTime > '2025-06-03T06:30:00+00:00'"
    )
    assert ids(run(statement, customers), "Customer") == []


def test_date_only_literal_compares_against_the_stored_datetime_date(customers):
    # Local dates of the stored times (-07:00): 06-01, 06-02, 06-03 (inactive), 05-30.
    base = "SELECT * FROM Customer WHERE MetaData.LastUpdatedTime "
    assert ids(run(base + "= '2025-06-02'", customers), "Customer") == ["2"]
    assert ids(run(base + ">= '2025-06-01'", customers), "Customer") == ["1", "2"]
    assert ids(run(base + "< '2025-06-01'", customers), "Customer") == ["5"]


def test_datetime_without_offset_is_read_in_the_stored_offset(customers):
    statement = "SELECT * FROM Customer WHERE MetaData.LastUpdatedTime >= '2025-06-02T23:30:00'"
    assert ids(run(statement, customers), "Customer") == ["2"]


def test_datetime_literal_against_date_field_compares_dates(invoices):
    body = run("SELECT * FROM Invoice WHERE TxnDate = '2025-06-01T15:00:00-07:00'", invoices)
    assert ids(body, "Invoice") == ["130"]


def test_fractional_seconds_and_zulu_times_parse():
    rows = [
        {"Id": "1", "MetaData": {"CreateTime": "2025-01-01T00:00:00.500Z"}},
        {"Id": "2", "MetaData": {"CreateTime": "2025-01-01T00:00:01.000-00:00"}},
    ]
    statement = "SELECT * FROM Invoice WHERE MetaData.CreateTime > '2025-01-01T00:00:00.750+00:00'"
    assert ids(run(statement, rows), "Invoice") == ["2"]


def test_several_conditions_must_all_hold(invoices):
    body = run(
        "SELECT * FROM Invoice WHERE CustomerRef = '1' AND Balance > '0' "
        "AND TxnDate > '2025-06-15'",
        invoices,
    )
    assert ids(body, "Invoice") == ["27"]


def test_row_without_the_field_does_not_match(invoices):
    assert run("SELECT * FROM Invoice WHERE PrivateNote = 'x'", invoices) == {}
    assert run("SELECT * FROM Invoice WHERE NoSuch.Path > '1'", invoices) == {}


def test_null_value_does_not_match():
    rows = [{"Id": "1", "DocNumber": None}]
    assert run("SELECT * FROM Invoice WHERE DocNumber = 'None'", rows) == {}


def test_field_names_fall_back_to_case_insensitive_lookup(customers):
    body = run("SELECT * FROM Customer WHERE Metadata.LastUpdatedTime < '2025-06-01'", customers)
    assert ids(body, "Customer") == ["5"]


def test_boolean_field_matches_true_false_literals():
    rows = [{"Id": "1", "Taxable": True}, {"Id": "2", "Taxable": False}, {"Id": "3"}]
    assert ids(run("SELECT * FROM Invoice WHERE Taxable = true", rows), "Invoice") == ["1"]
    assert ids(run("SELECT * FROM Invoice WHERE Taxable = FALSE", rows), "Invoice") == ["2"]
    assert ids(run("SELECT * FROM Invoice WHERE Taxable = 'true'", rows), "Invoice") == ["1"]


# --- Execution: default Active filter --------------------------------------------------------


def test_name_list_returns_only_active_rows_by_default(customers):
    body = run("SELECT * FROM Customer", customers)
    assert ids(body, "Customer") == ["1", "2", "5"]  # "5" has no Active key: counts as active
    assert run("SELECT COUNT(*) FROM Customer", customers) == {"totalCount": 3}


def test_active_in_true_false_returns_all(customers):
    body = run("SELECT * FROM Customer WHERE Active IN (true, false)", customers)
    assert ids(body, "Customer") == ["1", "2", "5", "10"]


def test_explicit_active_false_returns_inactive_only(customers):
    assert ids(run("SELECT * FROM Customer WHERE Active = false", customers), "Customer") == ["10"]


def test_explicit_active_true_counts_missing_active_as_active(customers):
    body = run("SELECT * FROM Customer WHERE active = TRUE", customers)
    assert ids(body, "Customer") == ["1", "2", "5"]


@pytest.mark.parametrize(
    "entity", ["Account", "Customer", "Item", "TaxCode", "TaxRate", "Vendor", "Employee"]
)
def test_default_active_filter_applies_to_every_name_list(entity):
    rows = [{"Id": "1", "Active": True}, {"Id": "2", "Active": False}]
    assert ids(run(f"SELECT * FROM {entity}", rows), entity) == ["1"]


@pytest.mark.parametrize("entity", ["Invoice", "Payment", "CompanyInfo", "Preferences"])
def test_default_active_filter_does_not_apply_to_other_entities(entity):
    rows = [{"Id": "1", "Active": True}, {"Id": "2", "Active": False}]
    assert ids(run(f"SELECT * FROM {entity}", rows), entity) == ["1", "2"]


# --- Execution: errors -----------------------------------------------------------------------


def test_filtering_on_a_list_property_is_not_queryable(invoices):
    error = execute_error("SELECT * FROM Invoice WHERE Line = '1'", invoices)
    assert error.code == "4001"
    assert error.detail == "QueryValidationError: property 'Line' is not queryable"
    assert execute_error("SELECT * FROM Invoice WHERE Line.Amount > 1", invoices).code == "4001"


def test_filtering_on_an_object_property_is_not_queryable(invoices):
    error = execute_error("SELECT * FROM Invoice WHERE BillAddr = 'x'", invoices)
    assert error.detail == "QueryValidationError: property 'BillAddr' is not queryable"


def test_ordering_comparison_on_boolean_is_invalid(customers):
    error = execute_error("SELECT * FROM Customer WHERE Active > false", customers)
    assert error.code == "4001"


def test_like_on_a_number_is_invalid(invoices):
    error = execute_error("SELECT * FROM Invoice WHERE TotalAmt LIKE '3%'", invoices)
    assert error.code == "4001"


def test_non_numeric_value_for_number_property_is_a_processing_error(invoices):
    error = execute_error("SELECT * FROM Invoice WHERE TotalAmt > 'lots'", invoices)
    assert error.code == "4002"
    assert error.message == "Error processing query"
    assert error.detail.startswith("QueryProcessingError: ")


def test_non_boolean_value_for_boolean_property_is_a_processing_error(customers):
    assert execute_error("SELECT * FROM Customer WHERE Active = 'yes'", customers).code == "4002"


# --- Execution: ordering and paging ----------------------------------------------------------


def test_default_order_is_id_ascending_numerically(invoices):
    assert ids(run("SELECT * FROM Invoice", invoices), "Invoice") == ["9", "27", "130"]


def test_orderby_desc(invoices):
    body = run("SELECT * FROM Invoice ORDERBY TotalAmt DESC", invoices)
    assert ids(body, "Invoice") == ["27", "130", "9"]


def test_orderby_dates_and_names(invoices, customers):
    assert ids(run("SELECT * FROM Invoice ORDERBY TxnDate", invoices), "Invoice") == [
        "9",
        "130",
        "27",
    ]
    body = run("SELECT * FROM Customer ORDERBY DisplayName DESC", customers)
    assert ids(body, "Customer") == ["5", "2", "1"]


def test_orderby_datetimes_compares_instants():
    rows = [
        {"Id": "1", "MetaData": {"LastUpdatedTime": "2025-06-01T10:00:00-07:00"}},  # 17:00Z
        {"Id": "2", "MetaData": {"LastUpdatedTime": "2025-06-01T12:00:00-04:00"}},  # 16:00Z
    ]
    body = run("SELECT * FROM Invoice ORDERBY MetaData.LastUpdatedTime", rows)
    assert ids(body, "Invoice") == ["2", "1"]


def test_orderby_several_keys_with_id_breaking_ties(invoices):
    body = run("SELECT * FROM Invoice ORDERBY CustomerRef, TotalAmt DESC", invoices)
    assert ids(body, "Invoice") == ["27", "130", "9"]
    body = run("SELECT * FROM Invoice ORDERBY CustomerRef DESC", invoices)
    assert ids(body, "Invoice") == ["9", "27", "130"]


def test_rows_missing_the_sort_field_come_last_in_both_directions():
    rows = [{"Id": "1"}, {"Id": "2", "DocNumber": "B"}, {"Id": "3", "DocNumber": "a"}]
    assert ids(run("SELECT * FROM Invoice ORDERBY DocNumber", rows), "Invoice") == ["3", "2", "1"]
    body = run("SELECT * FROM Invoice ORDERBY DocNumber DESC", rows)
    assert ids(body, "Invoice") == ["2", "3", "1"]


def test_paging_walks_through_the_ordered_rows():
    rows = [{"Id": str(n)} for n in range(25, 0, -1)]
    first = run("SELECT * FROM Invoice STARTPOSITION 1 MAXRESULTS 10", rows)
    second = run("SELECT * FROM Invoice STARTPOSITION 11 MAXRESULTS 10", rows)
    third = run("SELECT * FROM Invoice STARTPOSITION 21 MAXRESULTS 10", rows)
    assert ids(first, "Invoice") == [str(n) for n in range(1, 11)]
    assert (first["startPosition"], first["maxResults"]) == (1, 10)
    assert ids(second, "Invoice") == [str(n) for n in range(11, 21)]
    assert (second["startPosition"], second["maxResults"]) == (11, 10)
    assert ids(third, "Invoice") == [str(n) for n in range(21, 26)]
    assert (third["startPosition"], third["maxResults"]) == (21, 5)


def test_start_position_past_the_end_returns_empty_body(invoices):
    assert run("SELECT * FROM Invoice STARTPOSITION 4", invoices) == {}


def test_default_page_is_100_rows():
    rows = [{"Id": str(n)} for n in range(1, 151)]
    body = run("SELECT * FROM Item", rows)
    assert body["maxResults"] == 100
    assert ids(body, "Item")[-1] == "100"


def test_max_results_1000_returns_a_full_page():
    rows = [{"Id": str(n)} for n in range(1, 1201)]
    body = run("SELECT * FROM Invoice MAXRESULTS 1000", rows)
    assert body["maxResults"] == 1000
    assert (
        run("SELECT * FROM Invoice STARTPOSITION 1001 MAXRESULTS 1000", rows)["maxResults"] == 200
    )
