"""QuickBooks webhooks: verify Intuit's signature, parse both payload formats, record each event
once and queue a pull for the realms that changed (qbo-api.md §10).

Verification follows stripe-python's ``_webhook.py``: HMAC-SHA256 over the raw body, compared
with ``hmac.compare_digest``, and a specific error for each way it can fail. Parsing is pure
(bytes in, ``ParsedEvent`` out), so both formats are unit-tested without a request. Nothing here
calls QuickBooks: Intuit wants an answer within 3 seconds, so the pull runs later in django-q2.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from integrations.models import Connection, WebhookEvent
from portal.tasks import queue

__all__ = [
    "ParsedEvent",
    "PayloadError",
    "PayloadTooLarge",
    "SignatureMalformed",
    "SignatureMismatch",
    "SignatureMissing",
    "SignatureVerificationError",
    "WebhookError",
    "WebhookNotConfigured",
    "WebhookReceipt",
    "parse_events",
    "verify_signature",
    "webhook_events_record",
    "webhook_pulls_queue",
    "webhook_receive",
]

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "intuit-signature"
_DIGEST_SIZE = hashlib.sha256().digest_size

# CloudEvents name entities in lower case ("qbo.creditmemo.created.v1"); the classic format and
# the rest of Ledgerlink use QBO's own names, so both formats are recorded alike.
_ENTITY_NAMES = {
    name.lower(): name
    for name in (
        "Account",
        "Attachable",
        "Bill",
        "BillPayment",
        "Budget",
        "Class",
        "CompanyInfo",
        "CreditMemo",
        "Currency",
        "Customer",
        "Department",
        "Deposit",
        "Employee",
        "Estimate",
        "Invoice",
        "Item",
        "JournalCode",
        "JournalEntry",
        "Payment",
        "PaymentMethod",
        "Preferences",
        "Purchase",
        "PurchaseOrder",
        "RefundReceipt",
        "SalesReceipt",
        "TaxAgency",
        "Term",
        "TimeActivity",
        "Transfer",
        "Vendor",
        "VendorCredit",
    )
}
# CloudEvents verb -> classic `operation`. Only "created" appears in Intuit's samples; the other
# verbs are UNCONFIRMED (qbo-api.md §10) and an unknown verb is recorded as sent.
_OPERATIONS = {
    "created": "Create",
    "updated": "Update",
    "deleted": "Delete",
    "voided": "Void",
    "merged": "Merge",
    "emailed": "Emailed",
}
_CLOUDEVENT_TYPE = re.compile(r"^qbo\.(?P<entity>[A-Za-z]+)\.(?P<verb>[A-Za-z]+)(?:\.v\d+)?$")


# --- Errors ----------------------------------------------------------------------------------


class WebhookError(Exception):
    """Base of every refusal of a webhook delivery."""


class WebhookNotConfigured(WebhookError):
    """No verifier token is set, so no signature can be checked."""


class SignatureVerificationError(WebhookError):
    """The `intuit-signature` header does not prove the body came from Intuit."""


class SignatureMissing(SignatureVerificationError):
    """The delivery has no `intuit-signature` header."""


class SignatureMalformed(SignatureVerificationError):
    """The header is not base64 of a SHA-256 digest."""


class SignatureMismatch(SignatureVerificationError):
    """The header is well formed but was not made with this verifier token over this body."""


class PayloadError(WebhookError, ValueError):
    """The body is not JSON in either of Intuit's webhook formats."""


class PayloadTooLarge(WebhookError):
    """The body is longer than the receiver accepts; reading stopped at most one byte past it."""

    def __init__(self, limit: int):
        self.limit = limit
        super().__init__(f"The body is larger than {limit} bytes.")


# --- Verification ----------------------------------------------------------------------------


def verify_signature(body: bytes, header: str | None, verifier: str) -> None:
    """Check that `header` is base64(HMAC-SHA256(verifier, body)).

    `body` must be the raw request body: re-serialised JSON would not match. Returns None when
    the signature is good.

    Raises WebhookNotConfigured (empty verifier), SignatureMissing, SignatureMalformed or
    SignatureMismatch.
    """
    if not verifier:
        raise WebhookNotConfigured("QBO_WEBHOOK_VERIFIER_TOKEN is not set.")
    if header is None or not header.strip():
        raise SignatureMissing(f"The {SIGNATURE_HEADER} header is missing.")
    try:
        provided = base64.b64decode(header.strip(), validate=True)
    except ValueError as exc:  # binascii.Error, or a header that is not ASCII
        raise SignatureMalformed(f"The {SIGNATURE_HEADER} header is not base64.") from exc
    if len(provided) != _DIGEST_SIZE:
        raise SignatureMalformed(f"The {SIGNATURE_HEADER} header is not a SHA-256 signature.")
    expected = hmac.new(verifier.encode("utf-8"), body, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, provided):
        raise SignatureMismatch(f"The {SIGNATURE_HEADER} header does not match the body.")


