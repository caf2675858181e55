"""Writes on the QuickBooks connection: connect, disconnect, tokens, fetched lists, journals."""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from integrations import crypto
from integrations.models import Connection, QuickBooksAccount, QuickBooksTaxCode
from integrations.quickbooks import oauth
from integrations.quickbooks.client import QBOClient
from integrations.quickbooks.errors import (
    AuthenticationError,
    ConnectionFailedError,
    InvalidGrantError,
    OAuthError,
    QBOError,
    ReconnectRequired,
)
from integrations.quickbooks.limiter import RealmLimiter
from portal.models import Item

logger = logging.getLogger(__name__)

STATE_SESSION_KEY = "ledgerlink.qbo.oauth_states"
STATE_LIFETIME = timedelta(minutes=10)
# Spent-by-time states are kept a while longer so a late answer is told it expired rather
# than that it is unknown; at most this many Connects are open per session.
STATE_KEEP = timedelta(hours=2)
STATE_MAX = 10
# Refresh an access token this long before it expires, so a request never carries a token
# that dies in flight.
ACCESS_TOKEN_MARGIN = timedelta(minutes=5)
# How long one worker may hold the refresh before another may take over (a crashed worker
# must not block refreshes forever).
REFRESH_LEASE = timedelta(seconds=30)


class ConnectError(Exception):
    """The connect flow failed; ``str()`` is the message shown to the person."""


def _reconnect_required(connection: Connection, reason: str = "") -> ReconnectRequired:
    """The error for a connection someone must reconnect, with the reason staff see."""
    return ReconnectRequired(
        reason=reason or connection.last_error or ReconnectRequired._user_message,
        connection=connection,
    )


# --- Connect -------------------------------------------------------------------------------


def _now() -> float:
    """Seconds since the epoch for the connect state's age (a seam tests move forward)."""
    return time.time()


def connect_start(*, request) -> str:
    """Return Intuit's authorize URL with a fresh single-use ``state`` bound to this session."""
    state = secrets.token_urlsafe(32)
    now = _now()
    kept = sorted(
        (
            (issued, key)
            for key, issued in request.session.get(STATE_SESSION_KEY, {}).items()
            if now - issued < STATE_KEEP.total_seconds()
        ),
        reverse=True,
    )[: STATE_MAX - 1]
    states = {key: issued for issued, key in kept}
    states[state] = now
    request.session[STATE_SESSION_KEY] = states
    return oauth.authorize_url(state=state)


def _claim_state(request, state: str) -> None:
    """Spend ``state`` (single use) and raise ConnectError unless this session issued it."""
    states = dict(request.session.get(STATE_SESSION_KEY, {}))
    issued = states.pop(state, None) if state else None
    request.session[STATE_SESSION_KEY] = states
    if not state:
        raise ConnectError(
            "QuickBooks sent no state with its answer, so it cannot be trusted. Nothing was "
            "changed; press Connect to QuickBooks again."
        )
    if issued is None:
        raise ConnectError(
            "This QuickBooks answer does not belong to a Connect started in this browser "
            "session, or it was already used. Nothing was changed; press Connect to QuickBooks "
            "again."
        )
    if _now() - issued > STATE_LIFETIME.total_seconds():
        raise ConnectError(
            "The QuickBooks sign-in took longer than 10 minutes and expired. Nothing was "
            "changed; press Connect to QuickBooks again."
        )


