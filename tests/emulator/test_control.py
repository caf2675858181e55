"""The /_emulator control endpoint, webhooks after changes, and the state file."""

from __future__ import annotations

import json

import requests

from qbo_emulator.webhooks import sign

from .conftest import VERIFIER, Qbo, fault, unique, webhook_events


def test_changes_fire_signed_webhooks_for_connected_realms_only(make_emulator, receiver):
    url, received = receiver
    emu = make_emulator(webhook_url=url, webhook_batch_window=30)
    connected, other = emu.realm_ids
    qbo = Qbo(emu, connected)  # minting tokens connects the realm
    customer = qbo.customer()
    invoice = qbo.invoice(customer=customer)
    qbo.post("invoice", {"Id": invoice["Id"], "SyncToken": "0"}, operation="void")
    requests.post(
        f"{emu.base_url}/_emulator/realms/{other}/customer", json={"DisplayName": "x"}, timeout=5
    )
    flushed = requests.post(f"{emu.base_url}/_emulator/webhooks/flush", timeout=10)
    assert flushed.status_code == 200
    assert received, "no webhook was delivered"
    for headers, body in received:
        assert headers["intuit-signature"] == sign(body, VERIFIER)
    events = webhook_events(received)
    assert {e["realmId"] for e in events} == {connected}
    seen = {(e["name"], e["id"], e["operation"]) for e in events}
    assert ("Customer", customer["Id"], "Create") in seen
    assert ("Invoice", invoice["Id"], "Create") in seen
    assert ("Invoice", invoice["Id"], "Void") in seen


def test_ui_change_bumps_sync_token_and_shows_in_cdc_and_webhooks(make_emulator, receiver):
    url, received = receiver
    emu = make_emulator(webhook_url=url, webhook_batch_window=30)
    realm = emu.realm_ids[0]
    qbo = Qbo(emu, realm)
    customer = qbo.customer()
    emu.advance_clock(5)
    since = emu.clock.now().isoformat(timespec="seconds")
    response = requests.post(
        f"{emu.base_url}/_emulator/realms/{realm}/Customer",
        json={"Id": customer["Id"], "Notes": "Edited in the QBO UI"},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.json()["Customer"]["SyncToken"] == "1"
    stale = {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Notes": "mine"}
    assert fault(qbo.post("customer", stale))["code"] == "5010"
    cdc = qbo.get("cdc", entities="Customer", changedSince=since).json()
    changed = cdc["CDCResponse"][0]["QueryResponse"][0]["Customer"]
    assert [c["Notes"] for c in changed] == ["Edited in the QBO UI"]
    requests.post(f"{emu.base_url}/_emulator/webhooks/flush", timeout=10)
    assert ("Customer", customer["Id"], "Update") in {
        (e["name"], e["id"], e["operation"]) for e in webhook_events(received)
    }


def test_ui_can_create_void_and_delete(emulator, qbo, realm_id):
    base = f"{emulator.base_url}/_emulator/realms/{realm_id}"
    invoice = qbo.invoice()
    voided = requests.post(f"{base}/invoice?operation=void", json={"Id": invoice["Id"]}, timeout=5)
    assert voided.json()["Invoice"]["TotalAmt"] == 0
    deleted = requests.post(
        f"{base}/invoice?operation=delete", json={"Id": invoice["Id"]}, timeout=5
    )
    assert deleted.json()["Invoice"]["status"] == "Deleted"
    bad = requests.post(f"{base}/customer", json={"GivenName": "A:B"}, timeout=5)
    assert bad.status_code == 400
    listing = requests.get(f"{base}/Customer", timeout=5).json()
    assert len(listing["Customer"]) >= 1


def test_reset_restores_the_sandbox_company(make_emulator):
    emu = make_emulator()
    realm = emu.realm_ids[0]
    qbo = Qbo(emu, realm)
    before = len(qbo.rows("Customer"))
    qbo.customer()
    assert len(qbo.rows("Customer")) == before + 1
    response = requests.post(f"{emu.base_url}/_emulator/reset", json={"realm_id": realm}, timeout=5)
    assert response.json() == {"reset": [realm]}
    assert len(qbo.rows("Customer")) == before


def test_request_log_is_readable_as_json(make_emulator):
    emu = make_emulator()
    qbo = Qbo(emu, emu.realm_ids[0])
    qbo.get("customer/1")
    log = requests.get(f"{emu.base_url}/_emulator/requests", timeout=5).json()["requests"]
    entry = log[-1]
    assert entry["method"] == "GET"
    assert entry["path"].endswith("/customer/1")
    assert entry["status"] == 200
    assert entry["intuit_tid"].startswith("1-")
    assert entry["realm_id"] == emu.realm_ids[0]
    requests.delete(f"{emu.base_url}/_emulator/requests", timeout=5)
    assert requests.get(f"{emu.base_url}/_emulator/requests", timeout=5).json()["requests"] == []


def test_clock_and_options_endpoints(make_emulator):
    emu = make_emulator()
    before = emu.clock.time()
    moved = requests.post(f"{emu.base_url}/_emulator/clock", json={"advance": 86400}, timeout=5)
    assert moved.json()["time"] >= before + 86400
    options = requests.post(
        f"{emu.base_url}/_emulator/options",
        json={"throttle": True, "per_minute": 1, "refresh_rotation_seconds": 0},
        timeout=5,
    ).json()
    assert options["throttle"] is True and options["per_minute"] == 1
    qbo = Qbo(emu, emu.realm_ids[0])
    assert qbo.get("preferences").status_code == 200
    assert qbo.get("preferences").status_code == 429


def test_control_tokens_endpoint_mints_a_connection(emulator, realm_id):
    tokens = requests.post(
        f"{emulator.base_url}/_emulator/tokens", json={"realm_id": realm_id}, timeout=5
    ).json()
    assert tokens["realmId"] == realm_id
    assert Qbo(emulator, realm_id, tokens["access_token"]).get("preferences").status_code == 200


def test_state_file_keeps_companies_and_tokens_across_restarts(make_emulator, tmp_path):
    path = str(tmp_path / "state.json")
    first = make_emulator(state_file=path)
    realm = first.realm_ids[0]
    tokens = first.tokens(realm)
    name = unique("Persisted")
    Qbo(first, realm, tokens["access_token"]).customer(DisplayName=name)
    first.stop()
    second = make_emulator(state_file=path)
    qbo = Qbo(second, realm, tokens["access_token"])
    found = qbo.query(f"select * from Customer where DisplayName = '{name}'")
    assert found["Customer"][0]["DisplayName"] == name


def test_cloudevents_flag_switches_the_webhook_payload(make_emulator, receiver):
    url, received = receiver
    emu = make_emulator(webhook_url=url, webhook_batch_window=30, cloudevents=True)
    realm = emu.realm_ids[0]
    customer = Qbo(emu, realm).customer()
    requests.post(f"{emu.base_url}/_emulator/webhooks/flush", timeout=10)
    headers, body = received[-1]
    assert headers["intuit-signature"] == sign(body, VERIFIER)
    events = json.loads(body)
    assert isinstance(events, list)
    assert events[0]["intuitaccountid"] == realm
    assert events[0]["intuitentityid"] == customer["Id"]
    assert events[0]["type"].startswith("qbo.customer.")