# --- Parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedEvent:
    """One change Intuit notified, in the classic format's vocabulary whatever the format.

    `event_key` identifies the event across redeliveries: the CloudEvents `id`, or for classic
    events a hash of everything the event carries (classic events have no id of their own).
    """

    event_key: str
    realm_id: str
    entity: str
    entity_id: str
    operation: str
    occurred_at: str


def parse_events(body: bytes) -> list[ParsedEvent]:
    """Read a webhook body in Intuit's classic format or as a CloudEvents array.

    Classic: ``{"eventNotifications": [{"realmId", "dataChangeEvent": {"entities": [...]}}]}``.
    CloudEvents: a JSON array of events (a single event object is accepted too). Events are
    returned in payload order; duplicates are kept (recording drops them).

    Raises PayloadError when the body is not JSON, matches neither format, or an event lacks a
    field Ledgerlink needs or carries one longer than it can store.
    """
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError("The body is not valid JSON.") from exc
    if isinstance(data, dict) and "eventNotifications" in data:
        events = _parse_classic(data["eventNotifications"])
    elif isinstance(data, list):
        events = [_parse_cloudevent(item, index) for index, item in enumerate(data)]
    elif isinstance(data, dict) and "specversion" in data:
        events = [_parse_cloudevent(data, 0)]
    else:
        raise PayloadError("The body is neither Intuit's classic nor its CloudEvents format.")
    for event in events:
        _check_lengths(event)
    return events


def _parse_classic(notifications: object) -> list[ParsedEvent]:
    if not isinstance(notifications, list):
        raise PayloadError("eventNotifications is not a list.")
    events = []
    for n, notification in enumerate(notifications):
        where = f"eventNotifications[{n}]"
        if not isinstance(notification, dict):
            raise PayloadError(f"{where} is not an object.")
        realm_id = _required(notification, "realmId", where)
        change = notification.get("dataChangeEvent")
        if not isinstance(change, dict) or not isinstance(change.get("entities"), list):
            raise PayloadError(f"{where}.dataChangeEvent.entities is not a list.")
        for e, entity in enumerate(change["entities"]):
            at = f"{where}.dataChangeEvent.entities[{e}]"
            if not isinstance(entity, dict):
                raise PayloadError(f"{at} is not an object.")
            name = _required(entity, "name", at)
            entity_id = _required(entity, "id", at)
            operation = _required(entity, "operation", at)
            last_updated = _optional(entity, "lastUpdated", at)
            # Every field goes into the key: Intuit sends the same change with the same values
            # on each redelivery, while a later change to the object has a new lastUpdated.
            fingerprint = json.dumps([realm_id, name, entity_id, operation, last_updated])
            key = "classic:" + hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()
            events.append(
                ParsedEvent(
                    event_key=key,
                    realm_id=realm_id,
                    entity=name,
                    entity_id=entity_id,
                    operation=operation,
                    occurred_at=last_updated,
                )
            )
    return events


def _parse_cloudevent(item: object, index: int) -> ParsedEvent:
    where = f"event [{index}]"
    if not isinstance(item, dict):
        raise PayloadError(f"{where} is not an object.")
    event_type = _required(item, "type", where)
    match = _CLOUDEVENT_TYPE.match(event_type)
    if match is None:
        raise PayloadError(f"{where} has type {event_type!r}, not qbo.<entity>.<verb>.v1.")
    entity = match["entity"].lower()
    verb = match["verb"].lower()
    return ParsedEvent(
        event_key=_required(item, "id", where),
        realm_id=_required(item, "intuitaccountid", where),
        entity=_ENTITY_NAMES.get(entity, entity),
        entity_id=_required(item, "intuitentityid", where),
        operation=_OPERATIONS.get(verb, verb),
        occurred_at=_optional(item, "time", where),
    )


def _required(data: dict, name: str, where: str) -> str:
    value = data.get(name)
    # Ids are strings in Intuit's samples; a number is accepted as its decimal text.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(f"{where} has no {name}.")
    return value.strip()