def connect_complete(*, request, params) -> tuple[Connection, bool]:
    """Finish the OAuth callback: check state, exchange the code, read the company, save.

    Returns (connection, created); reconnecting a company already known updates its row.
    Raises ConnectError with a message for the person; no connection is created or changed
    unless everything succeeded. Raises CompanySwitchPending, saving nothing, when the
    company chosen is not the one last connected: staff choose first.
    """
    error = params.get("error", "").strip()
    state = params.get("state", "")
    if error:
        # The state is spent either way, so the same answer cannot be replayed later.
        states = dict(request.session.get(STATE_SESSION_KEY, {}))
        states.pop(state, None)
        request.session[STATE_SESSION_KEY] = states
        if error == "access_denied":
            raise ConnectError(
                "You cancelled on the QuickBooks page, so nothing was connected. Press Connect "
                "to QuickBooks to try again."
            )
        raise ConnectError(
            f"QuickBooks refused the connection ({error[:100]}). Nothing was changed."
        )
    _claim_state(request, state)
    realm_id = params.get("realmId", "").strip()
    code = params.get("code", "").strip()
    if not realm_id:
        raise ConnectError(
            "QuickBooks did not say which company was chosen (no realmId). Nothing was "
            "changed; press Connect to QuickBooks again and pick a company."
        )
    if not code:
        raise ConnectError("QuickBooks sent no authorization code. Nothing was changed.")
    now = timezone.now()
    try:
        tokens = oauth.exchange_code(code)
    except InvalidGrantError as exc:
        # For a code (not a refresh token) this means used, expired or for another app.
        raise ConnectError(
            "QuickBooks did not accept the sign-in code (it was already used or has expired). "
            "Nothing was changed; press Connect to QuickBooks again."
        ) from exc
    except OAuthError as exc:
        raise ConnectError(
            f"QuickBooks refused the sign-in. {exc.user_message} Nothing was changed."
        ) from exc
    except QBOError as exc:
        # Nothing retries a sign-in by itself, so the error's own "will try again" text
        # would mislead here.
        raise ConnectError(
            "QuickBooks could not be reached to finish the sign-in, so nothing was connected. "
            "Press Connect to QuickBooks again in a few minutes."
        ) from exc
    client = QBOClient(realm_id=realm_id, access_token_provider=lambda: tokens.access_token)
    try:
        company = client.company_info()
    except QBOError as exc:
        why = "" if exc.retryable else f" {exc.user_message}"
        raise ConnectError(
            "QuickBooks accepted the sign-in, but the company's details could not be read, so "
            f"nothing was saved.{why} Press Connect to QuickBooks again."
        ) from exc
    environment = settings.QBO_ENVIRONMENT
    company_name = company.get("CompanyName", "") or company.get("LegalName", "")
    previous = last_connected(environment=environment)
    if previous is not None and previous.realm_id != realm_id:
        _hold_switch(
            request, previous=previous, realm_id=realm_id, company_name=company_name, tokens=tokens
        )
        raise CompanySwitchPending(previous=previous, realm_id=realm_id, company_name=company_name)
    return _save_connection(
        user=request.user,
        environment=environment,
        realm_id=realm_id,
        company_name=company_name,
        tokens=tokens,
        now=now,
    )


def _save_connection(
    *, user, environment: str, realm_id: str, company_name: str, tokens, now: datetime
) -> tuple[Connection, bool]:
    with transaction.atomic():
        # Locked so a refresh finishing at the same moment cannot interleave with this write.
        connection, created = Connection.objects.select_for_update().get_or_create(
            environment=environment, realm_id=realm_id
        )
        connection.company_name = company_name
        connection.status = Connection.Status.CONNECTED
        connection.connected_by = user
        connection.connected_at = now
        connection.disconnected_at = None
        connection.last_error = ""
        _store_tokens(connection, tokens, now=now)
        connection.save()
    logger.info(
        "qbo.connection.connected",
        extra={"realm_id": realm_id, "connection_id": connection.pk, "new_connection": created},
    )
    return connection, created


def last_connected(*, environment: str) -> Connection | None:
    """The company Ledgerlink was last connected to in ``environment`` (connected or not):
    the newest not disconnected, else the newest."""
    connections = Connection.objects.filter(environment=environment)
    active = connections.exclude(status=Connection.Status.DISCONNECTED).order_by("-connected_at")
    return active.first() or connections.order_by("-connected_at").first()


# --- Changing company: staff choose ------------------------------------------------------------

SWITCH_SESSION_KEY = "ledgerlink.qbo.pending_switch"


