"""The QuickBooks Online query language, as the emulator's ``/query`` endpoint speaks it.

Pure and standalone (stdlib only): ``parse()`` turns a statement into a ``Query``, ``execute()``
runs it over plain entity dicts and returns the body of ``QueryResponse``.

Grammar (keywords case-insensitive, any whitespace including newlines between tokens)::

    SELECT * | COUNT(*) FROM <Entity>
      [WHERE <cond> [AND <cond> ...]]
      [ORDERBY | ORDER BY <field> [ASC|DESC] [, <field> [ASC|DESC] ...]]
      [STARTPOSITION n] [MAXRESULTS n]          (either order, each at most once)

    <cond> := <field> (= | < | > | <= | >=) <literal>
            | <field> IN (<literal>, ...)
            | <field> LIKE '<pattern with %>'
    <literal> := 'string with \\' and \\\\ escapes' | number | true | false

Errors carry QBO's codes: 4000 "Error parsing query" for anything the grammar refuses,
4001 "Invalid query" for a statement that parses but is not allowed, 4002 "Error processing
query" for a value that cannot be compared with the stored property.

Decisions where Intuit's documentation is silent are marked **UNCONFIRMED** below.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import cmp_to_key
from typing import Any

__all__ = [
    "DEFAULT_MAX_RESULTS",
    "ENTITIES",
    "MAX_MAX_RESULTS",
    "NAME_LIST_ENTITIES",
    "Condition",
    "Query",
    "QueryError",
    "execute",
    "parse",
]

ENTITIES = (
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
    "ExchangeRate",
)
_ENTITY_BY_FOLDED = {name.casefold(): name for name in ENTITIES}

# Name lists answer only active records unless the statement asks about Active itself
# (`SELECT * FROM Customer` returns active customers only; `Active IN (true,false)` returns all).
NAME_LIST_ENTITIES = frozenset(
    {"Account", "Customer", "Item", "TaxCode", "TaxRate", "Vendor", "Employee"}
)

DEFAULT_MAX_RESULTS = 100
MAX_MAX_RESULTS = 1000

COMPARISON_OPERATORS = ("=", "<", ">", "<=", ">=")

Literal = str | bool | Decimal


class QueryError(Exception):
    """A query QBO would refuse, with the ``code``, ``message`` and ``detail`` of its Fault."""

    def __init__(self, code: str, message: str, detail: str) -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.code = code
        self.message = message
        self.detail = detail


def _parser_error(detail: str) -> QueryError:
    return QueryError("4000", "Error parsing query", f"QueryParserError: {detail}")


def _validation_error(detail: str) -> QueryError:
    return QueryError("4001", "Invalid query", f"QueryValidationError: {detail}")


def _processing_error(detail: str) -> QueryError:
    return QueryError("4002", "Error processing query", f"QueryProcessingError: {detail}")


@dataclass(frozen=True)
class Condition:
    """One ``field op value`` term of the WHERE clause.

    ``op`` is one of ``= < > <= >= IN LIKE``; ``value`` is a literal (``str``, ``bool`` or
    ``Decimal``), a tuple of literals for IN, and the raw pattern string for LIKE.
    """

    field: str
    op: str
    value: Literal | tuple[Literal, ...]


@dataclass
class Query:
    """A parsed statement. ``order_by`` holds ``(field, descending)`` pairs."""

    entity: str
    is_count: bool = False
    conditions: list[Condition] = field(default_factory=list)
    order_by: list[tuple[str, bool]] = field(default_factory=list)
    start_position: int = 1
    max_results: int = DEFAULT_MAX_RESULTS


# --- Lexer -----------------------------------------------------------------------------------

_KEYWORDS = frozenset(
    {
        "select",
        "count",
        "from",
        "where",
        "and",
        "or",
        "in",
        "like",
        "orderby",
        "order",
        "by",
        "asc",
        "desc",
        "startposition",
        "maxresults",
        "true",
        "false",
    }
)

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
_OPERATOR_RE = re.compile(r"<=|>=|[=<>(),*]")
_TOKEN_PATTERNS = (("NUMBER", _NUMBER_RE), ("IDENT", _IDENT_RE), ("SYMBOL", _OPERATOR_RE))


@dataclass(frozen=True)
class _Token:
    kind: str  # KEYWORD, IDENT, STRING, NUMBER, SYMBOL, EOF
    text: str  # as written in the statement
    value: Any  # keyword lower-cased, unescaped string, Decimal, symbol
    line: int
    column: int

    def label(self) -> str:
        """The token as a JavaCC-style parser message names it."""
        if self.kind == "EOF":
            return '"<EOF>"'
        if self.kind in ("KEYWORD", "SYMBOL"):
            return f'" "{self.value}" "{self.text} ""'
        kind = {"IDENT": "<IDENTIFIER>", "STRING": "<STRING_LITERAL>", "NUMBER": "<NUMBER>"}
        return f'" {kind[self.kind]} "{self.text} ""'


def _tokenize(statement: str) -> Iterator[_Token]:
    """Yield tokens lazily, so a syntax error ahead of a lexical one is reported first."""
    pos, line, line_start = 0, 1, 0
    length = len(statement)
    while True:
        while pos < length and statement[pos].isspace():
            if statement[pos] == "\n":
                line, line_start = line + 1, pos + 1
            pos += 1
        column = pos - line_start + 1
        if pos >= length:
            yield _Token("EOF", "", None, line, column)
            return
        char = statement[pos]
        if char == "'":
            value, end = _read_string(statement, pos, line, column)
            yield _Token("STRING", statement[pos:end], value, line, column)
            pos = end
            continue
        kind, match = _match_token(statement, pos)
        if match is None:
            raise _parser_error(
                f"Invalid content. Lexical error at line {line}, column {column}.  "
                f'Encountered: "{char}" ({ord(char)}), after : ""'
            )
        text = match.group()
        if kind == "NUMBER":
            value: Any = Decimal(text)
        elif kind == "IDENT" and text.casefold() in _KEYWORDS:
            kind, value = "KEYWORD", text.casefold()
        else:
            value = text
        yield _Token(kind, text, value, line, column)
        pos = match.end()


def _match_token(statement: str, pos: int) -> tuple[str, re.Match[str] | None]:
    for kind, pattern in _TOKEN_PATTERNS:
        match = pattern.match(statement, pos)
        if match:
            return kind, match
    return "", None


def _read_string(statement: str, start: int, line: int, column: int) -> tuple[str, int]:
    r"""Read a single-quoted literal starting at ``start``; return its value and end offset.

    ``\'`` is a quote, as Intuit documents, and ``\\`` a backslash. An unescaped quote ends
    the literal, so a name written with a bare ``'`` leaves text the parser refuses (4000).
    Any other backslash is a lexical error, 4000 too (UNCONFIRMED: QBO's parser reports
    JavaCC-style errors, and a JavaCC string token admits only the escapes it lists), so a
    name holding a backslash must be sent with it doubled.
    """
    chars: list[str] = []
    pos = start + 1
    while pos < len(statement):
        char = statement[pos]
        if char == "\\":
            escaped = statement[pos + 1 : pos + 2]
            if escaped not in ("'", "\\"):
                raise _bad_escape(statement, start, pos, line, column)
            chars.append(escaped)
            pos += 2
        elif char == "'":
            return "".join(chars), pos + 1
        else:
            chars.append(char)
            pos += 1
    raise _parser_error(
        f"Invalid content. Lexical error at line {line}, column {column}.  "
        f'Encountered: <EOF> after : "{statement[start:]}"'
    )


def _bad_escape(statement: str, start: int, pos: int, line: int, column: int) -> QueryError:
    """The lexical error for a backslash that escapes neither a quote nor a backslash."""
    at = column + (pos - start) + 1
    after = statement[start : pos + 1]
    if pos + 1 >= len(statement):
        return _parser_error(
            f"Invalid content. Lexical error at line {line}, column {at}.  "
            f'Encountered: <EOF> after : "{after}"'
        )
    char = statement[pos + 1]
    return _parser_error(
        f"Invalid content. Lexical error at line {line}, column {at}.  "
        f'Encountered: "{char}" ({ord(char)}), after : "{after}"'
    )


# --- Parser ----------------------------------------------------------------------------------


class _Parser:
    def __init__(self, tokens: Iterator[_Token]) -> None:
        self.tokens = tokens
        self.current = next(tokens)

    def advance(self) -> _Token:
        token = self.current
        if token.kind != "EOF":
            self.current = next(self.tokens)
        return token

    def at_keyword(self, *keywords: str) -> bool:
        return self.current.kind == "KEYWORD" and self.current.value in keywords

    def at_symbol(self, *symbols: str) -> bool:
        return self.current.kind == "SYMBOL" and self.current.value in symbols

    def unexpected(self, *expected: str) -> QueryError:
        token = self.current
        lines = "".join(f"\n    {item} ..." for item in expected)
        heading = "Was expecting one of:" if len(expected) > 1 else "Was expecting:"
        return _parser_error(
            f"Encountered {token.label()} at line {token.line}, column {token.column}."
            f"\n{heading}{lines}"
        )

    def expect_keyword(self, keyword: str) -> _Token:
        if not self.at_keyword(keyword):
            raise self.unexpected(f'"{keyword}"')
        return self.advance()

    def expect_symbol(self, symbol: str) -> _Token:
        if not self.at_symbol(symbol):
            raise self.unexpected(f'"{symbol}"')
        return self.advance()

    def expect_identifier(self) -> str:
        if self.current.kind != "IDENT":
            raise self.unexpected("<IDENTIFIER>")
        return self.advance().value

    # Grammar ----------------------------------------------------------------------------

    def query(self) -> Query:
        self.expect_keyword("select")
        is_count = self.projection()
        self.expect_keyword("from")
        query = Query(entity=self.entity(), is_count=is_count)
        if self.at_keyword("where"):
            self.advance()
            query.conditions = self.conditions()
        if self.at_keyword("orderby", "order"):
            if self.advance().value == "order":
                self.expect_keyword("by")
            query.order_by = self.order_items()
        self.paging(query)
        if self.current.kind != "EOF":
            raise self.unexpected(*self.expected_after_clauses(query))
        return query

    def projection(self) -> bool:
        # Intuit documents no projections: only `*` and `count(*)`.
        if self.at_symbol("*"):
            self.advance()
            return False
        if self.at_keyword("count"):
            self.advance()
            self.expect_symbol("(")
            self.expect_symbol("*")
            self.expect_symbol(")")
            return True
        raise self.unexpected('"*"', '"count"')

    def entity(self) -> str:
        token = self.current
        if token.kind != "IDENT":
            raise self.unexpected("<IDENTIFIER>")
        self.advance()
        canonical = _ENTITY_BY_FOLDED.get(token.value.casefold())
        if canonical is None:
            # As QBO answers `SELECT * FROM TaxService` (quickbooks-ruby issue #628).
            raise _validation_error(f"Metadata not found for Entity: {token.value}")
        return canonical

    def conditions(self) -> list[Condition]:
        conditions = [self.condition()]
        while True:
            if self.at_keyword("and"):
                self.advance()
                conditions.append(self.condition())
            elif self.at_keyword("or"):
                # QBO's grammar knows OR (its parser lists <OR> among expected tokens) but the
                # service does not support it; reported as a validation error. UNCONFIRMED.
                raise _validation_error("OR operator is not supported in WHERE clause")
            else:
                return conditions

    def condition(self) -> Condition:
        name = self.expect_identifier()
        if self.at_symbol(*COMPARISON_OPERATORS):
            op = self.advance().value
            return Condition(name, op, self.literal())
        if self.at_keyword("in"):
            self.advance()
            self.expect_symbol("(")
            values = [self.literal()]
            while self.at_symbol(","):
                self.advance()
                values.append(self.literal())
            self.expect_symbol(")")
            return Condition(name, "IN", tuple(values))
        if self.at_keyword("like"):
            self.advance()
            if self.current.kind != "STRING":
                raise self.unexpected("<STRING_LITERAL>")
            return Condition(name, "LIKE", self.advance().value)
        # `!=`, `<>` and NOT are not in Intuit's operator list, so they fail here or in the lexer.
        raise self.unexpected(*(f'"{op}"' for op in COMPARISON_OPERATORS), '"in"', '"like"')

    def literal(self) -> Literal:
        token = self.current
        if token.kind in ("STRING", "NUMBER"):
            self.advance()
            return token.value
        if self.at_keyword("true", "false"):
            self.advance()
            return token.value == "true"
        raise self.unexpected("<STRING_LITERAL>", "<NUMBER>", '"true"', '"false"')

    def order_items(self) -> list[tuple[str, bool]]:
        items = [self.order_item()]
        while self.at_symbol(","):
            self.advance()
            items.append(self.order_item())
        return items

    def order_item(self) -> tuple[str, bool]:
        name = self.expect_identifier()
        descending = False
        if self.at_keyword("asc", "desc"):
            descending = self.advance().value == "desc"
        return name, descending

    def paging(self, query: Query) -> None:
        seen: set[str] = set()
        while self.at_keyword("startposition", "maxresults") and self.current.value not in seen:
            keyword = self.advance().value
            seen.add(keyword)
            value = self.integer()
            if value < 1:
                # Verbatim QBO (quickbooks-ruby fixture query_validation_error.xml).
                raise _validation_error(f"value {value} is too small. Min allowed value is 1")
            if keyword == "startposition":
                query.start_position = value
            elif value > MAX_MAX_RESULTS:
                # Intuit documents 1000 as the most a page may hold. Whether QBO refuses a
                # larger MAXRESULTS or quietly caps it is UNCONFIRMED; refusing it, in the
                # wording of QBO's own lower-bound check, keeps a client that pages correctly
                # against the emulator correct against QBO.
                raise _validation_error(
                    f"value {value} is too large. Max allowed value is {MAX_MAX_RESULTS}"
                )
            else:
                query.max_results = value

    def integer(self) -> int:
        token = self.current
        if token.kind != "NUMBER" or token.value != token.value.to_integral_value():
            raise self.unexpected("<INTEGER>")
        self.advance()
        return int(token.value)

    def expected_after_clauses(self, query: Query) -> list[str]:
        expected = ['"<EOF>"']
        if query.conditions:
            expected.append('"and"')
        if not query.conditions and not query.order_by:
            expected.append('"where"')
        if not query.order_by:
            expected += ['"order"', '"orderby"']
        else:
            expected.append('","')
        expected += ['"startposition"', '"maxresults"']
        return expected


def parse(statement: str) -> Query:
    """Parse a QBO query statement (already URL-decoded) into a ``Query``.

    Raises ``QueryError`` with code 4000 for a syntax error, 4001 for an unknown entity, an OR,
    or a STARTPOSITION/MAXRESULTS out of range.
    """
    return _Parser(_tokenize(statement)).query()


# --- Execution -------------------------------------------------------------------------------

_MISSING = object()
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T")
_DECIMAL_RE = re.compile(r"-?\d+(?:\.\d+)?")


def execute(query: Query, rows: Iterable[dict]) -> dict:
    """Run ``query`` over ``rows`` (entity dicts of ``query.entity``).

    Returns the body of ``QueryResponse``: ``{entity: [...], "startPosition", "maxResults"}``
    with deep copies of the page's rows, ``{"totalCount": n}`` for ``COUNT(*)``, and ``{}``
    when the page is empty. Input rows are never modified.

    Raises ``QueryError`` 4001 when a condition or ORDERBY names an object or list property
    (``BillAddr``, ``Line``), or uses an operator its type does not allow; 4002 when a literal
    cannot be compared with a number or boolean property. Since rows carry no schema, these
    checks run against the values present, and a property no row has simply matches nothing.
    """
    name_list = query.entity in NAME_LIST_ENTITIES
    conditions = list(query.conditions)
    if name_list and not any(c.field.casefold() == "active" for c in conditions):
        conditions.append(Condition("Active", "=", True))
    matched = [row for row in rows if all(_holds(c, row, name_list) for c in conditions)]
    if query.is_count:
        # COUNT(*) counts every match; paging clauses do not apply to it.
        return {"totalCount": len(matched)}

    # Without ORDERBY the order is Id ascending, compared as numbers. QBO promises no default
    # order (UNCONFIRMED); a fixed one keeps STARTPOSITION paging stable. Id also breaks ties.
    order = [*query.order_by, ("Id", False)]
    keyed = [
        ([_sort_key(_resolve(row, name, name_list)) for name, _ in order], row) for row in matched
    ]
    descending = [desc for _, desc in order]
    keyed.sort(key=cmp_to_key(lambda a, b: _compare_keys(a[0], b[0], descending)))

    start = query.start_position - 1
    page = [row for _, row in keyed[start : start + query.max_results]]
    if not page:
        return {}
    return {
        query.entity: copy.deepcopy(page),
        "startPosition": query.start_position,
        "maxResults": len(page),
    }


def _resolve(row: dict, path: str, name_list: bool) -> Any:
    """The value at a dotted path, a reference's ``value``, or ``_MISSING``.

    Property names match case-insensitively when no key matches exactly, since clients
    commonly write `Metadata.LastUpdatedTime` (UNCONFIRMED how strict QBO is).
    """
    current: Any = row
    for segment in path.split("."):
        if isinstance(current, list):
            raise _not_queryable(path)
        if not isinstance(current, dict):
            return _MISSING
        if segment in current:
            current = current[segment]
        else:
            folded = segment.casefold()
            key = next((k for k in current if k.casefold() == folded), None)
            if key is None:
                current = _MISSING
                break
            current = current[key]
    if current is _MISSING or current is None:
        # An absent Active flag on a name-list entity means active, as QBO's default does.
        if name_list and path.casefold() == "active":
            return True
        return _MISSING
    if isinstance(current, dict):
        if "value" in current:
            return current["value"]
        raise _not_queryable(path)
    if isinstance(current, list):
        raise _not_queryable(path)
    return current


def _not_queryable(path: str) -> QueryError:
    # Wording of QBO's answer for a property that cannot be filtered (quickbooks-ruby #403).
    return _validation_error(f"property '{path}' is not queryable")


def _holds(condition: Condition, row: dict, name_list: bool) -> bool:
    value = _resolve(row, condition.field, name_list)
    if value is _MISSING:
        return False
    if condition.op == "IN":
        return any(_compare(value, literal, "=", condition.field) for literal in condition.value)
    if condition.op == "LIKE":
        if isinstance(value, bool | int | float | Decimal):
            raise _validation_error(
                f"operator 'LIKE' is not supported for property '{condition.field}'"
            )
        return _like_regex(condition.value).fullmatch(str(value)) is not None
    return _compare(value, condition.value, condition.op, condition.field)


def _like_regex(pattern: str) -> re.Pattern[str]:
    # `%` is the only wildcard QBO supports; `_` and everything else is literal. Matching
    # ignores case, as QBO's name lookups do.
    parts = (re.escape(part) for part in pattern.split("%"))
    return re.compile(".*".join(parts), re.IGNORECASE | re.DOTALL)


def _compare(value: Any, literal: Literal, op: str, name: str) -> bool:
    """Whether ``value op literal`` holds, comparing by the stored value's type."""
    if isinstance(value, bool):
        if op != "=":
            raise _validation_error(f"operator '{op}' is not supported for property '{name}'")
        flag = _as_bool(literal)
        if flag is None:
            raise _processing_error(f"value '{literal}' is not valid for property '{name}'")
        return value == flag
    if isinstance(value, int | float | Decimal):
        number = _as_decimal(literal)
        if number is None:
            raise _processing_error(f"value '{literal}' is not valid for property '{name}'")
        return _holds_for(_cmp(Decimal(str(value)), number), op)
    if isinstance(value, str):
        return _holds_for(_compare_strings(value, literal), op)
    return False


