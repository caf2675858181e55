"""Throttling as QBO does it, and the reproducible fault injector."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time

import pytest
import requests

from qbo_emulator.throttle import BATCH_PER_MINUTE, CONCURRENT, PER_MINUTE

from .conftest import Qbo, fault, unique

THROTTLE_MESSAGE = "<Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>"


def _assert_throttled(response: requests.Response) -> None:
    assert response.status_code == 429
    assert response.headers["Content-Type"].startswith("application/xml")
    assert '<Fault type="SERVICE">' in response.text
    assert '<Error code="3001"' in response.text
    assert THROTTLE_MESSAGE in response.text
    assert "<Detail>The request limit was reached.  Try again later</Detail>" in response.text


def test_qbo_limits_are_the_defaults():
    assert (PER_MINUTE, CONCURRENT, BATCH_PER_MINUTE) == (500, 10, 40)


def test_throttle_is_on_by_default_with_500_per_minute(make_emulator):
    emu = make_emulator(throttle=True)
    qbo = Qbo(emu, emu.realm_ids[0])
    statuses = [qbo.get("preferences").status_code for _ in range(PER_MINUTE)]
    assert set(statuses) == {200}
    _assert_throttled(qbo.get("preferences"))
    # Another realm has its own budget.
    assert Qbo(emu, emu.realm_ids[1]).get("preferences").status_code == 200
    emu.advance_clock(61)
    assert qbo.get("preferences").status_code == 200


def test_throttle_off_never_answers_429(make_emulator):
    emu = make_emulator(throttle=False, per_minute=3)
    qbo = Qbo(emu, emu.realm_ids[0])
    assert {qbo.get("preferences").status_code for _ in range(10)} == {200}


def test_batch_requests_have_their_own_per_minute_limit(make_emulator):
    emu = make_emulator(throttle=True, batch_per_minute=2)
    qbo = Qbo(emu, emu.realm_ids[0])
    body = {"BatchItemRequest": [{"bId": "1", "Query": "select * from Item"}]}
    assert qbo.post("batch", body).status_code == 200
    assert qbo.post("batch", body).status_code == 200
    _assert_throttled(qbo.post("batch", body))
    assert qbo.get("preferences").status_code == 200


def test_more_than_ten_concurrent_requests_are_throttled(make_emulator):
    emu = make_emulator(throttle=True, latency_ms=400)
    token = emu.tokens(emu.realm_ids[0])["access_token"]
    statuses: list[int] = []
    barrier = threading.Barrier(CONCURRENT + 3)

    def call() -> None:
        qbo = Qbo(emu, emu.realm_ids[0], token)
        barrier.wait()
        statuses.append(qbo.get("preferences").status_code)

    threads = [threading.Thread(target=call) for _ in range(CONCURRENT + 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(200) == CONCURRENT
    assert statuses.count(429) == 3


def _outcomes(emu, count: int) -> list[str]:
    qbo = Qbo(emu, emu.realm_ids[0])
    seen = []
    for i in range(count):
        try:
            response = qbo.post("customer", {"DisplayName": f"Fault test {i}"})
            seen.append(str(response.status_code))
        except requests.ConnectionError:
            seen.append("dropped")
            qbo.session.close()
    return seen


def test_fault_injection_is_reproducible_for_a_seed(make_emulator):
    first = _outcomes(make_emulator(fault_rate=0.5, seed=7), 40)
    second = _outcomes(make_emulator(fault_rate=0.5, seed=7), 40)
    other = _outcomes(make_emulator(fault_rate=0.5, seed=8), 40)
    assert first == second
    assert first != other
    assert {"200", "500", "503", "429", "dropped"} <= set(first)


def test_injected_faults_are_in_the_request_log(make_emulator):
    emu = make_emulator(fault_rate=1.0, seed=3)
    _outcomes(emu, 20)
    kinds = {entry["fault"] for entry in emu.app.requests_log()}
    assert kinds == {"http500", "http503", "http429", "drop", "lost"}


def test_injected_500_and_503_look_like_qbo(make_emulator):
    emu = make_emulator(fault_rate=1.0, seed=1)
    qbo = Qbo(emu, emu.realm_ids[0])
    seen: set[int] = set()
    for _ in range(30):
        try:
            response = qbo.get("preferences")
        except requests.ConnectionError:
            qbo.session.close()
            continue
        seen.add(response.status_code)
        if response.status_code == 500:
            error = fault(response)
            assert error["code"] == "10000"
            assert response.json()["Fault"]["type"] == "SystemFault"
        elif response.status_code == 429:
            _assert_throttled(response)
    assert {500, 503, 429} <= seen


def test_lost_answer_applies_the_write_and_requestid_recovers_it(make_emulator):
    emu = make_emulator()
    qbo = Qbo(emu, emu.realm_ids[0])
    # Find a seed whose first draw is "lost".
    from qbo_emulator.faults import FaultInjector

    seed = next(s for s in range(1000) if FaultInjector(1.0, s).draw() == "lost")
    emu.app.faults.configure(1.0, seed)
    name = unique("Lost")
    with pytest.raises(requests.ConnectionError):
        qbo.post("customer", {"DisplayName": name}, requestid="lost-" + name[-10:])
    emu.app.faults.configure(0.0, None)
    assert [c["DisplayName"] for c in qbo.rows("Customer")].count(name) == 1
    qbo.session.close()
    retry = qbo.post("customer", {"DisplayName": name}, requestid="lost-" + name[-10:])
    assert retry.status_code == 200
    assert retry.json()["Customer"]["DisplayName"] == name
    assert [c["DisplayName"] for c in qbo.rows("Customer")].count(name) == 1


def test_latency_lever_delays_api_answers(make_emulator):
    emu = make_emulator(latency_ms=150)
    qbo = Qbo(emu, emu.realm_ids[0])
    response = qbo.get("preferences")
    assert response.elapsed.total_seconds() >= 0.15


def test_hold_lever_saves_a_write_and_holds_its_answer_until_released(make_emulator):
    emu = make_emulator()
    qbo = Qbo(emu, emu.realm_ids[0])
    options = f"{emu.base_url}/_emulator/options"
    held = requests.post(options, json={"hold_answers_ms": 30000}, timeout=5).json()
    assert held["hold_answers_ms"] == 30000
    name = unique("Held")
    answers: list[requests.Response] = []
    writer = threading.Thread(
        target=lambda: answers.append(
            qbo.post("customer", {"DisplayName": name}, requestid="held-" + name[-10:])
        )
    )
    writer.start()
    _wait(lambda: any(c["DisplayName"] == name for c in qbo.rows("Customer")))
    # Saved, and its answer not sent yet; reads are not held.
    assert [c["DisplayName"] for c in qbo.rows("Customer")].count(name) == 1
    assert writer.is_alive() and answers == []
    assert Qbo(emu, emu.realm_ids[0]).get("preferences").status_code == 200

    released = requests.post(options, json={"hold_answers_ms": 0}, timeout=5).json()

    writer.join(5)
    assert released["hold_answers_ms"] == 0
    assert [a.status_code for a in answers] == [200]
    assert answers[0].json()["Customer"]["DisplayName"] == name
    [entry] = [e for e in emu.app.requests_log() if e["requestid"] == "held-" + name[-10:]]
    assert entry["held"] is True


def test_hold_lever_lets_the_answer_go_once_its_time_passes(make_emulator):
    emu = make_emulator()
    emu.app.set_hold_answers(200)
    qbo = Qbo(emu, emu.realm_ids[0])
    response = qbo.post("customer", {"DisplayName": unique("Late")}, requestid=unique("late"))
    assert response.status_code == 200
    assert response.elapsed.total_seconds() >= 0.2


def test_a_client_killed_while_its_answer_is_held_is_no_server_error(make_emulator, capsys):
    emu = make_emulator()
    emu.app.set_hold_answers(30000)
    realm_id = emu.realm_ids[0]
    token = emu.tokens(realm_id)["access_token"]
    name = unique("Gone")
    body = json.dumps({"DisplayName": name}).encode()
    client = socket.create_connection((emu.host, emu.port))
    client.sendall(
        f"POST /v3/company/{realm_id}/customer?requestid=gone HTTP/1.1\r\n"
        f"Host: {emu.host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    qbo = Qbo(emu, realm_id)
    _wait(lambda: any(c["DisplayName"] == name for c in qbo.rows("Customer")))
    # A killed process's connection is reset, not closed politely.
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()

    emu.app.set_hold_answers(0)

    _wait(lambda: any(e["requestid"] == "gone" for e in emu.app.requests_log()))
    time.sleep(0.2)  # the answer is written after the request is logged
    assert "Traceback" not in capsys.readouterr().err


def _wait(condition, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_lost_rate_option_loses_write_answers_after_applying_them(make_emulator):
    emu = make_emulator()
    options = requests.post(
        f"{emu.base_url}/_emulator/options", json={"lost_rate": 1.0, "seed": 4}, timeout=5
    ).json()
    assert (options["lost_rate"], options["fault_rate"], options["seed"]) == (1.0, 0.0, 4)
    qbo = Qbo(emu, emu.realm_ids[0])
    # Reads are served: only a write's answer is lost, once the write is applied.
    assert qbo.get("preferences").status_code == 200
    name = unique("Lost rate")
    request_id = "lost-rate-" + name[-10:]
    with pytest.raises(requests.ConnectionError):
        qbo.post("customer", {"DisplayName": name}, requestid=request_id)
    qbo.session.close()
    assert [c["DisplayName"] for c in qbo.rows("Customer")].count(name) == 1
    assert [e["fault"] for e in emu.app.requests_log()] == [None, "lost"]

    requests.post(f"{emu.base_url}/_emulator/options", json={"lost_rate": 0}, timeout=5)
    retry = qbo.post("customer", {"DisplayName": name}, requestid=request_id)
    assert retry.status_code == 200
    assert emu.app.requests_log()[-1]["replayed"] is True
    assert [c["DisplayName"] for c in qbo.rows("Customer")].count(name) == 1


def test_lost_rate_flag_sets_the_lever_and_refuses_a_rate_above_one():
    import argparse

    from qbo_emulator.cli import add_arguments, start_from_options

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = vars(parser.parse_args(["--port", "0", "--no-throttle", "--lost-rate", "0.25"]))
    emu = start_from_options(options)
    try:
        assert emu.app.faults.lost_rate == 0.25
        status = requests.get(f"{emu.base_url}/_emulator/options", timeout=5).json()
        assert status["lost_rate"] == 0.25
    finally:
        emu.stop()
    with pytest.raises(ValueError, match="--lost-rate must be between 0 and 1"):
        start_from_options({**options, "lost_rate": 1.5})
