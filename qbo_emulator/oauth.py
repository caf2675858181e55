"""Intuit's OAuth 2.0 / OpenID Connect endpoints as the emulator serves them (section 1).

Discovery, the consent page, the token endpoint (authorization_code and refresh_token
grants), revoke and userinfo, plus bearer-token checks for the v3 API.
"""

from __future__ import annotations

import base64
import hmac
import html
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from urllib.parse import urlencode

from . import errors
from .clock import Clock
from .jwt import shared_key
from .wire import Request, Response

ACCESS_TOKEN_SECONDS = 3600
REFRESH_TOKEN_SECONDS = 8726400  # about 100 days, rolling
HARD_EXPIRY_SECONDS = 5 * 365 * 86400  # the five-year cap on accounting-scope tokens
# Intuit documents codes as single use but not their lifetime (UNCONFIRMED): ten minutes,
# the common choice and comfortably longer than any real redirect round trip.
CODE_SECONDS = 600
ROTATION_SECONDS = 86400  # a refresh older than this rotates the refresh token

ACCOUNTING = "com.intuit.quickbooks.accounting"
PAYMENT = "com.intuit.quickbooks.payment"
KNOWN_SCOPES = frozenset(
    {
        ACCOUNTING,
        PAYMENT,
        "openid",
        "profile",
        "email",
        "phone",
        "address",
        "app-foundations.custom-field-definitions",
        "app-foundations.custom-field-definitions.read",
    }
)
# A JWE compact header like the ones on Intuit's access tokens ({"enc":..,"alg":"dir"}).
JWE_HEADER = "eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0"


@dataclass
class Connection:
    """An app's authorisation for one realm; revoking it kills all of its tokens."""

    id: str
    client_id: str
    realm_id: str | None
    scopes: list[str]
    created_at: float
    revoked: bool = False


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    realm_id: str | None
    scopes: list[str]
    issued_at: float
    used: bool = False


@dataclass
class Token:
    token: str
    connection_id: str
    issued_at: float
    expires_at: float
    revoked: bool = False


@dataclass
class OAuthState:
    connections: dict[str, Connection] = field(default_factory=dict)
    codes: dict[str, Code] = field(default_factory=dict)
    access: dict[str, Token] = field(default_factory=dict)
    refresh: dict[str, Token] = field(default_factory=dict)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _oauth_error(error: str, status: int = 400, description: str | None = None) -> Response:
    payload = {"error": error}
    if description:
        payload["error_description"] = description
    return Response.json(payload, status=status)


