"""The store's indexes: every save, name query and change-feed read finds what it needs without
scanning the company, and answers exactly as a scan would."""

from __future__ import annotations

import gc
import json
import time
import uuid
from urllib.parse import urlencode

import pytest

from qbo_emulator import query as query_module
from qbo_emulator.api import run_query
from qbo_emulator.errors import ApiError
from qbo_emulator.rules import Company
from qbo_emulator.server import Emulator, EmulatorConfig
from qbo_emulator.store import Realm
from qbo_emulator.wire import Request

from .conftest import Qbo, fault, sales_line, unique


def _indexes_as_built_from_scratch(realm: Realm) -> None:
    """The indexes kept up to date write by write equal the ones built from the objects."""
    kept = realm.indexes
    realm.reindex()
    rebuilt = realm.indexes
    realm.indexes = kept
    plain = {
        entity: {name: {k: v for k, v in index.items() if v} for name, index in fields.items()}
        for entity, fields in kept.names.items()
    }
    assert plain == rebuilt.names
    assert {k: v for k, v in kept.doc_numbers.items() if v} == rebuilt.doc_numbers
    assert {k: v for k, v in kept.balances.items() if v} == {
        k: v for k, v in rebuilt.balances.items() if v
    }
    assert {k: v for k, v in kept.payments.items() if v} == rebuilt.payments
    every = {"Customer", "Item", "Account", "Invoice", "Payment", "Preferences", "CompanyInfo"}
    feed = {(entity, obj_id): stamp for stamp, entity, obj_id in kept.changed_since(0, every)}
    assert feed == {(e, i): stamp for stamp, e, i in rebuilt.changed_since(0, every)}


def test_names_stay_unique_through_renames_and_deactivation(qbo):
    first = qbo.customer()
    old_name = first["DisplayName"]
    renamed = qbo.create(
        "Customer",
        {"Id": first["Id"], "SyncToken": first["SyncToken"], "DisplayName": unique("Renamed")},
        operation="update",
    )

    # The old name is free once renamed; the new one is taken, whatever its case.
    assert qbo.create("Customer", {"DisplayName": old_name})["DisplayName"] == old_name
    response = qbo.post("customer", {"DisplayName": f"  {renamed['DisplayName'].upper()} "})
    assert response.status_code == 400
    assert fault(response)["code"] == "6240"

    # A deactivated name becomes "X (deleted)", so X is free again.
    gone = qbo.create(
        "Customer",
        {"Id": renamed["Id"], "SyncToken": renamed["SyncToken"], "Active": False, "sparse": True},
        operation="update",
    )
    assert gone["DisplayName"] == f"{renamed['DisplayName']} (deleted)"
    assert qbo.create("Customer", {"DisplayName": renamed["DisplayName"]})
    _indexes_as_built_from_scratch(qbo.emulator.realm(qbo.realm_id))


def test_a_deleted_invoice_frees_its_number_and_a_voided_one_keeps_it(qbo):
    customer = qbo.customer()
    item = qbo.service_item()
    line = [sales_line(item, qty=1, price=10)]
    deleted = qbo.invoice(customer, line, DocNumber="IDX-1")
    voided = qbo.invoice(customer, line, DocNumber="IDX-2")
    qbo.post("invoice", {"Id": deleted["Id"], "SyncToken": "0"}, operation="delete")
    qbo.post("invoice", {"Id": voided["Id"], "SyncToken": "0"}, operation="void")

    assert qbo.invoice(customer, line, DocNumber="IDX-1")["DocNumber"] == "IDX-1"
    response = qbo.post(
        "invoice",
        {"CustomerRef": {"value": customer["Id"]}, "Line": line, "DocNumber": "IDX-2"},
    )
    assert fault(response)["code"] == "6140"
    assert fault(response)["Detail"].endswith(f"TxnId={voided['Id']}")
    _indexes_as_built_from_scratch(qbo.emulator.realm(qbo.realm_id))


