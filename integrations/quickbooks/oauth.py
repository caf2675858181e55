"""Intuit OAuth 2.0 over HTTP: the authorize URL, code exchange, refresh and revoke.

HTTP only: storing tokens, single-flight refresh and the connect views live elsewhere.
Client credentials and the redirect URI come from settings, read at call time. Each function
makes one request and never retries: a refresh whose answer was lost may already have rotated
the refresh token, and that decision belongs to the caller. Facts: qbo-api.md section 1.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import requests
from django.conf import settings

from .endpoints import endpoints_for
from .errors import OAuthError, error_from_exception, oauth_error_from_response

__all__ = ["ACCOUNTING_SCOPE", "TokenSet", "authorize_url", "exchange_code", "refresh", "revoke"]

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
TIMEOUT = (5, 30)


@dataclass(frozen=True, repr=False)
class TokenSet:
    """Tokens from Intuit's token endpoint, with absolute expiry times.

    ``obtained_at`` is the moment the request was sent, so the expiry times err early.
    ``repr()`` and ``str()`` never show a token.
    """

    access_token: str
    refresh_token: str
    expires_in: int
    x_refresh_token_expires_in: int
    obtained_at: dt.datetime
    id_token: str | None = None
    # Seconds until the refresh token's 5-year hard cap, when Intuit sends it.
    x_refresh_token_hard_expires_in: int | None = None
    token_type: str = "bearer"

    @property
    def access_expires_at(self) -> dt.datetime:
        """When the access token expires (about an hour after it was issued)."""
        return self.obtained_at + dt.timedelta(seconds=self.expires_in)

    @property
    def refresh_expires_at(self) -> dt.datetime:
        """When the refresh token expires unless used (rolling, about 100 days)."""
        return self.obtained_at + dt.timedelta(seconds=self.x_refresh_token_expires_in)

    @property
    def refresh_hard_expires_at(self) -> dt.datetime | None:
        """When the refresh token stops working whatever happens, if Intuit said."""
        if self.x_refresh_token_hard_expires_in is None:
            return None
        return self.obtained_at + dt.timedelta(seconds=self.x_refresh_token_hard_expires_in)

    def __repr__(self) -> str:
        return (
            f"TokenSet(access_token='***', refresh_token='***', "
            f"id_token={'***' if self.id_token else None!r}, expires_in={self.expires_in}, "
            f"x_refresh_token_expires_in={self.x_refresh_token_expires_in}, "
            f"obtained_at={self.obtained_at.isoformat()!r})"
        )

    __str__ = __repr__

    @classmethod
    def from_response(cls, data: dict[str, Any], *, now: dt.datetime) -> TokenSet:
        """Build from the token endpoint's JSON; raises ``OAuthError`` if it lacks a field."""
        try:
            hard = data.get("x_refresh_token_hard_expires_in")
            return cls(
                access_token=str(data["access_token"]),
                refresh_token=str(data["refresh_token"]),
                expires_in=int(data["expires_in"]),
                x_refresh_token_expires_in=int(data["x_refresh_token_expires_in"]),
                obtained_at=now,
                id_token=data.get("id_token") or None,
                x_refresh_token_hard_expires_in=None if hard is None else int(hard),
                token_type=str(data.get("token_type") or "bearer"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise OAuthError(
                "Intuit's token answer is incomplete", error="invalid_token_response"
            ) from exc


def authorize_url(
    *,
    state: str,
    scopes: Iterable[str] = (ACCOUNTING_SCOPE,),
    environment: str | None = None,
    redirect_uri: str | None = None,
) -> str:
    """The Intuit page to send the person to, to pick a company and press Connect.

    ``state`` must be random and bound to the person's session; ``redirect_uri`` defaults to
    ``settings.QBO_REDIRECT_URI`` and must exactly match one registered with the Intuit app.
    """
    params = {
        "client_id": settings.QBO_CLIENT_ID,
        "response_type": "code",
        "scope": " ".join(scopes),
        "redirect_uri": redirect_uri or settings.QBO_REDIRECT_URI,
        "state": state,
    }
    return f"{endpoints_for(environment).authorize_url}?{urlencode(params, quote_via=quote)}"


def exchange_code(
    code: str,
    *,
    redirect_uri: str | None = None,
    session: requests.Session | None = None,
    environment: str | None = None,
    now: dt.datetime | None = None,
) -> TokenSet:
    """Exchange the callback's authorization ``code`` for tokens.

    Raises ``InvalidGrantError`` (code used, expired or not for this redirect URI),
    ``OAuthError`` (``invalid_client``: check QBO_CLIENT_ID and QBO_CLIENT_SECRET),
    ``ConnectionFailedError``, ``ThrottledError`` or ``ServiceUnavailableError``.
    """
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri or settings.QBO_REDIRECT_URI,
    }
    return _token_request(form, session=session, environment=environment, now=now)


def refresh(
    refresh_token: str,
    *,
    session: requests.Session | None = None,
    environment: str | None = None,
    now: dt.datetime | None = None,
) -> TokenSet:
    """Get a new access token; the answer may carry a new refresh token, always keep it.

    Raises ``InvalidGrantError`` when the refresh token is spent, expired or revoked (the
    company must be reconnected), ``OAuthError``, ``ConnectionFailedError`` (``uncertain``:
    the refresh may have happened), ``ThrottledError`` or ``ServiceUnavailableError``.
    """
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return _token_request(form, session=session, environment=environment, now=now)


def revoke(
    token: str,
    *,
    session: requests.Session | None = None,
    environment: str | None = None,
) -> None:
    """Revoke a refresh or access token at Intuit (revoking either ends the connection).

    Raises ``OAuthError`` (including ``InvalidGrantError`` for a token Intuit no longer
    knows), ``ConnectionFailedError``, ``ThrottledError`` or ``ServiceUnavailableError``.
    """
    response = _post(
        endpoints_for(environment).revoke_url,
        session=session,
        json={"token": token},
        what="revoke",
    )
    if response.status_code >= 400:
        raise oauth_error_from_response(response)


def _token_request(
    form: dict[str, str],
    *,
    session: requests.Session | None,
    environment: str | None,
    now: dt.datetime | None,
) -> TokenSet:
    now = now or dt.datetime.now(dt.UTC)
    response = _post(
        endpoints_for(environment).token_url,
        session=session,
        data=form,
        headers={"x-include-refresh-token-hard-expires-in": "true"},
        what=form["grant_type"],
    )
    if response.status_code >= 400:
        raise oauth_error_from_response(response)
    try:
        data = response.json()
    except ValueError as exc:
        raise OAuthError(
            "Intuit's token answer is not JSON",
            error="invalid_token_response",
            status=response.status_code,
            intuit_tid=response.headers.get("intuit_tid"),
        ) from exc
    if not isinstance(data, dict):
        raise OAuthError("Intuit's token answer is not an object", error="invalid_token_response")
    return TokenSet.from_response(data, now=now)


def _post(
    url: str,
    *,
    session: requests.Session | None,
    what: str,
    data: dict[str, str] | None = None,
    json: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    http = session or requests
    try:
        return http.post(
            url,
            data=data,
            json=json,
            auth=(settings.QBO_CLIENT_ID, settings.QBO_CLIENT_SECRET),
            headers={"Accept": "application/json", **(headers or {})},
            timeout=TIMEOUT,
        )
    except requests.RequestException as exc:
        # Once sent, a token request may have taken effect even though its answer was lost.
        raise error_from_exception(exc, write=True, service=f"Intuit ({what})") from exc
