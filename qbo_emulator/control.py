"""The emulator's own control endpoint under ``/_emulator/`` (outside ``/v3``).

Lets tests and demos reset a realm, change data as a person in the QBO UI would (with
SyncToken bumps, webhooks and CDC like any change, including merging one customer into
another), read the request log, move the clock and set levers. It has no authentication:
the emulator is a local tool.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from . import errors
from .api import SEGMENTS, include_flags, parse_body, run_operation
from .store import ENTITIES
from .wire import Request, Response

if TYPE_CHECKING:
    from .server import Emulator

REALM_PATH = re.compile(r"^/_emulator/realms/([^/]+)/([A-Za-z]+)$")
MERGE_PATH = re.compile(r"^/_emulator/realms/([^/]+)/customer/merge$", re.IGNORECASE)


class Control:
    """Dispatches ``/_emulator/...`` requests."""

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    def handle(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        method = request.method
        try:
            body = self._json(request) if method == "POST" else {}
        except ValueError:
            return _error(400, "The body must be a JSON object")
        if path == "/_emulator" and method == "GET":
            return self._status()
        if path == "/_emulator/reset" and method == "POST":
            return self._reset(body)
        if path == "/_emulator/clock":
            return self._clock(method, body)
        if path == "/_emulator/options":
            return self._options(method, body)
        if path == "/_emulator/requests":
            return self._requests(request)
        if path == "/_emulator/tokens" and method == "POST":
            return self._tokens(body)
        if path == "/_emulator/webhooks":
            return Response.json({"deliveries": _plain(self.emu.dispatcher.deliveries)})
        if path == "/_emulator/webhooks/flush" and method == "POST":
            self.emu.dispatcher.flush()
            return Response.json({"deliveries": _plain(self.emu.dispatcher.deliveries)})
        if path == "/_emulator/state/save" and method == "POST":
            self.emu.save_state()
            return Response.json({"saved": bool(self.emu.config.state_file)})
        match = MERGE_PATH.match(path)
        if match and method == "POST":
            return self._merge(match.group(1), body)
        match = REALM_PATH.match(path)
        if match:
            return self._entity(request, match.group(1), match.group(2), method)
        return _error(404, f"No control endpoint {method} {path}")

    @staticmethod
    def _json(request: Request) -> dict:
        if not request.body:
            return {}
        data = json.loads(request.body.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return data

    def _status(self) -> Response:
        from .server import config_summary

        emu = self.emu
        return Response.json(
            {
                "base_url": emu.base_url,
                "realms": [{"realm_id": r, "company_name": n} for r, n in emu.companies],
                "config": config_summary(emu.config),
                "clock": {"time": emu.clock.time(), "offset": emu.clock.offset},
            }
        )

    def _reset(self, body: dict) -> Response:
        realm_ids = [body["realm_id"]] if body.get("realm_id") else list(self.emu.realms)
        for realm_id in realm_ids:
            if realm_id not in self.emu.realms:
                return _error(404, f"Unknown realm {realm_id}")
            self.emu.reset_realm(realm_id)
        if body.get("requests", True):
            self.emu.throttle.reset()
        return Response.json({"reset": realm_ids})

    def _clock(self, method: str, body: dict) -> Response:
        clock = self.emu.clock
        if method == "POST":
            if "advance" in body:
                clock.advance(float(body["advance"]))
            if "offset" in body:
                clock.set_offset(float(body["offset"]))
            self.emu.mark_dirty()
        return Response.json(
            {"time": clock.time(), "now": clock.now().isoformat(), "offset": clock.offset}
        )

    def _options(self, method: str, body: dict) -> Response:
        emu = self.emu
        if method == "POST":
            if "latency_ms" in body:
                emu.options.latency_ms = int(body["latency_ms"])
            if "fault_rate" in body or "seed" in body or "lost_rate" in body:
                emu.faults.configure(
                    body.get("fault_rate", emu.faults.rate),
                    body.get("seed", emu.faults.seed),
                    body.get("lost_rate", emu.faults.lost_rate),
                )
            if "throttle" in body:
                emu.throttle.enabled = bool(body["throttle"])
            for key in ("per_minute", "concurrent", "batch_per_minute"):
                if key in body:
                    setattr(emu.throttle, key, int(body[key]))
            if "refresh_rotation_seconds" in body:
                emu.oauth.rotation_seconds = float(body["refresh_rotation_seconds"])
            if "redirect_uris" in body:
                emu.oauth.redirect_uris = list(body["redirect_uris"])
            if "webhooks_require_connection" in body:
                emu.options.webhooks_require_connection = bool(body["webhooks_require_connection"])
            if "hold_answers_ms" in body:
                emu.set_hold_answers(int(body["hold_answers_ms"]))
        return Response.json(
            {
                "latency_ms": emu.options.latency_ms,
                "fault_rate": emu.faults.rate,
                "lost_rate": emu.faults.lost_rate,
                "seed": emu.faults.seed,
                "throttle": emu.throttle.enabled,
                "per_minute": emu.throttle.per_minute,
                "concurrent": emu.throttle.concurrent,
                "batch_per_minute": emu.throttle.batch_per_minute,
                "refresh_rotation_seconds": emu.oauth.rotation_seconds,
                "redirect_uris": emu.oauth.redirect_uris,
                "webhooks_require_connection": emu.options.webhooks_require_connection,
                "hold_answers_ms": emu.options.hold_answers_ms,
            }
        )

    def _requests(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.emu.clear_log()
            return Response.json({"requests": []})
        since = int(request.param("since") or 0)
        return Response.json({"requests": self.emu.requests_log(since, request.param("realm_id"))})

    def _tokens(self, body: dict) -> Response:
        realm_id = body.get("realm_id") or self.emu.companies[0][0]
        if realm_id not in self.emu.realms:
            return _error(404, f"Unknown realm {realm_id}")
        scope = body.get("scope") or "com.intuit.quickbooks.accounting"
        return Response.json(self.emu.oauth.mint(realm_id, scope.split()))

    def _entity(self, request: Request, realm_id: str, name: str, method: str) -> Response:
        realm = self.emu.realms.get(realm_id)
        if realm is not None and name.lower() == "exchangerate":
            return self._exchange_rates(request, realm)
        entity = SEGMENTS.get(name.lower()) if name not in ENTITIES else name
        if realm is None or entity is None:
            return _error(404, f"Unknown realm or entity {realm_id}/{name}")
        if method == "GET":
            with realm.lock:
                rows = realm.rows(entity)
            return Response.json({entity: rows})
        if method != "POST":
            return _error(405, "GET or POST")
        operation = (request.param("operation") or "").lower()
        include = include_flags(request.param("include"))
        try:
            body = parse_body(request, entity)
            with realm.lock:
                company = self.emu.company(realm)
                company.user = "QuickBooks User"
                try:
                    result = _ui_operation(company, entity, operation, body, include)
                finally:
                    self.emu.publish(realm_id, company.events)
        except errors.ApiError as exc:
            return Response.json({"Fault": exc.fault()}, status=exc.status)
        return Response.json({entity: result})

    def _merge(self, realm_id: str, body: dict) -> Response:
        """Merge customer ``body["from"]`` into ``body["into"]`` (both Ids) as a QuickBooks
        user does, by renaming one to the other's name; answers the surviving customer."""
        realm = self.emu.realms.get(realm_id)
        if realm is None:
            return _error(404, f"Unknown realm {realm_id}")
        try:
            with realm.lock:
                company = self.emu.company(realm)
                company.user = "QuickBooks User"
                try:
                    survivor = company.merge_customer(
                        str(body.get("from") or ""), str(body.get("into") or "")
                    )
                finally:
                    self.emu.publish(realm_id, company.events)
        except errors.ApiError as exc:
            return Response.json({"Fault": exc.fault()}, status=exc.status)
        return Response.json({"Customer": survivor, "deletedId": str(body["from"])})

    def _exchange_rates(self, request: Request, realm) -> Response:
        """GET lists the realm's rate table; POST sets a rate for a date as a QuickBooks user
        would in the currency centre (SyncToken optional)."""
        if request.method == "GET":
            with realm.lock:
                return Response.json({"ExchangeRate": realm.rows("ExchangeRate")})
        if request.method != "POST":
            return _error(405, "GET or POST")
        try:
            body = parse_body(request, "ExchangeRate")
            with realm.lock:
                rate = self.emu.company(realm).set_exchange_rate(body, ui=True)
        except errors.ApiError as exc:
            return Response.json({"Fault": exc.fault()}, status=exc.status)
        self.emu.mark_dirty()
        return Response.json({"ExchangeRate": rate})


def _ui_operation(company, entity: str, operation: str, body: dict, include) -> dict:
    # A person in the UI always edits the latest version, so SyncToken is optional, and an
    # edit changes only what they touched (sparse).
    if operation == "delete":
        return company.delete(entity, body, ui=True)
    if operation == "void":
        return company.void(entity, body, ui=True)
    if operation in ("", "create", "update"):
        return company.save(entity, body, include=include, ui=True)
    return run_operation(company, entity, operation, body, include)


def _plain(deliveries: list) -> list:
    result = []
    for attempt in deliveries:
        if hasattr(attempt, "__dataclass_fields__"):
            from dataclasses import asdict

            attempt = asdict(attempt)
        result.append(json.loads(json.dumps(attempt, default=_default)))
    return result


def _default(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _error(status: int, message: str) -> Response:
    return Response.json({"error": message}, status=status)
