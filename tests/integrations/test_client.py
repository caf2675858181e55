"""The QBO API client: error mapping, retry rules, token refresh, paging, CDC and batch."""

from __future__ import annotations

import datetime as dt
import json
import logging
import pickle
import re
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from integrations.quickbooks.client import QBOClient, backoff_seconds, quote
from integrations.quickbooks.endpoints import endpoints_for
from integrations.quickbooks.errors import (
    AuthenticationError,
    AuthorizationError,
    ConnectionFailedError,
    DuplicateError,
    NotFoundError,
    QBOError,
    ServiceUnavailableError,
    StaleObjectError,
    ThrottledError,
    ValidationError,
    error_from_response,
)

REALM = "9130357766"
API = f"https://sandbox-quickbooks.api.intuit.com/v3/company/{REALM}"
TOKEN = "eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0..Xk9ZtOqL4k2nF7aQ1pW3sR5tU7vX9yZ0b"
NEW_TOKEN = "eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0..NEWtOqL4k2nF7aQ1pW3sR5tU7vX9yZ1c"
TID = "1-6239ef57-12b393bc6e87cb646d9147e2"

THROTTLE_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="2025-06-01T10:00:00-07:00">'
    '<Fault type="SERVICE"><Error code="3001" element="">'
    "<Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>"
    "<Detail>The request limit was reached.  Try again later</Detail>"
    "</Error></Fault></IntuitResponse>"
)


def fault(code, message="Something went wrong", detail="It went wrong", *, element=None, kind=None):
    return {
        "Fault": {
            "Error": [{"Message": message, "Detail": detail, "code": code, "element": element}],
            "type": kind or "ValidationFault",
        },
        "time": "2017-03-14T11:34:52.874-07:00",
    }


def gateway_401(detail=f"Token expired: {TOKEN}"):
    return {
        "warnings": None,
        "intuitObject": None,
        "fault": {
            "error": [
                {
                    "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                    "detail": detail,
                    "code": "3200",
                    "element": None,
                }
            ],
            "type": "AUTHENTICATION",
        },
        "report": None,
        "queryResponse": [],
        "batchItemResponse": [],
        "attachableResponse": [],
        "syncErrorResponse": None,
        "requestId": None,
        "time": 1533811101733,
        "status": None,
        "cdcresponse": [],
    }


def fake_response(status, body=b"", *, headers=None, reason=None):
    response = requests.Response()
    response.status_code = status
    response._content = body.encode() if isinstance(body, str) else body
    response.headers.update(headers or {})
    response.reason = reason
    return response


def json_response(status, body, **kwargs):
    return fake_response(status, json.dumps(body), headers={"intuit_tid": TID}, **kwargs)


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture
def make_client(sleeps):
    def make(**kwargs):
        options = {
            "realm_id": REALM,
            "access_token_provider": lambda: TOKEN,
            "environment": "sandbox",
            "sleep": sleeps,
            "rng": lambda: 0.5,
        }
        options.update(kwargs)
        return QBOClient(**options)

    return make


def params_of(call):
    return {k: v[0] for k, v in parse_qs(urlsplit(call.request.url).query).items()}


def body_of(call):
    return json.loads(call.request.body)


# --- error mapping -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "kind", "expected"),
    [
        (401, "3200", "AuthenticationFault", AuthenticationError),
        (401, "100", "AuthenticationFault", AuthenticationError),
        (403, "3100", "AuthorizatonFault", AuthorizationError),
        (401, "120", "AuthorizatonFault", AuthorizationError),
        (429, "3001", "SERVICE", ThrottledError),
        (400, "5010", "ValidationFault", StaleObjectError),
        (400, "610", "ValidationFault", NotFoundError),
        (404, None, "ValidationFault", NotFoundError),
        (400, "6240", "ValidationFault", DuplicateError),
        (400, "6140", "ValidationFault", DuplicateError),
        (400, "630", "ValidationFault", DuplicateError),
        (400, "2020", "ValidationFault", ValidationError),
        (400, "6000", "ValidationFault", ValidationError),
        (400, "800", "ValidationFault", ValidationError),
        (500, "10000", "SystemFault", ServiceUnavailableError),
        (503, "10000", "SystemFault", ServiceUnavailableError),
    ],
)
def test_json_fault_maps_to_typed_error(status, code, kind, expected):
    error = error_from_response(json_response(status, fault(code, kind=kind)))

    assert type(error) is expected
    assert error.status == status
    assert error.code == code
    assert error.intuit_tid == TID
    assert error.fault_type == kind
    assert error.retryable is (expected in (ThrottledError, ServiceUnavailableError))
    assert error.user_message


