"""The v3 Accounting API under ``/v3/company/{realmId}/`` (qbo-api.md sections 2-5, 7)."""

from __future__ import annotations

import json
import math
import re
import time
from typing import TYPE_CHECKING

from . import errors
from .clock import iso_millis, parse_timestamp
from .store import ENTITIES, Realm
from .wire import Request, Response

if TYPE_CHECKING:
    from .server import Emulator

API_PATH = re.compile(r"^/v3/company/([^/]+)/(.+)$")
# URIs are case-sensitive and the entity segment is lower-case, as Intuit's are.
SEGMENTS = {name.lower(): name for name in ENTITIES}
CANONICAL = {name.lower(): name for name in ENTITIES}
MINOR_VERSION = 75
MAX_BATCH_ITEMS = 30
CDC_WINDOW = 30 * 86400
CDC_MAX_OBJECTS = 1000
CDC_UNSUPPORTED = frozenset({"TaxCode", "TaxRate"})
MAX_REQUEST_ID = 50


def effective_minor_version(value: str | None) -> int:
    """Versions below 75, a missing or an unreadable value are all served as 75.

    Versions above 75 are UNCONFIRMED; they are accepted and served as 75 too, since
    additive fields no longer bump the version.
    """
    try:
        return max(MINOR_VERSION, int(value)) if value else MINOR_VERSION
    except ValueError:
        return MINOR_VERSION


