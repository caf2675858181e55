"""Webhook delivery for the QBO emulator, the way Intuit delivers (qbo-api.md §10).

After a change the emulator calls `WebhookDispatcher.notify()`. Events of one realm that arrive
within the batch window go out together in one signed POST, realms one at a time. A delivery
that is not answered with a 2xx is retried after each of `retry_delays`; until it is
acknowledged, later events of the same realm are held back, so a receiver never sees them out of
order. Only the standard library is used; nothing here touches Django.

Choices made where Intuit is silent:
- After the last retry delay the batch is dropped (and logged) so that a dead endpoint cannot hold
  a realm's events forever; Intuit keeps retrying every 6 hours.
- `lastUpdated` (and the CloudEvents `time`) are sent in UTC with milliseconds and a "Z", like
  Intuit's samples, whatever offset the caller's timestamp had.
- A redirect is not followed; it counts as a failed delivery.
- A `Merge` event names the survivor in `id` and the merged-away entity in `deletedId` (a
  third-party schema's name; UNCONFIRMED). CloudEvents carry it as `data.deletedId`
  (UNCONFIRMED: Intuit's samples only show an empty `data`).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "CLOUDEVENT_VERBS",
    "DeliveryAttempt",
    "Sender",
    "WebhookDispatcher",
    "cloudevent_type",
    "sign",
]

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "intuit-signature"
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (10, 20, 30, 300, 1200, 7200, 14400, 21600)

# Legacy `operation` -> CloudEvents verb in `type` (qbo.<entity>.<verb>.v1). Only "created" is
# confirmed by Intuit's samples; the other verbs are UNCONFIRMED and follow the same pattern.
CLOUDEVENT_VERBS = {
    "Create": "created",
    "Update": "updated",  # UNCONFIRMED
    "Delete": "deleted",  # UNCONFIRMED
    "Void": "voided",  # UNCONFIRMED
    "Merge": "merged",  # UNCONFIRMED
    "Emailed": "emailed",  # UNCONFIRMED
}

# (url, body, headers, timeout) -> HTTP status; raises (e.g. OSError) when no answer arrives.
Sender = Callable[[str, bytes, dict[str, str], float], int]


def sign(body: bytes, verifier_token: str) -> str:
    """The `intuit-signature` value: base64 of HMAC-SHA256 over the raw body, keyed by the
    app's verifier token."""
    digest = hmac.new(verifier_token.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def cloudevent_type(entity_name: str, operation: str) -> str:
    """CloudEvents `type` for a change, e.g. ("Invoice", "Create") -> "qbo.invoice.created.v1"."""
    verb = CLOUDEVENT_VERBS.get(operation, operation.lower())
    return f"qbo.{entity_name.lower()}.{verb}.v1"


@dataclass(frozen=True)
class DeliveryAttempt:
    """One POST to the webhook endpoint: `status` is the HTTP status, or None with `error` set
    when no answer came (refused, timed out)."""

    realm_id: str
    payload: bytes
    status: int | None
    error: str | None
    attempt: int
    time: float
    event_count: int

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class _Event:
    realm_id: str
    entity_name: str
    entity_id: str
    operation: str
    last_updated: str
    deleted_id: str | None = None


@dataclass
class _Batch:
    payload: bytes
    event_count: int
    attempts: int = 0
    next_at: float = 0.0


@dataclass
class _RealmQueue:
    events: list[_Event] = field(default_factory=list)
    window_ends: float = 0.0  # when the batch collecting `events` is due
    in_flight: _Batch | None = None  # sent or being retried, not yet acknowledged


class WebhookDispatcher:
    """Queues change events and POSTs them to `url` as QBO does.

    `clock` gives the time used for batch windows, retry schedules and `DeliveryAttempt.time`;
    `sender` replaces the urllib transport (see `Sender`). Without a `url` every method is a
    no-op, as QBO sends nothing to an app without a webhook endpoint.
    """

    def __init__(
        self,
        url: str | None,
        verifier_token: str,
        *,
        cloudevents: bool = False,
        batch_window: float = 0.5,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        timeout: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        sender: Sender | None = None,
        source: str = "intuit.qbo-emulator",
    ) -> None:
        self.url = url
        self.cloudevents = cloudevents
        self.batch_window = batch_window
        self.retry_delays = tuple(retry_delays)
        self.timeout = timeout
        self.source = source
        self._verifier_token = verifier_token
        self._clock = clock
        self._sender = sender or _urllib_sender
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._delivering = threading.Lock()  # one POST at a time: realms are sent one by one
        self._queues: dict[str, _RealmQueue] = {}
        self._deliveries: list[DeliveryAttempt] = []
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def deliveries(self) -> list[DeliveryAttempt]:
        """Every POST attempted so far, oldest first (a copy)."""
        with self._lock:
            return list(self._deliveries)

    def notify(
        self,
        realm_id: str,
        entity_name: str,
        entity_id: str,
        operation: str,
        last_updated: str,
        *,
        deleted_id: str | None = None,
    ) -> None:
        """Queue one change; it is sent when its realm's batch window closes.

        `deleted_id` is the Id a `Merge` removed (the merged-away entity)."""
        if self.url is None:
            return
        event = _Event(realm_id, entity_name, entity_id, operation, last_updated, deleted_id)
        with self._lock:
            queue = self._queues.setdefault(realm_id, _RealmQueue())
            if not queue.events:
                queue.window_ends = self._clock() + self.batch_window
            queue.events.append(event)
            self._wakeup.notify_all()

    def start(self) -> None:
        """Deliver in a background daemon thread until `stop()`."""
        if self.url is None or self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="qbo-webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Stop the background thread, then flush what is queued for up to `timeout` seconds.

        Returns True when nothing was left undelivered."""
        thread = self._thread
        if thread is not None:
            with self._lock:
                self._stopping = True
                self._wakeup.notify_all()
            thread.join()
            self._thread = None
        return self.flush(timeout=timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued now, without waiting for batch windows, in the calling thread.

        A failed delivery is still retried only after its delay (this call waits for it), and
        later events of its realm stay held until it is acknowledged or dropped. Returns True
        when nothing is left to send, False if `timeout` seconds passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.run_pending(force=True)
            with self._lock:
                next_at = self._next_due(force=True)
                if next_at is None:
                    return True
                wait = max(0.0, next_at - self._clock())
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    wait = min(wait, remaining)
                if wait > 0:
                    self._wakeup.wait(wait)

    def run_pending(self, *, force: bool = False) -> None:
        """Make every attempt that is due at the current `clock()` time, then return.

        With `force`, batches still inside their window are due too. Tests with a fake clock
        drive delivery through this method instead of the thread.
        """
        with self._delivering:
            while True:
                with self._lock:
                    job = self._take_due(force)
                if job is None:
                    return
                self._attempt(*job)

    # Internals

    def _run(self) -> None:
        while True:
            self.run_pending()
            with self._lock:
                if self._stopping:
                    return
                next_at = self._next_due(force=False)
                wait = 0.5 if next_at is None else next_at - self._clock()
                # Capped so that a clock other than time.monotonic is still polled.
                if wait > 0:
                    self._wakeup.wait(min(wait, 0.5))

    def _next_due(self, *, force: bool) -> float | None:
        """Earliest time some realm has an attempt due, or None if nothing is queued."""
        times = []
        for queue in self._queues.values():
            if queue.in_flight is not None:
                times.append(queue.in_flight.next_at)
            elif queue.events:
                times.append(float("-inf") if force else queue.window_ends)
        return min(times, default=None)

    def _take_due(self, force: bool) -> tuple[str, _Batch] | None:
        now = self._clock()
        for realm_id, queue in self._queues.items():
            if queue.in_flight is not None:
                if queue.in_flight.next_at <= now:
                    return realm_id, queue.in_flight
                continue  # later events wait until the earlier batch is acknowledged
            if queue.events and (force or queue.window_ends <= now):
                events, queue.events = queue.events, []
                queue.in_flight = _Batch(self._payload(realm_id, events), len(events))
                return realm_id, queue.in_flight
        return None

    def _attempt(self, realm_id: str, batch: _Batch) -> None:
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(batch.payload, self._verifier_token),
        }
        status: int | None = None
        error: str | None = None
        try:
            status = self._sender(self.url or "", batch.payload, headers, self.timeout)
        except Exception as exc:
            # Refused, reset, timed out, a garbled answer: all are a failed attempt to retry,
            # and nothing may escape into the delivery thread.
            error = f"{type(exc).__name__}: {exc}"
        batch.attempts += 1
        record = DeliveryAttempt(
            realm_id=realm_id,
            payload=batch.payload,
            status=status,
            error=error,
            attempt=batch.attempts,
            time=self._clock(),
            event_count=batch.event_count,
        )
        extra = {"realm_id": realm_id, "status": status, "attempt": batch.attempts}
        with self._lock:
            self._deliveries.append(record)
            queue = self._queues[realm_id]
            if record.acknowledged:
                queue.in_flight = None
                logger.info("qbo_emulator.webhook.delivered", extra=extra)
            elif batch.attempts > len(self.retry_delays):
                queue.in_flight = None
                logger.warning("qbo_emulator.webhook.dropped", extra={**extra, "error": error})
            else:
                batch.next_at = record.time + self.retry_delays[batch.attempts - 1]
                logger.info("qbo_emulator.webhook.retry_scheduled", extra={**extra, "error": error})
            if queue.in_flight is None and not queue.events:
                del self._queues[realm_id]
            self._wakeup.notify_all()

    def _payload(self, realm_id: str, events: list[_Event]) -> bytes:
        if self.cloudevents:
            body: object = [self._cloudevent(realm_id, event) for event in events]
        else:
            entities = [_legacy_entity(event) for event in events]
            body = {
                "eventNotifications": [
                    {"realmId": realm_id, "dataChangeEvent": {"entities": entities}}
                ]
            }
        return json.dumps(body, separators=(",", ":")).encode("utf-8")

    def _cloudevent(self, realm_id: str, event: _Event) -> dict:
        data = {"deletedId": event.deleted_id} if event.deleted_id else {}
        return {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": self.source,
            "type": cloudevent_type(event.entity_name, event.operation),
            "datacontenttype": "application/json",
            "time": _utc_millis(event.last_updated),
            "intuitentityid": event.entity_id,
            "intuitaccountid": realm_id,
            "data": data,
        }


def _legacy_entity(event: _Event) -> dict:
    entity = {
        "name": event.entity_name,
        "id": event.entity_id,
        "operation": event.operation,
        "lastUpdated": _utc_millis(event.last_updated),
    }
    if event.deleted_id:
        entity["deletedId"] = event.deleted_id
    return entity


def _utc_millis(timestamp: str) -> str:
    """An ISO timestamp as Intuit's webhooks print it ("2025-09-08T20:52:31.657Z"); a value
    that does not parse, or has no offset, is passed through unchanged."""
    try:
        moment = dt.datetime.fromisoformat(timestamp)
    except ValueError:
        return timestamp
    if moment.tzinfo is None:
        return timestamp
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)
# Loopback receivers (tests, a developer's own machine) are never reached through a proxy.
_DIRECT_OPENER = urllib.request.build_opener(_NoRedirect, urllib.request.ProxyHandler({}))
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def _urllib_sender(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST with urllib; returns the status (also for 4xx/5xx), raises OSError without one."""
    host = urllib.parse.urlsplit(url).hostname or ""
    opener = _DIRECT_OPENER if host in _LOOPBACK else _OPENER
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code