def test_validation_fault_keeps_code_element_message_detail_and_tid():
    body = fault(
        "2020",
        "Required param missing, need to supply the required value for the API",
        "Required parameter Name is missing in the request",
        element="Name",
    )
    error = error_from_response(json_response(400, body))

    assert isinstance(error, ValidationError)
    assert (error.code, error.element) == ("2020", "Name")
    assert error.message.startswith("Required param missing")
    assert error.detail == "Required parameter Name is missing in the request"
    assert error.user_message == (
        "QuickBooks refused this: Required parameter Name is missing in the request"
    )
    assert "code 2020" in str(error) and TID in str(error) and "HTTP 400" in str(error)


def test_several_errors_are_classified_by_the_first():
    body = fault("6240", "Duplicate Name Exists Error", "The name supplied already exists.")
    body["Fault"]["Error"].append({"Message": "Other", "Detail": "x", "code": "2020"})
    error = error_from_response(json_response(400, body))

    assert isinstance(error, DuplicateError)
    assert [e["code"] for e in error.errors] == ["6240", "2020"]
    assert "already uses this name" in error.user_message


def test_gateway_401_lower_case_shape_is_authentication_error_without_the_token():
    error = error_from_response(json_response(401, gateway_401()))

    assert isinstance(error, AuthenticationError)
    assert error.code == "3200"
    assert error.fault_type == "AUTHENTICATION"
    assert error.needs_reconnect
    assert "reconnect" in error.user_message
    assert error.detail.startswith("Token expired:")
    for text in (str(error), repr(error), error.detail, error.user_message):
        assert TOKEN not in text
        assert "Xk9ZtOqL4k2nF7aQ1pW3sR5tU7vX9yZ0b" not in text


def test_redaction_hides_tokens_but_keeps_plain_words():
    malformed = "Malformed bearer token: too short or too long"
    error = error_from_response(json_response(401, gateway_401(detail=malformed)))
    assert error.detail == malformed

    refresh = "AB11589386437nN2Ncg3e5ugHBYmtTtS1dHYhW6GtXyzR0t4T3d"  # real length: 51
    leaked = f"Authorization: Bearer {NEW_TOKEN} was refused; refresh {refresh}"
    error = QBOError(leaked, detail=leaked)
    assert NEW_TOKEN not in str(error)
    assert refresh not in str(error)
    assert "was refused" in str(error)
    assert "Line.SalesItemLineDetail.TaxCodeRef" in str(
        QBOError("Invalid TaxCode", element="Line.SalesItemLineDetail.TaxCodeRef")
    )


def test_xml_throttle_fault_is_throttled_error_with_sixty_second_wait():
    response = fake_response(
        429, THROTTLE_XML, headers={"Content-Type": "application/xml", "intuit_tid": TID}
    )
    error = error_from_response(response)

    assert isinstance(error, ThrottledError)
    assert error.code == "3001"
    assert error.retry_after == 60
    assert error.retryable
    assert error.detail == "The request limit was reached.  Try again later"
    assert error.intuit_tid == TID


def test_old_style_403_throttle_is_still_throttled():
    error = error_from_response(fake_response(403, THROTTLE_XML))
    assert isinstance(error, ThrottledError)


def test_retry_after_header_is_read():
    response = fake_response(429, THROTTLE_XML, headers={"Retry-After": "7"})
    assert error_from_response(response).retry_after == 7


def test_html_502_is_service_unavailable():
    response = fake_response(
        502,
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
        headers={"Content-Type": "text/html", "intuit_tid": TID},
        reason="Bad Gateway",
    )
    error = error_from_response(response)

    assert isinstance(error, ServiceUnavailableError)
    assert error.retryable
    assert error.code is None
    assert error.intuit_tid == TID
    assert str(error).startswith("QuickBooks answered HTTP 502 Bad Gateway")


