"""OAuth 2.0 and OpenID endpoints, driven over HTTP as a client written to Intuit's docs."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from .conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, Qbo

ACCOUNTING = "com.intuit.quickbooks.accounting"


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[dict] = []
        self.buttons: list[dict] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input":
            self.inputs.append(attrs)
        elif tag == "button":
            self.buttons.append(attrs)
        elif tag == "script" or any(name.startswith("on") for name in attrs):
            self.scripts += 1


def authorize_params(**extra) -> dict:
    return {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "scope": f"{ACCOUNTING} openid email",
        "redirect_uri": REDIRECT_URI,
        "state": "st4te-xyz",
        **extra,
    }


def consent(base_url: str, action: str = "connect", realm: str | None = None, **extra):
    """Fetch the consent page, then submit its form like a browser would."""
    page = requests.get(f"{base_url}/connect/oauth2", params=authorize_params(**extra), timeout=5)
    assert page.status_code == 200
    parser = _FormParser()
    parser.feed(page.text)
    form = {i["name"]: i.get("value", "") for i in parser.inputs if i.get("type") == "hidden"}
    radios = [i["value"] for i in parser.inputs if i.get("type") == "radio"]
    form["realm_id"] = realm or radios[0]
    form["action"] = action
    return requests.post(f"{base_url}/connect/oauth2", data=form, allow_redirects=False, timeout=5)


def exchange(base_url: str, code: str, redirect_uri: str = REDIRECT_URI, auth=None, **extra):
    return requests.post(
        f"{base_url}/oauth2/v1/tokens/bearer",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
        auth=(CLIENT_ID, CLIENT_SECRET) if auth is None else auth,
        headers={"Accept": "application/json", **extra},
        timeout=5,
    )


def refresh(base_url: str, token: str, auth=(CLIENT_ID, CLIENT_SECRET)):
    return requests.post(
        f"{base_url}/oauth2/v1/tokens/bearer",
        data={"grant_type": "refresh_token", "refresh_token": token},
        auth=auth,
        headers={"Accept": "application/json"},
        timeout=5,
    )


def connect(base_url: str, realm: str | None = None) -> tuple[dict, str]:
    redirect = consent(base_url, realm=realm)
    query = parse_qs(urlsplit(redirect.headers["Location"]).query)
    tokens = exchange(base_url, query["code"][0])
    assert tokens.status_code == 200, tokens.text
    return tokens.json(), query["realmId"][0]


@pytest.mark.parametrize(
    "path",
    ["/.well-known/openid_sandbox_configuration/", "/.well-known/openid_configuration/"],
)
def test_discovery_points_at_the_emulator(emulator, path):
    doc = requests.get(emulator.base_url + path, timeout=5).json()
    base = emulator.base_url
    assert doc["authorization_endpoint"] == f"{base}/connect/oauth2"
    assert doc["token_endpoint"] == f"{base}/oauth2/v1/tokens/bearer"
    assert doc["revocation_endpoint"] == f"{base}/v2/oauth2/tokens/revoke"
    assert doc["userinfo_endpoint"] == f"{base}/v1/openid_connect/userinfo"
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert doc["response_types_supported"] == ["code"]


def test_consent_page_lists_companies_with_connect_and_cancel_and_no_script(emulator):
    page = requests.get(f"{emulator.base_url}/connect/oauth2", params=authorize_params(), timeout=5)
    assert page.headers["Content-Type"].startswith("text/html")
    parser = _FormParser()
    parser.feed(page.text)
    radios = [i["value"] for i in parser.inputs if i.get("type") == "radio"]
    assert radios == emulator.realm_ids
    assert {b.get("value") for b in parser.buttons} == {"connect", "cancel"}
    assert parser.scripts == 0
    assert "Craig" in page.text or emulator.app.companies[0][1] in page.text


def test_connect_redirects_with_code_state_and_realm(emulator):
    second = emulator.realm_ids[1]
    response = consent(emulator.base_url, realm=second)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["st4te-xyz"]
    assert query["realmId"] == [second]
    assert len(query["code"][0]) <= 512


def test_cancel_redirects_with_access_denied(emulator):
    response = consent(emulator.base_url, action="cancel")
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query == {"error": ["access_denied"], "state": ["st4te-xyz"]}


def test_unregistered_redirect_uri_shows_an_error_page_without_redirect(emulator):
    params = authorize_params(redirect_uri="https://evil.example/cb")
    response = requests.get(
        f"{emulator.base_url}/connect/oauth2", params=params, allow_redirects=False, timeout=5
    )
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "redirect_uri" in response.text


def test_code_exchange_returns_intuit_token_response(emulator):
    tokens, realm = connect(emulator.base_url)
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["x_refresh_token_expires_in"] == 8726400
    assert tokens["refresh_token"].startswith("AB11")
    assert tokens["access_token"].startswith("eyJ")
    assert tokens["id_token"].count(".") == 2  # openid was requested
    qbo = Qbo(emulator, realm, tokens["access_token"])
    assert qbo.get(f"companyinfo/{realm}").status_code == 200


def test_code_is_single_use(emulator):
    redirect = consent(emulator.base_url)
    code = parse_qs(urlsplit(redirect.headers["Location"]).query)["code"][0]
    assert exchange(emulator.base_url, code).status_code == 200
    again = exchange(emulator.base_url, code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_code_expires_after_ten_minutes(make_emulator):
    emu = make_emulator()
    redirect = consent(emu.base_url)
    code = parse_qs(urlsplit(redirect.headers["Location"]).query)["code"][0]
    emu.advance_clock(601)
    assert exchange(emu.base_url, code).json() == {"error": "invalid_grant"}


def test_code_exchange_with_another_redirect_uri_is_invalid_grant(emulator):
    redirect = consent(emulator.base_url)
    code = parse_qs(urlsplit(redirect.headers["Location"]).query)["code"][0]
    response = exchange(emulator.base_url, code, redirect_uri="http://localhost:8000/other")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_wrong_client_secret_is_invalid_client(emulator):
    redirect = consent(emulator.base_url)
    code = parse_qs(urlsplit(redirect.headers["Location"]).query)["code"][0]
    response = exchange(emulator.base_url, code, auth=(CLIENT_ID, "wrong"))
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client"}
    assert response.headers["intuit_tid"]


def test_client_secret_post_is_accepted(emulator):
    redirect = consent(emulator.base_url)
    code = parse_qs(urlsplit(redirect.headers["Location"]).query)["code"][0]
    response = requests.post(
        f"{emulator.base_url}/oauth2/v1/tokens/bearer",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
        timeout=5,
    )
    assert response.status_code == 200


def test_refresh_within_a_day_returns_the_same_refresh_token(make_emulator):
    emu = make_emulator()
    tokens, _ = connect(emu.base_url)
    emu.advance_clock(3600 * 5)
    again = refresh(emu.base_url, tokens["refresh_token"]).json()
    assert again["refresh_token"] == tokens["refresh_token"]
    assert again["access_token"] != tokens["access_token"]
    assert abs(again["x_refresh_token_expires_in"] - (8726400 - 3600 * 5)) <= 2


def test_refresh_after_a_day_rotates_and_the_old_token_dies(make_emulator):
    emu = make_emulator()
    tokens, _ = connect(emu.base_url)
    emu.advance_clock(86400 + 1)
    rotated = refresh(emu.base_url, tokens["refresh_token"]).json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert rotated["x_refresh_token_expires_in"] == 8726400
    stale = refresh(emu.base_url, tokens["refresh_token"])
    assert stale.status_code == 400
    assert stale.json()["error"] == "invalid_grant"
    assert refresh(emu.base_url, rotated["refresh_token"]).status_code == 200


def test_rotation_interval_zero_rotates_every_refresh(make_emulator):
    emu = make_emulator(refresh_rotation_seconds=0)
    tokens, _ = connect(emu.base_url)
    first = refresh(emu.base_url, tokens["refresh_token"]).json()
    second = refresh(emu.base_url, first["refresh_token"]).json()
    assert len({tokens["refresh_token"], first["refresh_token"], second["refresh_token"]}) == 3


def test_refresh_token_expires_after_about_100_days(make_emulator):
    emu = make_emulator()
    tokens, _ = connect(emu.base_url)
    emu.advance_clock(8726400)
    response = refresh(emu.base_url, tokens["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_refresh_with_wrong_credentials_is_invalid_client(emulator):
    tokens, _ = connect(emulator.base_url)
    response = refresh(emulator.base_url, tokens["refresh_token"], auth=("x", "y"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_hard_expiry_header_adds_the_five_year_cap(emulator):
    redirect = consent(emulator.base_url)
    code = parse_qs(urlsplit(redirect.headers["Location"]).query)["code"][0]
    tokens = exchange(
        emulator.base_url, code, **{"x-include-refresh-token-hard-expires-in": "true"}
    ).json()
    assert abs(tokens["x_refresh_token_hard_expires_in"] - 5 * 365 * 86400) <= 2


def _assert_gateway_401(response: requests.Response, detail: str) -> None:
    assert response.status_code == 401
    body = response.json()
    error = body["fault"]["error"][0]
    assert body["fault"]["type"] == "AUTHENTICATION"
    assert error["code"] == "3200"
    assert error["message"] == "message=AuthenticationFailed; errorCode=003200; statusCode=401"
    assert re.search(detail, error["detail"])
    assert error["element"] is None
    assert isinstance(body["time"], int)
    assert "Fault" not in body


def test_access_token_expires_after_an_hour(make_emulator):
    emu = make_emulator()
    tokens, realm = connect(emu.base_url)
    qbo = Qbo(emu, realm, tokens["access_token"])
    assert qbo.get("preferences").status_code == 200
    emu.advance_clock(3600)
    _assert_gateway_401(qbo.get("preferences"), r"^Token expired")


def test_missing_and_malformed_tokens_get_the_gateway_401(emulator, realm_id):
    base = f"{emulator.base_url}/v3/company/{realm_id}/preferences"
    _assert_gateway_401(requests.get(base, timeout=5), "Authorization")
    malformed = requests.get(base, headers={"Authorization": "Bearer abc"}, timeout=5)
    _assert_gateway_401(malformed, "^Malformed bearer token")


def test_token_of_another_realm_is_forbidden(emulator):
    first, second = emulator.realm_ids
    token = emulator.tokens(first)["access_token"]
    response = Qbo(emulator, second, token).get("preferences")
    assert response.status_code == 403
    assert response.json()["fault"]["error"][0]["code"] == "3100"


def test_revoke_ends_the_connection(make_emulator):
    emu = make_emulator()
    tokens, realm = connect(emu.base_url)
    response = requests.post(
        f"{emu.base_url}/v2/oauth2/tokens/revoke",
        json={"token": tokens["refresh_token"]},
        auth=(CLIENT_ID, CLIENT_SECRET),
        headers={"Accept": "application/json"},
        timeout=5,
    )
    assert response.status_code == 200
    _assert_gateway_401(Qbo(emu, realm, tokens["access_token"]).get("preferences"), "revoked")
    assert refresh(emu.base_url, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_revoke_requires_client_credentials(emulator):
    response = requests.post(
        f"{emulator.base_url}/v2/oauth2/tokens/revoke", json={"token": "x"}, timeout=5
    )
    assert response.status_code == 401


def test_userinfo_answers_for_an_openid_token(emulator):
    tokens, _ = connect(emulator.base_url)
    response = requests.get(
        f"{emulator.base_url}/v1/openid_connect/userinfo",
        headers={"Authorization": f"Bearer {tokens['access_token']}", "Accept": "application/json"},
        timeout=5,
    )
    body = response.json()
    assert body["sub"]
    assert body["email"] and body["emailVerified"] is True


def test_id_token_is_rs256_and_verifies_with_the_published_jwks(emulator):
    import base64
    import hashlib
    import json

    def decode(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    doc = requests.get(f"{emulator.base_url}/.well-known/openid_configuration/", timeout=5).json()
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    tokens, realm = connect(emulator.base_url)
    header, payload, signature = tokens["id_token"].split(".")
    head = json.loads(decode(header))
    claims = json.loads(decode(payload))
    assert head["alg"] == "RS256"
    assert claims["realmid"] == realm and claims["aud"] == [CLIENT_ID]
    assert claims["iss"] == doc["issuer"]
    keys = requests.get(doc["jwks_uri"], timeout=5).json()["keys"]
    key = next(k for k in keys if k["kid"] == head["kid"])
    n = int.from_bytes(decode(key["n"]), "big")
    e = int.from_bytes(decode(key["e"]), "big")
    recovered = pow(int.from_bytes(decode(signature), "big"), e, n).to_bytes(256, "big")
    digest = hashlib.sha256(f"{header}.{payload}".encode()).digest()
    assert recovered.startswith(b"\x00\x01\xff") and recovered.endswith(digest)
