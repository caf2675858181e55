"""The QuickBooks webhook receiver: signature, both payload formats, record once, queue pulls."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import socket
from urllib.parse import urlsplit

import pytest
from django.urls import reverse

from integrations import webhook_views, webhooks
from integrations.models import Connection, WebhookEvent
from qbo_emulator.webhooks import WebhookDispatcher, sign

VERIFIER = "unit-test-verifier"
REALM = "9130350000000001"
OTHER_REALM = "9130350000000002"
URL = "/integrations/quickbooks/webhooks/"


def classic_body(*notifications: tuple[str, list[dict]]) -> bytes:
    """A classic payload: (realm id, entities) per notification, as Intuit serialises it."""
    body = {
        "eventNotifications": [
            {"realmId": realm, "dataChangeEvent": {"entities": entities}}
            for realm, entities in notifications
        ]
    }
    return json.dumps(body, separators=(",", ":")).encode()


def entity(entity_id="130", name="Invoice", operation="Create", updated="2025-09-08T20:52:31.657Z"):
    return {"name": name, "id": entity_id, "operation": operation, "lastUpdated": updated}


def cloudevent(event_id="88cd52a4-0001", realm=REALM, type_="qbo.invoice.created.v1", eid="130"):
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "intuit.dsnBgbseACLLRZNxo2dfc2Q8wnP4oSmkL3pBgUDa0d9X1ZonM=",
        "type": type_,
        "datacontenttype": "application/json",
        "time": "2025-09-10T21:31:25.179Z",
        "intuitentityid": eid,
        "intuitaccountid": realm,
        "data": {},
    }


def cloudevents_body(*events: dict) -> bytes:
    return json.dumps(list(events)).encode()


def signature(body: bytes, verifier: str = VERIFIER) -> str:
    # Written out here rather than calling the code under test: base64(HMAC-SHA256(token, body)).
    return base64.b64encode(hmac.new(verifier.encode(), body, hashlib.sha256).digest()).decode()


@pytest.fixture
def queued(monkeypatch):
    """Every django-q2 task queued, as (func, args), once the transaction commits."""
    calls: list[tuple[str, tuple]] = []
    monkeypatch.setattr(
        "django_q.tasks.async_task", lambda func, *args, **kwargs: calls.append((func, args))
    )
    return calls


@pytest.fixture
def deliver(client, settings, django_capture_on_commit_callbacks):
    """POST a body as Intuit would; commit callbacks (the queued pulls) run afterwards."""
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = VERIFIER
    default = object()

    def post(body: bytes, sig: object = default):
        headers = {}
        if sig is default:
            sig = signature(body)
        if sig is not None:
            headers["HTTP_INTUIT_SIGNATURE"] = sig
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(URL, data=body, content_type="application/json", **headers)

    return post


@pytest.fixture
def connected(db):
    """Connected companies for the given realm ids (no tokens: nothing here calls QBO)."""

    def make(*realm_ids: str, status=Connection.Status.CONNECTED):
        for realm_id in realm_ids:
            Connection.objects.create(environment="emulator", realm_id=realm_id, status=status)

    return make


def pulls(realm_ids):
    return [("sync.tasks.pull_realm", (realm_id, "webhook")) for realm_id in realm_ids]


# --- verify_signature ------------------------------------------------------------------------


def test_verify_signature_accepts_hmac_of_the_raw_body():
    body = classic_body((REALM, [entity()]))
    webhooks.verify_signature(body, signature(body), VERIFIER)
    webhooks.verify_signature(body, f"  {signature(body)}\n", VERIFIER)


@pytest.mark.parametrize("header", [None, "", "   "])
def test_verify_signature_without_header_raises_missing(header):
    with pytest.raises(webhooks.SignatureMissing):
        webhooks.verify_signature(b"{}", header, VERIFIER)


@pytest.mark.parametrize(
    "header",
    [
        "not base64!",
        "YWJj=",  # bad padding
        base64.b64encode(b"too short").decode(),
        base64.b64encode(b"x" * 33).decode(),
        "é" * 44,
    ],
)
def test_verify_signature_with_garbled_header_raises_malformed(header):
    with pytest.raises(webhooks.SignatureMalformed):
        webhooks.verify_signature(b"{}", header, VERIFIER)


def test_verify_signature_with_other_token_or_altered_body_raises_mismatch():
    body = classic_body((REALM, [entity()]))
    with pytest.raises(webhooks.SignatureMismatch):
        webhooks.verify_signature(body, signature(body, "someone-else"), VERIFIER)
    with pytest.raises(webhooks.SignatureMismatch):
        webhooks.verify_signature(body + b" ", signature(body), VERIFIER)


def test_signature_errors_share_one_base_and_empty_verifier_is_a_configuration_error():
    for error in (webhooks.SignatureMissing, webhooks.SignatureMalformed):
        assert issubclass(error, webhooks.SignatureVerificationError)
    assert issubclass(webhooks.SignatureMismatch, webhooks.SignatureVerificationError)
    with pytest.raises(webhooks.WebhookNotConfigured):
        webhooks.verify_signature(b"{}", signature(b"{}", ""), "")


# --- parse_events ----------------------------------------------------------------------------


def test_parse_classic_payload():
    body = classic_body(
        (REALM, [entity("130"), entity("7", name="Customer", operation="Update")]),
        (OTHER_REALM, [entity("9", operation="Void")]),
    )
    events = webhooks.parse_events(body)
    assert [(e.realm_id, e.entity, e.entity_id, e.operation) for e in events] == [
        (REALM, "Invoice", "130", "Create"),
        (REALM, "Customer", "7", "Update"),
        (OTHER_REALM, "Invoice", "9", "Void"),
    ]
    assert events[0].occurred_at == "2025-09-08T20:52:31.657Z"
    assert len({e.event_key for e in events}) == 3


def test_classic_event_key_is_stable_and_changes_with_last_updated():
    first = webhooks.parse_events(classic_body((REALM, [entity()])))[0]
    again = webhooks.parse_events(classic_body((REALM, [entity()])))[0]
    later = webhooks.parse_events(classic_body((REALM, [entity(updated="2025-09-09T00:00Z")])))[0]
    assert first.event_key == again.event_key
    assert first.event_key != later.event_key


def test_parse_cloudevents_array_in_classic_vocabulary():
    body = cloudevents_body(
        cloudevent("e1"),
        cloudevent("e2", realm=OTHER_REALM, type_="qbo.creditmemo.updated.v1", eid="55"),
        cloudevent("e3", type_="qbo.customer.merged.v1", eid="8"),
    )
    events = webhooks.parse_events(body)
    assert events == [
        webhooks.ParsedEvent("e1", REALM, "Invoice", "130", "Create", "2025-09-10T21:31:25.179Z"),
        webhooks.ParsedEvent(
            "e2", OTHER_REALM, "CreditMemo", "55", "Update", "2025-09-10T21:31:25.179Z"
        ),
        webhooks.ParsedEvent("e3", REALM, "Customer", "8", "Merge", "2025-09-10T21:31:25.179Z"),
    ]


def test_parse_accepts_a_single_cloudevent_and_an_empty_array():
    assert webhooks.parse_events(json.dumps(cloudevent("e1")).encode())[0].event_key == "e1"
    assert webhooks.parse_events(b"[]") == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b"\xff\xfe",
        b'"text"',
        b"{}",
        b'{"eventNotifications": {}}',
        b'{"eventNotifications": [{"realmId": "1"}]}',
        b'{"eventNotifications": [{"dataChangeEvent": {"entities": []}}]}',
        classic_body((REALM, [{"name": "Invoice", "operation": "Create"}])),
        classic_body((REALM, [entity(entity_id="1" * 33)])),
        cloudevents_body({**cloudevent(), "type": "com.example.thing"}),
        cloudevents_body({k: v for k, v in cloudevent().items() if k != "intuitaccountid"}),
        cloudevents_body({**cloudevent(), "id": "x" * 256}),
        b"[1]",
    ],
)
def test_parse_refuses_what_is_not_a_webhook_payload(body):
    with pytest.raises(webhooks.PayloadError):
        webhooks.parse_events(body)


# --- the endpoint ----------------------------------------------------------------------------


def test_url_name_resolves_to_the_endpoint():
    assert reverse("integrations:qbo_webhook") == URL


def test_classic_delivery_is_recorded_and_queues_a_pull(deliver, connected, queued):
    connected(REALM)
    response = deliver(classic_body((REALM, [entity("130"), entity("7", name="Customer")])))
    assert response.status_code == 200
    assert response.json() == {"received": 2, "pulls_queued": 1}
    assert sorted(WebhookEvent.objects.values_list("entity", "entity_id", "operation")) == [
        ("Customer", "7", "Create"),
        ("Invoice", "130", "Create"),
    ]
    event = WebhookEvent.objects.get(entity_id="130")
    assert (event.realm_id, event.occurred_at) == (REALM, "2025-09-08T20:52:31.657Z")
    assert event.processed_at is None
    assert queued == pulls([REALM])


def test_cloudevents_delivery_is_recorded_and_queues_a_pull(deliver, connected, queued):
    connected(REALM)
    response = deliver(cloudevents_body(cloudevent("e1"), cloudevent("e2", eid="131")))
    assert response.status_code == 200
    assert set(WebhookEvent.objects.values_list("event_key", flat=True)) == {"e1", "e2"}
    assert queued == pulls([REALM])


@pytest.mark.parametrize(
    "body",
    [
        classic_body((REALM, [entity("130")])),
        cloudevents_body(cloudevent("e1")),
    ],
    ids=["classic", "cloudevents"],
)
def test_redelivery_is_recorded_once_and_queued_once(deliver, connected, queued, body):
    connected(REALM)
    assert deliver(body).status_code == 200
    assert deliver(body).status_code == 200
    assert WebhookEvent.objects.count() == 1
    assert queued == pulls([REALM])


def test_event_repeated_within_one_delivery_is_recorded_once(deliver, connected, queued):
    connected(REALM)
    assert deliver(cloudevents_body(cloudevent("e1"), cloudevent("e1"))).status_code == 200
    assert WebhookEvent.objects.count() == 1
    assert queued == pulls([REALM])


def test_new_change_after_a_recorded_one_queues_again(deliver, connected, queued):
    connected(REALM)
    deliver(classic_body((REALM, [entity("130")])))
    deliver(classic_body((REALM, [entity("130"), entity("130", operation="Update")])))
    assert WebhookEvent.objects.count() == 2
    assert queued == pulls([REALM, REALM])


def test_several_realms_in_one_delivery_queue_one_pull_each(deliver, connected, queued):
    connected(REALM, OTHER_REALM)
    deliver(
        classic_body(
            (REALM, [entity("1"), entity("2")]),
            (OTHER_REALM, [entity("1")]),
            (REALM, [entity("3")]),
        )
    )
    deliver(
        cloudevents_body(
            cloudevent("a", realm=OTHER_REALM), cloudevent("b"), cloudevent("c", realm=OTHER_REALM)
        )
    )
    assert WebhookEvent.objects.count() == 7
    assert queued == pulls([REALM, OTHER_REALM, OTHER_REALM, REALM])


def test_unknown_realm_is_answered_and_logged_but_not_pulled(deliver, connected, queued, caplog):
    connected(OTHER_REALM, status=Connection.Status.DISCONNECTED)
    with caplog.at_level(logging.INFO, logger="integrations.webhooks"):
        response = deliver(classic_body((REALM, [entity()]), (OTHER_REALM, [entity()])))
    assert response.status_code == 200
    assert response.json() == {"received": 2, "pulls_queued": 0}
    assert WebhookEvent.objects.count() == 2
    assert queued == []
    unknown = [r.realm_id for r in caplog.records if r.msg == "qbo.webhook.unknown_realm"]
    assert unknown == [REALM, OTHER_REALM]


@pytest.mark.parametrize(
    "sig, reason",
    [
        (None, "missing"),
        ("", "missing"),
        ("%%%", "not base64"),
        (base64.b64encode(b"short").decode(), "not a SHA-256"),
        (signature(b"another body"), "does not match"),
        (signature(classic_body((REALM, [entity()])), "wrong-verifier"), "does not match"),
    ],
)
def test_bad_or_missing_signature_is_401_and_changes_nothing(
    deliver, connected, queued, sig, reason
):
    connected(REALM)
    response = deliver(classic_body((REALM, [entity()])), sig)
    assert response.status_code == 401
    assert reason in response.json()["error"]
    assert not WebhookEvent.objects.exists()
    assert queued == []


def test_signed_body_that_is_not_a_payload_is_400(deliver, connected, queued):
    connected(REALM)
    for body in (b"{not json", b'{"hello": "world"}'):
        response = deliver(body)
        assert response.status_code == 400, body
    assert not WebhookEvent.objects.exists()
    assert queued == []


def test_bad_payload_records_none_of_its_events(deliver, connected, queued):
    connected(REALM)
    body = cloudevents_body(cloudevent("good"), {**cloudevent("bad"), "type": "nonsense"})
    assert deliver(body).status_code == 400
    assert not WebhookEvent.objects.exists()
    assert queued == []


# --- oversized bodies ------------------------------------------------------------------------

TEN_MB = 10 * 1024 * 1024


def padded_body(size: int) -> bytes:
    """A valid classic payload for REALM padded with JSON whitespace to exactly `size` bytes."""
    body = classic_body((REALM, [entity()]))
    return body + b" " * (size - len(body))


class RecordingInput(io.BytesIO):
    """A WSGI input holding `body` that records the size of each read."""

    def __init__(self, body: bytes):
        super().__init__(body)
        self.reads: list[int] = []

    def read(self, size=-1):
        data = super().read(size)
        self.reads.append(len(data))
        return data


def post_raw(client, wsgi_input: RecordingInput, body: bytes, **environ):
    """POST through the test client with this WSGI input; `environ` may set CONTENT_LENGTH."""
    return client.generic(
        "POST",
        URL,
        CONTENT_TYPE="application/json",
        HTTP_INTUIT_SIGNATURE=signature(body),
        **{"wsgi.input": wsgi_input, **environ},
    )


def test_a_ten_megabyte_body_is_413_and_changes_nothing(deliver, connected, queued, caplog):
    # Signed and valid apart from its size, so its size alone is what is refused.
    connected(REALM)
    with caplog.at_level(logging.WARNING, logger="integrations"):
        response = deliver(padded_body(TEN_MB))

    assert response.status_code == 413
    limit = webhook_views.webhook_body_limit()
    assert limit == 2_621_440  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE, not set by Ledgerlink
    assert response.json() == {"error": f"The body is larger than {limit} bytes."}
    assert not WebhookEvent.objects.exists()
    assert queued == []
    [record] = [r for r in caplog.records if r.msg == "qbo.webhook.payload_too_large"]
    assert (record.limit, record.content_length) == (limit, str(TEN_MB))


def test_the_limit_is_data_upload_max_memory_size_inclusive(deliver, connected, queued, settings):
    connected(REALM)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    assert deliver(padded_body(4097)).status_code == 413
    assert not WebhookEvent.objects.exists()
    assert deliver(padded_body(4096)).status_code == 200
    assert WebhookEvent.objects.count() == 1
    assert queued == pulls([REALM])


def test_without_a_django_limit_the_default_limit_still_applies(deliver, connected, settings):
    connected(REALM)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None
    assert webhook_views.webhook_body_limit() == 2_621_440
    assert deliver(padded_body(TEN_MB)).status_code == 413


def test_an_oversized_content_length_is_refused_without_reading_the_body(
    client, settings, connected, queued
):
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = VERIFIER
    connected(REALM)
    body = padded_body(TEN_MB)
    wsgi_input = RecordingInput(body)

    response = post_raw(client, wsgi_input, body, CONTENT_LENGTH=str(len(body)))

    assert response.status_code == 413
    assert sum(wsgi_input.reads) == 0
    assert not WebhookEvent.objects.exists()
    assert queued == []


def test_a_chunked_body_over_the_limit_is_413_reading_one_byte_past_it(
    client, settings, connected, queued
):
    # No Content-Length; the server ends the input with the body (gunicorn's chunked decoding).
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = VERIFIER
    connected(REALM)
    body = padded_body(TEN_MB)
    wsgi_input = RecordingInput(body)

    response = post_raw(client, wsgi_input, body, **{"wsgi.input_terminated": True})

    assert response.status_code == 413
    limit = webhook_views.webhook_body_limit()
    assert sum(wsgi_input.reads) == limit + 1
    assert max(wsgi_input.reads) <= webhook_views.READ_CHUNK
    assert not WebhookEvent.objects.exists()
    assert queued == []


def test_a_chunked_body_within_the_limit_is_received(
    client, settings, connected, queued, django_capture_on_commit_callbacks
):
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = VERIFIER
    connected(REALM)
    body = padded_body(webhook_views.READ_CHUNK * 3 + 5)
    wsgi_input = RecordingInput(body)

    with django_capture_on_commit_callbacks(execute=True):
        response = post_raw(client, wsgi_input, body, **{"wsgi.input_terminated": True})

    assert response.status_code == 200
    assert WebhookEvent.objects.count() == 1
    assert queued == pulls([REALM])


def test_an_oversized_body_over_real_http_gets_413_before_it_is_sent(
    live_server, transactional_db, settings, queued
):
    # Headers announce 10 MB, one chunk of it is sent: the answer comes without the rest.
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = VERIFIER
    Connection.objects.create(environment="emulator", realm_id=REALM)
    body = padded_body(TEN_MB)
    address = urlsplit(live_server.url)
    head = (
        f"POST {URL} HTTP/1.1\r\nHost: {address.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"intuit-signature: {signature(body)}\r\n\r\n"
    ).encode()

    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(head + body[: webhook_views.READ_CHUNK])
        answer = sock.makefile("rb").readline()

    assert answer.startswith(b"HTTP/1.1 413 ")
    assert not WebhookEvent.objects.exists()
    assert queued == []


def test_without_verifier_token_nothing_is_accepted(deliver, settings, connected, queued):
    connected(REALM)
    body = classic_body((REALM, [entity()]))
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = ""
    response = deliver(body, signature(body, ""))
    assert response.status_code == 503
    assert not WebhookEvent.objects.exists()
    assert queued == []


def test_only_post_is_allowed(client, db):
    assert client.get(URL).status_code == 405


def test_no_csrf_token_is_needed(deliver, connected, queued, settings):
    # The test client skips CSRF checks unless told otherwise; Intuit sends no token.
    from django.test import Client

    connected(REALM)
    body = classic_body((REALM, [entity()]))
    response = Client(enforce_csrf_checks=True).post(
        URL, data=body, content_type="application/json", HTTP_INTUIT_SIGNATURE=signature(body)
    )
    assert response.status_code == 200


def test_insert_settles_a_concurrent_delivery_row_by_row(db):
    # As if another delivery stored "e1" between this one's look-up and its insert.
    first, second = webhooks.parse_events(cloudevents_body(cloudevent("e1"), cloudevent("e2")))
    assert webhooks.webhook_events_record([first]) == [REALM]
    assert webhooks._insert([first, second]) == [second]
    assert WebhookEvent.objects.count() == 2


# --- end to end with the emulator ------------------------------------------------------------


def _client_sender(client):
    """A dispatcher transport that POSTs through Django's test client (no live server)."""

    def send(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        response = client.post(
            urlsplit(url).path,
            data=body,
            content_type=headers["Content-Type"],
            HTTP_INTUIT_SIGNATURE=headers["intuit-signature"],
        )
        return response.status_code

    return send


@pytest.fixture
def emulator_webhooks(qbo, client, monkeypatch):
    """Swap the emulator's dispatcher for one that delivers to this Django test client."""

    def install(*, verifier: str, cloudevents: bool = False, sender=None, retry_delays=()):
        dispatcher = WebhookDispatcher(
            "http://testserver" + URL,
            verifier,
            cloudevents=cloudevents,
            batch_window=60,
            retry_delays=retry_delays,
            sender=sender or _client_sender(client),
        )
        monkeypatch.setattr(qbo.app, "dispatcher", dispatcher)
        return dispatcher

    return install


@pytest.fixture
def run_tasks(monkeypatch):
    """Queued tasks run for real in django-q2's sync mode; returns what was queued."""
    from django_q import tasks as q_tasks

    real_async_task = q_tasks.async_task
    calls: list[tuple[str, tuple]] = []

    def run(func, *args, **kwargs):
        calls.append((func, args))
        kwargs["sync"] = True
        return real_async_task(func, *args, **kwargs)

    monkeypatch.setattr(q_tasks, "async_task", run)
    return calls


@pytest.mark.parametrize("cloudevents", [False, True], ids=["classic", "cloudevents"])
def test_emulator_change_is_delivered_signed_and_pulls_the_realm(
    qbo,
    qbo_ui,
    connection_factory,
    emulator_webhooks,
    settings,
    run_tasks,
    cloudevents,
    django_capture_on_commit_callbacks,
):
    from sync.models import SyncRun

    connection = connection_factory()
    dispatcher = emulator_webhooks(
        verifier=settings.QBO_WEBHOOK_VERIFIER_TOKEN, cloudevents=cloudevents
    )
    customer = qbo_ui.create("Customer", {"DisplayName": "Webhook Gardens"})

    with django_capture_on_commit_callbacks(execute=True):
        assert dispatcher.flush(timeout=10)

    [attempt] = dispatcher.deliveries
    assert attempt.status == 200 and attempt.realm_id == connection.realm_id
    payload = json.loads(attempt.payload)
    assert isinstance(payload, list) is cloudevents
    event = WebhookEvent.objects.get(entity="Customer", entity_id=customer["Id"])
    assert (event.realm_id, event.operation) == (connection.realm_id, "Create")
    assert run_tasks == pulls([connection.realm_id])
    run = SyncRun.objects.get(connection=connection)
    assert (run.trigger, run.direction) == ("webhook", "pull")


def test_emulator_redelivery_after_a_lost_answer_is_recorded_and_pulled_once(
    qbo,
    qbo_ui,
    connection_factory,
    emulator_webhooks,
    settings,
    client,
    queued,
    django_capture_on_commit_callbacks,
):
    connection = connection_factory()
    post = _client_sender(client)
    answers = []

    def answer_lost_once(url, body, headers, timeout):
        answers.append(post(url, body, headers, timeout))
        if len(answers) == 1:
            raise TimeoutError("the 200 never reached Intuit")
        return answers[-1]

    dispatcher = emulator_webhooks(
        verifier=settings.QBO_WEBHOOK_VERIFIER_TOKEN, sender=answer_lost_once, retry_delays=(0,)
    )
    qbo_ui.create("Customer", {"DisplayName": "Twice Told Ltd"})

    with django_capture_on_commit_callbacks(execute=True):
        assert dispatcher.flush(timeout=10)

    assert answers == [200, 200]
    lost, acknowledged = dispatcher.deliveries
    assert (lost.status, acknowledged.status) == (None, 200)
    assert lost.payload == acknowledged.payload
    assert WebhookEvent.objects.filter(realm_id=connection.realm_id).count() == 1
    assert queued == pulls([connection.realm_id])


def test_emulator_delivery_signed_with_another_token_is_refused(
    qbo,
    qbo_ui,
    connection_factory,
    emulator_webhooks,
    queued,
    django_capture_on_commit_callbacks,
):
    connection_factory()
    dispatcher = emulator_webhooks(verifier="not-the-configured-verifier")
    qbo_ui.create("Customer", {"DisplayName": "Forged Inc"})

    with django_capture_on_commit_callbacks(execute=True):
        dispatcher.flush(timeout=10)

    assert [a.status for a in dispatcher.deliveries] == [401]
    assert not WebhookEvent.objects.exists()
    assert queued == []


def test_payload_signed_with_emulator_sign_is_accepted_without_calling_qbo(
    qbo, connection_factory, client, queued, settings, django_capture_on_commit_callbacks
):
    connection = connection_factory()
    body = classic_body((connection.realm_id, [entity("42", name="Item", operation="Update")]))
    qbo.app.clear_log()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            URL,
            data=body,
            content_type="application/json",
            HTTP_INTUIT_SIGNATURE=sign(body, settings.QBO_WEBHOOK_VERIFIER_TOKEN),
        )

    assert response.status_code == 200
    assert WebhookEvent.objects.filter(entity="Item", entity_id="42").exists()
    assert queued == pulls([connection.realm_id])
    # Intuit allows 3 seconds for the answer: the pull happens later, in the queued task.
    assert qbo.app.requests_log() == []