def test_empty_body_is_classified_by_status():
    assert isinstance(error_from_response(fake_response(404)), NotFoundError)
    assert isinstance(error_from_response(fake_response(503)), ServiceUnavailableError)
    assert isinstance(error_from_response(fake_response(400)), ValidationError)


def test_errors_survive_pickling():
    error = error_from_response(json_response(429, fault("3001", kind="SERVICE")))
    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is ThrottledError
    assert (copy.code, copy.intuit_tid, copy.retry_after) == ("3001", TID, 60)


# --- retry rules -------------------------------------------------------------------------


@responses.activate
def test_get_is_retried_on_503_then_succeeds(make_client, sleeps):
    responses.get(f"{API}/invoice/130", status=503, body="")
    responses.get(f"{API}/invoice/130", json={"Invoice": {"Id": "130", "TotalAmt": 150.25}})

    invoice = make_client().read("Invoice", "130")

    assert invoice == {"Id": "130", "TotalAmt": Decimal("150.25")}
    assert len(responses.calls) == 2
    assert sleeps == [0.5]  # full jitter: rng 0.5 x min(cap, 1 s) for the first retry


@responses.activate
def test_create_is_retried_with_the_same_requestid(make_client):
    responses.post(f"{API}/invoice", status=500, json=fault("10000", kind="SystemFault"))
    responses.post(f"{API}/invoice", body=requests.ReadTimeout("read timed out"))
    responses.post(f"{API}/invoice", json={"Invoice": {"Id": "131", "SyncToken": "0"}})

    created = make_client().create("Invoice", {"CustomerRef": {"value": "1"}})

    assert created == {"Id": "131", "SyncToken": "0"}
    ids = {params_of(call)["requestid"] for call in responses.calls}
    assert len(responses.calls) == 3
    assert len(ids) == 1
    assert re.fullmatch(r"[0-9a-f]{32}", ids.pop())


@responses.activate
def test_failed_create_reports_the_requestid_to_resend_with(make_client):
    responses.post(f"{API}/invoice", body=requests.ReadTimeout("read timed out"))

    with pytest.raises(ConnectionFailedError) as excinfo:
        make_client(max_retries=1).create("Invoice", {"Line": []})

    assert excinfo.value.uncertain
    assert excinfo.value.request_id == params_of(responses.calls[0])["requestid"]
    assert len({params_of(call)["requestid"] for call in responses.calls}) == 1


@responses.activate
def test_write_stays_uncertain_when_a_lost_attempt_is_followed_by_503s(make_client):
    responses.post(f"{API}/invoice", body=requests.ReadTimeout("read timed out"))
    responses.post(f"{API}/invoice", status=503, body="")

    with pytest.raises(ConnectionFailedError) as excinfo:
        make_client(max_retries=2).create("Invoice", {"Line": []})

    assert excinfo.value.uncertain
    assert excinfo.value.status == 503
    assert isinstance(excinfo.value.__cause__, ServiceUnavailableError)
    assert len(responses.calls) == 3


@responses.activate
def test_create_uses_the_given_requestid(make_client):
    responses.post(f"{API}/customer", json={"Customer": {"Id": "58"}})

    make_client().create("Customer", {"DisplayName": "Amy"}, request_id="push-customer-7")

    assert params_of(responses.calls[0])["requestid"] == "push-customer-7"


@responses.activate
def test_write_without_requestid_is_not_retried(make_client, sleeps):
    responses.post(f"{API}/invoice", status=503, body="")

    with pytest.raises(ServiceUnavailableError):
        make_client()._request("POST", f"/v3/company/{REALM}/invoice", json={}, idempotent=False)

    assert len(responses.calls) == 1
    assert sleeps == []


@responses.activate
def test_write_without_requestid_whose_answer_never_came_is_uncertain(make_client, sleeps):
    responses.post(f"{API}/invoice", body=requests.ReadTimeout("read timed out"))

    with pytest.raises(ConnectionFailedError) as excinfo:
        make_client()._request("POST", f"/v3/company/{REALM}/invoice", json={}, idempotent=False)

    assert excinfo.value.uncertain
    assert isinstance(excinfo.value.__cause__, requests.ReadTimeout)
    assert "not yet known whether QuickBooks saved" in excinfo.value.user_message
    assert sleeps == []


