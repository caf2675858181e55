"""Every QuickBooks limit in one limiter per company, and what the client and the backend do
with it: batch tickets, single requests past the batch budget with replayable requestids,
name look-ups as few queries as the query language allows, and every request counted."""

from __future__ import annotations

import json
import random
import socket
import uuid
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from django.core.cache.backends.locmem import LocMemCache
from urllib3.exceptions import NewConnectionError

from integrations.quickbooks.backend import (
    SINGLE_WRITES,
    QuickBooksBackend,
    batch_ref,
    parse_batch_ref,
)
from integrations.quickbooks.client import QBOClient
from integrations.quickbooks.errors import ConnectionFailedError, QBOError, ThrottledError
from integrations.quickbooks.limiter import RealmLimiter
from tests.integrations.test_client import API, NEW_TOKEN, REALM, TOKEN, fault, gateway_401
from tests.integrations.test_limiter import FakeClock

MINUTE = 60 * 1000  # a fake clock's start: the start of a minute


def params(call) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(call.request.url).query).items()}


@pytest.fixture
def make_client():
    def make(**kwargs):
        options = {
            "realm_id": REALM,
            "access_token_provider": lambda: TOKEN,
            "environment": "sandbox",
            "sleep": lambda seconds: None,
            "rng": lambda: 0.5,
        }
        return QBOClient(**{**options, **kwargs})

    return make


# --- the limiter ---------------------------------------------------------------------------


def test_try_batch_takes_a_free_batch_ticket_and_never_waits():
    clock = FakeClock(start=MINUTE)
    limiter = RealmLimiter("123", batches_per_minute=3, clock=clock, sleep=clock.sleep)

    assert [limiter.try_batch() for _ in range(4)] == [True, True, True, False]
    assert clock.sleeps == []
    clock.now += 120
    assert limiter.try_batch()


def test_a_batch_request_waits_for_the_batch_budget_and_counts_as_a_request():
    clock = FakeClock(start=MINUTE)
    limiter = RealmLimiter(
        "123", per_minute=100, batches_per_minute=2, clock=clock, sleep=clock.sleep, max_wait=120
    )
    for _ in range(2):
        with limiter.request(batch=True):
            pass
    assert clock.sleeps == []

    with limiter.request(batch=True):
        pass
    assert clock.sleeps and clock.now >= MINUTE + 60

    # A batch is a request too: the request budget counts it.
    requests_only = RealmLimiter("456", per_minute=2, clock=clock, sleep=clock.sleep, max_wait=0)
    with requests_only.request(batch=True):
        pass
    with requests_only:
        pass
    with pytest.raises(ThrottledError):
        requests_only.acquire()


def test_a_reserved_batch_ticket_is_not_taken_twice():
    clock = FakeClock(start=MINUTE)
    limiter = RealmLimiter("123", batches_per_minute=2, clock=clock, sleep=clock.sleep)

    assert limiter.try_batch()
    with limiter.request(batch=True, reserved=True):
        pass

    assert limiter.try_batch()  # the second ticket of two was still free
    assert not limiter.try_batch()


def test_a_batch_ticket_is_given_back_when_its_request_cannot_be_sent():
    clock = FakeClock(start=MINUTE)
    limiter = RealmLimiter(
        "123", per_minute=1, batches_per_minute=2, clock=clock, sleep=clock.sleep, max_wait=0
    )
    with limiter:
        pass  # the request budget is used up

    with pytest.raises(ThrottledError):
        limiter.acquire(batch=True)

    assert limiter.try_batch() and limiter.try_batch()


def test_no_60_seconds_ever_hold_more_than_the_budget():
    """QBO counts the last 60 seconds, not calendar minutes. A burst at the end of one minute
    and requests early in the next must not add up past the budget within 60 seconds."""
    clock = FakeClock(start=MINUTE)
    limiter = RealmLimiter("123", batches_per_minute=40, clock=clock, sleep=clock.sleep)
    rng = random.Random(7)
    taken: list[float] = []

    clock.now += 55  # a burst late in the minute
    for _ in range(40):
        assert limiter.try_batch()
        taken.append(clock.now)
    for _ in range(400):
        clock.now += rng.choice([0, 0.2, 1, 3, 7])
        if limiter.try_batch():
            taken.append(clock.now)

    assert len(taken) > 80
    for moment in taken:
        assert sum(moment - 60 < t <= moment for t in taken) <= 40


