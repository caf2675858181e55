"""The backend adapter: what the sync engine needs from QuickBooks, in QuickBooks' own terms.

The engine names entities ("Invoice", "Customer") and never builds a query, a batch or a
``requestid`` itself. Everything QuickBooks-specific lives here:

- batched writes of at most 30 items (qbo-api.md section 5), each batch with one
  ``requestid`` that a later run reuses to settle a batch whose answer was lost (QBO answers a
  repeated ``requestid`` with the first answer instead of writing again); past the company's
  batch budget (40 a minute, section 6) the same writes go one request each, each with a
  ``requestid`` a later run can reuse just as well;
- name look-ups as ``IN (...)`` queries, as few as the query language allows, quoted as it
  requires;
- the change feed (CDC, at most 30 days back, section 4) and the full read that replaces it;
- counting the API calls a run makes.

Every method raises ``QBOError`` subclasses as the client does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta

from integrations.quickbooks.client import BATCH_MAX_ITEMS, QUERY_MAX_RESULTS, QBOClient, quote
from integrations.quickbooks.errors import (
    AuthorizationError,
    ConnectionFailedError,
    QBOError,
    ReconnectRequired,
)

# Ids per ``Id IN (...)`` query when reading known objects (QBO's IN list has no documented
# limit; 100 keeps each statement short. UNCONFIRMED, chosen conservatively).
READ_IDS_CHUNK = 100
# Names per ``Name IN (...)`` look-up: as many as Ids above, and the quoted names at most this
# many characters, so the statement stays a short URL (QBO's URL limit is UNCONFIRMED). IN is
# documented for Id; on DisplayName and Name it is UNCONFIRMED (qbo-api.md section 3), so a
# refused IN query is asked again one name at a time.
NAMES_PER_QUERY = 100
NAMES_QUERY_CHARS = 3000
# Look-up statements per batch request: QBO answers at most 1,000 objects per batch
# (qbo-api.md section 5), and ten statements of at most 100 names each stay under it.
LOOKUPS_PER_BATCH = 10
# QBO's CDC looks back at most 30 days (qbo-api.md section 4); a cursor older than this (less
# a margin for clock skew) means a full read instead.
CDC_LOOKBACK = timedelta(days=30)
CDC_SAFE_LOOKBACK = CDC_LOOKBACK - timedelta(hours=1)
# A cursor is QuickBooks' own time when its change feed answered (the answer's "time"), and
# the next read starts a little before it, for a change stamped just before that answer but
# committed just after (QuickBooks' commit lag is UNCONFIRMED; 5 seconds is our margin). The
# engine skips what it has already seen.
CURSOR_OVERLAP = timedelta(seconds=5)
# After a full read the cursor is on our clock, so it is set this much earlier, for a
# difference between our clock and QuickBooks'.
CLOCK_MARGIN = timedelta(minutes=2)
# Name lists (customers, items) are read with their inactive entries: a query without an
# Active filter returns active ones only (qbo-api.md section 3).
WITH_INACTIVE = "Active IN (true, false)"
NAME_LISTS = ("Customer", "Item")
# The most objects one change-feed answer holds (qbo-api.md section 4).
CDC_MAX_OBJECTS = 1000
# Where a write's position in its batch is kept with the batch's requestid on a binding.
_POSITION = "#"
# A requestid for writes sent one request each (no batch was free) starts with this; each
# write carries ``<requestid>-<position>``. Batch requestids are hex and never start so, so a
# binding's stored requestid says how its write went, and a replay sends it the same way.
SINGLE_WRITES = "single-"


def _updated(obj: dict) -> datetime | None:
    """An object's ``MetaData.LastUpdatedTime`` (aware), or None when absent or unreadable."""
    text = str((obj.get("MetaData") or {}).get("LastUpdatedTime") or "")
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _version(obj: dict) -> tuple:
    """Orders two versions of one object: later ``LastUpdatedTime`` first, then a deletion
    over a live version stamped the same second, then the higher ``SyncToken``."""
    stamp = _updated(obj)
    token = sync_token(obj)
    return (
        stamp.timestamp() if stamp else 0.0,
        is_deleted(obj),
        int(token) if token.isdigit() else -1,
    )


