"""Intuit OAuth 2.0 over HTTP: authorize URL, code exchange, refresh, revoke and their errors."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from integrations.quickbooks import oauth
from integrations.quickbooks.errors import (
    ConnectionFailedError,
    InvalidGrantError,
    OAuthError,
    ServiceUnavailableError,
)

TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
REVOKE_URL = "https://developer.api.intuit.com/v2/oauth2/tokens/revoke"
ACCESS = "eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0..accessAccess0123456789abcdef"
REFRESH = "AB11589386437nN2Ncg3e5ugHBYmtTtS1dHYhW6GtXyzR0t4T3d"
ROTATED = "AB11589472837pQ2Ncg3e5ugHBYmtTtS1dHYhW6GtXyzR0t4ROT"
NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _intuit_app(settings):
    settings.QBO_ENVIRONMENT = "sandbox"
    settings.QBO_CLIENT_ID = "client-id-123"
    settings.QBO_CLIENT_SECRET = "client-secret-456"
    settings.QBO_REDIRECT_URI = "https://ledgerlink.example/integrations/quickbooks/callback/"


def token_answer(refresh_token=REFRESH, **extra):
    return {
        "token_type": "bearer",
        "expires_in": 3600,
        "refresh_token": refresh_token,
        "x_refresh_token_expires_in": 8726400,
        "access_token": ACCESS,
        **extra,
    }


def form_of(call):
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


def assert_client_auth(call):
    expected = base64.b64encode(b"client-id-123:client-secret-456").decode()
    headers = call.request.headers
    assert headers["Authorization"] == f"Basic {expected}"
    assert headers["Accept"] == "application/json"


def test_authorize_url_carries_client_scope_redirect_and_state():
    url = oauth.authorize_url(state="s7Jq", scopes=("com.intuit.quickbooks.accounting", "openid"))

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "https://appcenter.intuit.com/connect/oauth2"
    )
    assert "scope=com.intuit.quickbooks.accounting%20openid" in parts.query
    assert {k: v[0] for k, v in parse_qs(parts.query).items()} == {
        "client_id": "client-id-123",
        "response_type": "code",
        "scope": "com.intuit.quickbooks.accounting openid",
        "redirect_uri": "https://ledgerlink.example/integrations/quickbooks/callback/",
        "state": "s7Jq",
    }


def test_authorize_url_for_the_emulator(settings):
    settings.QBO_EMULATOR_URL = "http://127.0.0.1:8765"
    url = oauth.authorize_url(state="x", environment="emulator")
    assert url.startswith("http://127.0.0.1:8765/connect/oauth2?client_id=client-id-123&")


@responses.activate
def test_exchange_code_posts_the_form_with_basic_auth():
    responses.post(
        TOKEN_URL,
        json=token_answer(id_token="id.token.value", x_refresh_token_hard_expires_in=157680000),
    )

    tokens = oauth.exchange_code("code-abc", now=NOW)

    call = responses.calls[0]
    assert_client_auth(call)
    assert call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert call.request.headers["x-include-refresh-token-hard-expires-in"] == "true"
    assert form_of(call) == {
        "grant_type": "authorization_code",
        "code": "code-abc",
        "redirect_uri": "https://ledgerlink.example/integrations/quickbooks/callback/",
    }
    assert (tokens.access_token, tokens.refresh_token) == (ACCESS, REFRESH)
    assert tokens.id_token == "id.token.value"
    assert tokens.access_expires_at == NOW + dt.timedelta(hours=1)
    assert tokens.refresh_expires_at == NOW + dt.timedelta(days=101)
    assert tokens.refresh_hard_expires_at == NOW + dt.timedelta(days=1825)


def test_token_set_repr_hides_the_tokens():
    tokens = oauth.TokenSet.from_response(token_answer(id_token="secret.id.token"), now=NOW)

    for text in (repr(tokens), str(tokens), f"{tokens}"):
        assert ACCESS not in text
        assert REFRESH not in text
        assert "secret.id.token" not in text
        assert "expires_in=3600" in text


@responses.activate
def test_refresh_returns_the_rotated_refresh_token():
    responses.post(TOKEN_URL, json=token_answer(refresh_token=ROTATED))

    tokens = oauth.refresh(REFRESH, now=NOW)

    assert_client_auth(responses.calls[0])
    assert form_of(responses.calls[0]) == {"grant_type": "refresh_token", "refresh_token": REFRESH}
    assert tokens.refresh_token == ROTATED
    assert tokens.refresh_hard_expires_at is None


@responses.activate
def test_refresh_uses_the_given_session():
    responses.post(TOKEN_URL, json=token_answer())
    session = requests.Session()
    session.headers["X-Probe"] = "1"

    oauth.refresh(REFRESH, session=session)

    assert responses.calls[0].request.headers["X-Probe"] == "1"


@responses.activate
def test_revoke_posts_the_token_as_json():
    responses.post(REVOKE_URL, status=200, body="")

    assert oauth.revoke(REFRESH) is None

    call = responses.calls[0]
    assert_client_auth(call)
    assert call.request.headers["Content-Type"] == "application/json"
    assert json.loads(call.request.body) == {"token": REFRESH}


@responses.activate
def test_invalid_grant_means_reconnect(caplog):
    caplog.set_level(logging.DEBUG)
    responses.post(
        TOKEN_URL,
        status=400,
        json={"error": "invalid_grant", "error_description": "Incorrect or invalid refresh token"},
        headers={"intuit_tid": "1-abc"},
    )

    with pytest.raises(InvalidGrantError) as excinfo:
        oauth.refresh(REFRESH)

    error = excinfo.value
    assert error.needs_reconnect
    assert error.error == "invalid_grant"
    assert error.error_description == "Incorrect or invalid refresh token"
    assert (error.status, error.intuit_tid) == (400, "1-abc")
    assert "reconnect" in error.user_message
    for text in (str(error), repr(error), error.user_message, caplog.text):
        assert REFRESH not in text


@responses.activate
def test_invalid_client_tells_to_check_the_app_keys():
    responses.post(TOKEN_URL, status=401, json={"error": "invalid_client"})

    with pytest.raises(OAuthError) as excinfo:
        oauth.exchange_code("code-abc")

    error = excinfo.value
    assert not isinstance(error, InvalidGrantError)
    assert error.error == "invalid_client"
    assert "QBO_CLIENT_ID" in error.user_message
    assert "QBO_CLIENT_SECRET" in error.user_message
    assert "client-secret-456" not in str(error)


@responses.activate
def test_token_server_failure_is_retryable():
    responses.post(TOKEN_URL, status=503, body="<html>down</html>")

    with pytest.raises(ServiceUnavailableError) as excinfo:
        oauth.refresh(REFRESH)
    assert excinfo.value.retryable


@responses.activate
def test_lost_refresh_answer_is_an_uncertain_connection_failure():
    responses.post(TOKEN_URL, body=requests.ReadTimeout("read timed out"))

    with pytest.raises(ConnectionFailedError) as excinfo:
        oauth.refresh(REFRESH)

    assert excinfo.value.uncertain
    assert excinfo.value.retryable
    assert isinstance(excinfo.value.__cause__, requests.ReadTimeout)


@responses.activate
def test_connect_timeout_is_a_certain_connection_failure():
    responses.post(TOKEN_URL, body=requests.ConnectTimeout("connect timed out"))

    with pytest.raises(ConnectionFailedError) as excinfo:
        oauth.exchange_code("code-abc")
    assert not excinfo.value.uncertain


@responses.activate
def test_incomplete_token_answer_is_an_oauth_error():
    responses.post(TOKEN_URL, json={"access_token": ACCESS})

    with pytest.raises(OAuthError) as excinfo:
        oauth.refresh(REFRESH)
    assert ACCESS not in str(excinfo.value)
