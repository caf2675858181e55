"""Query (GET and POST), CDC, batch and requestid replay."""

from __future__ import annotations

import requests

from .conftest import Qbo, fault, sales_line, unique


def test_query_by_get_and_by_post_application_text(qbo):
    customer = qbo.customer()
    statement = f"select * from Customer where DisplayName = '{customer['DisplayName']}'"
    by_get = qbo.query(statement)
    assert by_get["Customer"][0]["Id"] == customer["Id"]
    by_post = qbo.session.post(
        f"{qbo.base}/query",
        data=statement,
        headers={"Content-Type": "application/text"},
        timeout=5,
    )
    assert by_post.json()["QueryResponse"]["Customer"][0]["Id"] == customer["Id"]


def test_query_count_and_empty_result(qbo):
    assert qbo.query("select count(*) from Invoice")["totalCount"] >= 1
    assert qbo.query("select * from Customer where DisplayName = 'no such customer'") == {}


def test_query_syntax_error_is_a_4000_range_fault(qbo):
    response = qbo.get("query", query="selec * form Customer")
    assert response.status_code == 400
    assert fault(response)["code"] in {"4000", "4001", "4002"}


def test_cdc_reports_changes_and_deletions(make_emulator):
    emu = make_emulator()
    qbo = Qbo(emu, emu.realm_ids[0])
    emu.advance_clock(60)
    since = emu.clock.now().isoformat(timespec="seconds")
    customer = qbo.customer()
    invoice = qbo.invoice(customer=customer)
    gone = qbo.invoice(customer=customer)
    qbo.post("invoice", {"Id": gone["Id"], "SyncToken": "0"}, operation="delete")
    body = qbo.get("cdc", entities="Invoice,Customer", changedSince=since).json()
    responses = body["CDCResponse"][0]["QueryResponse"]
    by_entity = {next(k for k in r if k[0].isupper()): r for r in responses}
    assert [c["Id"] for c in by_entity["Customer"]["Customer"]] == [customer["Id"]]
    invoices = {i["Id"]: i for i in by_entity["Invoice"]["Invoice"]}
    assert invoices[invoice["Id"]]["TotalAmt"] == 100.0
    assert invoices[gone["Id"]] == {
        "domain": "QBO",
        "status": "Deleted",
        "Id": gone["Id"],
        "MetaData": {"LastUpdatedTime": invoices[gone["Id"]]["MetaData"]["LastUpdatedTime"]},
    }
    assert by_entity["Invoice"]["maxResults"] == 2


def test_cdc_with_nothing_changed_has_the_empty_shape(make_emulator):
    emu = make_emulator()
    qbo = Qbo(emu, emu.realm_ids[0])
    emu.advance_clock(600)
    since = emu.clock.now().isoformat(timespec="seconds")
    body = qbo.get("cdc", entities="Invoice", changedSince=since).json()
    assert body["CDCResponse"] == [{"QueryResponse": [{}]}]


def test_cdc_more_than_30_days_back_is_refused(make_emulator):
    emu = make_emulator()
    qbo = Qbo(emu, emu.realm_ids[0])
    since = emu.clock.now().date().isoformat()
    assert qbo.get("cdc", entities="Invoice", changedSince=since).status_code == 200
    emu.advance_clock(31 * 86400)
    qbo = Qbo(emu, emu.realm_ids[0])
    response = qbo.get("cdc", entities="Invoice", changedSince=since)
    assert response.status_code == 400
    assert fault(response)["element"] == "changedSince"


def test_cdc_refuses_tax_entities_and_needs_parameters(qbo):
    assert qbo.get("cdc", entities="TaxCode", changedSince="2025-01-01").status_code == 400
    assert fault(qbo.get("cdc", entities="Invoice"))["code"] == "2020"