def _redis_cache():
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    from django.core.cache.backends.redis import RedisCache

    # A key prefix of its own: the counters expire by themselves and touch nothing else.
    return RedisCache("redis://127.0.0.1:6379/9", {"KEY_PREFIX": f"limits-{uuid.uuid4().hex}"})


@pytest.mark.parametrize("shared", ["redis", "memory"])
def test_workers_of_one_company_share_every_budget(shared):
    """Two workers (two limiters on one shared cache, as with REDIS_URL) take from the same
    budgets; another company has its own."""
    store = _redis_cache() if shared == "redis" else LocMemCache(uuid.uuid4().hex, {})
    clock = FakeClock(start=MINUTE)
    options = {"cache": store, "clock": clock, "sleep": clock.sleep, "max_wait": 0}
    first = RealmLimiter("123", batches_per_minute=2, per_minute=2, **options)
    second = RealmLimiter("123", batches_per_minute=2, per_minute=2, **options)
    other = RealmLimiter("456", batches_per_minute=2, per_minute=2, **options)

    assert first.try_batch() and second.try_batch()
    assert not first.try_batch() and not second.try_batch()
    assert other.try_batch()
    with first, second:
        pass
    with pytest.raises(ThrottledError):
        second.acquire()
    with other:
        pass


# --- the client ----------------------------------------------------------------------------


class RecordingLimiter:
    """Records how each attempt was held: ``("request",)`` or ``("batch", reserved)``."""

    def __init__(self):
        self.held: list[tuple] = []

    def __enter__(self):
        self.held.append(("request",))

    def __exit__(self, *exc):
        return None

    @contextmanager
    def request(self, *, batch, reserved=False):
        self.held.append(("batch", reserved) if batch else ("request",))
        yield


@responses.activate
def test_a_batch_uses_its_reserved_ticket_once_and_a_retry_takes_its_own(make_client):
    responses.post(f"{API}/batch", status=503, body="")
    responses.post(f"{API}/batch", json={"BatchItemResponse": [{"bId": "bid0", "Item": {}}]})
    responses.get(f"{API}/preferences", json={"Preferences": {}})
    limiter = RecordingLimiter()
    client = make_client(limiter=limiter)

    client.batch([{"query": "SELECT * FROM Item"}], reserved=True)
    client.preferences()

    assert limiter.held == [("batch", True), ("batch", False), ("request",)]


@responses.activate
def test_requests_sent_counts_every_attempt_that_reached_quickbooks(make_client):
    responses.get(f"{API}/invoice/1", status=401, json=gateway_401())
    responses.get(f"{API}/invoice/1", json={"Invoice": {"Id": "1"}})
    responses.get(f"{API}/invoice/2", status=503, body="")
    responses.get(f"{API}/invoice/2", status=429, body="")
    responses.get(f"{API}/invoice/2", json={"Invoice": {"Id": "2"}})
    responses.get(f"{API}/invoice/3", body=requests.ReadTimeout("read timed out"))
    responses.get(
        f"{API}/invoice/4",
        body=requests.ConnectionError(NewConnectionError(None, "refused")),
    )
    client = make_client(refresh_access_token=lambda: NEW_TOKEN, max_retries=2)

    client.read("Invoice", "1")  # refused token, then the same request again: 2
    client.read("Invoice", "2")  # two retries: 3
    with pytest.raises(ConnectionFailedError):
        client.read("Invoice", "3")  # sent, never answered, retried twice: 3
    with pytest.raises(ConnectionFailedError):
        client.read("Invoice", "4")  # the connection never opened: 0

    assert client.requests_sent == 8
    assert client.requests_sent == sum(
        1 for call in responses.calls if "/invoice/4" not in call.request.url
    )


# --- the backend: writes -------------------------------------------------------------------


def _created(body: dict, n: int) -> dict:
    return {"Invoice": {"Id": str(n), "SyncToken": "0", **body}}


def _limited_client(make_client, *, batches: int, **kwargs):
    """A client whose limiter allows ``batches`` batch requests a minute, on a fake clock."""
    clock = FakeClock(start=MINUTE)
    limiter = RealmLimiter(
        REALM, batches_per_minute=batches, clock=clock, sleep=clock.sleep, max_wait=0
    )
    return make_client(limiter=limiter, **kwargs)