@responses.activate
def test_connection_error_on_get_is_retried_and_not_uncertain(make_client, sleeps):
    responses.get(f"{API}/companyinfo/{REALM}", body=requests.ConnectionError("refused"))
    responses.get(f"{API}/companyinfo/{REALM}", json={"CompanyInfo": {"CompanyName": "Craig's"}})

    assert make_client().company_info() == {"CompanyName": "Craig's"}
    assert len(sleeps) == 1


@responses.activate
def test_400_is_never_retried(make_client, sleeps):
    responses.post(f"{API}/item", status=400, json=fault("2020", element="Name"))

    with pytest.raises(ValidationError) as excinfo:
        make_client().create("Item", {"Type": "Service"})

    assert excinfo.value.element == "Name"
    assert len(responses.calls) == 1
    assert sleeps == []


@responses.activate
def test_429_waits_sixty_seconds_then_retries(make_client, sleeps):
    responses.get(f"{API}/query", status=429, body=THROTTLE_XML, content_type="application/xml")
    responses.get(f"{API}/query", json={"QueryResponse": {"totalCount": 3}})

    assert make_client().count("Invoice") == 3
    assert sleeps == [60]


@responses.activate
def test_gives_up_after_max_retries_with_the_last_error(make_client, sleeps):
    for _ in range(3):
        responses.get(f"{API}/preferences", status=503, body="")
    responses.get(
        f"{API}/preferences",
        status=500,
        json=fault("10000", "An application error has occurred", kind="SystemFault"),
        headers={"intuit_tid": "last-tid"},
    )

    with pytest.raises(ServiceUnavailableError) as excinfo:
        make_client(max_retries=3).preferences()

    assert excinfo.value.status == 500
    assert excinfo.value.intuit_tid == "last-tid"
    assert len(responses.calls) == 4
    assert sleeps == [0.5, 1.0, 2.0]  # rng 0.5 x 1, 2, 4 s


def test_backoff_is_exponential_with_full_jitter_and_capped():
    assert [backoff_seconds(n, rng=lambda: 1.0) for n in range(1, 9)] == [
        1,
        2,
        4,
        8,
        16,
        32,
        60,
        60,
    ]
    assert backoff_seconds(3, rng=lambda: 0.0) == 0
    assert backoff_seconds(3, rng=lambda: 0.25, base=2) == 2
    assert backoff_seconds(1, retry_after=60, rng=lambda: 0.0) == 60
    assert backoff_seconds(1, retry_after=600) == 60


# --- token refresh on 401 ----------------------------------------------------------------


@responses.activate
def test_401_refreshes_the_token_once_and_retries(make_client, sleeps):
    responses.get(f"{API}/invoice/1", status=401, json=gateway_401())
    responses.get(f"{API}/invoice/1", json={"Invoice": {"Id": "1"}})
    refreshes = []

    def refresh():
        refreshes.append(1)
        return NEW_TOKEN

    assert make_client(refresh_access_token=refresh).read("Invoice", "1") == {"Id": "1"}

    assert len(refreshes) == 1
    auth = [call.request.headers["Authorization"] for call in responses.calls]
    assert auth == [f"Bearer {TOKEN}", f"Bearer {NEW_TOKEN}"]
    assert sleeps == []


@responses.activate
def test_second_401_after_refresh_is_authentication_error(make_client):
    responses.get(f"{API}/invoice/1", status=401, json=gateway_401())
    refreshes = []

    def refresh():
        refreshes.append(1)
        return NEW_TOKEN

    with pytest.raises(AuthenticationError):
        make_client(refresh_access_token=refresh).read("Invoice", "1")

    assert len(refreshes) == 1
    assert len(responses.calls) == 2


@responses.activate
def test_401_without_refresh_callback_raises_at_once(make_client):
    responses.get(f"{API}/invoice/1", status=401, json=gateway_401())

    with pytest.raises(AuthenticationError):
        make_client().read("Invoice", "1")
    assert len(responses.calls) == 1