def test_batch_items_fail_alone_and_match_by_bid(qbo):
    customer = qbo.customer()
    existing = qbo.invoice(customer=customer)
    item = qbo.service_item()
    name = unique("Batch")
    body = {
        "BatchItemRequest": [
            {"bId": "b1", "operation": "create", "Customer": {"DisplayName": name}},
            {"bId": "b2", "operation": "create", "Customer": {"DisplayName": name}},
            {
                "bId": "b3",
                "operation": "create",
                "Invoice": {
                    "CustomerRef": {"value": customer["Id"]},
                    "Line": [sales_line(item, qty=1, price=9)],
                },
            },
            {
                "bId": "b4",
                "operation": "delete",
                "Invoice": {"Id": existing["Id"], "SyncToken": "0"},
            },
            {"bId": "b5", "Query": f"select * from Customer where DisplayName = '{name}'"},
        ]
    }
    response = qbo.post("batch", body)
    assert response.status_code == 200
    items = {entry["bId"]: entry for entry in response.json()["BatchItemResponse"]}
    assert items["b1"]["Customer"]["DisplayName"] == name
    assert items["b2"]["Fault"]["Error"][0]["code"] == "6240"
    assert items["b2"]["Fault"]["type"] == "ValidationFault"
    assert items["b3"]["Invoice"]["TotalAmt"] == 9.0
    assert items["b4"]["Invoice"]["status"] == "Deleted"
    assert items["b5"]["QueryResponse"]["Customer"][0]["DisplayName"] == name


def test_batch_over_30_items_is_refused(qbo):
    body = {"BatchItemRequest": [{"bId": str(i), "Query": "select * from Item"} for i in range(31)]}
    response = qbo.post("batch", body)
    assert response.status_code == 400
    assert fault(response)["code"] == "1040"


def test_requestid_replays_the_first_answer_without_a_duplicate(qbo):
    name = unique("Replay")
    first = qbo.post("customer", {"DisplayName": name}, requestid="rid-" + name[-10:])
    second = qbo.post("customer", {"DisplayName": name}, requestid="rid-" + name[-10:])
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    matches = [c for c in qbo.rows("Customer") if c["DisplayName"] == name]
    assert len(matches) == 1


def test_requestid_replays_even_after_the_object_was_deleted(qbo):
    customer = qbo.customer()
    item = qbo.service_item()
    body = {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item, qty=1, price=3)]}
    rid = unique("r").replace(" ", "")
    created = qbo.post("invoice", body, requestid=rid).json()["Invoice"]
    qbo.post("invoice", {"Id": created["Id"], "SyncToken": "0"}, operation="delete")
    replay = qbo.post("invoice", body, requestid=rid)
    assert replay.json()["Invoice"]["Id"] == created["Id"]
    assert fault(qbo.get(f"invoice/{created['Id']}"))["code"] == "610"
    fresh = qbo.post("invoice", body, requestid=rid + "x").json()["Invoice"]
    assert fresh["Id"] != created["Id"]


def test_requestid_replays_a_validation_fault_too(qbo):
    rid = unique("bad").replace(" ", "")
    first = qbo.post("customer", {}, requestid=rid)
    again = qbo.post("customer", {"DisplayName": unique("ok")}, requestid=rid)
    assert again.status_code == 400
    assert again.json() == first.json()


def test_requestid_is_per_realm(emulator):
    first, second = (Qbo(emulator, realm) for realm in emulator.realm_ids)
    rid = unique("realm").replace(" ", "")
    one = first.post("customer", {"DisplayName": unique("A")}, requestid=rid).json()
    two = second.post("customer", {"DisplayName": unique("B")}, requestid=rid).json()
    assert one["Customer"]["DisplayName"] != two["Customer"]["DisplayName"]


def test_requestid_longer_than_50_is_refused(qbo):
    response = qbo.post("customer", {"DisplayName": unique("L")}, requestid="x" * 51)
    assert fault(response)["code"] == "2050"


def test_batch_and_query_are_behind_auth(emulator, realm_id):
    url = f"{emulator.base_url}/v3/company/{realm_id}/query?query=select%20*%20from%20Item"
    assert requests.get(url, timeout=5).status_code == 401