def _optional(data: dict, name: str, where: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"{where} has a {name} that is not a string.")
    return value.strip()


def _check_lengths(event: ParsedEvent) -> None:
    # A value longer than its column would fail the insert on PostgreSQL (SQLite would store
    # it): refuse it here, as a bad payload, the same on both.
    for name in ("event_key", "realm_id", "entity", "entity_id", "operation", "occurred_at"):
        limit = WebhookEvent._meta.get_field(name).max_length
        if len(getattr(event, name)) > limit:
            raise PayloadError(f"An event's {name} is longer than {limit} characters.")


# --- Recording and queueing ------------------------------------------------------------------


def webhook_events_record(events: list[ParsedEvent]) -> list[str]:
    """Store each event whose key is not stored yet; return the realm ids that had new events.

    Realm ids come back in the order they first appear among the new events. A redelivered
    event, or one repeated within the payload, is not stored again and names no realm. Safe
    against a concurrent delivery of the same events: each event is created by one of them
    only, so only one reports its realm.
    """
    first: dict[str, ParsedEvent] = {}
    for event in events:
        first.setdefault(event.event_key, event)
    unique = list(first.values())
    if not unique:
        return []
    with transaction.atomic():
        known = set(
            WebhookEvent.objects.filter(
                event_key__in=[event.event_key for event in unique]
            ).values_list("event_key", flat=True)
        )
        fresh = [event for event in unique if event.event_key not in known]
        created = _insert(fresh)
    realms: dict[str, None] = {}
    for event in created:
        realms.setdefault(event.realm_id, None)
    return list(realms)


def _insert(events: list[ParsedEvent]) -> list[ParsedEvent]:
    """Insert the events, returning those this call created."""
    if not events:
        return []
    try:
        # All or nothing in a savepoint: when it commits, this call created every row.
        with transaction.atomic():
            WebhookEvent.objects.bulk_create([WebhookEvent(**_fields(event)) for event in events])
        return events
    except IntegrityError:
        pass
    # A concurrent delivery stored some of them since the look-up: settle row by row, so each
    # event is reported new by exactly one delivery.
    created = []
    for event in events:
        try:
            with transaction.atomic():
                WebhookEvent.objects.create(**_fields(event))
        except IntegrityError:
            continue
        created.append(event)
    return created


def _fields(event: ParsedEvent) -> dict[str, str]:
    return {
        "event_key": event.event_key,
        "realm_id": event.realm_id,
        "entity": event.entity,
        "entity_id": event.entity_id,
        "operation": event.operation,
        "occurred_at": event.occurred_at,
    }


def webhook_pulls_queue(realm_ids: list[str]) -> list[str]:
    """Queue one `sync.tasks.pull_realm` per realm that has a connected company, after commit.

    Realms without a connected company are ignored and logged: Intuit only notifies connected
    companies, so one here was disconnected meanwhile or belongs to another installation.
    Returns the realm ids a pull was queued for.
    """
    connected = set(
        Connection.objects.filter(
            realm_id__in=realm_ids, status=Connection.Status.CONNECTED
        ).values_list("realm_id", flat=True)
    )
    queued = []
    for realm_id in realm_ids:
        if realm_id not in connected:
            logger.info("qbo.webhook.unknown_realm", extra={"realm_id": realm_id})
            continue
        # By name: sync builds on integrations, not the other way round.
        queue("sync.tasks.pull_realm", realm_id, "webhook")
        queued.append(realm_id)
    return queued


@dataclass(frozen=True)
class WebhookReceipt:
    """What one delivery did: events in it, how many were new, realms a pull was queued for."""

    events: int
    new_realms: list[str]
    queued_realms: list[str]


def webhook_receive(*, body: bytes, signature: str | None, verifier: str) -> WebhookReceipt:
    """Verify, parse and record one delivery, and queue a pull per connected realm with news.

    Nothing is stored or queued unless the signature is good and the whole body parses. The
    pulls are queued with `transaction.on_commit`, so they start only once the events are
    stored.

    Raises WebhookNotConfigured, a SignatureVerificationError, or PayloadError.
    """
    verify_signature(body, signature, verifier)
    events = parse_events(body)
    with transaction.atomic():
        new_realms = webhook_events_record(events)
        queued = webhook_pulls_queue(new_realms) if new_realms else []
    logger.info(
        "qbo.webhook.received",
        extra={"events": len(events), "new_realms": new_realms, "queued_realms": queued},
    )
    return WebhookReceipt(events=len(events), new_realms=new_realms, queued_realms=queued)