@responses.activate
def test_a_pinned_token_is_for_the_other_threads_the_pinning_one_refreshes(make_client):
    """Inside ``pinned_token`` the sending threads use the pinned token and never refresh it
    (a refresh writes to the database); the thread that pinned it reads and refreshes its
    own, as outside the block."""
    responses.get(f"{API}/invoice/1", status=401, json=gateway_401())
    responses.get(f"{API}/invoice/1", json={"Invoice": {"Id": "1"}})
    responses.get(f"{API}/invoice/1", status=401, json=gateway_401())
    refreshes = []

    def refresh():
        refreshes.append(1)
        return NEW_TOKEN

    client = make_client(refresh_access_token=refresh)
    with client.pinned_token():
        assert client.read("Invoice", "1") == {"Id": "1"}  # refreshed here
        with ThreadPoolExecutor(1) as pool:
            failed = pool.submit(client.read, "Invoice", "1").exception()
            pinned_there = pool.submit(client.uses_pinned_token).result()
        assert not client.uses_pinned_token() and pinned_there

    assert isinstance(failed, AuthenticationError)
    assert len(refreshes) == 1
    assert len(responses.calls) == 3


# --- verbs -------------------------------------------------------------------------------


@responses.activate
def test_every_call_carries_minorversion_json_headers_and_timeout(make_client, settings):
    settings.QBO_MINOR_VERSION = 75
    responses.get(f"{API}/invoice/1", json={"Invoice": {"Id": "1"}})
    responses.post(f"{API}/invoice", json={"Invoice": {"Id": "1"}})
    responses.get(f"{API}/query", json={"QueryResponse": {}})
    responses.get(f"{API}/cdc", json={"CDCResponse": [{"QueryResponse": [{}]}]})
    responses.post(f"{API}/batch", json={"BatchItemResponse": []})
    responses.get(f"{API}/companyinfo/{REALM}", json={"CompanyInfo": {}})
    responses.get(f"{API}/preferences", json={"Preferences": {}})
    client = make_client()

    client.read("Invoice", "1")
    client.create("Invoice", {"Line": []})
    client.update("Invoice", {"Id": "1", "SyncToken": "0"})
    client.delete("Invoice", "1", "1")
    client.void("Invoice", "1", "2")
    client.query("SELECT * FROM Invoice")
    client.cdc(["Invoice"], dt.datetime(2025, 6, 1, tzinfo=dt.UTC))
    client.batch([{"query": "SELECT * FROM Item"}])
    client.company_info()
    client.preferences()

    assert len(responses.calls) == 10
    for call in responses.calls:
        assert params_of(call)["minorversion"] == "75"
        assert call.request.headers["Accept"] == "application/json"
        assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
        if call.request.method == "POST":
            assert call.request.headers["Content-Type"] == "application/json"
            assert params_of(call)["requestid"]


@responses.activate
def test_minor_version_can_be_set_per_client(make_client):
    responses.get(f"{API}/preferences", json={"Preferences": {}})
    make_client(minor_version=76).preferences()
    assert params_of(responses.calls[0])["minorversion"] == "76"


@responses.activate
def test_update_is_sparse_and_sends_decimal_amounts(make_client):
    responses.post(f"{API}/invoice", json={"Invoice": {"Id": "5", "SyncToken": "3"}})

    make_client().update(
        "Invoice", {"Id": "5", "SyncToken": "2", "Line": [{"Amount": Decimal("100.10")}]}
    )

    assert body_of(responses.calls[0]) == {
        "Id": "5",
        "SyncToken": "2",
        "Line": [{"Amount": 100.1}],
        "sparse": True,
    }
    assert "operation" not in params_of(responses.calls[0])


def test_update_without_synctoken_is_refused(make_client):
    with pytest.raises(ValueError, match="SyncToken"):
        make_client().update("Invoice", {"Id": "5"})