class CompanySwitchPending(Exception):
    """The company chosen on Intuit's page is not the one last connected. Nothing was saved:
    its sign-in waits in the session (``connect_switch_pending``) until staff confirm the
    switch (``connect_switch_confirm``) or keep the company they had
    (``connect_switch_decline``)."""

    def __init__(self, *, previous: Connection, realm_id: str, company_name: str):
        super().__init__(f"Switching from {previous} to {company_name or realm_id} waits for staff")
        self.previous = previous
        self.realm_id = realm_id
        self.company_name = company_name


@dataclass(frozen=True)
class PendingSwitch:
    """A sign-in to another company, waiting for staff to choose."""

    previous: Connection
    realm_id: str
    company_name: str
    known: Connection | None  # the new company's row, when it was connected before

    def __str__(self) -> str:
        return self.company_name or f"QuickBooks company {self.realm_id}"


def _hold_switch(request, *, previous: Connection, realm_id: str, company_name: str, tokens):
    request.session[SWITCH_SESSION_KEY] = {
        "previous": previous.pk,
        "realm_id": realm_id,
        "company_name": company_name,
        "environment": settings.QBO_ENVIRONMENT,
        "issued": _now(),
        # Encrypted like every stored token; never shown.
        "access": crypto.encrypt(tokens.access_token),
        "refresh": crypto.encrypt(tokens.refresh_token),
        "expires_in": tokens.expires_in,
        "refresh_expires_in": tokens.x_refresh_token_expires_in,
        "hard_expires_in": tokens.x_refresh_token_hard_expires_in,
        "obtained_at": tokens.obtained_at.isoformat(),
    }
    logger.info(
        "qbo.connection.switch_pending",
        extra={"realm_id": realm_id, "previous_connection_id": previous.pk},
    )


def _held_switch(request) -> dict | None:
    held = request.session.get(SWITCH_SESSION_KEY)
    if not held or held.get("environment") != settings.QBO_ENVIRONMENT:
        return None
    return held


def connect_switch_pending(*, request) -> PendingSwitch | None:
    """The sign-in to another company waiting for staff in this session, if any (and not
    older than the connect state's 10 minutes)."""
    held = _held_switch(request)
    if held is None or _now() - held["issued"] > STATE_LIFETIME.total_seconds():
        return None
    previous = Connection.objects.filter(pk=held["previous"]).first()
    if previous is None:
        return None
    known = Connection.objects.filter(
        environment=held["environment"], realm_id=held["realm_id"]
    ).first()
    return PendingSwitch(
        previous=previous,
        realm_id=held["realm_id"],
        company_name=held["company_name"],
        known=known,
    )


def _held_tokens(held: dict) -> oauth.TokenSet:
    return oauth.TokenSet(
        access_token=crypto.decrypt(held["access"]),
        refresh_token=crypto.decrypt(held["refresh"]),
        expires_in=held["expires_in"],
        x_refresh_token_expires_in=held["refresh_expires_in"],
        x_refresh_token_hard_expires_in=held["hard_expires_in"],
        obtained_at=datetime.fromisoformat(held["obtained_at"]),
    )


SWITCH_EXPIRED = (
    "The choice between QuickBooks companies waited longer than 10 minutes and expired. "
    "Nothing was changed; press Connect to QuickBooks again."
)