def test_balances_and_payment_links_follow_every_write(qbo):
    customer = qbo.customer()
    item = qbo.service_item()
    first = qbo.invoice(customer, [sales_line(item, qty=2, price=50)])
    second = qbo.invoice(customer, [sales_line(item, qty=1, price=30)])
    payment = qbo.create(
        "Payment",
        {
            "CustomerRef": {"value": customer["Id"]},
            "TotalAmt": 40,
            "Line": [{"Amount": 40, "LinkedTxn": [{"TxnId": first["Id"], "TxnType": "Invoice"}]}],
        },
    )
    assert qbo.read("Customer", customer["Id"])["Balance"] == 90.0
    assert qbo.read("Invoice", first["Id"])["LinkedTxn"] == [
        {"TxnId": payment["Id"], "TxnType": "Payment"}
    ]

    qbo.post("invoice", {"Id": first["Id"], "SyncToken": "1"}, operation="void")
    assert qbo.read("Customer", customer["Id"])["Balance"] == 30.0
    assert qbo.read("Payment", payment["Id"])["UnappliedAmt"] == 40.0
    qbo.post("invoice", {"Id": second["Id"], "SyncToken": "0"}, operation="delete")
    assert qbo.read("Customer", customer["Id"])["Balance"] == 0.0
    _indexes_as_built_from_scratch(qbo.emulator.realm(qbo.realm_id))


NAMES = [
    "Amy's Bird Sanctuary",
    "amy's bird sanctuary",
    "Back\\slash Co",
    "1001",
    "2026-01-05",
    "true",
    "Dylan Sollfrank",
    "Nobody Here",
]


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM Customer WHERE DisplayName = 'amy\\'s BIRD sanctuary'",
        "SELECT * FROM Customer WHERE DisplayName IN ('Amy\\'s Bird Sanctuary', 'DYLAN SOLLFRANK',"
        " 'Nobody Here')",
        "SELECT * FROM Customer WHERE Active IN (true, false) AND DisplayName IN ('Gone Co',"
        " 'gone co (deleted)')",
        "SELECT * FROM Customer WHERE DisplayName IN ('Back\\\\slash Co', ' Padded Co ')",
        "SELECT * FROM Customer WHERE DisplayName = '1001'",
        "SELECT * FROM Customer WHERE DisplayName = '2026-01-05'",
        "SELECT COUNT(*) FROM Customer WHERE displayname IN ('Padded Co', 'Dylan Sollfrank')",
        "SELECT * FROM Item WHERE Name IN ('services', 'HOURS', 'Design') ORDERBY Name DESC",
        "SELECT * FROM Item WHERE Id IN ('1', '02', '3') AND Active IN (true, false)",
        "SELECT * FROM Account WHERE FullyQualifiedName = 'checking'",
        "SELECT * FROM Customer WHERE Id = 'abc'",
    ],
)
def test_queries_through_the_indexes_answer_as_a_full_scan(make_emulator, statement):
    emulator = make_emulator()
    qbo = Qbo(emulator, emulator.realm_ids[0])
    for name in ("1001", "2026-01-05", "Back\\slash Co", "Padded Co"):
        qbo.create("Customer", {"DisplayName": name})
    gone = qbo.create("Customer", {"DisplayName": "Gone Co"})
    qbo.create(
        "Customer",
        {"Id": gone["Id"], "SyncToken": "0", "Active": False, "sparse": True},
        operation="update",
    )
    realm = qbo.emulator.realm(qbo.realm_id)
    parsed = query_module.parse(statement)

    scanned = query_module.execute(parsed, realm.rows(parsed.entity))

    assert run_query(realm, statement) == scanned
    assert qbo.query(statement) == json.loads(json.dumps(scanned))


def test_a_name_in_a_list_matches_as_the_same_name_alone_does(qbo):
    """``IN`` compares each name as ``=`` does: ignoring case, quotes escaped as QBO wants."""
    names = ["AMY\\'S BIRD SANCTUARY", "dylan sollfrank", "Nobody Here"]
    alone = [
        row["Id"]
        for name in names
        for row in qbo.query(f"SELECT * FROM Customer WHERE DisplayName = '{name}'").get(
            "Customer", []
        )
    ]
    listed = ", ".join(f"'{name}'" for name in names)
    together = qbo.query(f"SELECT * FROM Customer WHERE DisplayName IN ({listed})")

    assert len(alone) == 2
    assert sorted(row["Id"] for row in together["Customer"]) == sorted(alone)
    items = qbo.query("SELECT * FROM Item WHERE Name IN ('hours', 'DESIGN')")["Item"]
    assert sorted(row["Name"] for row in items) == ["Design", "Hours"]


