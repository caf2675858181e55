"""QuickBooks Online errors: one small typed hierarchy, made once at the HTTP edge.

Every failure the client or the OAuth helpers can meet becomes a ``QBOError`` subclass that
says what to do next: ``retryable`` (try again later), ``needs_reconnect`` (a Sync
administrator must reconnect), or neither (fix the data). ``user_message`` is short plain text
for staff (an invoice's Sync Details, an admin message); ``str()`` is for logs and carries
QBO's code, element, detail and ``intuit_tid`` for Intuit support.

No text kept here may contain a token: QBO sometimes echoes part of the bearer token in a 401
detail ("Token expired: eyJ..."), so message and detail are scrubbed when the error is made.
Fault shapes and codes: qbo-api.md sections 6 and 7.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, ClassVar

import requests
from urllib3.exceptions import NewConnectionError

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "ConnectionFailedError",
    "DuplicateError",
    "InvalidGrantError",
    "NotFoundError",
    "OAuthError",
    "QBOError",
    "ReconnectRequired",
    "ServiceUnavailableError",
    "StaleObjectError",
    "ThrottledError",
    "ValidationError",
    "describe",
    "error_fields",
    "error_from_exception",
    "error_from_fault",
    "error_from_response",
    "redact",
]

# QBO's documented wait after a 429 (Intuit "Limits and throttles" page).
THROTTLE_WAIT_SECONDS = 60.0
_USER_MESSAGE_LIMIT = 300

# A bearer token (JWT, "eyJ...") or a refresh token ("AB11...") is a long run of URL-safe
# characters with digits in it; ordinary QBO messages and element paths never are.
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9\-_.~+/]{40,}={0,2}")
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-_.~+/]{16,}=*")


def redact(text: str | None) -> str | None:
    """Return ``text`` with anything that looks like a token replaced by ``[redacted]``."""
    if not text:
        return text
    text = _BEARER.sub("Bearer [redacted]", text)
    return _TOKEN_LIKE.sub(
        lambda m: "[redacted]" if any(c.isdigit() for c in m.group()) else m.group(), text
    )


def _shorten(text: str, limit: int = _USER_MESSAGE_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _rebuild(cls: type[QBOError], state: dict[str, Any]) -> QBOError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    error.__dict__.update(state)
    return error


class QBOError(Exception):
    """A QuickBooks request failed. Base of every error this package raises."""

    _retryable: ClassVar[bool] = False
    _user_message: ClassVar[str | None] = None

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        code: str | None = None,
        element: str | None = None,
        detail: str | None = None,
        intuit_tid: str | None = None,
        fault_type: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        self.message = redact(message) or ""
        self.status = status
        self.code = str(code) if code not in (None, "") else None
        self.element = element or None
        self.detail = redact(detail) or None
        self.intuit_tid = intuit_tid or None
        self.fault_type = fault_type or None
        # The requestid the failed write carried (set by the client): resend with it.
        self.request_id: str | None = None
        # Every Error of a multi-error Fault, as {"code", "element", "message", "detail"}.
        self.errors = [
            {k: redact(v) if isinstance(v, str) else v for k, v in e.items()} for e in errors or []
        ]
        super().__init__(self.message)

    @property
    def retryable(self) -> bool:
        """True when the same request may succeed if sent again later."""
        return self._retryable

    @property
    def needs_reconnect(self) -> bool:
        """True when nothing can go on until someone reconnects (see ``ReconnectRequired``)."""
        return isinstance(self, ReconnectRequired)

    @property
    def user_message(self) -> str:
        """Short plain words for staff, saying what went wrong and what happens next."""
        if self._user_message:
            return self._user_message
        said = self.detail or self.message
        if said:
            return _shorten(f"QuickBooks refused this: {said}")
        return "QuickBooks refused this request."

    def __str__(self) -> str:
        parts = [self.message or type(self).__name__]
        facts = []
        if self.status is not None:
            facts.append(f"HTTP {self.status}")
        if self.code:
            facts.append(f"code {self.code}")
        if self.element:
            facts.append(f"element {self.element}")
        if self.intuit_tid:
            facts.append(f"intuit_tid {self.intuit_tid}")
        if facts:
            parts.append(f"({', '.join(facts)})")
        if self.detail and self.detail != self.message:
            parts.append(f"- {self.detail}")
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"element={self.element!r}, message={self.message!r}, "
            f"intuit_tid={self.intuit_tid!r})"
        )

    def __reduce__(self):
        # Keyword-only attributes survive pickling (django-q2 pickles task failures).
        return (_rebuild, (type(self), self.__dict__.copy()))


class ReconnectRequired(QBOError):
    """The connection cannot be used until a Sync administrator reconnects it.

    The one "reconnect needed" error: QBO refusing the access token (``AuthenticationError``),
    Intuit refusing the refresh token (``InvalidGrantError``), or a connection already marked
    as needing a reconnect or disconnected (raised by ``integrations.services`` with the
    ``connection`` and the ``reason`` staff see).
    """

    _user_message = "QuickBooks must be reconnected."

    def __init__(self, message: str = "", *, reason: str = "", connection=None, **kwargs) -> None:
        super().__init__(message or reason, **kwargs)
        self.reason = reason
        self.connection = connection

    @property
    def user_message(self) -> str:
        return self.reason or self._user_message


class AuthenticationError(ReconnectRequired):
    """QBO no longer accepts the access token (401, codes 3200 and 100): reconnect needed.

    The client refreshes the access token once on a 401 before raising this.
    """

    _user_message = (
        "QuickBooks no longer accepts Ledgerlink's connection. "
        "A Sync administrator must reconnect to QuickBooks."
    )


class AuthorizationError(QBOError):
    """The connected QBO user may not do this (403, codes 3100 and 120)."""

    _user_message = (
        "The QuickBooks user who connected Ledgerlink is not allowed to do this. "
        "Reconnect as a QuickBooks company administrator."
    )


class ThrottledError(QBOError):
    """QBO's request limit was reached (429, code 3001). ``retry_after`` is in seconds."""

    _retryable = True
    _user_message = "QuickBooks is busy (too many requests). Ledgerlink will try again shortly."

    def __init__(self, message: str = "", *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = THROTTLE_WAIT_SECONDS if retry_after is None else float(retry_after)


class StaleObjectError(QBOError):
    """The record changed in QBO since it was read: its SyncToken is old (code 5010)."""

    _user_message = (
        "Someone changed this record in QuickBooks at the same time, so QuickBooks did not "
        "save Ledgerlink's change. It needs the latest version from QuickBooks first."
    )


class NotFoundError(QBOError):
    """A record, or one it refers to, is missing or inactive in QBO (404, code 610)."""

    _user_message = (
        "QuickBooks could not find something this refers to: it may have been deleted or made "
        "inactive in QuickBooks."
    )


class DuplicateError(QBOError):
    """QBO already has this: a used name (6240), document number (6140) or object (630)."""

    @property
    def user_message(self) -> str:
        return CODE_TEXTS[self.code].alone if self.code in CODE_TEXTS else CODE_TEXTS["630"].alone


class ValidationError(QBOError):
    """QBO rejected the data (any other 4xx, codes 2000-6999): fix the record and try again."""


class ServiceUnavailableError(QBOError):
    """QBO failed on its side (5xx, including 500/10000 SystemFault and 503)."""

    _retryable = True
    _user_message = "QuickBooks is having trouble right now. Ledgerlink will try again shortly."


class ConnectionFailedError(QBOError):
    """QBO could not be reached, or its answer never came (network error or timeout).

    ``uncertain`` is True when a write was sent and no answer came back, so QBO may or may not
    have saved it; resending it with the same ``requestid`` is safe, resending without is not.
    """

    _retryable = True

    def __init__(self, message: str = "", *, uncertain: bool = False, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.uncertain = uncertain

    @property
    def user_message(self) -> str:
        if self.uncertain:
            return (
                "Ledgerlink lost contact with QuickBooks before it answered, so it is not yet "
                "known whether QuickBooks saved this. Ledgerlink will check and try again."
            )
        return "Ledgerlink could not reach QuickBooks. It will try again shortly."


class OAuthError(QBOError):
    """Intuit's OAuth server refused a token request (``error`` as sent, e.g. invalid_client)."""

    def __init__(
        self,
        message: str = "",
        *,
        error: str | None = None,
        error_description: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(message or error_description or error or "", **kwargs)
        self.error = error or None
        self.error_description = redact(error_description) or None

    @property
    def user_message(self) -> str:
        if self.error == "invalid_client":
            return (
                "QuickBooks did not accept Ledgerlink's app keys. "
                "Check the QBO_CLIENT_ID and QBO_CLIENT_SECRET settings."
            )
        said = self.error_description or self.error
        if said:
            return _shorten(f"QuickBooks refused the connection request: {said}.")
        return "QuickBooks refused the connection request."

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} [error={self.error}]" if self.error else base


class InvalidGrantError(OAuthError, ReconnectRequired):
    """The refresh token or authorization code is spent, expired or revoked: reconnect needed."""

    _user_message = (
        "The QuickBooks connection has expired or was revoked. "
        "A Sync administrator must reconnect to QuickBooks."
    )

    @property
    def user_message(self) -> str:
        return self._user_message


# --- Parsing -----------------------------------------------------------------------------


def _int(code: Any) -> int | None:
    try:
        return int(str(code).strip())
    except (TypeError, ValueError):
        return None


def _classify(status: int | None, code: str | None, fault_type: str | None) -> type[QBOError]:
    n = _int(code)
    kind = (fault_type or "").lower()
    if status == 429 or n == 3001:
        # Throttling used to come back as 403/3001, so the code wins over the status.
        return ThrottledError
    if n in (3100, 120) or status == 403 or kind.startswith("authorizat"):
        # "AuthorizatonFault" (sic) is how the XSD spells it.
        return AuthorizationError
    if n in (3200, 100) or status == 401 or kind in ("authenticationfault", "authentication"):
        return AuthenticationError
    if n == 5010:
        return StaleObjectError
    if n == 610 or status == 404:
        return NotFoundError
    if n in (6240, 6140, 630):
        return DuplicateError
    if (status is not None and status >= 500) or n == 10000 or kind == "systemfault":
        return ServiceUnavailableError
    if (
        (status is not None and 400 <= status < 500)
        or kind == "validationfault"
        or (n is not None and 2000 <= n <= 6999)
    ):
        # Codes outside 2000-6999 on a 4xx (600 duplicate request id, 620, 800 ...) are also
        # "fix the data or the request" problems, so they land here too.
        return ValidationError
    return QBOError


def _retry_after(response: requests.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_from_fault(
    fault: dict[str, Any],
    *,
    status: int | None = None,
    intuit_tid: str | None = None,
    retry_after: float | None = None,
) -> QBOError:
    """Turn a QBO ``Fault`` object (either letter case) into the matching ``QBOError``.

    Used for whole-response faults and for the per-item faults of a batch. Several Errors are
    classified by the first; all are kept on ``errors``.
    """
    raw = fault.get("Error") or fault.get("error") or []
    if isinstance(raw, dict):
        raw = [raw]
    errors = [
        {
            "code": None if e.get("code") is None else str(e.get("code")),
            "element": e.get("element") or None,
            "message": e.get("Message") or e.get("message") or "",
            "detail": e.get("Detail") or e.get("detail") or None,
        }
        for e in raw
        if isinstance(e, dict)
    ]
    first = errors[0] if errors else {"code": None, "element": None, "message": "", "detail": None}
    fault_type = fault.get("type")
    cls = _classify(status, first["code"], fault_type)
    kwargs: dict[str, Any] = {
        "status": status,
        "code": first["code"],
        "element": first["element"],
        "detail": first["detail"],
        "intuit_tid": intuit_tid,
        "fault_type": fault_type,
        "errors": errors,
    }
    if cls is ThrottledError:
        kwargs["retry_after"] = retry_after
    message = first["message"] or f"QuickBooks {fault_type or 'fault'}"
    return cls(message, **kwargs)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _fault_from_xml(text: str) -> dict[str, Any] | None:
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return None
    for node in root.iter():
        if _local(node.tag) != "Fault":
            continue
        errors = []
        for error in node:
            if _local(error.tag) != "Error":
                continue
            entry: dict[str, Any] = {
                "code": error.get("code"),
                "element": error.get("element") or None,
            }
            for child in error:
                if _local(child.tag) in ("Message", "Detail"):
                    entry[_local(child.tag)] = (child.text or "").strip()
            errors.append(entry)
        return {"type": node.get("type"), "Error": errors}
    return None


def _fault_from_body(response: requests.Response) -> dict[str, Any] | None:
    text = response.text or ""
    stripped = text.lstrip()
    if not stripped:
        return None
    if stripped.startswith("<"):
        # QBO sends throttle faults as XML even when JSON was asked for; HTML error pages
        # from a gateway find no Fault element and fall through.
        return _fault_from_xml(stripped)
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    # "Fault" is the API's own envelope; "fault" (with "error") is the gateway's 401 shape.
    fault = body.get("Fault") or body.get("fault")
    return fault if isinstance(fault, dict) else None


def error_from_response(response: requests.Response) -> QBOError:
    """Turn a failed QBO API response into the matching ``QBOError`` subclass.

    Understands the JSON ``Fault`` envelope, the gateway's lower-case ``fault.error[]`` shape,
    the XML throttle fault, and HTML or empty bodies (classified by HTTP status alone).
    """
    status = response.status_code
    intuit_tid = response.headers.get("intuit_tid")
    retry_after = _retry_after(response)
    fault = _fault_from_body(response)
    if fault is not None:
        return error_from_fault(
            fault, status=status, intuit_tid=intuit_tid, retry_after=retry_after
        )
    cls = _classify(status, None, None)
    reason = f" {response.reason}" if response.reason else ""
    kwargs: dict[str, Any] = {"status": status, "intuit_tid": intuit_tid}
    if cls is ThrottledError:
        kwargs["retry_after"] = retry_after
    return cls(f"QuickBooks answered HTTP {status}{reason}", **kwargs)


def was_sent(exc: requests.RequestException) -> bool:
    """False when the request certainly never left (the connection could not be made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ConnectionError) and exc.args:
        inner = exc.args[0]
        if isinstance(inner, NewConnectionError) or isinstance(
            getattr(inner, "reason", None), NewConnectionError
        ):
            return False
    return True


def error_from_exception(
    exc: requests.RequestException, *, write: bool, service: str = "QuickBooks"
) -> ConnectionFailedError:
    """Turn a network error or timeout into ``ConnectionFailedError``.

    ``write`` says the request changes something; it is then ``uncertain`` unless it surely
    never left this machine.
    """
    return ConnectionFailedError(
        f"No answer from {service}: {type(exc).__name__}",
        uncertain=write and was_sent(exc),
    )


def oauth_error_from_response(response: requests.Response) -> QBOError:
    """Turn a failed Intuit OAuth response (token or revoke endpoint) into a ``QBOError``.

    ``invalid_grant`` becomes ``InvalidGrantError``; other ``error`` values ``OAuthError``;
    429 ``ThrottledError``; 5xx ``ServiceUnavailableError``.
    """
    status = response.status_code
    intuit_tid = response.headers.get("intuit_tid")
    if status == 429:
        return ThrottledError(
            "Intuit's OAuth server is throttling requests",
            status=status,
            intuit_tid=intuit_tid,
            retry_after=_retry_after(response),
        )
    if status >= 500:
        return ServiceUnavailableError(
            f"Intuit's OAuth server answered HTTP {status}", status=status, intuit_tid=intuit_tid
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    error = description = None
    if isinstance(body, dict):
        error = body.get("error") if isinstance(body.get("error"), str) else None
        description = body.get("error_description")
    cls = InvalidGrantError if error == "invalid_grant" else OAuthError
    return cls(
        description or error or f"Intuit's OAuth server answered HTTP {status}",
        error=error,
        error_description=description,
        status=status,
        intuit_tid=intuit_tid,
    )


# --- Plain words ---------------------------------------------------------------------------
# The one place for what staff read about a QuickBooks error code.


@dataclass(frozen=True)
class CodeText:
    """What a QuickBooks error code means for a record, and its fix.

    ``what`` and ``fix`` are read in context (a record's Sync Details): ``{kind}`` is the
    record's kind, ``{element}`` QBO's element, ``{detail}`` QBO's detail, ``{number}`` the
    invoice number, ``{name}`` the record. ``alone`` is the error's ``user_message`` where
    the error class has no sentence of its own.
    """

    what: str
    fix: str
    alone: str = ""


CODE_TEXTS: dict[str, CodeText] = {
    "610": CodeText(
        "QuickBooks cannot find something this {kind} uses, or it was made inactive there",
        "check that the customer and items are active in QuickBooks, then retry",
    ),
    "620": CodeText(
        "QuickBooks could not link this {kind} to the transaction",
        "retry; if it persists, check the linked payment in QuickBooks",
    ),
    "630": CodeText(
        "QuickBooks already has an object like this",
        "link or rename one of them, then retry",
        alone="QuickBooks already has this record.",
    ),
    "2010": CodeText("QuickBooks does not accept the field {element}", "remove that field mapping"),
    "2020": CodeText("QuickBooks needs a value for {element}", "fill it in, then retry"),
    "2050": CodeText("{element} is longer than QuickBooks allows", "shorten it, then retry"),
    "2500": CodeText(
        "QuickBooks does not know the {element} this {kind} points to",
        "sync or re-create it in QuickBooks, then retry",
    ),
    "5010": CodeText(
        "the {kind} was changed in QuickBooks while Ledgerlink was saving it",
        "Ledgerlink will compare both versions on the next sync",
    ),
    "6000": CodeText(
        "QuickBooks refused the {kind}: {detail}", "fix what QuickBooks names, then retry"
    ),
    "6070": CodeText(
        "a line's amount is not quantity times unit price", "correct the line, then retry"
    ),
    "6080": CodeText("the customer has no name", "give the customer a display name, then retry"),
    "6100": CodeText("a line's sales tax code is not valid in QuickBooks", "check the tax mapping"),
    "6140": CodeText(
        "QuickBooks already has an invoice with number {number}",
        "give this invoice another number (or turn on 'allow duplicate numbers' in QuickBooks), "
        "then retry",
        alone="This invoice number is already used in QuickBooks. Choose a different number.",
    ),
    "6190": CodeText("the QuickBooks subscription is not active", "renew it in QuickBooks"),
    "6210": CodeText(
        "the invoice date falls in a period closed in QuickBooks",
        "change the date or reopen the period in QuickBooks",
    ),
    "6240": CodeText(
        "a customer with this name already exists in QuickBooks (possibly a vendor or employee)",
        "rename one of them, then retry",
        alone="Another customer, vendor or employee in QuickBooks already uses this name. "
        "Change the name here or in QuickBooks.",
    ),
    "6270": CodeText(
        "the invoice is dated before an inventory item's start date in QuickBooks",
        "change the invoice date or the item's start date",
    ),
    "6520": CodeText("an inventory item has no quantity", "enter the quantity, then retry"),
}
# Names are unique across customers, vendors and employees; for an item, 6240 means an item.
ITEM_NAME_TAKEN = CodeText(
    "an item with this name already exists in QuickBooks", "rename one of them, then retry"
)


def describe(
    error: Exception,
    *,
    kind: str = "invoice",
    name: str = "",
    number: str = "",
    id_names: dict[str, str] | None = None,
    update: bool = False,
) -> str:
    """The plain-words reason for ``error`` on a record (sentence and fix); ``update``: the
    write was a change to an object QuickBooks has, not a create."""
    if isinstance(error, ConnectionFailedError) and error.uncertain and update:
        # An update is not claimed and replayed as a create is: the next sync compares the
        # portal with what QuickBooks holds, so it writes the change only if it is missing.
        return (
            f"QuickBooks did not answer in time, so it is not known yet whether it saved this "
            f"change to the {kind}. The next sync reads the {kind} from QuickBooks and sends "
            "the change again only if QuickBooks does not have it."
        )
    if isinstance(error, ConnectionFailedError) and error.uncertain:
        return (
            "QuickBooks did not answer in time, so it is not known yet whether the change was "
            "saved. Ledgerlink will ask again with the same request and settle it; no duplicate "
            "will be made."
        )
    if not isinstance(error, QBOError):
        return f"Unexpected problem: {error}"
    code = str(error.code or "")
    detail = _with_names(error.detail or error.message or "", id_names or {})
    text = ITEM_NAME_TAKEN if code == "6240" and kind == "item" else CODE_TEXTS.get(code)
    if text is not None:
        what, fix = text.what, text.fix
    else:
        what, fix = (error.user_message.rstrip("."), "")
    element = error.element or "a field"
    what = what.format(kind=kind, element=element, detail=detail, number=number, name=name)
    sentence = what[0].upper() + what[1:]
    if fix:
        sentence += f": {fix}."
    elif not sentence.endswith("."):
        sentence += "."
    if detail and code and code not in ("6000",) and detail not in sentence:
        sentence += f" (QuickBooks said: {detail})"
    return sentence


def _with_names(text: str, id_names: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        name = id_names.get(match.group(2))
        return f"{match.group(1)}{name}" if name else match.group(0)

    # "Invalid Reference Id: 42" -> "Invalid Reference Id: Pump"
    return re.sub(r"(\bId\s*[:=]?\s*)(\d+)\b", replace, text) if id_names else text


def error_fields(error: Exception) -> dict:
    """The QBO fields kept on a sync record next to the reason."""
    if not isinstance(error, QBOError):
        return {"error_code": "", "error_element": "", "intuit_tid": ""}
    return {
        "error_code": str(error.code or "")[:16],
        "error_element": str(error.element or "")[:100],
        "intuit_tid": str(error.intuit_tid or "")[:100],
    }