def _no_batch_left(make_client, **kwargs):
    """A client whose limiter's batch budget another worker has just used up."""
    client = _limited_client(make_client, batches=1, **kwargs)
    assert client.limiter.try_batch()
    return client


@responses.activate
def test_past_the_batch_budget_the_writes_go_one_request_each(make_client):
    responses.post(
        f"{API}/batch",
        json={"BatchItemResponse": [{"bId": f"bid{n}", "Invoice": {"Id": str(n)}} for n in (0, 1)]},
    )
    for n in range(3):
        responses.post(f"{API}/invoice", json=_created({"DocNumber": f"S-{n}"}, 10 + n))
    backend = QuickBooksBackend(_limited_client(make_client, batches=1))
    writes = [("create", {"DocNumber": f"S-{n}"}) for n in range(3)]

    first = backend.new_request_id()
    backend.write_batch("Invoice", writes[:2], request_id=first)
    second = backend.new_request_id()
    results = backend.write_batch("Invoice", writes, request_id=second)

    assert not first.startswith(SINGLE_WRITES)
    assert second.startswith(SINGLE_WRITES) and len(second) <= 32
    assert [r["DocNumber"] for r in results] == ["S-0", "S-1", "S-2"]
    singles = [call for call in responses.calls if call.request.url.startswith(f"{API}/invoice")]
    assert [params(call)["requestid"] for call in singles] == [f"{second}-{n}" for n in range(3)]
    assert all(len(params(call)["requestid"]) <= 50 for call in singles)
    assert backend.api_calls == 4


@responses.activate
def test_a_replay_sends_each_write_the_way_it_first_went(make_client):
    """The requestid a binding keeps says how its write went; a replay of a write sent alone
    is sent alone again with the same requestid, one sent in a batch goes in a batch again."""
    responses.post(f"{API}/invoice", json=_created({}, 7))
    responses.post(f"{API}/batch", json={"BatchItemResponse": [{"bId": "bid4", "Invoice": {}}]})
    backend = QuickBooksBackend(_limited_client(make_client, batches=1))
    assert backend.new_request_id()  # the one batch ticket
    single = backend.new_request_id()

    request_id, position = parse_batch_ref(batch_ref(single, 3))
    backend.write_batch("Invoice", [("create", {})], request_id=request_id, positions=[position])
    batch_id = "0123456789abcdef0123456789abcdef"
    backend.client.limiter.clock.now += 120  # a batch ticket is free again
    backend.write_batch("Invoice", [("create", {})], request_id=batch_id, positions=[4])

    assert params(responses.calls[0])["requestid"] == f"{single}-3"
    assert params(responses.calls[1])["requestid"] == f"{batch_id}-0"
    assert responses.calls[1].request.url.startswith(f"{API}/batch")


@responses.activate
def test_one_request_each_a_lost_answer_is_that_writes_and_the_rest_wait(make_client):
    responses.post(f"{API}/invoice", json=_created({}, 1))
    responses.post(f"{API}/invoice", body=requests.ReadTimeout("no answer"))
    backend = QuickBooksBackend(_no_batch_left(make_client, max_retries=0))
    request_id = backend.new_request_id()

    results = backend.write_batch("Invoice", [("create", {})] * 4, request_id=request_id)

    assert results[0]["Id"] == "1"
    assert isinstance(results[1], ConnectionFailedError) and results[1].uncertain
    for unsent in results[2:]:
        assert isinstance(unsent, ConnectionFailedError) and not unsent.uncertain
    assert len(responses.calls) == 2


@responses.activate
def test_one_request_each_a_writes_own_fault_does_not_stop_the_others(make_client):
    responses.post(f"{API}/invoice", status=400, json=fault("6140", "Duplicate Document Number"))
    responses.post(f"{API}/invoice", json=_created({}, 2))
    backend = QuickBooksBackend(_no_batch_left(make_client))

    results = backend.write_batch(
        "Invoice", [("create", {}), ("create", {})], request_id=backend.new_request_id()
    )

    assert isinstance(results[0], QBOError) and results[0].code == "6140"
    assert results[1]["Id"] == "2"