class V3Api:
    """Routes one v3 request through auth, throttle, fault injection and the handlers."""

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    def now_text(self) -> str:
        return iso_millis(self.emu.clock.time())

    def fault_response(self, exc: errors.ApiError) -> Response:
        return Response.json({"Fault": exc.fault(), "time": self.now_text()}, status=exc.status)

    def handle(self, request: Request, note: dict) -> Response:
        """Serve one request; ``note`` collects facts for the request log."""
        match = API_PATH.match(request.path)
        if not match:
            return not_found()
        realm_id, rest = match.groups()
        note["realm_id"] = realm_id
        note["minorversion"] = effective_minor_version(request.param("minorversion"))
        emu = self.emu
        try:
            emu.oauth.check_bearer(request, realm_id)
        except errors.GatewayError as exc:
            return Response.json(exc.body(int(emu.clock.time() * 1000)), status=exc.status)
        realm = emu.realms.get(realm_id)
        if realm is None:
            exc = errors.authorization_failed("Unknown company")
            return Response.json(exc.body(int(emu.clock.time() * 1000)), status=exc.status)
        if not emu.throttle.acquire(realm_id, batch=rest == "batch"):
            note["fault"] = "throttled"
            return Response(
                status=429,
                body=errors.throttle_xml(self.now_text()),
                content_type="application/xml",
            )
        try:
            fault = emu.faults.draw()
            if fault is None and request.method == "POST" and emu.faults.draw_lost():
                fault = "lost"
            if emu.options.latency_ms:
                time.sleep(emu.options.latency_ms / 1000.0)
            if fault:
                note["fault"] = fault
            if fault == "http500":
                return self.fault_response(errors.system_fault())
            if fault == "http503":
                return Response(
                    status=503,
                    body=b"<html><body><h1>503 Service Unavailable</h1></body></html>",
                    content_type="text/html",
                )
            if fault == "http429":
                return throttled(self.now_text())
            if fault == "drop" or (fault == "lost" and request.method != "POST"):
                return Response(drop=True)
            response = self._with_request_id(realm, rest, request, note)
            if emu.options.hold_answers_ms and note.get("requestid"):
                note["held"] = True
                emu.hold_answer()
            if fault == "lost":
                response.drop = True
            return response
        finally:
            emu.throttle.release(realm_id)

    def _with_request_id(self, realm: Realm, rest: str, request: Request, note: dict) -> Response:
        request_id = request.param("requestid")
        if request_id is None or request.method != "POST":
            return self._dispatch(realm, rest, request)
        note["requestid"] = request_id
        if len(request_id) > MAX_REQUEST_ID:
            # The code for an over-long requestid is UNCONFIRMED; QBO's length error is used.
            return self.fault_response(errors.length("requestid", MAX_REQUEST_ID, len(request_id)))
        with realm.lock:
            cached = realm.requestids.get(request_id)
            if cached is not None:
                # A replay answers with the first response, even if the object has since
                # been changed or deleted, and executes nothing.
                note["replayed"] = True
                status, content_type, body = cached
                return Response(status=status, body=body.encode(), content_type=content_type)
            response = self._dispatch(realm, rest, request)
            if response.status < 500:
                realm.requestids[request_id] = (
                    response.status,
                    response.content_type,
                    response.body.decode(),
                )
                self.emu.mark_dirty()
            return response

    def _dispatch(self, realm: Realm, rest: str, request: Request) -> Response:
        parts = rest.split("/")
        segment = parts[0]
        method = request.method
        try:
            if segment == "query" and len(parts) == 1 and method in ("GET", "POST"):
                return self._query(realm, request)
            if segment == "cdc" and len(parts) == 1 and method == "GET":
                return self._cdc(realm, request)
            if segment == "batch" and len(parts) == 1 and method == "POST":
                return self._batch(realm, request)
            if segment == "exchangerate" and len(parts) == 1 and method in ("GET", "POST"):
                return self._exchange_rate(realm, request)
            entity = SEGMENTS.get(segment)
            if entity is None:
                return not_found()
            if len(parts) == 1 and method == "POST":
                return self._write(realm, entity, request)
            if len(parts) == 1 and method == "GET" and entity == "Preferences":
                return self._envelope(entity, realm.singleton(entity))
            if len(parts) == 2 and method == "GET" and parts[1]:
                with realm.lock:
                    obj = self.emu.company(realm).read(entity, parts[1])
                return self._envelope(entity, obj)
            if len(parts) == 3 and parts[2] in ("pdf", "send"):
                raise errors.unsupported_operation(parts[2])
            if len(parts) <= 2:
                raise errors.unsupported_operation(method)
            return not_found()
        except errors.ApiError as exc:
            return self.fault_response(exc)

    def _envelope(self, entity: str, obj: dict) -> Response:
        return Response.json({entity: obj, "time": self.now_text()})

    # -- writes -----------------------------------------------------------------------

    def _write(self, realm: Realm, entity: str, request: Request) -> Response:
        body = parse_body(request, entity)
        operation = (request.param("operation") or "").lower()
        include = include_flags(request.param("include"))
        with realm.lock:
            company = self.emu.company(realm)
            try:
                result = run_operation(company, entity, operation, body, include)
            finally:
                self.emu.publish(realm.realm_id, company.events)
        return self._envelope(entity, result)

    # -- exchange rates ---------------------------------------------------------------

    def _exchange_rate(self, realm: Realm, request: Request) -> Response:
        """GET ``?sourcecurrencycode=EUR&asofdate=YYYY-MM-DD`` answers the rate in effect on
        that date; POST sets the rate for a date (Intuit's ExchangeRate entity)."""
        with realm.lock:
            company = self.emu.company(realm)
            if request.method == "GET":
                rate = company.exchange_rate(
                    request.param("sourcecurrencycode"), request.param("asofdate")
                )
            else:
                rate = company.set_exchange_rate(parse_body(request, "ExchangeRate"))
                self.emu.mark_dirty()
        return self._envelope("ExchangeRate", rate)

    # -- query ------------------------------------------------------------------------

    def _query(self, realm: Realm, request: Request) -> Response:
        if request.method == "GET":
            statement = request.param("query") or ""
        else:
            try:
                statement = request.body.decode("utf-8")
            except UnicodeDecodeError:
                raise errors.unsupported_property(
                    "query", "", "Property Name:Invalid UTF-8 in the request body"
                ) from None
        result = run_query(realm, statement)
        return Response.json({"QueryResponse": result, "time": self.now_text()})

    # -- cdc --------------------------------------------------------------------------

    def _cdc(self, realm: Realm, request: Request) -> Response:
        names = request.param("entities")
        since = request.param("changedSince")
        if not names:
            raise errors.required("entities")
        if not since:
            raise errors.required("changedSince")
        try:
            since_ts = math.floor(parse_timestamp(since))
        except ValueError:
            raise errors.unsupported_property(
                "changedSince", "", f"Property Name:changedSince invalid date, supplied:{since}"
            ) from None
        if since_ts < self.emu.clock.time() - CDC_WINDOW:
            # The fault for a changedSince beyond 30 days is UNCONFIRMED; a validation fault
            # naming the parameter is what QBO gives for other bad parameters.
            raise errors.unsupported_property(
                "changedSince",
                "",
                "Property Name:changedSince must be within the last 30 days",
            )
        wanted = []
        for raw in names.split(","):
            entity = CANONICAL.get(raw.strip().lower())
            if entity is None or entity in CDC_UNSUPPORTED:
                raise errors.unsupported_property(
                    "entities", "", f"Property Name:entities CDC is not supported for {raw}"
                )
            if entity not in wanted:
                wanted.append(entity)
        with realm.lock:
            # Read from the store's change index, oldest first: the cost follows the number
            # of changes asked for, not the size of the company.
            found = realm.changed_since(since_ts, wanted)
        # Past 1,000 objects (UNCONFIRMED) the oldest changes are returned, so a client
        # that continues from the newest LastUpdatedTime it saw misses nothing.
        found = found[:CDC_MAX_OBJECTS]
        responses = []
        for entity in wanted:
            rows = [obj for _, name, obj in found if name == entity]
            if rows:
                responses.append(
                    {
                        entity: rows,
                        "startPosition": 1,
                        "maxResults": len(rows),
                        "totalCount": len(rows),
                    }
                )
        body = {"CDCResponse": [{"QueryResponse": responses or [{}]}], "time": self.now_text()}
        return Response.json(body)

    # -- batch ------------------------------------------------------------------------

    def _batch(self, realm: Realm, request: Request) -> Response:
        body = parse_body(request, "IntuitBatchRequest")
        items = body.get("BatchItemRequest")
        if not isinstance(items, list) or not items:
            raise errors.required("BatchItemRequest")
        if len(items) > MAX_BATCH_ITEMS:
            raise errors.validation(
                "1040",
                "Number of batch items exceeds the limit",
                f"The batch holds {len(items)} items; the maximum is {MAX_BATCH_ITEMS}.",
                "BatchItemRequest",
            )
        responses = []
        with realm.lock:
            company = self.emu.company(realm)
            try:
                for item in items:
                    bid = item.get("bId") if isinstance(item, dict) else None
                    try:
                        responses.append({"bId": bid, **self._batch_item(realm, company, item)})
                    except errors.ApiError as exc:
                        responses.append({"bId": bid, "Fault": exc.fault()})
            finally:
                self.emu.publish(realm.realm_id, company.events)
        return Response.json({"BatchItemResponse": responses, "time": self.now_text()})

    def _batch_item(self, realm: Realm, company, item: object) -> dict:
        if not isinstance(item, dict):
            raise errors.required("BatchItemRequest")
        if "Query" in item:
            return {"QueryResponse": run_query(realm, str(item["Query"]))}
        if "CDCQuery" in item or "ReportQuery" in item:
            raise errors.unsupported_operation("CDCQuery" if "CDCQuery" in item else "ReportQuery")
        entity = next((key for key in item if key in ENTITIES), None)
        if entity is None:
            raise errors.required("Entity", "A batch item needs an entity or a Query")
        body = item[entity]
        if not isinstance(body, dict):
            raise errors.unsupported_property(entity, entity)
        operation = str(item.get("operation") or "create").lower()
        if operation not in ("create", "update", "delete", "void"):
            raise errors.unsupported_operation(operation)
        include = include_flags(item.get("optionsData"))
        if operation == "create" and body.get("Id"):
            raise errors.unsupported_property(
                "Id", entity, "Property Name:Id not allowed on create"
            )
        result = run_operation(company, entity, operation, body, include)
        return {entity: result}


