"""Merging one customer into another, as a QuickBooks user does it (qbo-api.md sections 10, 13)."""

from __future__ import annotations

import json

import pytest
import requests

from .conftest import Qbo, fault, sales_line, webhook_events


def merge(emulator, realm_id: str, source: dict | str, target: dict | str) -> requests.Response:
    ids = [obj["Id"] if isinstance(obj, dict) else obj for obj in (source, target)]
    return requests.post(
        f"{emulator.base_url}/_emulator/realms/{realm_id}/customer/merge",
        json={"from": ids[0], "into": ids[1]},
        timeout=10,
    )


def paid_invoice(qbo: Qbo, customer: dict, amount: float) -> tuple[dict, dict]:
    invoice = qbo.invoice(customer, lines=[sales_line(qbo.service_item(), qty=1, price=100)])
    payment = qbo.create(
        "Payment",
        {
            "CustomerRef": {"value": customer["Id"]},
            "TotalAmt": amount,
            "Line": [
                {"Amount": amount, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}
            ],
        },
    )
    return qbo.read("Invoice", invoice["Id"]), payment


def test_merge_moves_transactions_and_removes_the_merged_customer(emulator, qbo, realm_id):
    source, target = qbo.customer(), qbo.customer()
    invoice, payment = paid_invoice(qbo, source, 40)
    open_invoice = qbo.invoice(source)
    own_invoice = qbo.invoice(target)

    response = merge(emulator, realm_id, source, target)
    assert response.status_code == 200, response.text
    assert response.json()["deletedId"] == source["Id"]
    survivor = response.json()["Customer"]
    assert survivor["Id"] == target["Id"]
    assert survivor["DisplayName"] == target["DisplayName"]
    assert survivor["SyncToken"] == str(int(target["SyncToken"]) + 1)
    assert qbo.read("Customer", target["Id"]) == survivor

    ref = {"value": target["Id"], "name": target["DisplayName"]}
    for before in (invoice, open_invoice):
        moved = qbo.read("Invoice", before["Id"])
        assert moved["CustomerRef"] == ref
        assert int(moved["SyncToken"]) == int(before["SyncToken"]) + 1
        assert moved["Balance"] == before["Balance"]
    moved_payment = qbo.read("Payment", payment["Id"])
    assert moved_payment["CustomerRef"] == ref
    assert int(moved_payment["SyncToken"]) == int(payment["SyncToken"]) + 1
    assert qbo.read("Invoice", own_invoice["Id"])["SyncToken"] == own_invoice["SyncToken"]

    # The survivor's balance is every open invoice of both.
    balances = invoice["Balance"] + open_invoice["Balance"] + own_invoice["Balance"]
    assert qbo.read("Customer", target["Id"])["Balance"] == pytest.approx(balances)

    # The merged customer is gone, and its name is free.
    assert fault(qbo.get(f"customer/{source['Id']}"))["code"] == "610"
    everyone = qbo.query(
        f"select * from Customer where Id = '{source['Id']}' and Active in (true, false)"
    )
    assert everyone == {}
    assert qbo.customer(DisplayName=source["DisplayName"])["Id"] != source["Id"]


def test_a_client_holding_a_moved_invoice_sync_token_gets_5010(emulator, qbo, realm_id):
    source, target = qbo.customer(), qbo.customer()
    invoice = qbo.invoice(source)
    assert merge(emulator, realm_id, source, target).status_code == 200
    stale = {
        "Id": invoice["Id"],
        "SyncToken": invoice["SyncToken"],
        "sparse": True,
        "PrivateNote": "x",
    }
    assert fault(qbo.post("invoice", stale))["code"] == "5010"


def test_merge_shows_in_cdc_as_a_deleted_customer_and_updated_transactions(make_emulator):
    emu = make_emulator()
    realm = emu.realm_ids[0]
    qbo = Qbo(emu, realm)
    source, target = qbo.customer(), qbo.customer()
    invoice, payment = paid_invoice(qbo, source, 25)
    emu.advance_clock(5)
    since = emu.clock.now().isoformat(timespec="seconds")
    assert merge(emu, realm, source, target).status_code == 200

    cdc = qbo.get("cdc", entities="Customer,Invoice,Payment", changedSince=since).json()
    by_entity = {next(iter(group)): group for group in cdc["CDCResponse"][0]["QueryResponse"]}
    customers = {row["Id"]: row for row in by_entity["Customer"]["Customer"]}
    assert customers[source["Id"]]["status"] == "Deleted"
    assert customers[source["Id"]]["domain"] == "QBO"
    assert customers[target["Id"]]["DisplayName"] == target["DisplayName"]
    assert [row["Id"] for row in by_entity["Invoice"]["Invoice"]] == [invoice["Id"]]
    assert [row["Id"] for row in by_entity["Payment"]["Payment"]] == [payment["Id"]]


