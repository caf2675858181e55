"""Fixtures for the QBO emulator tests: real HTTP against ``start_emulator`` on loopback."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from qbo_emulator import RunningEmulator, start_emulator

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret"
REDIRECT_URI = "http://localhost:8000/qbo/callback"
VERIFIER = "test-verifier-token"
SETTINGS = {
    "client_id": CLIENT_ID,
    "client_secret": CLIENT_SECRET,
    "redirect_uris": [REDIRECT_URI],
    "webhook_verifier": VERIFIER,
}


class Qbo:
    """A minimal v3 client for tests: one realm, one bearer token, JSON in and out."""

    def __init__(self, emulator: RunningEmulator, realm_id: str, token: str | None = None) -> None:
        self.emulator = emulator
        self.realm_id = realm_id
        self.base = f"{emulator.base_url}/v3/company/{realm_id}"
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        if token is None:
            token = emulator.tokens(realm_id)["access_token"]
        self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **params) -> requests.Response:
        return self.session.get(f"{self.base}/{path}", params=params, timeout=10)

    def post(self, path: str, body: object = None, **params) -> requests.Response:
        return self.session.post(f"{self.base}/{path}", json=body, params=params, timeout=10)

    def create(self, entity: str, body: dict, **params) -> dict:
        response = self.post(entity.lower(), body, **params)
        assert response.status_code == 200, response.text
        return response.json()[entity]

    def read(self, entity: str, obj_id: str) -> dict:
        response = self.get(f"{entity.lower()}/{obj_id}")
        assert response.status_code == 200, response.text
        return response.json()[entity]

    def query(self, statement: str) -> dict:
        response = self.get("query", query=statement)
        assert response.status_code == 200, response.text
        return response.json()["QueryResponse"]

    def rows(self, entity: str) -> list[dict]:
        """Every stored object of an entity, read from the emulator's state."""
        return self.emulator.realm(self.realm_id).rows(entity)

    def find(self, entity: str, **fields) -> dict:
        for row in self.rows(entity):
            if all(row.get(k) == v for k, v in fields.items()):
                return row
        raise LookupError(f"no {entity} with {fields}")

    def customer(self, **extra) -> dict:
        return self.create("Customer", {"DisplayName": unique("Customer"), **extra})

    def vendor(self, **extra) -> dict:
        return self.create("Vendor", {"DisplayName": unique("Vendor"), **extra})

    def employee(self, **extra) -> dict:
        body = {"GivenName": "Pat", "FamilyName": unique("Employee"), **extra}
        return self.create("Employee", body)

    def sparse(self, entity: str, obj: dict, **changes) -> dict:
        """A sparse update of ``obj`` from its current SyncToken."""
        body = {"Id": obj["Id"], "SyncToken": obj["SyncToken"], "sparse": True, **changes}
        return self.create(entity, body)

    def service_item(self, **extra) -> dict:
        income = self.find("Account", AccountType="Income", Active=True)
        body = {
            "Name": unique("Item"),
            "Type": "Service",
            "IncomeAccountRef": {"value": income["Id"]},
            "UnitPrice": 50,
            **extra,
        }
        return self.create("Item", body)

    def bundle_item(self, *components: tuple[dict, float], **extra) -> dict:
        """A Group item holding ``(item, qty)`` components."""
        lines = [{"ItemRef": {"value": item["Id"]}, "Qty": qty} for item, qty in components]
        body = {
            "Name": unique("Bundle"),
            "Type": "Group",
            "ItemGroupDetail": {"ItemGroupLine": lines},
            **extra,
        }
        return self.create("Item", body)

    def tax_code(self) -> dict:
        """A sales tax code with at least one rate (the sandbox's California code)."""
        for code in self.rows("TaxCode"):
            if (code.get("SalesTaxRateList") or {}).get("TaxRateDetail") and code.get("Active"):
                return code
        raise LookupError("no tax code with rates")

    def invoice(self, customer: dict | None = None, lines: list | None = None, **extra) -> dict:
        customer = customer or self.customer()
        if lines is None:
            item = self.service_item()
            lines = [sales_line(item, qty=2, price=50)]
        return self.create(
            "Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": lines, **extra}
        )


def sales_line(item: dict, *, qty: float, price: float, tax: str | None = None) -> dict:
    detail: dict = {"ItemRef": {"value": item["Id"]}, "Qty": qty, "UnitPrice": price}
    if tax:
        detail["TaxCodeRef"] = {"value": tax}
    return {
        "Amount": round(qty * price, 2),
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": detail,
    }


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:10]}"


def webhook_events(received: list[tuple[dict, bytes]]) -> list[dict]:
    """Every entity event of the classic-format deliveries, each with its realmId."""
    events = []
    for _, body in received:
        for notification in json.loads(body)["eventNotifications"]:
            for entity in notification["dataChangeEvent"]["entities"]:
                events.append({"realmId": notification["realmId"], **entity})
    return events


def fault(response: requests.Response) -> dict:
    """The first error of a v3 Fault, asserting the envelope's shape."""
    body = response.json()
    assert set(body) == {"Fault", "time"}, body
    return body["Fault"]["Error"][0]


@pytest.fixture(scope="session")
def emulator() -> Iterator[RunningEmulator]:
    """One shared emulator, throttle off, for tests that do not move the clock."""
    try:
        running = start_emulator(throttle=False, **SETTINGS)
    except OSError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"the QBO emulator could not start on loopback: {exc}")
    yield running
    running.stop()


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., RunningEmulator]]:
    """Start a private emulator with options (for clock jumps, throttle, faults)."""
    started: list[RunningEmulator] = []

    def factory(**options) -> RunningEmulator:
        running = start_emulator(**{**SETTINGS, "throttle": False, **options})
        started.append(running)
        return running

    yield factory
    for running in started:
        running.stop()


@pytest.fixture
def realm_id(emulator: RunningEmulator) -> str:
    return emulator.realm_ids[0]


@pytest.fixture
def qbo(emulator: RunningEmulator, realm_id: str) -> Qbo:
    return Qbo(emulator, realm_id)


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict, bytes]]]]:
    """A local webhook endpoint that records each POST (headers and raw body)."""
    received: list[tuple[dict, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/webhooks", received
    server.shutdown()
    server.server_close()