def connect_switch_confirm(*, request) -> tuple[Connection, bool, str]:
    """Staff chose the new company: it is saved as connected, and the company connected
    before is disconnected (revoked at Intuit, tokens wiped; its bindings, mappings and
    history are kept). Returns (connection, created, note), the note saying when the old
    company's revoke was not confirmed. Raises ConnectError when there is nothing to confirm
    (expired, or the connection changed meanwhile); then nothing changes."""
    pending = connect_switch_pending(request=request)
    held = request.session.pop(SWITCH_SESSION_KEY, None)
    if pending is None or held is None:
        _revoke_held(held)
        raise ConnectError(SWITCH_EXPIRED)
    current = last_connected(environment=held["environment"])
    if current is None or current.pk != pending.previous.pk:
        _revoke_held(held)
        raise ConnectError(
            "The QuickBooks connection changed while you were choosing. Nothing was changed; "
            "press Connect to QuickBooks again."
        )
    connection, created = _save_connection(
        user=request.user,
        environment=held["environment"],
        realm_id=held["realm_id"],
        company_name=held["company_name"],
        tokens=_held_tokens(held),
        now=timezone.now(),
    )
    note = ""
    previous = pending.previous
    if previous.status != Connection.Status.DISCONNECTED:
        note = connection_disconnect(connection=previous)
    logger.info(
        "qbo.connection.switched",
        extra={"from_connection_id": previous.pk, "to_connection_id": connection.pk},
    )
    return connection, created, note


def connect_switch_decline(*, request) -> Connection | None:
    """Staff keep the company they had: nothing changes; the sign-in to the other company is
    revoked at Intuit (best effort), so Ledgerlink holds no access to it. Returns the company
    kept (None when nothing was waiting)."""
    pending = connect_switch_pending(request=request)
    held = request.session.pop(SWITCH_SESSION_KEY, None)
    _revoke_held(held)
    if held is not None:
        logger.info(
            "qbo.connection.switch_declined",
            extra={"realm_id": held["realm_id"], "kept_connection_id": held["previous"]},
        )
    return pending.previous if pending else None


def _revoke_held(held: dict | None) -> None:
    if not held:
        return
    try:
        oauth.revoke(crypto.decrypt(held["refresh"]), environment=held["environment"])
    except (OAuthError, QBOError, crypto.TokenDecryptionError):
        logger.warning("qbo.connection.switch_revoke_failed", extra={"realm_id": held["realm_id"]})


def _store_tokens(connection: Connection, tokens, *, now: datetime) -> None:
    connection.access_token_encrypted = crypto.encrypt(tokens.access_token)
    connection.refresh_token_encrypted = crypto.encrypt(tokens.refresh_token)
    # The TokenSet's times count from when the request was sent, so they err early.
    connection.access_token_expires_at = tokens.access_expires_at
    refresh_expires_at = tokens.refresh_expires_at
    if tokens.refresh_hard_expires_at is not None:
        # The five-year cap ends the connection however often it is refreshed.
        refresh_expires_at = min(refresh_expires_at, tokens.refresh_hard_expires_at)
    connection.refresh_token_expires_at = refresh_expires_at
    connection.token_version += 1
    connection.refresh_lease_until = None
    connection.last_refreshed_at = now


# --- Disconnect ------------------------------------------------------------------------------

DISCONNECTED_BY_INTUIT = "The app was disconnected from within QuickBooks."


def connection_disconnect(*, connection: Connection) -> str:
    """Revoke at Intuit (best effort), wipe the tokens, keep history, mappings and journals.

    Returns a note for the person when the revoke itself failed (the tokens are wiped anyway).
    """
    note = ""
    token = ""
    try:
        token = connection.refresh_token or connection.access_token
    except crypto.TokenDecryptionError:
        note = "The stored tokens could not be decrypted, so they were only wiped here."
    if token:
        try:
            oauth.revoke(token, environment=connection.environment)
        except (OAuthError, QBOError) as exc:
            note = (
                f"QuickBooks did not confirm the revoke ({exc.user_message}); the tokens were "
                "wiped here anyway. You can also remove the app in QuickBooks under Apps."
            )
    _mark_disconnected(connection, last_error="")
    logger.info(
        "qbo.connection.disconnected",
        extra={"realm_id": connection.realm_id, "connection_id": connection.pk},
    )
    return note


def _mark_disconnected(connection: Connection, *, last_error: str) -> None:
    Connection.objects.filter(pk=connection.pk).update(
        status=Connection.Status.DISCONNECTED,
        access_token_encrypted="",
        refresh_token_encrypted="",
        access_token_expires_at=None,
        refresh_token_expires_at=None,
        refresh_lease_until=None,
        # A refresh in flight must not write its tokens back after this.
        token_version=F("token_version") + 1,
        disconnected_at=timezone.now(),
        last_error=last_error,
    )
    connection.refresh_from_db()