def name_key(name: str) -> str:
    """A name as QuickBooks compares names: without surrounding spaces (QuickBooks trims them
    on save) and ignoring case (both UNCONFIRMED in qbo-api.md section 13)."""
    return (name or "").strip().casefold()


def object_id(obj: dict) -> str:
    """A QuickBooks object's ``Id``, as text ("" when it has none)."""
    value = obj.get("Id")
    return "" if value is None else str(value)


def sync_token(obj: dict) -> str:
    """A QuickBooks object's ``SyncToken`` (its version), as text."""
    value = obj.get("SyncToken")
    return "" if value is None else str(value)


def version_ref(qbo_id: str, token: str) -> dict:
    """The ``Id`` and ``SyncToken`` an update or void names (qbo-api.md section 5)."""
    return {"Id": qbo_id, "SyncToken": token}


def is_deleted(obj: dict) -> bool:
    """Whether the change feed reports ``obj`` as deleted (``"status": "Deleted"``)."""
    return obj.get("status") == "Deleted"


def paid_invoice_ids(payments: list[dict]) -> set[str]:
    """Ids of the invoices a list of ``Payment`` objects pays (their ``LinkedTxn``)."""
    return {
        str(linked["TxnId"])
        for payment in payments
        for line in payment.get("Line") or []
        for linked in line.get("LinkedTxn") or []
        if linked.get("TxnType") == "Invoice"
    }


def chunks(values: list, size: int = BATCH_MAX_ITEMS) -> Iterator[list]:
    """``values`` in consecutive slices of at most ``size`` (a batch's 30 by default)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def batch_ref(request_id: str, position: int) -> str:
    """What a binding keeps of its write in flight: the batch's requestid and its position."""
    return f"{request_id}{_POSITION}{position}"


def parse_batch_ref(ref: str) -> tuple[str, int]:
    """(requestid, position) from ``batch_ref()``'s text."""
    request_id, _, position = ref.partition(_POSITION)
    return request_id, int(position or 0)


def new_request_id() -> str:
    """A fresh batch requestid (32 characters; the client adds its chunk suffix)."""
    return uuid.uuid4().hex


def single_request_id(request_id: str, position: int) -> str:
    """The requestid of the write at ``position`` of a ``SINGLE_WRITES`` requestid."""
    return f"{request_id}-{position}"


def _request_level(error: QBOError) -> bool:
    """Whether a failed request says nothing about its own content, but about QuickBooks or
    the connection (throttled, unavailable, unanswered, refused access): the requests after it
    would meet the same."""
    return error.retryable or isinstance(error, AuthorizationError | ReconnectRequired)


def _name_chunks(names: list[str]) -> Iterator[list[str]]:
    """``names`` in slices of at most ``NAMES_PER_QUERY`` whose quoted text stays within
    ``NAMES_QUERY_CHARS`` (a longer name goes alone)."""
    chunk: list[str] = []
    size = 0
    for name in names:
        length = len(quote(name)) + 2
        if chunk and (len(chunk) == NAMES_PER_QUERY or size + length > NAMES_QUERY_CHARS):
            yield chunk
            chunk, size = [], 0
        chunk.append(name)
        size += length
    if chunk:
        yield chunk