def test_indexes_are_rebuilt_from_the_state_file(qbo):
    customer = qbo.customer()
    qbo.invoice(customer, DocNumber="IDX-STATE")
    realm = qbo.emulator.realm(qbo.realm_id)

    loaded = Realm.from_json(json.loads(json.dumps(realm.to_json())))
    company = Company(loaded, qbo.emulator.clock)

    assert loaded.ids_named("Customer", "DisplayName", customer["DisplayName"].upper())
    assert loaded.invoices_numbered("IDX-STATE")
    with pytest.raises(ApiError) as refused:
        company.save("Customer", {"DisplayName": customer["DisplayName"]})
    assert refused.value.errors[0]["code"] == "6240"
    _indexes_as_built_from_scratch(loaded)


# --- cost per request --------------------------------------------------------------------


def _in_process_emulator() -> tuple[Emulator, str, dict]:
    emulator = Emulator(EmulatorConfig(throttle=False))
    realm_id = emulator.companies[0][0]
    token = emulator.oauth.mint(realm_id, ["com.intuit.quickbooks.accounting"])["access_token"]
    return emulator, realm_id, {"Authorization": f"Bearer {token}", "Accept": "application/json"}


def _grow(emulator: Emulator, realm_id: str, invoices: int, customers: list, item: dict) -> None:
    realm = emulator.realms[realm_id]
    company = emulator.company(realm)
    start = len(realm.objects["Invoice"])
    with realm.lock:
        for n in range(start, invoices):
            company.save(
                "Invoice",
                {
                    "CustomerRef": {"value": customers[n % len(customers)]["Id"]},
                    "DocNumber": f"G-{n:06}",
                    "Line": [sales_line(item, qty=1, price=10)],
                },
            )
        company.events.clear()


def _batch_seconds(emulator: Emulator, realm_id: str, headers: dict, customers, item) -> float:
    """The shortest time of a few 30-invoice batch requests (with a name query each): the
    least disturbed by whatever else the machine does. The garbage collector is paused while
    timing: its full passes cost whatever the whole heap holds, the test's own objects too."""
    times = []
    gc.collect()
    gc.disable()
    try:
        for attempt in range(7):
            times.append(_one_batch(emulator, realm_id, headers, customers, item, attempt))
    finally:
        gc.enable()
    return min(times)


def _one_batch(emulator: Emulator, realm_id: str, headers: dict, customers, item, n) -> float:
    items = [
        {
            "bId": f"b{k}",
            "operation": "create",
            "Invoice": {
                "CustomerRef": {"value": customers[k % len(customers)]["Id"]},
                "Line": [sales_line(item, qty=1, price=10)],
            },
        }
        for k in range(30)
    ]
    body = json.dumps({"BatchItemRequest": items}).encode()
    statement = f"select * from Customer where DisplayName = '{customers[n]['DisplayName']}'"
    started = time.perf_counter()
    response = emulator.handle(
        Request("POST", f"/v3/company/{realm_id}/batch?requestid={uuid.uuid4().hex}", headers, body)
    )
    emulator.handle(
        Request("GET", f"/v3/company/{realm_id}/query?{urlencode({'query': statement})}", headers)
    )
    took = time.perf_counter() - started
    assert response.status == 200
    assert b"Fault" not in response.body
    return took


def test_a_30_invoice_batch_costs_about_the_same_at_600_and_at_5000_invoices(capsys):
    emulator, realm_id, headers = _in_process_emulator()
    realm = emulator.realms[realm_id]
    company = emulator.company(realm)
    with realm.lock:
        customers = [
            company.save("Customer", {"DisplayName": f"Scale Customer {n:03}"}) for n in range(50)
        ]
        income = next(a for a in realm.rows("Account") if a.get("AccountType") == "Income")
        item = company.save(
            "Item",
            {"Name": "Scale Item", "Type": "Service", "IncomeAccountRef": {"value": income["Id"]}},
        )

    _grow(emulator, realm_id, 600, customers, item)
    small = _batch_seconds(emulator, realm_id, headers, customers, item)
    _grow(emulator, realm_id, 5000, customers, item)
    large = _batch_seconds(emulator, realm_id, headers, customers, item)

    with capsys.disabled():
        print(
            f"\n30-invoice batch: {small * 1000:.1f} ms at 600 invoices, "
            f"{large * 1000:.1f} ms at 5,000 ({large / small:.2f}x)"
        )
    # Generous: before the indexes the larger company cost about 5 times as much.
    assert large / small < 3
