"""The QuickBooks Online Accounting API v3 client.

Every call goes through ``QBOClient._request()``: it adds ``minorversion``, JSON headers, the
bearer token and a timeout; refreshes the access token once on a 401; turns faults into the
typed errors of ``errors.py``; and retries transient failures (429, 5xx, network errors and
timeouts) with backoff, but only when the request is safe to repeat: reads, and writes that
carry a ``requestid`` (QBO replays the first answer to a repeated id instead of writing again).

Numbers in QBO's answers are parsed as ``Decimal`` so money is never a binary float; the
client accepts ``Decimal``, ``date`` and ``datetime`` values in request bodies.
Facts: qbo-api.md sections 2-7.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import requests
from django.conf import settings

from .endpoints import ApiPath, endpoints_for
from .errors import (
    ConnectionFailedError,
    QBOError,
    ThrottledError,
    error_from_exception,
    error_from_fault,
    error_from_response,
    was_sent,
)

__all__ = ["BATCH_MAX_ITEMS", "QBOClient", "backoff_seconds", "quote"]

logger = logging.getLogger(__name__)

BATCH_MAX_ITEMS = 30  # API reference and python-quickbooks; Intuit's batch guide says 10.
QUERY_MAX_RESULTS = 1000
REQUEST_ID_MAX = 50  # qbo-api.md section 2; 36 for a batch request.
BATCH_REQUEST_ID_MAX = 36
# Payments and sales receipts are voided by a sparse update with include=void; other
# transactions (Invoice, ...) by operation=void (python-quickbooks VoidMixin).
_VOID_BY_UPDATE = frozenset({"Payment", "SalesReceipt"})
USER_AGENT = "Ledgerlink-QBO-client/1"


def quote(value: str) -> str:
    """Return ``value`` as a QBO query string literal, quotes included.

    ``quote("Amy's Bird Sanctuary")`` gives ``'Amy\\'s Bird Sanctuary'``, for use as
    ``f"DisplayName = {quote(name)}"``. Backslashes are escaped too, so a value can never end
    the literal early (QBO documents only the ``\\'`` escape; a doubled backslash is the
    conventional reading of the same rule).
    """
    if not isinstance(value, str):
        raise TypeError(f"quote() takes a str, not {type(value).__name__}")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def backoff_seconds(
    attempt: int,
    *,
    base: float = 1.0,
    cap: float = 60.0,
    retry_after: float | None = None,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry).

    Exponential backoff with full jitter: a random time between 0 and
    ``min(cap, base * 2 ** (attempt - 1))``. When QBO said how long to wait (``retry_after``,
    60 s for a throttle fault) that wait is honoured exactly, up to ``cap``.
    """
    if retry_after is not None:
        return min(max(float(retry_after), 0.0), cap)
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return rng() * ceiling


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # QBO takes JSON numbers; amounts have at most 15 significant digits, which a float
        # carries exactly enough to print back unchanged.
        return float(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _format_datetime(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.isoformat(timespec="seconds")


class QBOClient:
    """One QBO company (realm), spoken to over HTTP.

    ``access_token_provider`` returns a valid access token (called before each attempt);
    ``refresh_access_token`` refreshes it and returns the new one, and is called at most once
    per request, after a 401. ``limiter`` (a ``RealmLimiter``) wraps every attempt.
    ``sleep`` and ``rng`` exist so tests can pin waits.

    ``requests_sent`` counts the HTTP requests that reached the Accounting API: every attempt,
    retries and the attempt repeated after a token refresh included (what QuickBooks counts
    against its limits). Not counted: the OAuth token refresh itself (another Intuit
    service), waits in the limiter, and attempts whose connection could not even be opened.
    """

    def __init__(
        self,
        *,
        realm_id: str,
        access_token_provider: Callable[[], str],
        refresh_access_token: Callable[[], str] | None = None,
        environment: str | None = None,
        session: requests.Session | None = None,
        minor_version: int | None = None,
        timeout: float | tuple[float, float] = (5, 60),
        max_retries: int = 4,
        limiter: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.realm_id = str(realm_id)
        self._access_token_provider = access_token_provider
        self._refresh_access_token = refresh_access_token
        self.environment = environment
        self.session = session or requests.Session()
        self._minor_version = minor_version
        self.timeout = timeout
        self.max_retries = max_retries
        self.limiter = limiter
        self.sleep = sleep
        self.rng = rng
        self.requests_sent = 0
        self._count_lock = threading.Lock()
        # A token the caller read for requests sent from other threads (``pinned_token``),
        # and the caller's thread, whose own requests go on reading and refreshing it.
        self._pinned: str | None = None
        self._pinned_by: int | None = None

    def __repr__(self) -> str:
        return f"QBOClient(realm_id={self.realm_id!r}, environment={self.environment!r})"

    # --- the one request method ----------------------------------------------------------

    @property
    def minor_version(self) -> int:
        """The ``minorversion`` sent on every call (``settings.QBO_MINOR_VERSION`` unless set)."""
        return self._minor_version or settings.QBO_MINOR_VERSION

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: str | bytes | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool,
        batch: bool = False,
        batch_reserved: bool = False,
    ) -> dict[str, Any]:
        """Send one API request and return its JSON body; raise a ``QBOError`` subclass.

        ``idempotent`` says the request may be sent again after a transient failure (a read,
        or a write carrying a ``requestid``); others are sent once. ``batch``: a batch
        request, which the limiter counts in the batch budget too; ``batch_reserved``: its
        first attempt uses the batch ticket the caller took with ``limiter.try_batch()``.
        """
        url = endpoints_for(self.environment).api_base + path
        query = {"minorversion": str(self.minor_version), **(params or {})}
        base_headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if json is not None:
            data = _dumps(json)
            base_headers["Content-Type"] = "application/json"
        base_headers.update(headers or {})
        write = method.upper() != "GET"
        log = {"realm": self.realm_id, "method": method, "path": path}

        attempt = 0
        refreshed_token: str | None = None
        unanswered = False  # a write went out and its answer never came
        reserved = batch_reserved
        while True:
            token = refreshed_token or self._pinned_token() or self._access_token_provider()
            try:
                with self._limited(batch=batch, reserved=reserved):
                    reserved = False  # a retry is another batch request, with its own ticket
                    try:
                        response = self.session.request(
                            method,
                            url,
                            params=query,
                            data=data,
                            headers={**base_headers, "Authorization": f"Bearer {token}"},
                            timeout=self.timeout,
                        )
                    except requests.RequestException as exc:
                        self._count(was_sent(exc))
                        raise
                    self._count(1)
            except requests.RequestException as exc:
                error: QBOError = error_from_exception(exc, write=write)
                cause: BaseException | None = exc
                unanswered = unanswered or error.uncertain
            else:
                cause = None
                if response.status_code < 400:
                    body = _parse_body(response)
                    if isinstance(body, dict) and not (body.get("Fault") or body.get("fault")):
                        return body
                    error = error_from_response(response)
                elif response.status_code == 401 and self._can_refresh(refreshed_token):
                    logger.info(
                        "qbo.request.unauthorized",
                        extra={**log, "status": 401, "intuit_tid": _tid(response)},
                    )
                    refreshed_token = self._refresh_access_token()  # type: ignore[misc]
                    continue
                else:
                    error = error_from_response(response)

            if error.retryable and idempotent and attempt < self.max_retries:
                attempt += 1
                delay = backoff_seconds(
                    attempt,
                    retry_after=error.retry_after if isinstance(error, ThrottledError) else None,
                    rng=self.rng,
                )
                logger.warning(
                    "qbo.request.retry",
                    extra={**log, **_error_extra(error), "attempt": attempt, "delay": delay},
                )
                self.sleep(delay)
                continue

            if unanswered and error.retryable and not isinstance(error, ConnectionFailedError):
                # An earlier attempt may have been applied, so the outcome is still unknown,
                # whatever the last attempt said.
                cause = error
                error = ConnectionFailedError(
                    f"QuickBooks did not confirm the write; last answer: {cause}",
                    uncertain=True,
                    status=cause.status,
                    code=cause.code,
                    intuit_tid=cause.intuit_tid,
                )
            # A failed write can be resent safely later only with the same requestid.
            error.request_id = query.get("requestid")
            logger.warning(
                "qbo.request.failed",
                extra={**log, **_error_extra(error), "attempts": attempt + 1},
            )
            if cause is not None:
                raise error from cause
            raise error

    def _limited(self, *, batch: bool, reserved: bool):
        """The limiter's hold on one attempt (a batch ticket too for a batch request)."""
        if self.limiter is None:
            return contextlib.nullcontext()
        if batch and hasattr(self.limiter, "request"):
            return self.limiter.request(batch=True, reserved=reserved)
        return self.limiter

    def _count(self, sent: int) -> None:
        with self._count_lock:
            self.requests_sent += sent

    def _can_refresh(self, refreshed_token: str | None) -> bool:
        # With a pinned token the refresh (a database write) is left to the caller's thread.
        return (
            self._refresh_access_token is not None
            and refreshed_token is None
            and not self.uses_pinned_token()
        )

    def _pinned_token(self) -> str | None:
        return self._pinned if self.uses_pinned_token() else None

    def uses_pinned_token(self) -> bool:
        """Whether a request sent now, from this thread, uses a ``pinned_token`` block's
        token (it is one of the sending threads, not the block's own)."""
        return self._pinned is not None and threading.get_ident() != self._pinned_by

    @contextlib.contextmanager
    def pinned_token(self):
        """Requests in this block from other threads use one access token read now, and
        never refresh it themselves (a 401 is raised as it comes): for requests sent from
        worker threads, which must not touch the database. Requests from this thread read
        the token and refresh it on a 401 as ever. The token provider refreshes a token
        close to expiry before handing it out."""
        self._pinned_by = threading.get_ident()
        self.pin_token()
        try:
            yield
        finally:
            self._pinned, self._pinned_by = None, None

    def pin_token(self) -> None:
        """Read the access token again for the other threads' requests of a
        ``pinned_token`` block (the provider refreshes one close to expiry)."""
        self._pinned = self._access_token_provider()

    def _path(self, template: str, **values: str) -> str:
        return ApiPath.build(template, realm_id=self.realm_id, **values)

    # --- verbs ---------------------------------------------------------------------------

    def read(self, entity: str, id: str) -> dict[str, Any]:
        """Read one object by Id, e.g. ``read("Invoice", "130")``. Raises ``QBOError``."""
        path = self._path(ApiPath.entity_id, entity=entity.lower(), id=id)
        return _entity(self._request("GET", path, idempotent=True), entity)

    def create(
        self, entity: str, body: dict[str, Any], *, request_id: str | None = None
    ) -> dict[str, Any]:
        """Create an object and return it as QBO saved it.

        A ``requestid`` (a new one unless given) makes retries safe: QBO answers a repeated id
        with the first result instead of creating twice. A failed write may still have been
        applied; resend it from a later task with the same id (``error.request_id``).
        Raises ``QBOError``. ``update``, ``delete`` and ``void`` carry a ``requestid`` too.
        """
        return self._write(entity, body, request_id=request_id)

    def update(
        self,
        entity: str,
        body: dict[str, Any],
        *,
        sparse: bool = True,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Update an object (``body`` holds ``Id`` and ``SyncToken``) and return it.

        Sparse by default: only the fields sent change. A full update (``sparse=False``) sets
        every writable field left out to empty. Raises ``StaleObjectError`` when the
        SyncToken is old, other ``QBOError`` subclasses otherwise.
        """
        _require_id(body)
        return self._write(entity, {**body, "sparse": sparse}, request_id=request_id)

    def delete(
        self, entity: str, id: str, sync_token: str, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """Delete a transaction; returns QBO's ``{"status": "Deleted", "Id": ...}``.

        Name lists (customers, items) cannot be deleted: update them with ``Active: false``.
        Raises ``QBOError``.
        """
        body = {"Id": str(id), "SyncToken": str(sync_token)}
        return self._write(entity, body, request_id=request_id, operation="delete")

    def void(
        self, entity: str, id: str, sync_token: str, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """Void a transaction (amounts zeroed, object kept) and return it. Raises ``QBOError``."""
        if entity in _VOID_BY_UPDATE:
            body = {"Id": str(id), "SyncToken": str(sync_token), "sparse": True}
            return self._write(
                entity, body, request_id=request_id, operation="update", include="void"
            )
        body = {"Id": str(id), "SyncToken": str(sync_token)}
        return self._write(entity, body, request_id=request_id, operation="void")

    def _write(
        self,
        entity: str,
        body: dict[str, Any],
        *,
        request_id: str | None,
        **params: str,
    ) -> dict[str, Any]:
        request_id = _request_id(request_id, REQUEST_ID_MAX)
        path = self._path(ApiPath.entity, entity=entity.lower())
        answer = self._request(
            "POST",
            path,
            params={**params, "requestid": request_id},
            json=body,
            idempotent=True,
        )
        return _entity(answer, entity)

    def query(self, statement: str) -> dict[str, Any]:
        """Run one query statement and return its ``QueryResponse`` (one page).

        Rows are under the entity name (absent when none match); ``count(*)`` gives
        ``totalCount``. Use ``quote()`` for string values. Raises ``QBOError``.
        """
        path = self._path(ApiPath.query)
        answer = self._request("GET", path, params={"query": statement}, idempotent=True)
        return answer.get("QueryResponse") or {}

    def query_all(
        self,
        entity: str,
        where: str = "",
        *,
        order_by: str = "Id",
        page_size: int = QUERY_MAX_RESULTS,
    ) -> Iterator[dict[str, Any]]:
        """Yield every ``entity`` matching ``where`` (without the WHERE keyword), page by page.

        Pages with STARTPOSITION/MAXRESULTS and stops at the first page shorter than
        ``page_size``. Pages are fetched lazily. Raises ``QBOError``.
        """
        if not 1 <= page_size <= QUERY_MAX_RESULTS:
            raise ValueError(f"page_size must be between 1 and {QUERY_MAX_RESULTS}")
        statement = f"SELECT * FROM {entity}"
        if where:
            statement += f" WHERE {where}"
        if order_by:
            statement += f" ORDERBY {order_by}"
        start = 1
        while True:
            page = self.query(f"{statement} STARTPOSITION {start} MAXRESULTS {page_size}")
            rows = page.get(entity) or []
            yield from rows
            if len(rows) < page_size:
                return
            start += page_size

    def count(self, entity: str, where: str = "") -> int:
        """How many ``entity`` objects match ``where``. Raises ``QBOError``."""
        statement = f"SELECT COUNT(*) FROM {entity}"
        if where:
            statement += f" WHERE {where}"
        return int(self.query(statement).get("totalCount") or 0)

    def cdc(self, entities: list[str], changed_since: dt.datetime) -> dict[str, list[dict]]:
        """Objects of ``entities`` changed since ``changed_since`` (at most 30 days back).

        Returns ``{entity: [objects]}`` with every requested entity as a key. Deleted objects
        come as QBO reports them: ``{"Id": ..., "status": "Deleted", "MetaData": ...}``.
        A naive ``changed_since`` is taken as UTC. Raises ``QBOError``.
        """
        return self.cdc_answer(entities, changed_since)[0]

    def cdc_answer(
        self, entities: list[str], changed_since: dt.datetime
    ) -> tuple[dict[str, list[dict]], dt.datetime | None]:
        """As ``cdc``, with the answer's ``time`` (QuickBooks' clock when it answered, aware;
        None if absent or unreadable): a cursor on QuickBooks' own clock needs no margin for
        the difference between clocks."""
        path = self._path(ApiPath.cdc)
        params = {"entities": ",".join(entities), "changedSince": _format_datetime(changed_since)}
        answer = self._request("GET", path, params=params, idempotent=True)
        changes: dict[str, list[dict]] = {entity: [] for entity in entities}
        for response in answer.get("CDCResponse") or []:
            for block in response.get("QueryResponse") or []:
                for key, value in block.items():
                    if isinstance(value, list):
                        changes.setdefault(key, []).extend(value)
        try:
            answered = dt.datetime.fromisoformat(str(answer.get("time") or ""))
        except ValueError:
            answered = None
        if answered is not None and answered.tzinfo is None:
            answered = answered.replace(tzinfo=dt.UTC)
        return changes, answered

    def batch(
        self,
        items: list[dict[str, Any]],
        *,
        request_id: str | None = None,
        reserved: bool = False,
    ) -> list[dict[str, Any] | QBOError]:
        """Send ``items`` as batch requests of at most 30; return one result per item, in order.

        An item is ``{"operation": "create"|"update"|"delete"|"void", "entity": "Invoice",
        "body": {...}}`` (updates are sparse unless ``"sparse": False``) or ``{"query":
        "select ..."}``. A result is the saved object, the ``QueryResponse`` for a query, or
        the item's own fault as a ``QBOError`` subclass (items succeed or fail one by one).
        An item may name its own ``"bId"`` (unique in its request; default ``bid<index>``), so
        that a replay of part of a batch reads each answer from its original place.
        Each request carries a ``requestid`` so it can be retried safely; pass ``request_id``
        (at most 32 characters) to reuse the same ids from a later task. Every batch request
        waits for a ticket in the limiter's batch budget, except the first when ``reserved``
        says the caller took one with ``limiter.try_batch()``. Raises ``QBOError`` when a
        whole request fails.
        """
        if request_id is not None and len(request_id) > BATCH_REQUEST_ID_MAX - 4:
            raise ValueError(f"batch request_id must be at most {BATCH_REQUEST_ID_MAX - 4} chars")
        request_id = request_id or uuid.uuid4().hex
        results: list[dict[str, Any] | QBOError] = []
        for number, start in enumerate(range(0, len(items), BATCH_MAX_ITEMS)):
            chunk = items[start : start + BATCH_MAX_ITEMS]
            results.extend(
                self._batch_chunk(
                    chunk, request_id=f"{request_id}-{number}", reserved=reserved and not number
                )
            )
        return results

    def _batch_chunk(
        self, chunk: list[dict[str, Any]], *, request_id: str, reserved: bool
    ) -> list[dict[str, Any] | QBOError]:
        requests_: list[dict[str, Any]] = []
        bids = [item.get("bId") or f"bid{index}" for index, item in enumerate(chunk)]
        for bid, item in zip(bids, chunk, strict=True):
            requests_.append({"bId": bid, **_batch_request(item)})
        answer = self._request(
            "POST",
            self._path(ApiPath.batch),
            params={"requestid": request_id},
            json={"BatchItemRequest": requests_},
            idempotent=True,
            batch=True,
            batch_reserved=reserved,
        )
        by_bid = {
            entry.get("bId"): entry
            for entry in answer.get("BatchItemResponse") or []
            if isinstance(entry, dict)
        }
        results: list[dict[str, Any] | QBOError] = []
        for bid, item in zip(bids, chunk, strict=True):
            entry = by_bid.get(bid)
            if entry is None:
                results.append(QBOError("QuickBooks gave no answer for this batch item"))
            elif "Fault" in entry:
                results.append(error_from_fault(entry["Fault"]))
            elif "query" in item:
                results.append(entry.get("QueryResponse") or {})
            else:
                value = entry.get(item["entity"])
                if value is None:
                    value = next((v for k, v in entry.items() if k != "bId"), {})
                results.append(value)
        return results

    def company_info(self) -> dict[str, Any]:
        """The company's ``CompanyInfo`` (name, address, country...). Raises ``QBOError``."""
        path = self._path(ApiPath.company_info)
        return _entity(self._request("GET", path, idempotent=True), "CompanyInfo")

    def preferences(self) -> dict[str, Any]:
        """The company's ``Preferences`` (currency, sales forms, tax). Raises ``QBOError``."""
        path = self._path(ApiPath.preferences)
        return _entity(self._request("GET", path, idempotent=True), "Preferences")


# --- helpers -----------------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def _parse_body(response: requests.Response) -> Any:
    try:
        return json.loads(response.content or b"null", parse_float=Decimal)
    except ValueError:
        return None


def _entity(answer: dict[str, Any], entity: str) -> dict[str, Any]:
    """The object in a single-entity answer, ``{"Invoice": {...}, "time": ...}``."""
    if entity in answer:
        return answer[entity]
    for key, value in answer.items():
        if key.lower() == entity.lower() and isinstance(value, dict):
            return value
    raise QBOError(f"QuickBooks answered without the {entity} that was asked for")


def _tid(response: requests.Response) -> str | None:
    return response.headers.get("intuit_tid")


def _error_extra(error: QBOError) -> dict[str, Any]:
    return {"status": error.status, "code": error.code, "intuit_tid": error.intuit_tid}


def _request_id(request_id: str | None, limit: int) -> str:
    if request_id is None:
        return uuid.uuid4().hex
    if not request_id or len(request_id) > limit:
        raise ValueError(f"request_id must be 1 to {limit} characters")
    return request_id


def _require_id(body: dict[str, Any]) -> None:
    if not body.get("Id") or body.get("SyncToken") in (None, ""):
        raise ValueError("an update needs the object's Id and SyncToken")


def _batch_request(item: dict[str, Any]) -> dict[str, Any]:
    if "query" in item:
        return {"Query": item["query"]}
    operation = item.get("operation")
    entity = item.get("entity")
    body = item.get("body")
    if not operation or not entity or not isinstance(body, dict):
        raise ValueError("a batch item needs operation, entity and body, or query")
    if operation == "update":
        _require_id(body)
        body = {**body, "sparse": item.get("sparse", True)}
    request: dict[str, Any] = {"operation": operation, entity: body}
    if item.get("options"):
        request["optionsData"] = item["options"]
    return request