class QuickBooksBackend:
    """One company's QuickBooks, as the engine speaks to it; ``api_calls`` counts the calls
    it makes, ``requests_sent`` the requests that really went out."""

    def __init__(self, client: QBOClient):
        self.client = client
        self._sent_before = client.requests_sent
        # Batch requestids whose batch ticket ``new_request_id`` took from the limiter.
        self._reserved: set[str] = set()
        # Where the next ``changes`` should start, after this one (see ``changes``).
        self.next_cursor: datetime | None = None

    @property
    def api_calls(self) -> int:
        """Requests sent to QuickBooks' Accounting API since this backend was made: each HTTP
        request that reached it, retries and the attempt repeated after a token refresh
        included, as QuickBooks counts them against its limits (the client's
        ``requests_sent``). The OAuth token refresh and waits in the limiter are not."""
        return self.client.requests_sent - self._sent_before

    def _batch_free(self) -> bool:
        """Take a ticket in the limiter's batch budget if one is free now (always True
        without a limiter)."""
        try_batch = getattr(getattr(self.client, "limiter", None), "try_batch", None)
        return True if try_batch is None else try_batch()

    @property
    def requests_sent(self) -> int:
        """The same count as ``api_calls`` (the requests that really went out)."""
        return self.api_calls

    # --- reads -------------------------------------------------------------------------

    def read(self, entity: str, qbo_id: str) -> dict:
        """One object by Id (``GET /{entity}/{id}``)."""
        return self.client.read(entity, qbo_id)

    def read_ids(self, entity: str, ids: list[str]) -> list[dict]:
        """The objects with these Ids, by ``Id IN (...)`` queries (inactive name-list entries
        included: a name-list query returns active ones only unless asked, section 3)."""
        rows: list[dict] = []
        both = f"{WITH_INACTIVE} AND " if entity in NAME_LISTS else ""
        for chunk in chunks(ids, READ_IDS_CHUNK):
            listed = ", ".join(quote(i) for i in chunk)
            rows += self.client.query(f"SELECT * FROM {entity} WHERE {both}Id IN ({listed})").get(
                entity, []
            )
        return rows

    def read_all(self, entity: str, where: str = "") -> list[dict]:
        """Every object of ``entity`` matching ``where`` (paged by the client, 1,000 a page)."""
        return list(self.client.query_all(entity, where))

    def read_list(self, entity: str) -> list[dict]:
        """Every entry of a name list (``Customer``, ``Item``), inactive ones included."""
        return self.read_all(entity, WITH_INACTIVE)

    def changes(
        self,
        entities: list[str],
        cursor: datetime | None,
        *,
        now: datetime,
        invoices_from: date | None = None,
    ) -> dict[str, list[dict]]:
        """{entity: objects changed since ``cursor``}, deletions as ``{"Id", "status":
        "Deleted"}``: from the change feed (CDC) while the cursor is within its 30 days,
        otherwise (or with no cursor) a full read, of invoices dated ``invoices_from`` on.

        Sets ``next_cursor``, where the next call should start: QuickBooks' time when its feed
        first answered, or, after a full read, ``now`` less ``CLOCK_MARGIN``."""
        if cursor is not None and now - cursor <= CDC_SAFE_LOOKBACK:
            return self._feed(entities, cursor - CURSOR_OVERLAP, now=now)
        self.next_cursor = now - CLOCK_MARGIN
        changes = {}
        for entity in entities:
            where = ""
            if entity in NAME_LISTS:
                where = WITH_INACTIVE
            if entity == "Invoice" and invoices_from:
                where = f"TxnDate >= '{invoices_from.isoformat()}'"
            changes[entity] = self.read_all(entity, where)
        return changes

    def _feed(
        self, entities: list[str], since: datetime, *, now: datetime
    ) -> dict[str, list[dict]]:
        """Every change since ``since``, however many: the change feed answers at most 1,000
        objects (qbo-api.md section 4), so an answer that may have been cut is followed by
        another from the newest ``LastUpdatedTime`` it held, until one comes back short.

        QuickBooks' order past the cap is UNCONFIRMED; Ledgerlink assumes oldest first, as
        section 13 suggests and the emulator does. Should a full answer hold one instant only
        (no progress possible), the live objects are read whole instead, so none is lost.
        Keeps each object's newest version (by ``LastUpdatedTime``, then ``SyncToken``)."""
        found: dict[str, dict[str, dict]] = {entity: {} for entity in entities}
        self.next_cursor = None
        while True:
            answer, answered = self.client.cdc_answer(entities, since)
            if self.next_cursor is None:
                self.next_cursor = answered or now - CLOCK_MARGIN
            newest, count = since, 0
            for entity, rows in answer.items():
                kept = found.setdefault(entity, {})
                for obj in rows:
                    count += 1
                    newest = max(newest, _updated(obj) or since)
                    key = object_id(obj)
                    if key not in kept or _version(obj) >= _version(kept[key]):
                        kept[key] = obj
            if count < CDC_MAX_OBJECTS:
                break
            if newest <= since:
                for entity in entities:
                    where = WITH_INACTIVE if entity in NAME_LISTS else ""
                    for obj in self.read_all(entity, where):
                        found[entity].setdefault(object_id(obj), obj)
                break
            since = newest
        return {entity: list(rows.values()) for entity, rows in found.items()}

    def find_by_names(
        self, entity: str, name_field: str, names: list[str]
    ) -> tuple[dict[str, dict], dict[str, QBOError]]:
        """Look ``names`` up in ``name_field``, as QuickBooks compares names (``name_key``).

        Returns ``(found, refused)``: the objects found and, for each look-up QuickBooks
        refused (its query language refuses some characters, qbo-api.md section 3), its
        fault; both keyed by ``name_key``. Names are asked for ``IN (...)`` up to 100 at a
        time, up to ten such queries in one batch request (one request each when the batch
        budget is used up); a query QuickBooks refuses is asked again one name at a time, so
        one refused name never hides the others. Raises ``QBOError`` when a whole request
        fails.
        """
        keys = {name_key(name): name.strip() for name in names}
        found: dict[str, dict] = {}
        refused: dict[str, QBOError] = {}
        groups = list(_name_chunks([keys[key] for key in sorted(keys)]))
        wheres = [
            f"{name_field} IN ({', '.join(quote(name) for name in group)})" for group in groups
        ]
        statements = [
            f"SELECT * FROM {entity} WHERE {where} MAXRESULTS {QUERY_MAX_RESULTS}"
            for where in wheres
        ]
        answers = self._queries(statements, per_batch=LOOKUPS_PER_BATCH)
        for group, where, answer in zip(groups, wheres, answers, strict=True):
            wanted = {name_key(name) for name in group}
            if isinstance(answer, QBOError):
                one_by_one = [
                    f"SELECT * FROM {entity} WHERE {name_field} = {quote(name)}" for name in group
                ]
                for name, result in zip(
                    group, self._queries(one_by_one, per_batch=BATCH_MAX_ITEMS), strict=True
                ):
                    if isinstance(result, QBOError):
                        refused[name_key(name)] = result
                    else:
                        self._match(result.get(entity) or [], name_field, wanted, found)
                continue
            rows = answer.get(entity) or []
            if len(rows) >= QUERY_MAX_RESULTS:  # a full page: read the rest
                rows = list(self.client.query_all(entity, where))
            self._match(rows, name_field, wanted, found)
        return found, refused

    @staticmethod
    def _match(rows: list[dict], name_field: str, wanted: set[str], found: dict) -> None:
        for obj in rows:
            key = name_key(obj.get(name_field, ""))
            if key in wanted:
                found[key] = obj

    def _queries(self, statements: list[str], *, per_batch: int) -> list[dict | QBOError]:
        """Run query statements, ``per_batch`` to a batch request while the batch budget has
        room, else one request each. Returns one ``QueryResponse`` or fault per statement, in
        order; raises ``QBOError`` when a whole request fails."""
        results: list[dict | QBOError] = []
        for group in chunks(statements, per_batch):
            if len(group) > 1 and self._batch_free():
                items = [{"query": statement} for statement in group]
                results += self.client.batch(items, reserved=True)
                continue
            for statement in group:
                try:
                    results.append(self.client.query(statement))
                except QBOError as exc:
                    if _request_level(exc):
                        raise
                    results.append(exc)
        return results

    # --- writes ------------------------------------------------------------------------

    def new_request_id(self) -> str:
        """A requestid for the next ``write_batch``: a batch requestid when the batch budget
        has room now (its ticket taken), else a ``SINGLE_WRITES`` one, with which the writes go
        one request each within the request budget instead of waiting for a batch."""
        if self._batch_free():
            request_id = new_request_id()
            self._reserved.add(request_id)
            return request_id
        return SINGLE_WRITES + uuid.uuid4().hex[:25]

    def write_batch(
        self,
        entity: str,
        writes: list[tuple[str, dict]],
        *,
        request_id: str,
        positions: list[int] | None = None,
    ) -> list[dict | QBOError]:
        """Send at most 30 ``(operation, body)`` writes with ``request_id`` (from
        ``new_request_id``): as one batch request, or, for a ``SINGLE_WRITES`` requestid, one
        request each.

        Returns one result per write, in order: the saved object or that write's own fault.
        Sending the same writes with the same ``request_id`` again returns the first answers
        without writing twice (qbo-api.md section 5), whichever way they went. ``positions``:
        each write's place among the writes first sent with this ``request_id`` (default 0,
        1, ...), so a replay of some of them reads each answer from that write's place, never
        another's.

        A batch raises ``QBOError`` when the whole request fails (``ConnectionFailedError``
        with ``uncertain`` when its answer was lost). One request each, a write whose answer
        was lost has a ``ConnectionFailedError`` with ``uncertain`` as its result; after a
        failure that is QuickBooks' or the connection's (throttled, unavailable, unanswered),
        the writes after it are not sent and have a fault saying so. A write refused for the
        access token or a reconnect (``ReconnectRequired``) has it as its result, and so do
        the writes after it (not sent); a batch request refused so raises it.
        """
        if len(writes) > BATCH_MAX_ITEMS:
            raise ValueError(f"a batch holds at most {BATCH_MAX_ITEMS} writes")
        positions = positions if positions is not None else list(range(len(writes)))
        if request_id.startswith(SINGLE_WRITES):
            return self._write_singles(entity, writes, request_id, positions)
        reserved = request_id in self._reserved
        self._reserved.discard(request_id)
        items = [
            {"operation": op, "entity": entity, "body": body, "bId": f"bid{position}"}
            for (op, body), position in zip(writes, positions, strict=True)
        ]
        return self.client.batch(items, request_id=request_id, reserved=reserved)

    def _write_singles(
        self, entity: str, writes: list[tuple[str, dict]], request_id: str, positions: list[int]
    ) -> list[dict | QBOError]:
        results: list[dict | QBOError] = []
        stopped: QBOError | None = None
        for (operation, body), position in zip(writes, positions, strict=True):
            if stopped is not None:
                results.append(stopped)
                continue
            try:
                results.append(
                    self._write_one(
                        entity, operation, body, single_request_id(request_id, position)
                    )
                )
            except QBOError as exc:  # ReconnectRequired too: the ones before keep their answers
                results.append(exc)
                if _request_level(exc):
                    stopped = exc
                    if isinstance(exc, ConnectionFailedError) and exc.uncertain:
                        stopped = ConnectionFailedError(
                            "Not sent: QuickBooks did not answer the write before it."
                        )
        return results

    def _write_one(self, entity: str, operation: str, body: dict, request_id: str) -> dict:
        if operation == "create":
            return self.client.create(entity, body, request_id=request_id)
        if operation == "update":
            return self.client.update(entity, body, request_id=request_id)
        if operation in ("delete", "void"):
            verb = self.client.delete if operation == "delete" else self.client.void
            return verb(entity, body["Id"], body["SyncToken"], request_id=request_id)
        raise ValueError(f"unknown write operation {operation!r}")

    def void(self, entity: str, qbo_id: str, token: str) -> dict:
        """Void a transaction (QuickBooks zeroes its amounts and keeps it)."""
        return self.client.void(entity, qbo_id, token)

    def update(self, entity: str, body: dict) -> dict:
        """A sparse update of one object (``Id`` and ``SyncToken`` in ``body``)."""
        return self.client.update(entity, body)