@responses.activate
def test_delete_and_void_use_the_documented_operations(make_client):
    responses.post(f"{API}/invoice", json={"Invoice": {"Id": "9", "status": "Deleted"}})
    responses.post(f"{API}/payment", json={"Payment": {"Id": "4"}})
    client = make_client()

    assert client.delete("Invoice", "9", "1") == {"Id": "9", "status": "Deleted"}
    client.void("Invoice", "9", "1")
    client.void("Payment", "4", "0")

    delete, void_invoice, void_payment = responses.calls
    assert params_of(delete)["operation"] == "delete"
    assert body_of(delete) == {"Id": "9", "SyncToken": "1"}
    assert params_of(void_invoice)["operation"] == "void"
    assert body_of(void_invoice) == {"Id": "9", "SyncToken": "1"}
    assert params_of(void_payment)["operation"] == "update"
    assert params_of(void_payment)["include"] == "void"
    assert body_of(void_payment) == {"Id": "4", "SyncToken": "0", "sparse": True}


@responses.activate
def test_read_quotes_the_id_into_its_path_segment(make_client):
    responses.get(f"{API}/item/a%2Fb", json={"Item": {"Id": "a/b"}})
    assert make_client().read("Item", "a/b") == {"Id": "a/b"}


@responses.activate
def test_query_all_pages_with_startposition_until_a_short_page(make_client):
    pages = [[{"Id": "1"}, {"Id": "2"}], [{"Id": "3"}, {"Id": "4"}], [{"Id": "5"}]]
    for rows in pages:
        responses.get(f"{API}/query", json={"QueryResponse": {"Customer": rows}})

    rows = list(make_client().query_all("Customer", "Active = true", page_size=2))

    assert [r["Id"] for r in rows] == ["1", "2", "3", "4", "5"]
    statements = [params_of(call)["query"] for call in responses.calls]
    assert statements == [
        f"SELECT * FROM Customer WHERE Active = true ORDERBY Id STARTPOSITION {n} MAXRESULTS 2"
        for n in (1, 3, 5)
    ]


@responses.activate
def test_query_all_stops_on_an_empty_page(make_client):
    responses.get(f"{API}/query", json={"QueryResponse": {"Item": [{"Id": "1"}, {"Id": "2"}]}})
    responses.get(f"{API}/query", json={"QueryResponse": {}})

    assert len(list(make_client().query_all("Item", page_size=2))) == 2
    assert len(responses.calls) == 2


@responses.activate
def test_count_reads_total_count(make_client):
    responses.get(f"{API}/query", json={"QueryResponse": {"totalCount": 5}})

    assert make_client().count("Invoice", "Balance > '0'") == 5
    assert params_of(responses.calls[0])["query"] == (
        "SELECT COUNT(*) FROM Invoice WHERE Balance > '0'"
    )


@responses.activate
def test_cdc_returns_objects_per_entity_including_deleted(make_client):
    responses.get(
        f"{API}/cdc",
        json={
            "CDCResponse": [
                {
                    "QueryResponse": [
                        {
                            "Customer": [{"Id": "1", "SyncToken": "3", "DisplayName": "Amy"}],
                            "startPosition": 1,
                            "maxResults": 1,
                        },
                        {
                            "Invoice": [
                                {
                                    "domain": "QBO",
                                    "status": "Deleted",
                                    "Id": "39",
                                    "MetaData": {"LastUpdatedTime": "2014-12-08T19:36:24-08:00"},
                                }
                            ],
                            "maxResults": 1,
                            "totalCount": 1,
                        },
                    ]
                }
            ],
            "time": "2025-06-02T10:00:00-07:00",
        },
    )
    since = dt.datetime(2025, 6, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=-7)))

    changes = make_client().cdc(["Invoice", "Customer", "Item"], since)

    assert changes["Customer"] == [{"Id": "1", "SyncToken": "3", "DisplayName": "Amy"}]
    assert changes["Invoice"][0]["status"] == "Deleted"
    assert changes["Item"] == []
    params = params_of(responses.calls[0])
    assert params["entities"] == "Invoice,Customer,Item"
    assert params["changedSince"] == "2025-06-01T09:30:00-07:00"


@responses.activate
def test_cdc_with_nothing_changed(make_client):
    responses.get(f"{API}/cdc", json={"CDCResponse": [{"QueryResponse": [{}]}]})
    assert make_client().cdc(["Invoice"], dt.datetime(2025, 6, 1)) == {"Invoice": []}