def _compare_strings(value: str, literal: Literal) -> int:
    """Order a stored string against a literal: as numbers (Ids like '5' < '10'), as
    instants or dates, or else as text ignoring case, since QBO matches names that way."""
    text = ("true" if literal else "false") if isinstance(literal, bool) else str(literal)
    left_number, right_number = _as_decimal(value), _as_decimal(text)
    if left_number is not None and right_number is not None:
        return _cmp(left_number, right_number)
    left_time, right_time = _as_temporal(value), _as_temporal(text)
    if left_time is not None and right_time is not None:
        return _compare_temporal(left_time, right_time)
    return _cmp(value.casefold(), text.casefold())


def _compare_temporal(left: date, right: date) -> int:
    """Datetimes compare as instants; a date-only side compares against the other's date.

    A datetime without an offset is taken in the other side's offset (the company's local
    time, as the emulator stores it with an offset). UNCONFIRMED how QBO reads one.
    """
    if isinstance(left, datetime) and isinstance(right, datetime):
        if left.tzinfo is None and right.tzinfo is not None:
            left = left.replace(tzinfo=right.tzinfo)
        elif right.tzinfo is None and left.tzinfo is not None:
            right = right.replace(tzinfo=left.tzinfo)
        return _cmp(left, right)
    left_day = left.date() if isinstance(left, datetime) else left
    right_day = right.date() if isinstance(right, datetime) else right
    return _cmp(left_day, right_day)


