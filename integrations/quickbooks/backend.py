"""The backend adapter: what the sync engine needs from QuickBooks, in QuickBooks' own terms.

The engine names entities ("Invoice", "Customer") and never builds a query, a batch or a
``requestid`` itself. Everything QuickBooks-specific lives here:

- batched writes of at most 30 items (qbo-api.md section 5), each batch with one
  ``requestid`` that a later run reuses to settle a batch whose answer was lost (QBO answers a
  repeated ``requestid`` with the first answer instead of writing again);
- name look-ups as batched queries, quoted as QuickBooks' query language requires;
- the change feed (CDC, at most 30 days back, section 4) and the full read that replaces it;
- counting the API calls a run makes.

Every method raises ``QBOError`` subclasses as the client does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta

from integrations.quickbooks.client import BATCH_MAX_ITEMS, QUERY_MAX_RESULTS, QBOClient, quote
from integrations.quickbooks.errors import QBOError

# Ids per ``Id IN (...)`` query when reading known objects (QBO's IN list has no documented
# limit; 100 keeps each statement short. UNCONFIRMED, chosen conservatively).
READ_IDS_CHUNK = 100
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


class QuickBooksBackend:
    """One company's QuickBooks, as the engine speaks to it; ``api_calls`` counts the calls
    it makes, ``requests_sent`` the requests that really went out."""

    def __init__(self, client: QBOClient):
        self.client = client
        self.api_calls = 0
        self._sent_before = self._client_sent() or 0
        # Where the next ``changes`` should start, after this one (see ``changes``).
        self.next_cursor: datetime | None = None

    def _client_sent(self) -> int | None:
        sent = getattr(self.client, "requests_sent", None)
        return sent if isinstance(sent, int) else None

    @property
    def requests_sent(self) -> int:
        """API requests sent through this backend, as QuickBooks (and its request log)
        counts them: a retried or paged call counts each request. A client that does not
        count its requests gives the count of calls, ``api_calls``."""
        sent = self._client_sent()
        return self.api_calls if sent is None else sent - self._sent_before

    # --- reads -------------------------------------------------------------------------

    def read(self, entity: str, qbo_id: str) -> dict:
        """One object by Id (``GET /{entity}/{id}``)."""
        self.api_calls += 1
        return self.client.read(entity, qbo_id)

    def read_ids(self, entity: str, ids: list[str]) -> list[dict]:
        """The objects with these Ids, by ``Id IN (...)`` queries (inactive name-list entries
        included: a name-list query returns active ones only unless asked, section 3)."""
        rows: list[dict] = []
        both = f"{WITH_INACTIVE} AND " if entity in NAME_LISTS else ""
        for chunk in chunks(ids, READ_IDS_CHUNK):
            self.api_calls += 1
            listed = ", ".join(quote(i) for i in chunk)
            rows += self.client.query(f"SELECT * FROM {entity} WHERE {both}Id IN ({listed})").get(
                entity, []
            )
        return rows

    def read_all(self, entity: str, where: str = "") -> list[dict]:
        """Every object of ``entity`` matching ``where`` (paged by the client, 1,000 a page)."""
        rows = list(self.client.query_all(entity, where))
        self.api_calls += 1 + len(rows) // QUERY_MAX_RESULTS
        return rows

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
            self.api_calls += 1
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
        fault; both keyed by ``name_key``. One query per name, in batches of 30, so one
        refused name never hides the others. Raises ``QBOError`` when a whole batch fails.
        """
        keys = {name_key(name): name.strip() for name in names}
        ordered = sorted(keys)
        statements = [
            {"query": f"SELECT * FROM {entity} WHERE {name_field} = {quote(keys[key])}"}
            for key in ordered
        ]
        found: dict[str, dict] = {}
        refused: dict[str, QBOError] = {}
        for start in range(0, len(ordered), BATCH_MAX_ITEMS):
            chunk = statements[start : start + BATCH_MAX_ITEMS]
            self.api_calls += 1
            keys = ordered[start : start + BATCH_MAX_ITEMS]
            for key, result in zip(keys, self.client.batch(chunk), strict=True):
                if isinstance(result, QBOError):
                    refused[key] = result
                    continue
                for obj in result.get(entity) or []:
                    if name_key(obj.get(name_field, "")) == key:
                        found[key] = obj
        return found, refused

    # --- writes ------------------------------------------------------------------------

    def write_batch(
        self,
        entity: str,
        writes: list[tuple[str, dict]],
        *,
        request_id: str,
        positions: list[int] | None = None,
    ) -> list[dict | QBOError]:
        """Send one batch of at most 30 ``(operation, body)`` writes with ``request_id``.

        Returns one result per write, in order: the saved object or that write's own fault.
        Sending the same writes with the same ``request_id`` again returns the first answer
        without writing twice (qbo-api.md section 5). ``positions``: each write's place in the
        batch first sent with this ``request_id`` (default 0, 1, ...), so a replay of some of
        its writes reads each answer from that write's place, never another's. Raises
        ``QBOError`` when the whole request fails (``ConnectionFailedError`` with
        ``uncertain`` when its answer was lost).
        """
        if len(writes) > BATCH_MAX_ITEMS:
            raise ValueError(f"a batch holds at most {BATCH_MAX_ITEMS} writes")
        positions = positions if positions is not None else list(range(len(writes)))
        self.api_calls += 1
        items = [
            {"operation": op, "entity": entity, "body": body, "bId": f"bid{position}"}
            for (op, body), position in zip(writes, positions, strict=True)
        ]
        return self.client.batch(items, request_id=request_id)

    def void(self, entity: str, qbo_id: str, token: str) -> dict:
        """Void a transaction (QuickBooks zeroes its amounts and keeps it)."""
        self.api_calls += 1
        return self.client.void(entity, qbo_id, token)

    def update(self, entity: str, body: dict) -> dict:
        """A sparse update of one object (``Id`` and ``SyncToken`` in ``body``)."""
        self.api_calls += 1
        return self.client.update(entity, body)