def connection_verify_disconnected(*, realm_id: str) -> list[tuple[Connection, bool]]:
    """Intuit's disconnect URL: check with QuickBooks, then mark what it no longer accepts.

    Anyone can open that address, so its word is not taken: each connected company of the
    realm reads its CompanyInfo (refreshing tokens as usual). Only a connection QuickBooks
    refuses outright (``invalid_grant`` on refresh, or 401 after a refresh) is marked
    disconnected; one that answers, or that cannot be reached, is left as it was.
    Returns (connection, disconnected) pairs.
    """
    checked: list[tuple[Connection, bool]] = []
    for connection in Connection.objects.filter(
        realm_id=realm_id, status=Connection.Status.CONNECTED
    ):
        refused = False
        try:
            connection_client(connection=connection, max_retries=0).company_info()
        except AuthenticationError:
            refused = True
        except ReconnectRequired:
            connection.refresh_from_db()
            refused = connection.status == Connection.Status.NEEDS_RECONNECT
        except QBOError as exc:
            logger.warning(
                "qbo.connection.disconnect_check_failed",
                extra={"realm_id": realm_id, "connection_id": connection.pk, "status": exc.status},
            )
        if refused:
            _mark_disconnected(connection, last_error=DISCONNECTED_BY_INTUIT)
            logger.info(
                "qbo.connection.disconnected_by_intuit",
                extra={"realm_id": realm_id, "connection_id": connection.pk},
            )
        checked.append((connection, refused))
    return checked


def connection_mark_needs_reconnect(*, connection: Connection, reason: str) -> None:
    """Stop using the connection until a Sync administrator reconnects it; ``reason`` is shown."""
    Connection.objects.filter(pk=connection.pk).update(
        status=Connection.Status.NEEDS_RECONNECT, last_error=reason, refresh_lease_until=None
    )
    connection.refresh_from_db()
    logger.warning(
        "qbo.connection.needs_reconnect",
        extra={"realm_id": connection.realm_id, "connection_id": connection.pk},
    )


# --- Tokens ----------------------------------------------------------------------------------

NEEDS_RECONNECT_REASON = (
    "QuickBooks no longer accepts Ledgerlink's sign-in (the authorization expired or was "
    "revoked). A Sync administrator must press Reconnect on the QuickBooks page."
)


def connection_access_token(
    *, connection_id: int, force_refresh_of_version: int | None = None, wait: float = 20.0
) -> tuple[str, int]:
    """A valid access token for the connection and the token version it belongs to.

    Refreshes when the token is near expiry (or when ``force_refresh_of_version`` is still the
    current version, after a 401). Refresh is single-flight across processes: the worker that
    wins a compare-and-swap on the token version holds a short lease and refreshes; the others
    wait and read what it stored. The rotated refresh token is stored before it is used.

    Must not run inside a transaction that may roll back: the stored refresh token is the
    only one Intuit still accepts once it has rotated.

    Raises ReconnectRequired when the connection needs a person (invalid_grant, disconnected),
    ConnectionFailedError when another worker's refresh did not finish within ``wait``
    seconds, and the refresh's own QBOError when Intuit could not be reached.
    """
    deadline = time.monotonic() + wait
    while True:
        connection = Connection.objects.get(pk=connection_id)
        if connection.status != Connection.Status.CONNECTED:
            raise _reconnect_required(connection)
        now = timezone.now()
        fresh = (
            connection.access_token_expires_at is not None
            and connection.access_token_expires_at - ACCESS_TOKEN_MARGIN > now
        )
        forced = force_refresh_of_version == connection.token_version
        if fresh and not forced:
            return connection.access_token, connection.token_version
        claimed = (
            Connection.objects.filter(
                pk=connection.pk,
                token_version=connection.token_version,
                status=Connection.Status.CONNECTED,
            )
            .filter(Q(refresh_lease_until__isnull=True) | Q(refresh_lease_until__lt=now))
            .update(refresh_lease_until=now + REFRESH_LEASE)
        )
        if claimed:
            return _refresh(connection, now=now)
        if time.monotonic() > deadline:
            # Another worker holds the refresh; this is worth retrying later, not a reason to
            # ask a person to reconnect.
            raise ConnectionFailedError(
                "Another worker's QuickBooks token refresh did not finish in time"
            )
        time.sleep(0.05)