def _holds_for(ordering: int, op: str) -> bool:
    return {
        "=": ordering == 0,
        "<": ordering < 0,
        ">": ordering > 0,
        "<=": ordering <= 0,
        ">=": ordering >= 0,
    }[op]


def _cmp(left: Any, right: Any) -> int:
    return (left > right) - (left < right)


def _as_bool(literal: Literal) -> bool | None:
    if isinstance(literal, bool):
        return literal
    if isinstance(literal, str) and literal.casefold() in ("true", "false"):
        return literal.casefold() == "true"
    return None


def _as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | float):
        return Decimal(str(value))
    if isinstance(value, str) and _DECIMAL_RE.fullmatch(value.strip()):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            return None
    return None


def _as_temporal(text: str) -> date | None:
    text = text.strip()
    try:
        if _DATE_RE.fullmatch(text):
            return date.fromisoformat(text)
        if _DATETIME_RE.match(text):
            return datetime.fromisoformat(text)
    except ValueError:
        return None
    return None


def _sort_key(value: Any) -> Any:
    """A key ordering numbers, then dates and times, then booleans, then text."""
    if value is _MISSING:
        return _MISSING
    if isinstance(value, bool):
        return (2, value)
    number = _as_decimal(value)
    if number is not None:
        return (0, number)
    if isinstance(value, str):
        moment = _as_temporal(value)
        if moment is not None:
            return (1, _as_utc(moment))
        return (3, value.casefold(), value)
    return (4, str(value))


def _as_utc(moment: date) -> datetime:
    if not isinstance(moment, datetime):
        return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _compare_keys(left: list, right: list, descending: list[bool]) -> int:
    # Rows without the property sort after the others in either direction.
    for left_key, right_key, desc in zip(left, right, descending, strict=True):
        if left_key is _MISSING or right_key is _MISSING:
            if left_key is right_key:
                continue
            return 1 if left_key is _MISSING else -1
        ordering = _cmp(left_key, right_key)
        if ordering:
            return -ordering if desc else ordering
    return 0
