import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from qbo_emulator.webhooks import (
    WebhookDispatcher,
    cloudevent_type,
    sign,
)

TOKEN = "verifier-token-for-tests"
REALM_A = "9341453050298743"
REALM_B = "9341453050298744"
STAMP = "2025-09-08T20:52:31.657Z"


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records raw requests and answers scripted statuses."""

    def __init__(self):
        self.requests = []  # (headers with lower-case names, raw body)
        self.statuses = []  # answered in order; 200 once empty
        self.delays = []  # seconds to stall before answering, in order
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.arrived:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    delay = receiver.delays.pop(0) if receiver.delays else 0
                time.sleep(delay)
                with receiver.arrived:
                    receiver.requests.append(
                        ({k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    receiver.arrived.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/qbo"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def bodies(self):
        return [json.loads(body) for _, body in self.requests]

    def wait_for(self, count, timeout=5.0):
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.requests) >= count, timeout), (
                f"expected {count} requests, got {len(self.requests)}"
            )

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def entities(body):
    (notification,) = body["eventNotifications"]
    return notification["realmId"], notification["dataChangeEvent"]["entities"]


def closed_port_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def test_sign_is_base64_hmac_sha256_keyed_by_the_verifier_token():
    body = b'{"eventNotifications":[]}'
    expected = base64.b64encode(hmac.new(TOKEN.encode(), body, hashlib.sha256).digest()).decode()
    assert sign(body, TOKEN) == expected
    # A published HMAC-SHA256 vector (RFC 4231 style): key "key", the quick brown fox.
    assert sign(b"The quick brown fox jumps over the lazy dog", "key") == (
        "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg="
    )


def test_signature_verifies_over_the_exact_raw_body(receiver):
    dispatcher = WebhookDispatcher(receiver.url, TOKEN)
    dispatcher.notify(REALM_A, "Invoice", "130", "Create", STAMP)
    assert dispatcher.flush(timeout=5)

    ((headers, raw),) = receiver.requests
    assert headers["content-type"] == "application/json"
    digest = hmac.new(TOKEN.encode(), raw, hashlib.sha256).digest()
    assert hmac.compare_digest(headers["intuit-signature"], base64.b64encode(digest).decode())
    assert not hmac.compare_digest(headers["intuit-signature"], sign(raw, "another-token"))
    reencoded = json.dumps(json.loads(raw)).encode()  # same JSON, different bytes
    assert reencoded != raw and sign(reencoded, TOKEN) != headers["intuit-signature"]


def test_legacy_payload_has_intuits_shape(receiver):
    dispatcher = WebhookDispatcher(receiver.url, TOKEN)
    dispatcher.notify(REALM_A, "Invoice", "130", "Create", STAMP)
    dispatcher.flush(timeout=5)

    assert receiver.bodies() == [
        {
            "eventNotifications": [
                {
                    "realmId": REALM_A,
                    "dataChangeEvent": {
                        "entities": [
                            {
                                "name": "Invoice",
                                "id": "130",
                                "operation": "Create",
                                "lastUpdated": STAMP,
                            }
                        ]
                    },
                }
            ]
        }
    ]
    (attempt,) = dispatcher.deliveries
    assert (attempt.realm_id, attempt.status, attempt.error, attempt.attempt) == (
        REALM_A,
        200,
        None,
        1,
    )
    assert attempt.payload == receiver.requests[0][1]
    assert attempt.acknowledged


def test_last_updated_is_sent_in_utc_with_milliseconds(receiver):
    dispatcher = WebhookDispatcher(receiver.url, TOKEN)
    dispatcher.notify(REALM_A, "Customer", "1", "Update", "2025-09-08T13:52:31-07:00")
    dispatcher.notify(REALM_A, "Customer", "2", "Update", "not a timestamp")
    dispatcher.flush(timeout=5)

    _, sent = entities(receiver.bodies()[0])
    assert [e["lastUpdated"] for e in sent] == ["2025-09-08T20:52:31.000Z", "not a timestamp"]


def test_events_are_batched_into_one_post_per_realm(receiver):
    dispatcher = WebhookDispatcher(receiver.url, TOKEN)
    dispatcher.notify(REALM_A, "Customer", "58", "Create", STAMP)
    dispatcher.notify(REALM_B, "Item", "11", "Update", STAMP)
    dispatcher.notify(REALM_A, "Invoice", "130", "Create", STAMP)
    dispatcher.notify(REALM_A, "Payment", "131", "Create", STAMP)
    dispatcher.flush(timeout=5)

    bodies = [entities(body) for body in receiver.bodies()]
    assert [realm for realm, _ in bodies] == [REALM_A, REALM_B]
    assert [(e["name"], e["id"]) for e in bodies[0][1]] == [
        ("Customer", "58"),
        ("Invoice", "130"),
        ("Payment", "131"),
    ]
    assert [(e["name"], e["id"], e["operation"]) for e in bodies[1][1]] == [
        ("Item", "11", "Update")
    ]
    assert [d.event_count for d in dispatcher.deliveries] == [3, 1]


def test_background_thread_batches_events_within_the_window(receiver):
    dispatcher = WebhookDispatcher(receiver.url, TOKEN, batch_window=0.3)
    dispatcher.start()
    try:
        for entity_id in ("1", "2", "3"):
            dispatcher.notify(REALM_A, "Customer", entity_id, "Create", STAMP)
        dispatcher.notify(REALM_B, "Customer", "9", "Create", STAMP)
        time.sleep(0.1)
        assert receiver.requests == []  # the window is still open
        receiver.wait_for(2)
        time.sleep(0.2)
        assert len(receiver.requests) == 2
        realm, sent = entities(receiver.bodies()[0])
        assert realm == REALM_A and [e["id"] for e in sent] == ["1", "2", "3"]

        dispatcher.notify(REALM_A, "Customer", "4", "Update", STAMP)  # a new window
        receiver.wait_for(3)
        assert [e["id"] for e in entities(receiver.bodies()[2])[1]] == ["4"]
    finally:
        assert dispatcher.stop(timeout=5)


def test_window_is_measured_with_the_injected_clock(receiver):
    clock = FakeClock()
    dispatcher = WebhookDispatcher(receiver.url, TOKEN, batch_window=0.5, clock=clock)
    dispatcher.notify(REALM_A, "Invoice", "130", "Create", STAMP)
    clock.now += 0.4
    dispatcher.notify(REALM_A, "Invoice", "131", "Create", STAMP)
    dispatcher.run_pending()
    assert receiver.requests == []

    clock.now += 0.1
    dispatcher.run_pending()
    assert [e["id"] for e in entities(receiver.bodies()[0])[1]] == ["130", "131"]
    assert dispatcher.deliveries[0].time == clock.now


def test_cloudevents_format(receiver):
    dispatcher = WebhookDispatcher(receiver.url, TOKEN, cloudevents=True)
    dispatcher.notify(REALM_A, "Invoice", "130", "Create", STAMP)
    dispatcher.notify(REALM_A, "Invoice", "130", "Update", "2025-09-08T13:52:32.5-07:00")
    dispatcher.notify(REALM_A, "Customer", "58", "Delete", STAMP)
    dispatcher.notify(REALM_A, "Invoice", "129", "Void", STAMP)
    dispatcher.flush(timeout=5)

    ((headers, raw),) = receiver.requests
    assert headers["content-type"] == "application/json"
    assert headers["intuit-signature"] == sign(raw, TOKEN)
    events = json.loads(raw)
    assert isinstance(events, list) and len(events) == 4
    assert [e["type"] for e in events] == [
        "qbo.invoice.created.v1",
        "qbo.invoice.updated.v1",
        "qbo.customer.deleted.v1",
        "qbo.invoice.voided.v1",
    ]
    for event in events:
        assert set(event) == {
            "specversion",
            "id",
            "source",
            "type",
            "datacontenttype",
            "time",
            "intuitentityid",
            "intuitaccountid",
            "data",
        }
        assert event["specversion"] == "1.0"
        assert event["datacontenttype"] == "application/json"
        assert event["intuitaccountid"] == REALM_A
        assert event["source"]
        assert event["data"] == {}
        uuid.UUID(event["id"])
    assert len({e["id"] for e in events}) == 4
    assert [e["intuitentityid"] for e in events] == ["130", "130", "58", "129"]
    assert [e["time"] for e in events[:2]] == [STAMP, "2025-09-08T20:52:32.500Z"]


def test_cloudevent_type_names():
    assert cloudevent_type("Account", "Create") == "qbo.account.created.v1"
    assert cloudevent_type("Payment", "Merge") == "qbo.payment.merged.v1"
    assert cloudevent_type("Invoice", "Emailed") == "qbo.invoice.emailed.v1"


def test_retries_after_a_500_until_acknowledged(receiver):
    receiver.statuses = [500, 503]
    dispatcher = WebhookDispatcher(receiver.url, TOKEN, retry_delays=(0.01, 0.02, 0.05))
    dispatcher.notify(REALM_A, "Invoice", "130", "Create", STAMP)
    assert dispatcher.flush(timeout=5)

    assert [(d.attempt, d.status) for d in dispatcher.deliveries] == [(1, 500), (2, 503), (3, 200)]
    assert [d.acknowledged for d in dispatcher.deliveries] == [False, False, True]
    raw_bodies = {body for _, body in receiver.requests}
    signatures = {headers["intuit-signature"] for headers, _ in receiver.requests}
    assert len(raw_bodies) == 1 and len(signatures) == 1  # the same delivery, resent
    times = [d.time for d in dispatcher.deliveries]
    assert times[1] - times[0] >= 0.01 and times[2] - times[1] >= 0.02


def test_retry_follows_the_delay_schedule(receiver):
    receiver.statuses = [500, 500]
    clock = FakeClock()
    dispatcher = WebhookDispatcher(receiver.url, TOKEN, retry_delays=(10, 20), clock=clock)
    dispatcher.notify(REALM_A, "Invoice", "130", "Create", STAMP)
    clock.now += 0.5
    dispatcher.run_pending()
    assert len(receiver.requests) == 1

    clock.now += 9.9
    dispatcher.run_pending()
    assert len(receiver.requests) == 1
    clock.now += 0.1
    dispatcher.run_pending()
    assert len(receiver.requests) == 2

    clock.now += 19.9
    dispatcher.run_pending()
    assert len(receiver.requests) == 2
    clock.now += 0.1
    dispatcher.run_pending()
    assert [d.status for d in dispatcher.deliveries] == [500, 500, 200]


def test_later_events_are_held_until_the_first_delivery_is_acknowledged(receiver):
    receiver.statuses = [500]
    clock = FakeClock()
    dispatcher = WebhookDispatcher(receiver.url, TOKEN, retry_delays=(10,), clock=clock)
    dispatcher.notify(REALM_A, "Invoice", "130", "Create", STAMP)
    clock.now += 0.5
    dispatcher.run_pending()  # first attempt fails

    dispatcher.notify(REALM_A, "Invoice", "130", "Update", STAMP)
    dispatcher.notify(REALM_B, "Customer", "1", "Update", STAMP)
    clock.now += 5
    dispatcher.run_pending()
    # Realm B is not held up by realm A's failure, but realm A's second event waits.
    assert [entities(body)[0] for body in receiver.bodies()] == [REALM_A, REALM_B]

    clock.now += 5
    dispatcher.run_pending()
    sent = [
        (realm, [e["operation"] for e in events])
        for realm, events in map(entities, receiver.bodies())
    ]
    assert sent == [
        (REALM_A, ["Create"]),
        (REALM_B, ["Update"]),
        (REALM_A, ["Create"]),  # the retry, acknowledged
        (REALM_A, ["Update"]),  # only then the held event
    ]


def test_background_thread_holds_later_events_during_retries(receiver):
    receiver.statuses = [500]
    dispatcher = WebhookDispatcher(receiver.url, TOKEN, batch_window=0.01, retry_delays=(0.4,))
    dispatcher.start()
    try:
        dispatcher.notify(REALM_A, "Invoice", "130", "Create", STAMP)
        receiver.wait_for(1)
        dispatcher.notify(REALM_A, "Invoice", "130", "Update", STAMP)
        time.sleep(0.2)
        assert len(receiver.requests) == 1
        receiver.wait_for(3)
        operations = [entities(body)[1][0]["operation"] for body in receiver.bodies()]
        assert operations == ["Create", "Create", "Update"]
    finally:
        assert dispatcher.stop(timeout=5)


def test_connection_errors_are_retried_then_dropped_without_blocking_the_realm():
    url = closed_port_url()
    dispatcher = WebhookDispatcher(url, TOKEN, retry_delays=(0.01, 0.01))
    dispatcher.notify(REALM_A, "Invoice", "130", "Create", STAMP)
    assert dispatcher.flush(timeout=5)

    attempts = dispatcher.deliveries
    assert [d.attempt for d in attempts] == [1, 2, 3]
    assert all(d.status is None and d.error for d in attempts)
    assert "Connection refused" in attempts[0].error or "URLError" in attempts[0].error

    dispatcher.notify(REALM_A, "Invoice", "131", "Create", STAMP)
    dispatcher.flush(timeout=5)
    assert len(dispatcher.deliveries) == 6  # the dropped batch no longer holds the realm


def test_a_slow_answer_counts_as_a_failure(receiver):
    receiver.delays = [0.5]
    dispatcher = WebhookDispatcher(receiver.url, TOKEN, timeout=0.1, retry_delays=(0.01,))
    dispatcher.notify(REALM_A, "Invoice", "130", "Create", STAMP)
    assert dispatcher.flush(timeout=5)

    first, second = dispatcher.deliveries
    assert first.status is None and "timed out" in first.error
    assert second.status == 200


def test_flush_gives_up_after_its_timeout(receiver):
    receiver.statuses = [500]
    dispatcher = WebhookDispatcher(receiver.url, TOKEN, retry_delays=(30,))
    dispatcher.notify(REALM_A, "Invoice", "130", "Create", STAMP)
    started = time.monotonic()
    assert dispatcher.flush(timeout=0.2) is False
    assert time.monotonic() - started < 2
    assert [d.status for d in dispatcher.deliveries] == [500]


def test_stop_flushes_pending_events(receiver):
    dispatcher = WebhookDispatcher(receiver.url, TOKEN, batch_window=60)
    dispatcher.start()
    dispatcher.notify(REALM_A, "Invoice", "130", "Create", STAMP)
    assert dispatcher.stop(timeout=5)
    assert len(receiver.requests) == 1


def test_injected_sender_gets_url_body_headers_and_timeout():
    calls = []

    def sender(url, body, headers, timeout):
        calls.append((url, body, headers, timeout))
        return 204

    dispatcher = WebhookDispatcher("https://example.test/hook", TOKEN, timeout=2.5, sender=sender)
    dispatcher.notify(REALM_A, "Invoice", "130", "Create", STAMP)
    dispatcher.flush()

    ((url, body, headers, timeout),) = calls
    assert url == "https://example.test/hook" and timeout == 2.5
    assert headers == {"Content-Type": "application/json", "intuit-signature": sign(body, TOKEN)}
    assert dispatcher.deliveries[0].acknowledged


def test_a_sender_exception_is_a_failed_attempt():
    def sender(url, body, headers, timeout):
        raise RuntimeError("boom")

    dispatcher = WebhookDispatcher(
        "https://example.test/hook", TOKEN, sender=sender, retry_delays=()
    )
    dispatcher.notify(REALM_A, "Invoice", "130", "Create", STAMP)
    assert dispatcher.flush(timeout=1)
    (attempt,) = dispatcher.deliveries
    assert attempt.status is None and attempt.error == "RuntimeError: boom"


def test_redirects_are_not_followed(receiver):
    receiver.statuses = [307]
    dispatcher = WebhookDispatcher(receiver.url, TOKEN, retry_delays=(0.01,))
    dispatcher.notify(REALM_A, "Invoice", "130", "Create", STAMP)
    dispatcher.flush(timeout=5)
    assert [d.status for d in dispatcher.deliveries] == [307, 200]


def test_without_url_everything_is_a_no_op():
    def sender(url, body, headers, timeout):
        raise AssertionError("nothing may be sent")

    dispatcher = WebhookDispatcher(None, TOKEN, sender=sender)
    dispatcher.start()
    dispatcher.notify(REALM_A, "Invoice", "130", "Create", STAMP)
    assert dispatcher.flush(timeout=1)
    assert dispatcher.stop(timeout=1)
    assert dispatcher.deliveries == []