def test_merge_sends_a_merge_event_with_deleted_id_and_updates(make_emulator, receiver):
    url, received = receiver
    emu = make_emulator(webhook_url=url, webhook_batch_window=30)
    realm = emu.realm_ids[0]
    qbo = Qbo(emu, realm)
    source, target = qbo.customer(), qbo.customer()
    invoice, payment = paid_invoice(qbo, source, 10)
    requests.post(f"{emu.base_url}/_emulator/webhooks/flush", timeout=10)
    received.clear()

    assert merge(emu, realm, source, target).status_code == 200
    requests.post(f"{emu.base_url}/_emulator/webhooks/flush", timeout=10)
    events = webhook_events(received)
    merges = [e for e in events if e["operation"] == "Merge"]
    assert [(e["name"], e["id"], e["deletedId"]) for e in merges] == [
        ("Customer", target["Id"], source["Id"])
    ]
    updates = {(e["name"], e["id"]) for e in events if e["operation"] == "Update"}
    assert updates == {("Invoice", invoice["Id"]), ("Payment", payment["Id"])}
    assert all("deletedId" not in e for e in events if e["operation"] != "Merge")


def test_merge_event_in_cloudevents_carries_deleted_id_in_data(make_emulator, receiver):
    url, received = receiver
    emu = make_emulator(webhook_url=url, webhook_batch_window=30, cloudevents=True)
    realm = emu.realm_ids[0]
    qbo = Qbo(emu, realm)
    source, target = qbo.customer(), qbo.customer()
    invoice = qbo.invoice(source)
    requests.post(f"{emu.base_url}/_emulator/webhooks/flush", timeout=10)
    received.clear()

    assert merge(emu, realm, source, target).status_code == 200
    requests.post(f"{emu.base_url}/_emulator/webhooks/flush", timeout=10)
    events = [event for _, body in received for event in json.loads(body)]
    by_type = {(e["type"], e["intuitentityid"]): e for e in events}
    merged = by_type[("qbo.customer.merged.v1", target["Id"])]
    assert merged["data"] == {"deletedId": source["Id"]}
    assert by_type[("qbo.invoice.updated.v1", invoice["Id"])]["data"] == {}


def test_merge_refusals(emulator, qbo, realm_id):
    customer, other = qbo.customer(), qbo.customer()
    error = fault_of(merge(emulator, realm_id, customer, customer))
    assert (error["code"], error["element"]) == ("6000", "into")
    error = fault_of(merge(emulator, realm_id, customer, "99999999"))
    assert (error["code"], error["element"]) == ("2500", "into")
    error = fault_of(merge(emulator, realm_id, "", other))
    assert (error["code"], error["element"]) == ("2020", "from")
    inactive = qbo.customer()
    qbo.sparse("Customer", inactive, Active=False)
    error = fault_of(merge(emulator, realm_id, inactive, other))
    assert (error["code"], error["element"]) == ("610", "from")
    qbo.customer(ParentRef={"value": customer["Id"]})
    error = fault_of(merge(emulator, realm_id, customer, other))
    assert (error["code"], error["element"]) == ("6000", "from")
    assert "sub-customers" in error["Detail"]
    # Nothing was merged by the refusals.
    assert qbo.read("Customer", customer["Id"])["SyncToken"] == customer["SyncToken"]
    missing_realm = requests.post(
        f"{emulator.base_url}/_emulator/realms/123/customer/merge",
        json={"from": customer["Id"], "into": other["Id"]},
        timeout=5,
    )
    assert missing_realm.status_code == 404


def test_merge_of_customers_in_different_currencies_is_refused(make_emulator):
    emu = make_emulator()
    realm = emu.realm_ids[0]
    qbo = Qbo(emu, realm)
    prefs = qbo.get("preferences").json()["Preferences"]
    qbo.sparse("Preferences", prefs, CurrencyPrefs={"MultiCurrencyEnabled": True})
    euro = qbo.customer(CurrencyRef={"value": "EUR"})
    dollar = qbo.customer()
    error = fault_of(merge(emu, realm, euro, dollar))
    assert (error["code"], error["element"]) == ("6000", "into")


def fault_of(response: requests.Response) -> dict:
    assert response.status_code == 400, response.text
    return response.json()["Fault"]["Error"][0]


def test_vendors_and_a_merge_survive_a_restart(make_emulator, tmp_path):
    path = str(tmp_path / "state.json")
    first = make_emulator(state_file=path)
    realm = first.realm_ids[0]
    tokens = first.tokens(realm)
    qbo = Qbo(first, realm, tokens["access_token"])
    vendor = qbo.vendor()
    target = qbo.customer()
    source = qbo.customer()  # the newest name of all
    assert merge(first, realm, source, target).status_code == 200
    first.stop()
    second = make_emulator(state_file=path)
    qbo = Qbo(second, realm, tokens["access_token"])
    assert qbo.read("Vendor", vendor["Id"])["DisplayName"] == vendor["DisplayName"]
    assert fault(qbo.get(f"customer/{source['Id']}"))["code"] == "610"
    # Ids of merged-away customers are never given again.
    assert int(qbo.employee()["Id"]) > int(source["Id"])
