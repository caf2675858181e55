"""In-memory companies (one per realm), their change history and JSON persistence."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from typing import Any

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


class Realm:
    """One sandbox company: its objects by entity and Id, tombstones and counters.

    Stored objects are never mutated in place: every write stores a new dict, so a
    reader that took a reference outside the lock still sees a consistent object.
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
        self._recount()

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