class OAuthServer:
    """Clients, authorisation codes, connections and tokens, guarded by one lock."""

    def __init__(
        self,
        *,
        clock: Clock,
        client_id: str,
        client_secret: str,
        redirect_uris: list[str],
        companies: list[tuple[str, str]],
        rotation_seconds: float = ROTATION_SECONDS,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_change`` is called after every change of the saved state (codes,
        connections, tokens), under the OAuth lock, so it must not block."""
        self.clock = clock
        self.on_change = on_change
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = list(redirect_uris)
        self.companies = list(companies)
        self.rotation_seconds = rotation_seconds
        self.state = OAuthState()
        self.lock = threading.RLock()
        self.user_sub = "a1b2c3d4-0000-4000-8000-emulatoruser"
        self.signing_key = shared_key()
        self.issuer = "emulator/op/v1"  # replaced by the discovery issuer once it is served

    # -- persistence ------------------------------------------------------------------

    def to_json(self) -> dict:
        with self.lock:
            return {
                "connections": {k: asdict(v) for k, v in self.state.connections.items()},
                "codes": {k: asdict(v) for k, v in self.state.codes.items()},
                "access": {k: asdict(v) for k, v in self.state.access.items()},
                "refresh": {k: asdict(v) for k, v in self.state.refresh.items()},
            }

    def load_json(self, data: dict) -> None:
        with self.lock:
            self.state = OAuthState(
                connections={k: Connection(**v) for k, v in data.get("connections", {}).items()},
                codes={k: Code(**v) for k, v in data.get("codes", {}).items()},
                access={k: Token(**v) for k, v in data.get("access", {}).items()},
                refresh={k: Token(**v) for k, v in data.get("refresh", {}).items()},
            )

    # -- discovery --------------------------------------------------------------------

    def discovery(self, base_url: str) -> dict:
        """Intuit's discovery document with every endpoint pointing at the emulator."""
        self.issuer = f"{base_url}/op/v1"
        return {
            "issuer": f"{base_url}/op/v1",
            "authorization_endpoint": f"{base_url}/connect/oauth2",
            "token_endpoint": f"{base_url}/oauth2/v1/tokens/bearer",
            "userinfo_endpoint": f"{base_url}/v1/openid_connect/userinfo",
            "revocation_endpoint": f"{base_url}/v2/oauth2/tokens/revoke",
            "jwks_uri": f"{base_url}/op/v1/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "address", "phone"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "client_secret_basic",
            ],
            "claims_supported": [
                "aud",
                "exp",
                "iat",
                "iss",
                "realmid",
                "sub",
            ],
        }

    # -- authorize --------------------------------------------------------------------

    def authorize(self, request: Request) -> Response:
        """GET shows the consent page; POST is the person's Connect or Cancel."""
        params = (
            request.form()
            if request.method == "POST"
            else {k: v[0] for k, v in request.query.items()}
        )
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        state = params.get("state")
        if client_id != self.client_id:
            return _error_page("The app's client_id is not recognised (invalid_client).")
        if redirect_uri not in self.redirect_uris:
            # Intuit shows an error page and never redirects to an unregistered URI.
            return _error_page(
                "The redirect_uri query parameter value is invalid. Make sure it is listed "
                "in the Redirect URIs section on your app's keys tab and matches it exactly."
            )

        def back(**values: str | None) -> Response:
            pairs = {k: v for k, v in values.items() if v is not None}
            sep = "&" if "?" in redirect_uri else "?"
            return Response.redirect(f"{redirect_uri}{sep}{urlencode(pairs)}")

        if params.get("response_type") != "code":
            return back(error="unsupported_response_type", state=state)
        scopes = params.get("scope", "").split()
        if not scopes or any(s not in KNOWN_SCOPES for s in scopes):
            return back(error="invalid_scope", state=state)
        wants_company = ACCOUNTING in scopes or PAYMENT in scopes
        if request.method != "POST":
            return Response.html(self._consent_page(params, scopes, wants_company))
        if params.get("action") != "connect":
            return back(error="access_denied", state=state)
        realm_id = params.get("realm_id") if wants_company else None
        if wants_company and realm_id not in {r for r, _ in self.companies}:
            return Response.html(self._consent_page(params, scopes, wants_company, True), 400)
        code = self.issue_code(redirect_uri, realm_id, scopes)
        return back(code=code, state=state, realmId=realm_id)

    def issue_code(self, redirect_uri: str, realm_id: str | None, scopes: list[str]) -> str:
        code = "AB11" + secrets.token_urlsafe(36)[:46]
        with self.lock:
            self.state.codes[code] = Code(
                code, self.client_id, redirect_uri, realm_id, scopes, self.clock.time()
            )
            self.on_change()
        return code

    def _consent_page(
        self, params: dict, scopes: list[str], wants_company: bool, missing: bool = False
    ) -> str:
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items()
            if k in ("client_id", "redirect_uri", "response_type", "scope", "state")
        )
        companies = ""
        if wants_company:
            options = "".join(
                f'<li><label><input type="radio" name="realm_id" value="{html.escape(rid)}"'
                f"{' checked' if i == 0 else ''}> {html.escape(name)}"
                f" <small>(Company ID {html.escape(rid)})</small></label></li>"
                for i, (rid, name) in enumerate(self.companies)
            )
            companies = (
                "<fieldset><legend>Select a company</legend>"
                f'<ul class="companies">{options}</ul></fieldset>'
            )
        notice = '<p class="error">Select a company to connect.</p>' if missing else ""
        scope_list = "".join(f"<li>{html.escape(s)}</li>" for s in scopes)
        return _page(
            "Connect to QuickBooks",
            f"""<h1>Connect your QuickBooks company</h1>
<p>An app wants to connect to your QuickBooks Online data. It is asking for:</p>
<ul class="scopes">{scope_list}</ul>
{notice}
<form method="post" action="/connect/oauth2">
{hidden}
{companies}
<p class="buttons">
<button type="submit" name="action" value="cancel" id="cancel">Cancel</button>
<button type="submit" name="action" value="connect" id="connect">Connect</button>
</p>
</form>
<p class="note">QuickBooks Online emulator: sandbox companies only.</p>""",
        )

    # -- token endpoint ---------------------------------------------------------------

    def _client_ok(self, request: Request, form: dict) -> bool:
        auth = request.header("authorization") or ""
        client_id = client_secret = None
        if auth.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(auth[6:].strip()).decode()
                client_id, _, client_secret = decoded.partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
        elif "client_id" in form:
            client_id, client_secret = form.get("client_id"), form.get("client_secret", "")
        if client_id is None:
            return False
        return hmac.compare_digest(str(client_id), self.client_id) and hmac.compare_digest(
            str(client_secret), self.client_secret
        )

    def token(self, request: Request) -> Response:
        """The token endpoint: authorization_code and refresh_token grants."""
        form = request.form()
        if not self._client_ok(request, form):
            return _oauth_error("invalid_client", 401)
        grant = form.get("grant_type")
        hard = (request.header("x-include-refresh-token-hard-expires-in") or "").lower() == "true"
        with self.lock:
            if grant == "authorization_code":
                return self._grant_code(form, hard)
            if grant == "refresh_token":
                return self._grant_refresh(form, hard)
        return _oauth_error("unsupported_grant_type")

    def _grant_code(self, form: dict, hard: bool) -> Response:
        now = self.clock.time()
        code = self.state.codes.get(form.get("code", ""))
        if code is None or code.used or now - code.issued_at > CODE_SECONDS:
            return _oauth_error("invalid_grant")
        if code.redirect_uri != form.get("redirect_uri"):
            return _oauth_error("invalid_grant", description="Invalid redirect_uri")
        code.used = True
        connection = Connection(
            secrets.token_hex(8), code.client_id, code.realm_id, code.scopes, now
        )
        self.state.connections[connection.id] = connection
        refresh = self._new_refresh(connection, now)
        return self._token_response(connection, refresh, now, hard)

    def _grant_refresh(self, form: dict, hard: bool) -> Response:
        now = self.clock.time()
        refresh = self.state.refresh.get(form.get("refresh_token", ""))
        connection = self.state.connections.get(refresh.connection_id) if refresh else None
        if (
            refresh is None
            or connection is None
            or refresh.revoked
            or connection.revoked
            or now >= refresh.expires_at
            or now - connection.created_at >= HARD_EXPIRY_SECONDS
        ):
            return _oauth_error("invalid_grant", description="Incorrect or invalid refresh token")
        if now - refresh.issued_at >= self.rotation_seconds:
            # Rotation: a new refresh token, and the previous one is forced to expire.
            refresh.revoked = True
            refresh = self._new_refresh(connection, now)
        return self._token_response(connection, refresh, now, hard)

    def _new_refresh(self, connection: Connection, now: float) -> Token:
        value = "AB11" + secrets.token_urlsafe(36)[:46]
        token = Token(value, connection.id, now, now + REFRESH_TOKEN_SECONDS)
        self.state.refresh[value] = token
        return token

    def _token_response(
        self, connection: Connection, refresh: Token, now: float, hard: bool
    ) -> Response:
        access_value = ".".join(
            [
                JWE_HEADER,
                "",
                _b64url(secrets.token_bytes(16)),
                _b64url(secrets.token_bytes(560)),
                _b64url(secrets.token_bytes(16)),
            ]
        )
        self.state.access[access_value] = Token(
            access_value, connection.id, now, now + ACCESS_TOKEN_SECONDS
        )
        # Every grant (code, refresh, mint) ends here, after its code, connection and
        # tokens are stored.
        self.on_change()
        payload = {
            "token_type": "bearer",
            "expires_in": ACCESS_TOKEN_SECONDS,
            "refresh_token": refresh.token,
            "x_refresh_token_expires_in": int(refresh.expires_at - now),
            "access_token": access_value,
        }
        if hard:
            payload["x_refresh_token_hard_expires_in"] = int(
                connection.created_at + HARD_EXPIRY_SECONDS - now
            )
        if "openid" in connection.scopes:
            payload["id_token"] = self.id_token(connection, now)
        return Response.json(payload, headers=[("Cache-Control", "no-store")])

    def id_token(self, connection: Connection, now: float) -> str:
        """An OpenID id_token signed RS256 with the key published at ``jwks_uri``."""
        claims = {
            "sub": self.user_sub,
            "aud": [connection.client_id],
            "realmid": connection.realm_id,
            "auth_time": int(connection.created_at),
            "iss": self.issuer,
            "exp": int(now + ACCESS_TOKEN_SECONDS),
            "iat": int(now),
        }
        return self.signing_key.sign_jwt(claims)

    # -- revoke / userinfo ------------------------------------------------------------

    def revoke(self, request: Request) -> Response:
        """Revoke a refresh or access token, which ends its whole connection."""
        form: dict = {}
        if request.content_type == "application/json":
            try:
                form = json.loads(request.body or b"{}")
            except ValueError:
                return _oauth_error("invalid_request")
        else:
            form = request.form()
        if not self._client_ok(request, form if isinstance(form, dict) else {}):
            return _oauth_error("invalid_client", 401)
        value = form.get("token") if isinstance(form, dict) else None
        if not value:
            return _oauth_error("invalid_request")
        with self.lock:
            token = self.state.refresh.get(value) or self.state.access.get(value)
            if token is not None:
                connection = self.state.connections.get(token.connection_id)
                if connection is not None:
                    connection.revoked = True
                    self.on_change()
        # Unknown tokens are answered like known ones, per RFC 7009; Intuit's body is
        # UNCONFIRMED, so an empty 200 is sent.
        return Response(status=200, body=b"", content_type="text/plain")

    def userinfo(self, request: Request) -> Response:
        """OpenID userinfo for a bearer token that has the openid scope."""
        try:
            connection = self.check_bearer(request, None)
        except errors.GatewayError as exc:
            return Response.json(exc.body(int(self.clock.time() * 1000)), status=exc.status)
        if "openid" not in connection.scopes:
            return Response.json({"error": "insufficient_scope"}, status=403)
        payload = {"sub": self.user_sub}
        if "email" in connection.scopes:
            payload.update(email="sandbox.user@example.com", emailVerified=True)
        if "profile" in connection.scopes:
            payload.update(givenName="Sandy", familyName="Box")
        if "phone" in connection.scopes:
            payload.update(phoneNumber="+1 5555550100", phoneNumberVerified=False)
        if "address" in connection.scopes:
            payload["address"] = {
                "streetAddress": "2500 Garcia Ave",
                "locality": "Mountain View",
                "region": "CA",
                "postalCode": "94043",
                "country": "US",
            }
        return Response.json(payload)

    # -- bearer checks ----------------------------------------------------------------

    def check_bearer(self, request: Request, realm_id: str | None) -> Connection:
        """Return the connection behind the request's bearer token.

        Raises GatewayError: 401/3200 for a missing, malformed, unknown, expired or revoked
        token; 403/3100 for a token of another realm or without the accounting scope.
        """
        auth = request.header("authorization") or ""
        if not auth.lower().startswith("bearer "):
            raise errors.authentication_failed("Authorization header missing or not Bearer")
        value = auth[7:].strip()
        if not value.startswith(JWE_HEADER) or not 100 <= len(value) <= 4096:
            raise errors.authentication_failed("Malformed bearer token: too short or too long")
        with self.lock:
            token = self.state.access.get(value)
            connection = self.state.connections.get(token.connection_id) if token else None
        if token is None or connection is None:
            raise errors.authentication_failed("Token invalid")
        if connection.revoked or token.revoked:
            raise errors.authentication_failed("Token revoked")
        if self.clock.time() >= token.expires_at:
            raise errors.authentication_failed(f"Token expired: {value[:20]}...")
        if realm_id is not None:
            if ACCOUNTING not in connection.scopes:
                raise errors.authorization_failed("The token lacks the accounting scope")
            # A token for another company is refused by the gateway as unauthorised (403).
            if connection.realm_id != realm_id:
                raise errors.authorization_failed("The token is not valid for this company")
        return connection

    def connected_realms(self) -> set[str]:
        with self.lock:
            return {
                c.realm_id for c in self.state.connections.values() if not c.revoked and c.realm_id
            }

    def mint(self, realm_id: str | None, scopes: list[str]) -> dict:
        """Issue tokens directly, skipping the consent page (control endpoint helper)."""
        with self.lock:
            now = self.clock.time()
            connection = Connection(secrets.token_hex(8), self.client_id, realm_id, scopes, now)
            self.state.connections[connection.id] = connection
            refresh = self._new_refresh(connection, now)
            payload = json.loads(self._token_response(connection, refresh, now, False).body)
        payload["realmId"] = realm_id
        return payload


def _page(title: str, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; max-width: 36em; margin: 3em auto; color: #393a3d; }}
h1 {{ color: #2ca01c; font-size: 1.4em; }}
ul.companies {{ list-style: none; padding: 0; }}
.buttons button {{ padding: .5em 1.5em; margin-right: 1em; }}
#connect {{ background: #2ca01c; color: white; border: none; }}
.error {{ color: #d52b1e; }}
.note {{ font-size: .8em; color: #6b6c72; }}
</style>
</head>
<body>
{body}
</body>
</html>"""


def _error_page(message: str) -> Response:
    return Response.html(
        _page(
            "Error - QuickBooks",
            f'<h1>Something went wrong</h1><p class="error">{html.escape(message)}</p>',
        ),
        status=400,
    )