@responses.activate
def test_batch_chunks_by_thirty_and_matches_answers_by_bid(make_client):
    def answer(request):
        items = json.loads(request.body)["BatchItemRequest"]
        out = []
        for item in reversed(items):  # QBO does not promise the order
            if "Query" in item:
                out.append({"bId": item["bId"], "QueryResponse": {"Item": [{"Id": "1"}]}})
            elif item["Customer"]["DisplayName"] == "Dup":
                out.append(
                    {
                        "bId": item["bId"],
                        "Fault": {
                            "type": "ValidationFault",
                            "Error": [
                                {
                                    "Message": "Duplicate Name Exists Error",
                                    "Detail": "The name supplied already exists.",
                                    "code": "6240",
                                    "element": "",
                                }
                            ],
                        },
                    }
                )
            else:
                name = item["Customer"]["DisplayName"]
                out.append({"bId": item["bId"], "Customer": {"Id": name, "DisplayName": name}})
        return 200, {"intuit_tid": TID}, json.dumps({"BatchItemResponse": out})

    responses.add_callback(responses.POST, f"{API}/batch", callback=answer)
    items = [
        {"operation": "create", "entity": "Customer", "body": {"DisplayName": f"c{n}"}}
        for n in range(31)
    ]
    items[4]["body"]["DisplayName"] = "Dup"
    items[30] = {"query": "SELECT * FROM Item"}

    results = make_client().batch(items, request_id="sync-run-42")

    assert len(responses.calls) == 2
    sent = [body_of(call)["BatchItemRequest"] for call in responses.calls]
    assert [len(chunk) for chunk in sent] == [30, 1]
    for chunk in sent:
        bids = [item["bId"] for item in chunk]
        assert len(set(bids)) == len(bids)
        assert all(len(b) <= 10 for b in bids)
    request_ids = [params_of(call)["requestid"] for call in responses.calls]
    assert request_ids == ["sync-run-42-0", "sync-run-42-1"]
    assert all(len(r) <= 36 for r in request_ids)
    assert results[0] == {"Id": "c0", "DisplayName": "c0"}
    assert results[29] == {"Id": "c29", "DisplayName": "c29"}
    assert isinstance(results[4], DuplicateError)
    assert results[4].code == "6240"
    assert results[30] == {"Item": [{"Id": "1"}]}
    assert sent[0][0] == {"bId": "bid0", "operation": "create", "Customer": {"DisplayName": "c0"}}
    assert sent[1][0] == {"bId": "bid0", "Query": "SELECT * FROM Item"}


@responses.activate
def test_batch_request_is_retried_with_the_same_requestid(make_client):
    responses.post(f"{API}/batch", status=503, body="")
    responses.post(f"{API}/batch", json={"BatchItemResponse": [{"bId": "bid0", "Item": {}}]})

    make_client().batch(
        [{"operation": "update", "entity": "Item", "body": {"Id": "1", "SyncToken": "0"}}]
    )

    first, second = (params_of(call)["requestid"] for call in responses.calls)
    assert first == second
    assert len(first) <= 36
    assert body_of(responses.calls[0])["BatchItemRequest"][0]["Item"]["sparse"] is True


@responses.activate
def test_batch_item_without_answer_is_an_error(make_client):
    responses.post(f"{API}/batch", json={"BatchItemResponse": []})
    [result] = make_client().batch([{"query": "SELECT * FROM Item"}])
    assert isinstance(result, QBOError)


@responses.activate
def test_fault_in_a_200_answer_is_raised(make_client):
    responses.get(f"{API}/invoice/1", json=fault("610", kind="ValidationFault"))
    with pytest.raises(NotFoundError):
        make_client().read("Invoice", "1")


@responses.activate
def test_limiter_wraps_every_attempt(make_client):
    class CountingLimiter:
        def __init__(self):
            self.entered = self.exited = 0

        def __enter__(self):
            self.entered += 1

        def __exit__(self, *exc):
            self.exited += 1

    responses.get(f"{API}/preferences", status=503, body="")
    responses.get(f"{API}/preferences", json={"Preferences": {}})
    limiter = CountingLimiter()

    make_client(limiter=limiter).preferences()

    assert (limiter.entered, limiter.exited) == (2, 2)


# --- quote and secrets ---------------------------------------------------------------------


