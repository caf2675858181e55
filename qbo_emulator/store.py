"""In-memory companies (one per realm), their change history and JSON persistence."""

from __future__ import annotations

import bisect
import json
import os
import tempfile
import threading
from collections import defaultdict
from decimal import Decimal, InvalidOperation
from typing import Any

from .clock import parse_timestamp

ENTITIES = (
    "Account",
    "TaxCode",
    "TaxRate",
    "Customer",
    "Vendor",
    "Employee",
    "Item",
    "Invoice",
    "Payment",
    "CompanyInfo",
    "Preferences",
)
NAME_LISTS = frozenset({"Account", "Customer", "Vendor", "Employee", "Item", "TaxCode", "TaxRate"})
# The lists whose DisplayName is one name space (qbo-api.md sections 8 and 13).
NAME_SPACE = ("Customer", "Vendor", "Employee")
SINGLETONS = frozenset({"CompanyInfo", "Preferences"})


# QBO numbers all transactions from one sequence (an invoice and a payment never share an
# Id within a company); items and accounts keep their own sequences, as the sample company
# shows. Customers, vendors and employees are all "names" and share one sequence, as the
# sample company's Ids suggest (customers 1-29, vendors from 30, employees 54-55;
# UNCONFIRMED).
TRANSACTIONS = frozenset({"Invoice", "Payment", "SalesReceipt", "CreditMemo", "Estimate", "Bill"})


def _id_sequence(entity: str) -> str:
    if entity in TRANSACTIONS:
        return "Transaction"
    return "Name" if entity in NAME_SPACE else entity


# The fields whose values the store indexes, compared as names are (``name_key``): the ones
# whose uniqueness every save checks, and the ones name look-ups query.
NAME_FIELDS: dict[str, tuple[str, ...]] = {
    "Customer": ("DisplayName",),
    "Vendor": ("DisplayName",),
    "Employee": ("DisplayName",),
    "Item": ("Name", "FullyQualifiedName"),
    "Account": ("Name", "FullyQualifiedName"),
}


def name_key(value: object) -> str:
    """A name as the emulator compares names: trimmed and ignoring case."""
    return str(value).strip().casefold()


def _decimal(value: object) -> Decimal:
    try:
        return Decimal(str(value if value not in (None, "") else 0))
    except InvalidOperation:
        return Decimal(0)


def _stamp(text: str | None) -> float | None:
    try:
        return parse_timestamp(text) if text else None
    except ValueError:
        return None


def _updated_stamp(obj: dict) -> float | None:
    return _stamp((obj.get("MetaData") or {}).get("LastUpdatedTime"))


def _invoice_links(payment: dict | None) -> set[str]:
    return {
        str(link.get("TxnId"))
        for line in (payment or {}).get("Line") or []
        for link in line.get("LinkedTxn") or []
        if link.get("TxnType") == "Invoice"
    }