def _refresh(connection: Connection, *, now: datetime) -> tuple[str, int]:
    try:
        tokens = oauth.refresh(connection.refresh_token, environment=connection.environment)
    except InvalidGrantError as exc:
        connection_mark_needs_reconnect(connection=connection, reason=NEEDS_RECONNECT_REASON)
        logger.warning(
            "qbo.token.refresh_failed",
            extra={"realm_id": connection.realm_id, "error": exc.error, "status": exc.status},
        )
        raise _reconnect_required(connection, NEEDS_RECONNECT_REASON) from exc
    except Exception:
        Connection.objects.filter(pk=connection.pk).update(refresh_lease_until=None)
        raise
    version = connection.token_version
    _store_tokens(connection, tokens, now=now)
    updated = Connection.objects.filter(pk=connection.pk, token_version=version).update(
        access_token_encrypted=connection.access_token_encrypted,
        refresh_token_encrypted=connection.refresh_token_encrypted,
        access_token_expires_at=connection.access_token_expires_at,
        refresh_token_expires_at=connection.refresh_token_expires_at,
        token_version=connection.token_version,
        refresh_lease_until=None,
        last_refreshed_at=now,
    )
    if not updated:
        # Disconnected or reconnected while the refresh was in flight: that write wins.
        connection.refresh_from_db()
        raise _reconnect_required(connection, "The connection changed during a token refresh.")
    logger.info(
        "qbo.token.refreshed",
        extra={"realm_id": connection.realm_id, "connection_id": connection.pk},
    )
    return tokens.access_token, connection.token_version


def connection_client(*, connection: Connection, **kwargs) -> QBOClient:
    """An API client for the connection whose tokens refresh themselves as needed.

    Raises ReconnectRequired when the connection is not connected; the client's calls raise
    it too once QuickBooks stops accepting the connection (``invalid_grant``).
    """
    if connection.status != Connection.Status.CONNECTED:
        raise _reconnect_required(connection)
    current = {"version": None}

    def provider() -> str:
        token, current["version"] = connection_access_token(connection_id=connection.pk)
        return token

    def refresher() -> str:
        token, current["version"] = connection_access_token(
            connection_id=connection.pk, force_refresh_of_version=current["version"]
        )
        return token

    kwargs.setdefault("environment", connection.environment)
    # Every worker process shares one set of budgets per company, kept in Django's cache
    # (Redis in production), so together they stay under QuickBooks' limits: requests a
    # minute, requests at once and batch requests a minute.
    kwargs.setdefault("limiter", RealmLimiter(connection.realm_id))
    return QBOClient(
        realm_id=connection.realm_id,
        access_token_provider=provider,
        refresh_access_token=refresher,
        **kwargs,
    )


class TokensNotReencrypted(Exception):
    """Some connections' tokens could not be decrypted with any configured key."""

    def __init__(self, *, reencrypted: int, connection_ids: list[int]):
        self.reencrypted = reencrypted
        self.connection_ids = connection_ids
        ids = ", ".join(str(pk) for pk in connection_ids)
        super().__init__(
            f"Re-encrypted the tokens of {reencrypted} connection(s), but those of connection(s) "
            f"{ids} cannot be decrypted with TOKEN_ENCRYPTION_KEYS. Put back the key that "
            "encrypted them, or reconnect those companies."
        )