def test_quote_escapes_apostrophes_and_backslashes():
    assert quote("Amy's Bird Sanctuary") == "'Amy\\'s Bird Sanctuary'"
    name = "Amy's Bird Sanctuary"
    assert f"DisplayName = {quote(name)}" == "DisplayName = 'Amy\\'s Bird Sanctuary'"
    assert quote("back\\slash'") == "'back\\\\slash\\''"
    assert quote("") == "''"
    with pytest.raises(TypeError):
        quote(5)


@responses.activate
def test_no_token_in_errors_or_logs(make_client, caplog):
    caplog.set_level(logging.DEBUG)
    responses.get(f"{API}/invoice/1", status=401, json=gateway_401())
    responses.get(f"{API}/invoice/2", status=503, body="")
    client = make_client(refresh_access_token=lambda: NEW_TOKEN, max_retries=1)

    with pytest.raises(AuthenticationError) as auth:
        client.read("Invoice", "1")
    with pytest.raises(ServiceUnavailableError) as unavailable:
        client.read("Invoice", "2")

    texts = [caplog.text, repr(client)]
    for error in (auth.value, unavailable.value):
        texts += [str(error), repr(error), error.user_message, repr(error.__dict__)]
    for record in caplog.records:
        texts.append(repr(record.__dict__))
    assert any("qbo.request.failed" in t for t in texts)
    assert any("qbo.request.retry" in t for t in texts)
    for text in texts:
        for secret in (TOKEN, NEW_TOKEN, "Xk9ZtOqL4k2nF7aQ1pW3sR5tU7vX9yZ0b"):
            assert secret not in text


@responses.activate
def test_retry_and_failure_are_logged_with_structured_extra(make_client, caplog):
    caplog.set_level(logging.INFO, logger="integrations.quickbooks")
    responses.get(f"{API}/invoice/2", status=503, body="", headers={"intuit_tid": TID})

    with pytest.raises(ServiceUnavailableError):
        make_client(max_retries=1).read("Invoice", "2")

    retry, failed = (r for r in caplog.records if r.msg.startswith("qbo.request."))
    assert retry.msg == "qbo.request.retry"
    assert (retry.realm, retry.status, retry.intuit_tid, retry.attempt) == (REALM, 503, TID, 1)
    assert failed.msg == "qbo.request.failed"
    assert failed.attempts == 2


# --- endpoints ---------------------------------------------------------------------------


def test_endpoints_per_environment(settings):
    settings.QBO_EMULATOR_URL = "http://127.0.0.1:9999/"
    production = endpoints_for("production")
    sandbox = endpoints_for("sandbox")
    emulator = endpoints_for("emulator")

    assert production.api_base == "https://quickbooks.api.intuit.com"
    assert sandbox.api_base == "https://sandbox-quickbooks.api.intuit.com"
    assert emulator.api_base == "http://127.0.0.1:9999"
    assert production.token_url == "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
    assert sandbox.token_url == production.token_url
    assert emulator.authorize_url == "http://127.0.0.1:9999/connect/oauth2"
    assert emulator.token_url == "http://127.0.0.1:9999/oauth2/v1/tokens/bearer"
    assert emulator.revoke_url == "http://127.0.0.1:9999/v2/oauth2/tokens/revoke"
    assert emulator.userinfo_url == "http://127.0.0.1:9999/v1/openid_connect/userinfo"
    assert sandbox.userinfo_url.startswith("https://sandbox-accounts.platform.intuit.com/")
    assert production.invoice_web_url(REALM, "130") == (
        "https://app.qbo.intuit.com/app/invoice?txnId=130"
    )
    assert sandbox.invoice_web_url(REALM, "130") == (
        "https://app.sandbox.qbo.intuit.com/app/invoice?txnId=130"
    )
    assert emulator.invoice_web_url(REALM, "130") == (
        f"http://127.0.0.1:9999/app/invoice?txnId=130&realmId={REALM}"
    )


def test_endpoints_follow_the_setting_at_call_time(settings):
    settings.QBO_ENVIRONMENT = "sandbox"
    assert endpoints_for().environment == "sandbox"
    settings.QBO_ENVIRONMENT = "production"
    assert endpoints_for().api_base == "https://quickbooks.api.intuit.com"
    with pytest.raises(ValueError, match="Unknown QuickBooks environment"):
        endpoints_for("staging")