def run_operation(company, entity: str, operation: str, body: dict, include: frozenset) -> dict:
    """Apply one write the way its ``operation`` parameter asks."""
    if operation == "delete":
        return company.delete(entity, body)
    if operation == "void" or (operation == "update" and "void" in include):
        return company.void(entity, body)
    if operation in ("", "create", "update"):
        if operation == "update" and not body.get("Id") and entity not in ("Preferences",):
            raise errors.required("Id")
        return company.save(entity, body, include=include)
    raise errors.unsupported_operation(operation)


def run_query(realm: Realm, statement: str) -> dict:
    """Parse and run a query with the query module; QueryError becomes a 4000-range fault."""
    from . import query as query_module

    try:
        parsed = query_module.parse(statement)
        with realm.lock:
            rows = _indexed_rows(realm, parsed)
            if rows is None:
                rows = realm.rows(parsed.entity)
        # Stored objects are replaced, never mutated, so the rows can be read unlocked.
        return query_module.execute(parsed, rows)
    except query_module.QueryError as exc:
        raise errors.validation(
            str(exc.code), str(exc.message), str(exc.detail or exc.message)
        ) from exc


def _indexed_rows(realm: Realm, parsed) -> list[dict] | None:
    """The only rows a query can match, found by Id or through a name index instead of
    reading the whole entity (``execute`` still applies every condition to them); None when
    the query names neither."""
    from . import query as query_module

    objects = realm.objects.get(parsed.entity)
    if objects is None:
        return None
    ids = query_module.id_lookup(parsed)
    if ids is None:
        fields = [
            f
            for f in ("DisplayName", "Name", "FullyQualifiedName")
            if realm.is_name_indexed(parsed.entity, f)
        ]
        lookup = query_module.equality_lookup(parsed, fields)
        if lookup is None:
            return None
        field, names = lookup
        ids = sorted({i for name in names for i in realm.ids_named(parsed.entity, field, name)})
    return [objects[i] for i in dict.fromkeys(ids) if i in objects]


def parse_body(request: Request, entity: str) -> dict:
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.unsupported_property(
            "body", entity, f"Property Name:Invalid UTF-8 byte at position {exc.start}"
        ) from None
    try:
        body = json.loads(text or "{}")
    except ValueError as exc:
        raise errors.unsupported_property(
            "body", entity, f"Property Name:Can not parse the request body: {exc.msg}"
        ) from None
    if not isinstance(body, dict):
        raise errors.unsupported_property("body", entity, "Property Name:Expected a JSON object")
    return body


def include_flags(value: str | None) -> frozenset[str]:
    if not value:
        return frozenset()
    return frozenset(part.strip().lower() for part in str(value).split(",") if part.strip())


def throttled(time_text: str) -> Response:
    # Retry-After is UNCONFIRMED for QBO and not sent; Intuit tells clients to wait 60 s.
    return Response(status=429, body=errors.throttle_xml(time_text), content_type="application/xml")


def not_found() -> Response:
    # An unknown or wrongly-cased URL is a 404 from Intuit's gateway, not a v3 Fault
    # (UNCONFIRMED body; plain text).
    return Response(status=404, body=b"Not Found", content_type="text/plain")