class Indexes:
    """What every save would otherwise find by scanning the whole company, kept up to date on
    each write so a request costs the same in a company of 600 invoices or 50,000:

    - ``names``: entity -> field -> ``name_key`` -> Ids (uniqueness checks, name queries);
    - ``doc_numbers``: an invoice DocNumber, exactly as stored -> Ids;
    - ``balances``: a customer Id -> the sum of its invoices' ``Balance``;
    - ``payments``: an invoice Id -> Ids of the payments linked to it;
    - ``changes``: (LastUpdatedTime, sequence, entity, Id) sorted by time, for the change
      feed; an entry is current while ``latest[(entity, Id)]`` still names it.
    """

    def __init__(self) -> None:
        self.names: dict[str, dict[str, dict[str, set[str]]]] = {
            entity: {name: defaultdict(set) for name in fields}
            for entity, fields in NAME_FIELDS.items()
        }
        self.doc_numbers: dict[str, set[str]] = defaultdict(set)
        self.balances: dict[str, Decimal] = defaultdict(Decimal)
        self.payments: dict[str, set[str]] = defaultdict(set)
        self.changes: list[tuple[float, int, str, str]] = []
        self.latest: dict[tuple[str, str], tuple[float, int]] = {}
        self._sequence = 0

    def replace(self, entity: str, old: dict | None, new: dict | None, obj_id: str) -> None:
        """Move ``obj_id`` of ``entity`` from version ``old`` to ``new`` (None: absent)."""
        for name, index in self.names.get(entity, {}).items():
            before = name_key(old[name]) if old and old.get(name) is not None else None
            after = name_key(new[name]) if new and new.get(name) is not None else None
            if before == after:
                continue
            if before is not None:
                _discard(index, before, obj_id)
            if after is not None:
                index[after].add(obj_id)
        if entity == "Invoice":
            self._invoice(old, new, obj_id)
        elif entity == "Payment":
            before, after = _invoice_links(old), _invoice_links(new)
            for invoice_id in before - after:
                _discard(self.payments, invoice_id, obj_id)
            for invoice_id in after - before:
                self.payments[invoice_id].add(obj_id)

    def _invoice(self, old: dict | None, new: dict | None, obj_id: str) -> None:
        before = str(old.get("DocNumber") or "") if old else ""
        after = str(new.get("DocNumber") or "") if new else ""
        if before != after:
            if before:
                _discard(self.doc_numbers, before, obj_id)
            if after:
                self.doc_numbers[after].add(obj_id)
        for row, sign in ((old, -1), (new, 1)):
            customer = ((row or {}).get("CustomerRef") or {}).get("value")
            if customer is not None:
                self.balances[str(customer)] += sign * _decimal(row.get("Balance"))

    def changed(self, entity: str, obj_id: str, stamp: float | None) -> None:
        """Note that ``obj_id`` now stands as changed at ``stamp`` (its LastUpdatedTime)."""
        key = (entity, obj_id)
        if stamp is None:
            self.latest.pop(key, None)
            return
        current = self.latest.get(key)
        if current is not None and current[0] == stamp:
            return  # same LastUpdatedTime (a balance or stock change): the feed is unchanged
        self._sequence += 1
        entry = (stamp, self._sequence, entity, obj_id)
        bisect.insort(self.changes, entry)
        self.latest[key] = (stamp, self._sequence)
        if len(self.changes) > 2 * len(self.latest) + 1000:
            # Superseded entries are dropped now and then, so the list stays about as long as
            # the company has objects.
            self.changes = [e for e in self.changes if self.latest.get(e[2:]) == e[:2]]

    def changed_since(self, since: float, entities: set[str]) -> list[tuple[float, str, str]]:
        """(LastUpdatedTime, entity, Id) of the current versions changed at or after
        ``since``, oldest first; ties in the order they were written."""
        start = bisect.bisect_left(self.changes, (since,))
        return [
            (stamp, entity, obj_id)
            for stamp, sequence, entity, obj_id in self.changes[start:]
            if entity in entities and self.latest.get((entity, obj_id)) == (stamp, sequence)
        ]


def _discard(index: dict[str, set[str]], key: str, obj_id: str) -> None:
    ids = index.get(key)
    if ids is not None:
        ids.discard(obj_id)
        if not ids:
            del index[key]