# --- the backend: name look-ups ------------------------------------------------------------


def _query_answer(entity: str, names: list[str]) -> dict:
    rows = [{"Id": str(n), "DisplayName": name} for n, name in enumerate(names, 1)]
    return {"QueryResponse": {entity: rows} if rows else {}}


@responses.activate
def test_names_are_looked_up_with_one_in_query(make_client):
    names = ["Amy's Bird Sanctuary", "back\\slash", " Dylan Sollfrank ", "Nobody"]
    responses.get(
        f"{API}/query",
        json=_query_answer("Customer", ["amy's bird sanctuary", "Dylan Sollfrank", "Other"]),
    )
    backend = QuickBooksBackend(make_client())

    found, refused = backend.find_by_names("Customer", "DisplayName", names)

    assert len(responses.calls) == backend.api_calls == 1
    assert params(responses.calls[0])["query"] == (
        "SELECT * FROM Customer WHERE DisplayName IN ('Amy\\'s Bird Sanctuary', "
        "'back\\\\slash', 'Dylan Sollfrank', 'Nobody') MAXRESULTS 1000"
    )
    assert set(found) == {"amy's bird sanctuary", "dylan sollfrank"}
    assert refused == {}


@responses.activate
def test_many_names_go_as_in_queries_in_one_batch(make_client):
    names = [f"Customer {n:03}" for n in range(250)]
    responses.post(
        f"{API}/batch",
        json={
            "BatchItemResponse": [
                {
                    "bId": f"bid{n}",
                    "QueryResponse": {"Customer": [{"DisplayName": names[n * 100]}]},
                }
                for n in range(3)
            ]
        },
    )
    backend = QuickBooksBackend(make_client())

    found, _refused = backend.find_by_names("Customer", "DisplayName", names)

    assert backend.api_calls == 1
    batch = json.loads(responses.calls[0].request.body)["BatchItemRequest"]
    statements = [item["Query"] for item in batch]
    assert [s.count("'Customer ") for s in statements] == [100, 100, 50]
    assert set(found) == {"customer 000", "customer 100", "customer 200"}


@responses.activate
def test_without_a_free_batch_each_in_query_is_its_own_request(make_client):
    names = [f"Customer {n:03}" for n in range(150)]
    responses.get(f"{API}/query", json=_query_answer("Customer", names[:1]))
    responses.get(f"{API}/query", json=_query_answer("Customer", names[149:]))
    backend = QuickBooksBackend(_no_batch_left(make_client))

    found, _refused = backend.find_by_names("Customer", "DisplayName", names)

    assert [call.request.method for call in responses.calls] == ["GET", "GET"]
    assert set(found) == {"customer 000", "customer 149"}


@responses.activate
def test_a_refused_in_query_is_asked_again_one_name_at_a_time(make_client):
    responses.get(f"{API}/query", status=400, json=fault("4000", "Error parsing query"))
    responses.post(
        f"{API}/batch",
        json={
            "BatchItemResponse": [
                {"bId": "bid0", "QueryResponse": {"Customer": [{"DisplayName": "Bayside"}]}},
                {"bId": "bid1", "Fault": fault("4000", "Error parsing query")["Fault"]},
                {"bId": "bid2", "QueryResponse": {}},
            ]
        },
    )
    backend = QuickBooksBackend(make_client())

    found, refused = backend.find_by_names("Customer", "DisplayName", ["Bayside", "Odd", "Zed"])

    assert set(found) == {"bayside"}
    assert set(refused) == {"odd"} and refused["odd"].code == "4000"
    batch = json.loads(responses.calls[1].request.body)["BatchItemRequest"]
    assert [item["Query"] for item in batch] == [
        "SELECT * FROM Customer WHERE DisplayName = 'Bayside'",
        "SELECT * FROM Customer WHERE DisplayName = 'Odd'",
        "SELECT * FROM Customer WHERE DisplayName = 'Zed'",
    ]
    assert backend.api_calls == 2


@responses.activate
def test_a_look_up_quickbooks_cannot_answer_now_raises(make_client):
    responses.get(f"{API}/query", status=503, body="")
    backend = QuickBooksBackend(make_client(max_retries=0))

    with pytest.raises(QBOError):
        backend.find_by_names("Customer", "DisplayName", ["Bayside"])