def tokens_reencrypt() -> int:
    """Re-encrypt every stored token with the newest key; returns how many rows changed.

    Safe while workers run: each row is rewritten only if its ciphertexts are still the ones
    read (a refresh in between wins, and the row is read again). Raises TokensNotReencrypted,
    after doing the others, when some row cannot be decrypted with any configured key.
    """
    count = 0
    failed: list[int] = []
    pks = Connection.objects.exclude(access_token_encrypted="", refresh_token_encrypted="")
    for pk in pks.order_by("pk").values_list("pk", flat=True):
        while True:
            row = Connection.objects.filter(pk=pk).values(
                "access_token_encrypted", "refresh_token_encrypted"
            )
            current = row.first()
            if current is None:
                break
            try:
                rotated = {name: crypto.rotate(value) for name, value in current.items()}
            except crypto.TokenDecryptionError:
                logger.warning("qbo.token.reencrypt_failed", extra={"connection_id": pk})
                failed.append(pk)
                break
            if Connection.objects.filter(pk=pk, **current).update(**rotated):
                count += 1
                break
    if failed:
        raise TokensNotReencrypted(reencrypted=count, connection_ids=failed)
    return count


# --- Lists fetched from QuickBooks -----------------------------------------------------------


@dataclass
class FetchResult:
    """What a fetch changed; ``total`` and ``inactive`` count what QuickBooks sent."""

    created: int = 0
    updated: int = 0
    deactivated: int = 0
    total: int = 0
    inactive: int = 0

    def __str__(self) -> str:
        return f"{self.created} new, {self.updated} updated, {self.deactivated} no longer active"


def _store_fetched(model, *, connection: Connection, rows: list[dict], values_for) -> FetchResult:
    """Create or update one row of ``model`` per QuickBooks object, by QuickBooks id, and mark
    inactive the rows QuickBooks no longer sends. ``values_for(row)`` maps an object."""
    result = FetchResult()
    existing = {obj.qbo_id: obj for obj in model.objects.filter(connection=connection)}
    seen = set()
    for row in rows:
        seen.add(row["Id"])
        values = values_for(row)
        result.total += 1
        result.inactive += not values["active"]
        current = existing.get(row["Id"])
        if current is None:
            model.objects.create(connection=connection, qbo_id=row["Id"], **values)
            result.created += 1
        else:
            model.objects.filter(pk=current.pk).update(**values)
            result.updated += 1
    gone = [obj.pk for qbo_id, obj in existing.items() if qbo_id not in seen and obj.active]
    result.deactivated = model.objects.filter(pk__in=gone).update(active=False)
    return result


def accounts_fetch(*, connection: Connection, client: QBOClient | None = None) -> FetchResult:
    """Load the company's chart of accounts (active and inactive) into QuickBooksAccount."""
    client = client or connection_client(connection=connection)
    rows = list(client.query_all("Account", "Active IN (true, false)"))
    now = timezone.now()

    def values_for(row: dict) -> dict:
        return {
            "name": row.get("Name", ""),
            "fully_qualified_name": row.get("FullyQualifiedName", row.get("Name", "")),
            "account_type": row.get("AccountType", ""),
            "account_sub_type": row.get("AccountSubType", ""),
            "classification": row.get("Classification", ""),
            "active": bool(row.get("Active", True)),
            "fetched_at": now,
        }

    with transaction.atomic():
        result = _store_fetched(
            QuickBooksAccount, connection=connection, rows=rows, values_for=values_for
        )
        Connection.objects.filter(pk=connection.pk).update(accounts_fetched_at=now)
    return result