class Realm:
    """One sandbox company: its objects by entity and Id, tombstones and counters.

    Stored objects are never mutated in place: every write stores a new dict, so a
    reader that took a reference outside the lock still sees a consistent object. Every
    write goes through ``put`` or ``remove``, which keep ``indexes`` up to date; replacing
    ``objects`` or ``tombstones`` wholesale is followed by ``reindex()``.
    """

    def __init__(self, realm_id: str, company_name: str) -> None:
        self.realm_id = realm_id
        self.company_name = company_name
        self.objects: dict[str, dict[str, dict]] = {name: {} for name in ENTITIES}
        # Deleted transactions and merged-away names as CDC reports them:
        # entity -> Id -> LastUpdatedTime text.
        self.tombstones: dict[str, dict[str, str]] = {name: {} for name in ENTITIES}
        self.next_ids: dict[str, int] = {}
        self.next_doc_number = 1001
        # requestid -> (status, content type, body text) of the first answer.
        self.requestids: dict[str, tuple[int, str, str]] = {}
        # The currency service's rate table: SourceCurrencyCode -> AsOfDate -> ExchangeRate.
        self.rates: dict[str, dict[str, dict]] = {}
        self.indexes = Indexes()
        self.lock = threading.RLock()

    def load_company(self, company: dict[str, Any]) -> None:
        """Replace everything with a freshly built sandbox company."""
        self.objects = {name: {} for name in ENTITIES}
        self.tombstones = {name: {} for name in ENTITIES}
        self.requestids = {}
        self.rates = {}
        for rate in company.get("ExchangeRate") or []:
            self.rates.setdefault(rate["SourceCurrencyCode"], {})[rate["AsOfDate"]] = dict(rate)
        for name in ENTITIES:
            value = company.get(name)
            if value is None:
                continue
            rows = [value] if isinstance(value, dict) else list(value)
            for row in rows:
                self.objects[name][str(row["Id"])] = dict(row)
        self.reindex()
        self._recount()

    def replace_with(self, other: Realm) -> None:
        """Take ``other``'s objects, counters, rates and indexes; requestids are forgotten."""
        self.objects = other.objects
        self.tombstones = other.tombstones
        self.next_ids = other.next_ids
        self.next_doc_number = other.next_doc_number
        self.requestids = {}
        self.rates = other.rates
        self.indexes = other.indexes

    def reindex(self) -> None:
        """Build ``indexes`` again from ``objects`` and ``tombstones``."""
        self.indexes = Indexes()
        entries = []
        for name, rows in self.objects.items():
            for obj_id, row in rows.items():
                self.indexes.replace(name, None, row, obj_id)
                entries.append((_updated_stamp(row), name, obj_id))
            for obj_id, updated in self.tombstones[name].items():
                entries.append(
                    (_updated_stamp({"MetaData": {"LastUpdatedTime": updated}}), name, obj_id)
                )
        for stamp, name, obj_id in sorted(entries, key=lambda e: -1 if e[0] is None else e[0]):
            self.indexes.changed(name, obj_id, stamp)

    def put(self, entity: str, obj: dict) -> None:
        """Store ``obj`` (a new dict, never mutated afterwards) as the current version."""
        obj_id = str(obj["Id"])
        rows = self.objects[entity]
        self.indexes.replace(entity, rows.get(obj_id), obj, obj_id)
        rows[obj_id] = obj
        self.indexes.changed(entity, obj_id, _updated_stamp(obj))

    def remove(self, entity: str, obj_id: str, deleted_at: str) -> None:
        """Delete ``obj_id``, leaving a tombstone stamped ``deleted_at`` for the change feed."""
        old = self.objects[entity].pop(obj_id)
        self.indexes.replace(entity, old, None, obj_id)
        self.tombstones[entity][obj_id] = deleted_at
        self.indexes.changed(entity, obj_id, _stamp(deleted_at))

    # -- indexed look-ups ---------------------------------------------------------------

    def ids_named(self, entity: str, field: str, value: object) -> set[str]:
        """Ids of ``entity`` whose ``field`` equals ``value`` as names compare (``name_key``);
        empty for a field that is not indexed (``NAME_FIELDS``)."""
        index = self.indexes.names.get(entity, {}).get(field)
        return set(index.get(name_key(value), ())) if index is not None else set()

    def is_name_indexed(self, entity: str, field: str) -> bool:
        return field in NAME_FIELDS.get(entity, ())

    def invoices_numbered(self, doc_number: str) -> set[str]:
        """Ids of the invoices whose DocNumber is exactly ``doc_number``."""
        return set(self.indexes.doc_numbers.get(doc_number, ()))

    def customer_invoice_balance(self, customer_id: str) -> Decimal:
        """The sum of the ``Balance`` of ``customer_id``'s invoices."""
        return self.indexes.balances.get(str(customer_id), Decimal(0))

    def payments_of(self, invoice_id: str) -> list[dict]:
        """The payments linked to ``invoice_id``, oldest (lowest Id) first."""
        ids = self.indexes.payments.get(str(invoice_id), ())
        ordered = sorted(ids, key=lambda i: (not i.isdigit(), int(i) if i.isdigit() else 0, i))
        return [self.objects["Payment"][i] for i in ordered]

    def changed_since(self, since: float, entities: list[str]) -> list[tuple[float, str, dict]]:
        """(LastUpdatedTime, entity, object) of everything in ``entities`` changed at or after
        ``since``, oldest first; a deleted transaction as the change feed reports it."""
        found = []
        for stamp, entity, obj_id in self.indexes.changed_since(since, set(entities)):
            obj = self.objects[entity].get(obj_id)
            if obj is None:
                obj = {
                    "domain": "QBO",
                    "status": "Deleted",
                    "Id": obj_id,
                    "MetaData": {"LastUpdatedTime": self.tombstones[entity][obj_id]},
                }
            found.append((stamp, entity, obj))
        return found

    def _recount(self) -> None:
        self.next_ids = {}
        for name, rows in self.objects.items():
            ids = [int(i) for i in list(rows) + list(self.tombstones[name]) if i.isdigit()]
            key = _id_sequence(name)
            self.next_ids[key] = max(self.next_ids.get(key, 1), max(ids, default=0) + 1)
        numbers = [
            int(row["DocNumber"])
            for row in self.objects["Invoice"].values()
            if str(row.get("DocNumber", "")).isdigit()
        ]
        self.next_doc_number = max(numbers, default=1000) + 1

    def allocate_id(self, entity: str) -> str:
        key = _id_sequence(entity)
        number = self.next_ids.get(key, 1)
        self.next_ids[key] = number + 1
        return str(number)

    def get(self, entity: str, obj_id: str) -> dict | None:
        return self.objects[entity].get(str(obj_id))

    def rows(self, entity: str) -> list[dict]:
        if entity == "ExchangeRate":
            return [
                self.rates[code][day]
                for code in sorted(self.rates)
                for day in sorted(self.rates[code])
            ]
        return list(self.objects.get(entity, {}).values())

    def singleton(self, entity: str) -> dict:
        rows = self.rows(entity)
        return rows[0] if rows else {}

    def to_json(self) -> dict:
        return {
            "realm_id": self.realm_id,
            "company_name": self.company_name,
            "objects": self.objects,
            "tombstones": self.tombstones,
            "next_ids": self.next_ids,
            "next_doc_number": self.next_doc_number,
            "requestids": {k: list(v) for k, v in self.requestids.items()},
            "rates": self.rates,
        }

    @classmethod
    def from_json(cls, data: dict) -> Realm:
        realm = cls(data["realm_id"], data["company_name"])
        for name in ENTITIES:
            realm.objects[name] = dict(data["objects"].get(name, {}))
            realm.tombstones[name] = dict(data["tombstones"].get(name, {}))
        realm.reindex()
        realm._recount()
        realm.next_ids.update(data.get("next_ids", {}))
        realm.next_doc_number = data.get("next_doc_number", realm.next_doc_number)
        realm.requestids = {k: tuple(v) for k, v in data.get("requestids", {}).items()}
        realm.rates = {code: dict(days) for code, days in data.get("rates", {}).items()}
        return realm


def write_json_atomic(path: str, payload: dict) -> None:
    """Write JSON next to ``path`` and rename it into place, so a crash never leaves half."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".qbo-emulator-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json(path: str) -> dict | None:
    if not path or not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