def tax_codes_fetch(*, connection: Connection, client: QBOClient | None = None) -> FetchResult:
    """Load the company's sales tax codes, with each code's combined sales rate."""
    client = client or connection_client(connection=connection)
    codes = list(client.query_all("TaxCode", "Active IN (true, false)"))
    rates = {r["Id"]: r for r in client.query_all("TaxRate", "Active IN (true, false)")}
    now = timezone.now()

    def values_for(row: dict) -> dict:
        details = (row.get("SalesTaxRateList") or {}).get("TaxRateDetail") or []
        percents = [
            Decimal(str(rates[d["TaxRateRef"]["value"]].get("RateValue", 0)))
            for d in details
            if d.get("TaxRateRef", {}).get("value") in rates
        ]
        return {
            "name": row.get("Name", ""),
            "description": row.get("Description", ""),
            "taxable": bool(row.get("Taxable", True)),
            "tax_group": bool(row.get("TaxGroup", False)),
            "rate_percent": sum(percents, Decimal(0)) if percents else None,
            "active": bool(row.get("Active", True)),
            "fetched_at": now,
        }

    with transaction.atomic():
        return _store_fetched(
            QuickBooksTaxCode, connection=connection, rows=codes, values_for=values_for
        )


# --- Journals --------------------------------------------------------------------------------

# What QuickBooks itself allows on an item (qbo-api.md §8 Item / Account).
JOURNAL_ACCOUNT_TYPES = {
    "income_account": ("Income",),
    "expense_account": ("Cost of Goods Sold", "Expense"),
    "asset_account": ("Other Current Asset",),
}
JOURNAL_MISSING_HINT = {
    "income_account": "Create an Income account (for example Sales of Product Income) in "
    "QuickBooks, then fetch accounts again.",
    "expense_account": "Create a Cost of Goods Sold account in QuickBooks, then fetch accounts "
    "again.",
    "asset_account": "Create an Other Current Asset account with detail type Inventory in "
    "QuickBooks, then fetch accounts again.",
}


def inventory_item_count() -> int:
    """Active portal items of the inventory type (they need the Expense and Inventory Asset
    journals to be created in QuickBooks)."""
    return Item.objects.filter(active=True, type=Item.Type.INVENTORY).count()


def journals_required(*, inventory_items: int) -> set[str]:
    """The journals a save must choose: Income always (QuickBooks creates no item without
    one); Expense and Inventory Asset while the portal has inventory items."""
    required = {"income_account"}
    if inventory_items:
        required |= {"expense_account", "asset_account"}
    return required


def journals_save(
    *,
    connection: Connection,
    income_account: QuickBooksAccount | None,
    expense_account: QuickBooksAccount | None,
    asset_account: QuickBooksAccount | None,
) -> None:
    """Store the accounts new items are created with, after checking each one's type.

    Raises django's ValidationError keyed by field when an account does not fit its journal,
    or when a required journal (``journals_required``) is left blank.
    """
    chosen = {
        "income_account": income_account,
        "expense_account": expense_account,
        "asset_account": asset_account,
    }
    inventory = inventory_item_count()
    required = journals_required(inventory_items=inventory)
    errors = {}
    for field, account in chosen.items():
        if account is None:
            if field == "income_account":
                errors[field] = "required. Every item Ledgerlink creates in QuickBooks needs one."
            elif field in required:
                noun = "item" if inventory == 1 else "items"
                errors[field] = (
                    f"required while the portal has inventory {noun} ({inventory}): QuickBooks "
                    "needs it to create them."
                )
            continue
        if account.connection_id != connection.pk:
            errors[field] = "This account belongs to another QuickBooks company."
        elif account.account_type not in JOURNAL_ACCOUNT_TYPES[field]:
            allowed = " or ".join(JOURNAL_ACCOUNT_TYPES[field])
            article = "an" if account.account_type[:1] in "AEIOU" else "a"
            errors[field] = (
                f"{account.name} is {article} {account.account_type} account; pick {allowed}."
            )
        elif field == "asset_account" and account.account_sub_type != "Inventory":
            errors[field] = f"{account.name} is not an inventory asset account."
        elif not account.active:
            errors[field] = f"{account.name} is inactive in QuickBooks."
    if errors:
        raise ValidationError(errors)
    Connection.objects.filter(pk=connection.pk).update(
        **{f"{field}_id": (a.pk if a else None) for field, a in chosen.items()}
    )
    connection.refresh_from_db()
