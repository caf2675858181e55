"""The sync engine: push portal records to QuickBooks and pull QuickBooks changes back.

One run holds the connection's lock, works in short transactions and never holds one across
an HTTP call. Invoices are compared through the mappers' neutral form against what both sides
last agreed, so only real changes move, and the sync's own writes never echo back.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone

from integrations.fieldmap import CUSTOM_FIELD_MAX, CUSTOM_PREFIX, DOC_NUMBER_MAX
from integrations.models import Connection, FieldMapping, SyncConfiguration, TaxMapping
from integrations.quickbooks.client import QBOClient, quote
from integrations.quickbooks.errors import (
    ConnectionFailedError,
    NotFoundError,
    QBOError,
    StaleObjectError,
)
from portal.models import Customer, Invoice, InvoiceLine, Item, TaxRate
from portal.money import ZERO, round_money
from sync import catalogue, mappers
from sync.models import SyncEvent, SyncRecord, SyncRun

logger = logging.getLogger(__name__)

# QBO's CDC looks back at most 30 days (qbo-api.md §4); a cursor older than this (less a
# margin for clock skew) means a full re-read instead.
CDC_LOOKBACK = timedelta(days=30)
CDC_SAFE_LOOKBACK = CDC_LOOKBACK - timedelta(hours=1)
# Pull from a little before the last cursor, so a change committed in QBO while the previous
# pull ran is not missed; echoes of already-seen changes compare equal and are skipped.
CURSOR_OVERLAP = timedelta(minutes=2)
BATCH = 30
LOOKUP_BATCH = 30
NAME_FORBIDDEN = (":", "\t", "\n")
# Invoice fields QuickBooks fills in itself when left empty (qbo-api.md §8 Invoice).
SERVER_FILLED = ("due_date", "billing_email", "issue_date", "number")
# Retry schedule for failed records whose failure may pass (throttling, outages): minutes.
RETRY_BACKOFF_MINUTES = (1, 5, 15, 60, 240)

S = SyncRecord.Status


class RunStopped(Exception):
    """The run cannot go on (reconnect needed, connection off); the reason is the message."""


@dataclass
class Outcome:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    conflicts: int = 0
    skipped: int = 0
    planned: list[str] = field(default_factory=list)


class Sync:
    """One run's working state: connection, client, mappings and the bindings in memory."""

    def __init__(
        self,
        *,
        connection: Connection,
        run: SyncRun,
        client: QBOClient | None = None,
        dry_run: bool = False,
        on_progress=None,
    ):
        from integrations.services import connection_client

        self.on_progress = on_progress
        self.connection = connection
        self.run = run
        self.dry_run = dry_run
        self.config = sync_configuration_for(connection=connection)
        self.client = client or connection_client(connection=connection)
        self.mapping = invoice_mapping_for(connection=connection)
        mappings = TaxMapping.objects.filter(connection=connection).select_related("tax_code")
        self.tax_codes: dict[int, str] = {m.tax_rate_id: m.tax_code.qbo_id for m in mappings}
        self.rates_by_code: dict[str, int] = {}
        for m in mappings:
            self.rates_by_code.setdefault(m.tax_code.qbo_id, m.tax_rate_id)
        self.outcome = Outcome()
        self._events: list[SyncEvent] = []
        self._records: dict[tuple[str, int], SyncRecord] = {}
        self._by_qbo: dict[tuple[str, str], SyncRecord] = {}
        self._qbo_ids_cache: dict[str, dict[int, str]] = {}
        self._load_bindings()

    # --- bookkeeping -------------------------------------------------------------------

    def _load_bindings(self) -> None:
        for record in SyncRecord.objects.filter(
            connection=self.connection, object_type__in=["customer", "item"]
        ).select_related("customer", "item"):
            self._remember(record)

    def _remember(self, record: SyncRecord) -> None:
        self._qbo_ids_cache = {}
        local_id = record.customer_id or record.item_id or record.invoice_id
        self._records[(record.object_type, local_id)] = record
        if record.qbo_id:
            self._by_qbo[(record.object_type, record.qbo_id)] = record

    def binding(self, kind: str, local_id: int) -> SyncRecord | None:
        return self._records.get((kind, local_id))

    def names_by_qbo(self, kind: str) -> dict[str, str]:
        return {
            qbo_id: (record.customer.display_name if kind == "customer" else record.item.name)
            for (k, qbo_id), record in self._by_qbo.items()
            if k == kind and record.local_object is not None
        }

    def event(self, record: SyncRecord | None, action: str, message: str, level="info") -> None:
        self._events.append(
            SyncEvent(
                run=self.run,
                record=record if record is not None and record.pk else None,
                action=action,
                message=message,
                level=level,
            )
        )
        if len(self._events) >= 200:
            self.flush()

    def flush(self) -> None:
        """Write pending events and the run's counters (the run page shows progress)."""
        if self._events:
            SyncEvent.objects.bulk_create(self._events)
            self._events = []
        o = self.outcome
        SyncRun.objects.filter(pk=self.run.pk).update(
            created=o.created,
            updated=o.updated,
            unchanged=o.unchanged,
            failed=o.failed,
            conflicts=o.conflicts,
            total=self.run.total,
            done=self.run.done,
        )
        if self.on_progress is not None:
            self.on_progress(self.run)

    def progress(self, done: int = 0, total: int = 0) -> None:
        """Count work; the run row is written every 25 records so the page shows progress
        without a query per record."""
        self.run.total += total
        self.run.done += done
        if total or self.run.done % 25 == 0:
            self.flush()

    def fail(self, record: SyncRecord, reason: str, *, error: Exception | None = None) -> None:
        """Mark a record failed with its reason; retried later if the error may pass."""
        self.outcome.failed += 1
        label = record.label
        self.event(record, "failed", f"{label}: {reason}", level="error")
        if self.dry_run:
            self.outcome.planned.append(f"fail {label}: {reason}")
            return
        fields = (
            catalogue.error_fields(error)
            if error
            else {"error_code": "", "error_element": "", "intuit_tid": ""}
        )
        record.status = S.FAILED
        record.details = reason
        record.attempts += 1
        retryable = bool(error is not None and getattr(error, "retryable", False))
        record.next_retry_at = (
            timezone.now()
            + timedelta(
                minutes=RETRY_BACKOFF_MINUTES[min(record.attempts, len(RETRY_BACKOFF_MINUTES)) - 1]
            )
            if retryable
            else None
        )
        for key, value in fields.items():
            setattr(record, key, value)
        record.save()
        self._remember(record)

    def settle(self, record: SyncRecord, obj: dict, *, agreed: dict | None, pushed: bool) -> None:
        """Record a successful write or read: QBO id, SyncToken, agreement, status synced."""
        now = timezone.now()
        record.qbo_id = str(obj.get("Id", record.qbo_id))
        record.sync_token = str(obj.get("SyncToken", record.sync_token))
        record.qbo_last_updated = (obj.get("MetaData") or {}).get("LastUpdatedTime", "")
        if record.object_type == "invoice":
            record.qbo_doc_number = obj.get("DocNumber", "") or ""
        record.status = S.SYNCED
        record.details = ""
        record.error_code = record.error_element = record.intuit_tid = ""
        record.uncertain = False
        record.request_id = ""
        record.attempts = 0
        record.next_retry_at = None
        record.conflict_portal = record.conflict_qbo = None
        if agreed is not None:
            record.agreed = agreed
            record.agreed_hash = mappers.neutral_hash(agreed)
        if pushed:
            record.last_pushed_at = now
        else:
            record.last_pulled_at = now
        record.save()
        self._remember(record)

    def new_record(self, kind: str, local, *, save: bool = True) -> SyncRecord:
        record = SyncRecord(connection=self.connection, object_type=kind, status=S.PENDING)
        setattr(record, kind, local)
        if save and not self.dry_run:
            record.save()
        self._remember(record)
        return record

    # --- customers and items -----------------------------------------------------------

    def ensure_dependencies(self, invoices: list[Invoice]) -> dict[int, str]:
        """Make sure every customer and item the invoices use exists in QuickBooks.

        Unbound ones are looked up by name (batched queries) and bound, or created in batches
        when the configuration allows it. Returns {invoice id: reason} for invoices whose
        customer or items could not be made ready.
        """
        customers = {inv.customer_id: inv.customer for inv in invoices}
        items = {line.item_id: line.item for inv in invoices for line in inv.lines.all()}
        problems_c = self._ensure("customer", customers)
        problems_i = self._ensure("item", items)
        blocked: dict[int, str] = {}
        for inv in invoices:
            if inv.customer_id in problems_c:
                blocked[inv.pk] = problems_c[inv.customer_id]
                continue
            for line in inv.lines.all():
                if line.item_id in problems_i:
                    blocked[inv.pk] = problems_i[line.item_id]
                    break
        return blocked

    def _ensure(self, kind: str, locals_: dict[int, Customer | Item]) -> dict[int, str]:
        problems: dict[int, str] = {}
        missing = {}
        for local_id, local in locals_.items():
            record = self.binding(kind, local_id)
            if record is not None and record.qbo_id:
                continue
            reason = preflight_name(kind, local)
            if reason:
                problems[local_id] = reason
                continue
            missing[local_id] = local
        if not missing:
            return problems
        found = self.lookup_by_name(kind, list(missing.values()))
        to_create = []
        for local_id, local in missing.items():
            obj = found.get(_name_key(kind, local))
            record = self.binding(kind, local_id) or self.new_record(kind, local)
            if obj is not None:
                self.event(
                    record, "linked", f"{_label(kind, local)} matched by name in QuickBooks."
                )
                if not self.dry_run:
                    self.settle(record, obj, agreed=_neutral_qbo(kind, obj), pushed=False)
                else:
                    record.qbo_id = obj["Id"]
                    self._remember(record)
                continue
            allowed = (
                self.config.auto_create_customers
                if kind == "customer"
                else self.config.auto_create_items
            )
            if not allowed:
                reason = (
                    f"The {kind} {_label(kind, local)} is not in QuickBooks and creating "
                    f"{kind}s automatically is off: create it in QuickBooks, or turn on "
                    f"'auto create {kind}s' on the Configuration tab."
                )
                problems[local_id] = reason
                self.fail(record, reason)
                continue
            if kind == "item":
                reason = self.item_preflight(local)
                if reason:
                    problems[local_id] = reason
                    self.fail(record, reason)
                    continue
            to_create.append((record, local))
        for record, local, result in self.write_batch(
            [(r, loc, "create", self.body_for(kind, loc)) for r, loc in to_create], kind=kind
        ):
            if isinstance(result, Exception):
                reason = catalogue.describe(result, kind=kind, name=_label(kind, local))
                problems[local.pk] = (
                    f"The {kind} {_label(kind, local)} could not be created in QuickBooks: {reason}"
                )
                self.fail(record, reason, error=result)
            elif result is not None:
                self.outcome.created += 1
                self.event(
                    record, "created", f"Created {kind} {_label(kind, local)} in QuickBooks."
                )
                self.settle(record, result, agreed=_neutral_qbo(kind, result), pushed=True)
        return problems

    def lookup_by_name(self, kind: str, locals_: list) -> dict[str, dict]:
        """QuickBooks objects whose names match, keyed by lower-cased name (batched)."""
        entity, field_name = ("Customer", "DisplayName") if kind == "customer" else ("Item", "Name")
        names = sorted({_label(kind, local) for local in locals_})
        found: dict[str, dict] = {}
        statements = [
            {"query": f"SELECT * FROM {entity} WHERE {field_name} = {quote(name)}"}
            for name in names
        ]
        for start in range(0, len(statements), LOOKUP_BATCH):
            chunk = statements[start : start + LOOKUP_BATCH]
            self.run.api_calls += 1
            results = self.client.batch(chunk)
            for result in results:
                if isinstance(result, Exception):
                    raise result
                for obj in result.get(entity) or []:
                    found[obj.get(field_name, "").lower()] = obj
        return found

    def item_preflight(self, item: Item) -> str:
        c = self.connection
        if not c.income_account_id:
            return (
                f"Item {item.name} cannot be created in QuickBooks: no Income account is chosen. "
                "Pick one on the Journals tab."
            )
        if item.type == Item.Type.INVENTORY and not (c.expense_account_id and c.asset_account_id):
            return (
                f"Inventory item {item.name} needs an Expense and an Inventory Asset account: "
                "pick them on the Journals tab."
            )
        return ""

    def body_for(self, kind: str, local) -> dict:
        if kind == "customer":
            return mappers.customer_to_qbo(mappers.customer_neutral_local(local))
        c = self.connection
        return mappers.item_to_qbo(
            mappers.item_neutral_local(local),
            income_account=c.income_account.qbo_id if c.income_account else "",
            expense_account=c.expense_account.qbo_id if c.expense_account else None,
            asset_account=c.asset_account.qbo_id if c.asset_account else None,
            quantity_on_hand=local.quantity_on_hand,
            start_date=(self.config.first_invoice_date or date(2000, 1, 1)).isoformat(),
        )

    # --- writing in batches ------------------------------------------------------------

    def write_batch(self, writes: list[tuple], *, kind: str):
        """Send (record, local, operation, body) writes in batches of 30.

        Creates carry one ``requestid`` per batch, stored on each record with its position
        before sending, so a batch whose answer is lost can be replayed identically and
        settle without duplicates. Yields (record, local, result or exception or None).
        """
        entity = {"customer": "Customer", "item": "Item", "invoice": "Invoice"}[kind]
        for start in range(0, len(writes), BATCH):
            chunk = writes[start : start + BATCH]
            if self.dry_run:
                for record, local, operation, _body in chunk:
                    verb = {"create": "create", "update": "update", "void": "void"}[operation]
                    self.outcome.planned.append(f"{verb} {kind} {_label(kind, local)}")
                    yield record, local, None
                continue
            request_id = uuid.uuid4().hex
            if any(op == "create" for _, _, op, _ in chunk):
                for position, (record, _local, operation, _body) in enumerate(chunk):
                    if operation == "create":
                        record.request_id = f"{request_id}#{position}"
                        record.status = S.PENDING
                        if record.pk is None:
                            record.save()
                            self._remember(record)
                        else:
                            record.save(update_fields=["request_id", "status", "updated_at"])
            items = [
                {"operation": operation, "entity": entity, "body": body}
                for _record, _local, operation, body in chunk
            ]
            yield from self._send_batch(chunk, items, request_id=request_id, kind=kind)

    def _send_batch(self, chunk, items, *, request_id: str, kind: str):
        self.run.api_calls += 1
        try:
            results = self.client.batch(items, request_id=request_id)
        except ConnectionFailedError as exc:
            for record, local, operation, _body in chunk:
                if operation == "create":
                    record.uncertain = True
                    record.status = S.PENDING
                    record.details = catalogue.describe(exc, kind=kind)
                    record.save()
                    self.event(
                        record,
                        "uncertain",
                        f"{_label(kind, local)}: {record.details}",
                        level="warning",
                    )
                else:
                    yield record, local, exc
            return
        except QBOError as exc:
            if getattr(exc, "needs_reconnect", False):
                raise RunStopped(exc.user_message) from exc
            for record, local, _operation, _body in chunk:
                yield record, local, exc
            return
        for (record, local, _operation, _body), result in zip(chunk, results, strict=True):
            yield record, local, result

    def replay_uncertain(self) -> None:
        """Settle writes whose answer never came by replaying their batch's ``requestid``."""
        uncertain = list(
            SyncRecord.objects.filter(connection=self.connection, uncertain=True)
            .exclude(request_id="")
            .select_related("invoice__customer", "customer", "item")
            .prefetch_related(_lines_prefetch("invoice__lines"))
        )
        groups: dict[str, list[tuple[int, SyncRecord]]] = defaultdict(list)
        for record in uncertain:
            request_id, _, position = record.request_id.partition("#")
            groups[request_id].append((int(position or 0), record))
        for request_id, members in groups.items():
            members.sort(key=lambda pair: pair[0])
            chunk, items = [], []
            for _position, record in members:
                kind = record.object_type
                local = record.local_object
                body = self._create_body(kind, local)
                if body is None:
                    continue
                entity = {"customer": "Customer", "item": "Item", "invoice": "Invoice"}[kind]
                chunk.append((record, local, "create", body))
                items.append({"operation": "create", "entity": entity, "body": body})
            if self.dry_run:
                self.outcome.planned += [f"settle {r.object_type} {r.label}" for r, *_ in chunk]
                continue
            for record, local, result in self._send_batch(
                chunk, items, request_id=request_id, kind=chunk[0][0].object_type if chunk else ""
            ):
                kind = record.object_type
                if isinstance(result, Exception):
                    self.fail(record, catalogue.describe(result, kind=kind), error=result)
                else:
                    self.event(
                        record,
                        "settled",
                        f"{_label(kind, local)}: the earlier write was "
                        "confirmed by replaying its request; no duplicate was made.",
                    )
                    agreed = (
                        self._agreed_after_push(record, result)
                        if kind == "invoice"
                        else (_neutral_qbo(kind, result))
                    )
                    self.outcome.created += 1
                    self.settle(record, result, agreed=agreed, pushed=True)

    def _create_body(self, kind: str, local) -> dict | None:
        if kind != "invoice":
            return self.body_for(kind, local)
        neutral = self.neutral_local(local)
        ids = self._dependency_ids(local)
        if ids is None:
            return None
        customer_id, item_ids = ids
        return mappers.invoice_to_qbo(
            neutral, self.mapping, customer_id=customer_id, item_ids=item_ids
        )

    # --- invoices ------------------------------------------------------------------------

    def neutral_local(self, invoice: Invoice) -> dict:
        return mappers.invoice_neutral_local(
            invoice,
            self.mapping,
            tax_codes=self.tax_codes,
            customer_ids=self.qbo_ids("customer"),
            item_ids=self.qbo_ids("item"),
        )

    def qbo_ids(self, kind: str) -> dict[int, str]:
        cache = self._qbo_ids_cache.get(kind)
        if cache is None:
            cache = {
                local_id: record.qbo_id
                for (k, local_id), record in self._records.items()
                if k == kind and record.qbo_id
            }
            self._qbo_ids_cache[kind] = cache
        return cache

    def neutral_qbo(self, obj: dict) -> dict:
        return mappers.invoice_neutral_qbo(obj, self.mapping)

    def project(self, neutral: dict, side: str) -> dict:
        """Only the fields that flow towards ``side`` ("to" QBO or "from" QBO)."""
        keep = {}
        for name, value in neutral.items():
            if name in ("tax_code", "void"):
                flows = (
                    self.mapping.to_qbo("lines") if side == "to" else self.mapping.from_qbo("lines")
                )
                if name == "void":
                    flows = True
            else:
                flows = self.mapping.to_qbo(name) if side == "to" else self.mapping.from_qbo(name)
            if flows:
                keep[name] = value
        return keep

    def preflight_invoice(self, invoice: Invoice, neutral: dict) -> str:
        """Check an invoice against QuickBooks' rules before any request; "" when fine."""
        to_doc_number = (
            self.mapping.to_qbo("number") and self.mapping.qbo_field("number") == "DocNumber"
        )
        if to_doc_number and len(invoice.number) > DOC_NUMBER_MAX:
            return (
                f"Invoice number {invoice.number!r} has {len(invoice.number)} characters; "
                f"QuickBooks allows at most {DOC_NUMBER_MAX} in DocNumber. Shorten the "
                "number, then retry."
            )
        lines = list(invoice.lines.all())
        if not lines:
            return (
                "The invoice has no lines; QuickBooks needs at least one. Add a line, then retry."
            )
        unmapped = sorted(
            {
                line.tax_rate.name
                for line in lines
                if line.tax_rate_id and line.tax_rate_id not in self.tax_codes
            }
        )
        if unmapped:
            return (
                f"Tax rate {', '.join(unmapped)} is not mapped to a QuickBooks tax code, so the "
                "invoice was not sent (it would have gone untaxed). Map it on the Mapping > Tax "
                "tab, then retry."
            )
        codes = {self.tax_codes[line.tax_rate_id] for line in lines if line.tax_rate_id}
        if len(codes) > 1:
            return (
                "The lines use tax rates mapped to different QuickBooks tax codes; a US "
                "QuickBooks invoice carries one sales tax code. Use one tax rate per invoice "
                "(or map them to one combined code), then retry."
            )
        for name in self.mapping.mapped:
            qbo_field = self.mapping.qbo_field(name)
            if qbo_field.startswith(CUSTOM_PREFIX) and self.mapping.to_qbo(name):
                value = neutral.get(name) or ""
                if len(value) > CUSTOM_FIELD_MAX:
                    return (
                        f"{name.replace('_', ' ').capitalize()} {value!r} is longer than the "
                        f"{CUSTOM_FIELD_MAX} characters a QuickBooks custom field holds. "
                        "Shorten it, then retry."
                    )
        if len(invoice.customer_memo) > 1000:
            return "The customer memo is longer than QuickBooks' 1000 characters. Shorten it."
        return preflight_name("customer", invoice.customer) or next(
            (
                preflight_name("item", line.item)
                for line in lines
                if preflight_name("item", line.item)
            ),
            "",
        )

    def _dependency_ids(self, invoice: Invoice) -> tuple[str, dict[str, str]] | None:
        customer = self.binding("customer", invoice.customer_id)
        if customer is None or not customer.qbo_id:
            return None
        item_ids = {}
        for line in invoice.lines.all():
            record = self.binding("item", line.item_id)
            if record is None or not record.qbo_id:
                return None
            item_ids[f"qbo:{record.qbo_id}"] = record.qbo_id
            item_ids[f"name:{line.item.name}"] = record.qbo_id
        return customer.qbo_id, item_ids

    def _agreed_after_push(self, record: SyncRecord, obj: dict) -> dict:
        """What both sides agree on after a push.

        QuickBooks fills some fields the portal left empty (DueDate from the terms, BillEmail
        from the customer). For fields that flow back, its value is taken into the portal at
        once, so neither side sees the other's default as a change; otherwise what was sent is
        what both agree on.
        """
        theirs = self.neutral_qbo(obj)
        invoice = record.invoice
        sent = self.project(self.neutral_local(invoice), "to")
        absorbed = {}
        if self.config.two_way and not theirs.get("void"):
            for name in SERVER_FILLED:
                if (
                    name in theirs
                    and self.mapping.from_qbo(name)
                    and theirs[name] != sent.get(name)
                    and theirs[name] not in (None, "")
                ):
                    absorbed[name] = theirs[name]
        if absorbed:
            values = {
                name: _parse_date(value) if name.endswith("_date") else value
                for name, value in absorbed.items()
            }
            Invoice.objects.filter(pk=invoice.pk).update(**values)
            for name, value in values.items():
                setattr(invoice, name, value)
        return {**theirs, **sent, **absorbed}

    def push_invoices(self, *, invoice_ids: list[int] | None = None, force: bool = False) -> None:
        """Push new and changed invoices (or just ``invoice_ids``) to QuickBooks."""
        invoices = invoices_for_push(config=self.config, invoice_ids=invoice_ids)
        records = {
            r.invoice_id: r
            for r in SyncRecord.objects.filter(
                connection=self.connection,
                object_type="invoice",
                invoice_id__in=[inv.pk for inv in invoices],
            )
        }
        creates, updates, voids = [], [], []
        now = timezone.now()
        for invoice in invoices:
            record = records.get(invoice.pk)
            if record is not None and record.uncertain:
                continue  # settled by replay_uncertain
            if record is not None and record.status == S.CONFLICT and not force:
                continue
            if (
                record is not None
                and record.status == S.FAILED
                and record.next_retry_at
                and record.next_retry_at > now
                and invoice_ids is None
            ):
                continue
            neutral = self.neutral_local(invoice)
            sent = self.project(neutral, "to")
            if record is not None and record.qbo_id:
                agreed_to = self.project(record.agreed or {}, "to")
                if sent == agreed_to and record.status in (S.SYNCED, S.SKIPPED) and not force:
                    self.outcome.unchanged += 1
                    continue
                if neutral["void"]:
                    if not (record.agreed or {}).get("void"):
                        voids.append((record, invoice))
                    else:
                        self.outcome.unchanged += 1
                    continue
            elif neutral["void"]:
                if record is None or record.status != S.SKIPPED:
                    record = record or self.new_record("invoice", invoice)
                    self.skip(
                        record, "Void in the portal and never sent to QuickBooks; nothing to send."
                    )
                continue
            reason = self.preflight_invoice(invoice, neutral)
            # Saved when it is first written (with its requestid), one query instead of two.
            record = record or self.new_record("invoice", invoice, save=False)
            if reason:
                self.fail(record, reason)
                continue
            (updates if record.qbo_id else creates).append((record, invoice))
        self.progress(total=len(creates) + len(updates) + len(voids))
        try:
            blocked = self.ensure_dependencies([inv for _, inv in creates + updates])
        except QBOError as exc:
            if getattr(exc, "needs_reconnect", False):
                raise RunStopped(exc.user_message) from exc
            # QuickBooks could not be asked about customers and items (an outage, throttling):
            # every invoice waiting on them says so and is retried on the backoff schedule.
            reason = catalogue.describe(exc)
            for record, _invoice in creates + updates:
                self.fail(record, reason, error=exc)
            self.progress(done=len(creates) + len(updates))
            creates, updates = [], []
            blocked = {}
        writes = []
        for record, invoice in creates + updates:
            if invoice.pk in blocked:
                self.fail(record, blocked[invoice.pk])
                self.progress(done=1)
                continue
            ids = self._dependency_ids(invoice)
            if ids is None:
                if self.dry_run:
                    writes.append(
                        (record, invoice, "create" if not record.qbo_id else "update", {})
                    )
                    continue
                self.fail(record, "Its customer or items are not in QuickBooks yet; retry.")
                self.progress(done=1)
                continue
            body = mappers.invoice_to_qbo(
                self.neutral_local(invoice), self.mapping, customer_id=ids[0], item_ids=ids[1]
            )
            if record.qbo_id:
                body.update({"Id": record.qbo_id, "SyncToken": record.sync_token})
                writes.append((record, invoice, "update", body))
            else:
                writes.append((record, invoice, "create", body))
        for record, invoice in voids:
            writes.append(
                (record, invoice, "void", {"Id": record.qbo_id, "SyncToken": record.sync_token})
            )
        for record, invoice, result in self.write_batch(writes, kind="invoice"):
            self.after_invoice_write(record, invoice, result)
            self.progress(done=1)

    def after_invoice_write(self, record: SyncRecord, invoice: Invoice, result) -> None:
        if result is None:  # dry run
            return
        created = not record.qbo_id
        if isinstance(result, StaleObjectError):
            self.stale(record, invoice)
            return
        if isinstance(result, NotFoundError) and record.qbo_id:
            self.fail(
                record,
                "The invoice no longer exists in QuickBooks (deleted there). It was not "
                "re-created; void it in the portal or clear its link and retry.",
                error=result,
            )
            return
        if isinstance(result, Exception):
            names = {**self.names_by_qbo("customer"), **self.names_by_qbo("item")}
            reason = catalogue.describe(
                result, kind="invoice", number=invoice.number, id_names=names
            )
            self.fail(record, reason, error=result)
            return
        if created:
            self.outcome.created += 1
            self.event(
                record,
                "created",
                f"Invoice {invoice.number} created in QuickBooks "
                f"(no. {result.get('DocNumber', '')}).",
            )
        else:
            self.outcome.updated += 1
            verb = "voided" if mappers.qbo_is_void(result) else "updated"
            self.event(record, verb, f"Invoice {invoice.number} {verb} in QuickBooks.")
        self.settle(record, result, agreed=self._agreed_after_push(record, result), pushed=True)
        self._apply_payment_state(invoice, result)

    def stale(self, record: SyncRecord, invoice: Invoice) -> None:
        """QuickBooks holds a newer version: decide by the conflict rule, never blindly retry."""
        self.run.api_calls += 1
        try:
            obj = self.client.read("Invoice", record.qbo_id)
        except QBOError as exc:
            self.fail(record, catalogue.describe(exc, kind="invoice"), error=exc)
            return
        self.reconcile_invoice(record, invoice, obj)

    def skip(self, record: SyncRecord, reason: str) -> None:
        self.outcome.skipped += 1
        self.event(record, "skipped", f"{record.label}: {reason}")
        if not self.dry_run:
            record.status = S.SKIPPED
            record.details = reason
            record.save()

    # --- pull ----------------------------------------------------------------------------

    def pull(self) -> None:
        """Bring QuickBooks changes into the portal (two-way only), from the CDC cursor."""
        if not self.config.two_way:
            self.event(None, "skipped", "One-way sync: nothing is written into the portal.")
            return
        now = timezone.now()
        cursor = self.config.pull_cursor
        entities = ["Customer", "Item", "Invoice", "Payment"]
        if cursor is None or now - cursor > CDC_SAFE_LOOKBACK:
            changes = self.full_read(entities)
        else:
            self.run.api_calls += 1
            changes = self.client.cdc(entities, cursor - CURSOR_OVERLAP)
        total = sum(len(v) for v in changes.values())
        self.progress(total=total)
        self.pull_names("customer", changes.get("Customer", []))
        self.pull_names("item", changes.get("Item", []))
        invoices = list(changes.get("Invoice", []))
        paid_ids = {
            linked["TxnId"]
            for payment in changes.get("Payment", [])
            for line in payment.get("Line") or []
            for linked in line.get("LinkedTxn") or []
            if linked.get("TxnType") == "Invoice"
        }
        # QuickBooks invoices that could not be pulled before are read again.
        paid_ids |= set(
            SyncRecord.objects.filter(
                connection=self.connection, object_type="invoice", invoice__isnull=True
            ).values_list("qbo_id", flat=True)
        )
        paid_ids -= {obj.get("Id") for obj in invoices}
        if paid_ids:
            extra = self.read_invoices(sorted(paid_ids))
            self.progress(total=len(extra))
            invoices += extra
        self.pull_invoices(invoices)
        self.progress(done=len(changes.get("Payment", [])))
        if not self.dry_run:
            SyncConfiguration.objects.filter(pk=self.config.pk).update(
                pull_cursor=now, last_pull_at=now
            )

    def full_read(self, entities: list[str]) -> dict[str, list[dict]]:
        """Everything (for a first pull or a cursor older than CDC's 30 days)."""
        changes = {}
        for entity in entities:
            where = ""
            if entity in ("Customer", "Item"):
                where = "Active IN (true, false)"
            if entity == "Invoice" and self.config.first_invoice_date:
                where = f"TxnDate >= '{self.config.first_invoice_date.isoformat()}'"
            rows = list(self.client.query_all(entity, where))
            self.run.api_calls += 1 + len(rows) // 1000
            changes[entity] = rows
        return changes

    def read_invoices(self, ids: list[str]) -> list[dict]:
        rows = []
        for start in range(0, len(ids), 100):
            chunk = ", ".join(quote(i) for i in ids[start : start + 100])
            self.run.api_calls += 1
            rows += self.client.query(f"SELECT * FROM Invoice WHERE Id IN ({chunk})").get(
                "Invoice", []
            )
        return rows

    def pull_names(self, kind: str, objects: list[dict], *, counted: bool = True) -> None:
        """Create, link or update portal customers or items from QuickBooks objects.

        ``counted``: the objects are part of the run's announced total (progress)."""
        model = Customer if kind == "customer" else Item
        to_neutral = (
            mappers.customer_neutral_qbo if kind == "customer" else mappers.item_neutral_qbo
        )
        for obj in objects:
            if counted:
                self.progress(done=1)
            record = self._by_qbo.get((kind, str(obj.get("Id"))))
            if obj.get("status") == "Deleted":
                continue  # name lists are never deleted in QBO, only made inactive
            neutral = to_neutral(obj)
            if record is not None and record.sync_token == str(obj.get("SyncToken")):
                self.outcome.unchanged += 1
                continue
            if record is not None and record.agreed == neutral:
                if not self.dry_run:
                    self.settle(record, obj, agreed=neutral, pushed=False)
                self.outcome.unchanged += 1
                continue
            if self.dry_run:
                self.outcome.planned.append(f"pull {kind} {neutral['name']}")
                continue
            if record is None:
                lookup = (
                    {"display_name__iexact": neutral["name"]}
                    if kind == "customer"
                    else {"name__iexact": neutral["name"]}
                )
                local = model.objects.filter(**lookup).first()
                if local is not None and self.binding(kind, local.pk):
                    self.event(
                        None,
                        "skipped",
                        f"QuickBooks {kind} {neutral['name']} has the "
                        "same name as a portal record already linked to another one.",
                        level="warning",
                    )
                    continue
                created = local is None
                local = local or model()
                _apply_name_record(kind, local, neutral, new=created)
                record = self.binding(kind, local.pk) or self.new_record(kind, local)
                self.outcome.created += created
                self.event(
                    record,
                    "pulled",
                    f"{'Created' if created else 'Linked'} {kind} "
                    f"{neutral['name']} from QuickBooks.",
                )
            else:
                local = record.local_object
                _apply_name_record(kind, local, neutral, new=False)
                self.outcome.updated += 1
                self.event(record, "pulled", f"Updated {kind} {neutral['name']} from QuickBooks.")
            self.settle(record, obj, agreed=neutral, pushed=False)

    def pull_invoices(self, objects: list[dict]) -> None:
        ids = [str(o.get("Id")) for o in objects]
        records = {
            r.qbo_id: r
            for r in SyncRecord.objects.filter(
                connection=self.connection, object_type="invoice", qbo_id__in=ids
            )
            .select_related("invoice__customer")
            .prefetch_related(_lines_prefetch("invoice__lines"))
        }
        for obj in objects:
            record = records.get(str(obj.get("Id")))
            self.progress(done=1)
            if obj.get("status") == "Deleted":
                self.pulled_delete(record, obj)
                continue
            if record is None or record.invoice_id is None:
                if self.config.first_invoice_date and obj.get("TxnDate", "") < (
                    self.config.first_invoice_date.isoformat()
                ):
                    continue
                self.apply_qbo_invoice(record, None, obj, self.neutral_qbo(obj))
                continue
            if record.sync_token == str(obj.get("SyncToken")) and record.status == S.SYNCED:
                self.outcome.unchanged += 1
                continue
            self.reconcile_invoice(record, record.invoice, obj)

    def reconcile_invoice(self, record: SyncRecord, invoice: Invoice, obj: dict) -> None:
        """Compare both sides with what they last agreed and act on the difference."""
        agreed = record.agreed or {}
        theirs = self.neutral_qbo(obj)
        ours = self.neutral_local(invoice)
        qbo_changed = self.project(theirs, "from") != self.project(agreed, "from")
        local_changed = self.project(ours, "to") != self.project(agreed, "to")
        if not qbo_changed:
            # Only the SyncToken moved (a payment, our own echo): take the new token.
            self.outcome.unchanged += 1
            if not self.dry_run:
                record.sync_token = str(obj.get("SyncToken", record.sync_token))
                record.save(update_fields=["sync_token", "updated_at"])
                self._apply_payment_state(invoice, obj)
            if local_changed and record.status != S.CONFLICT:
                self._retry_update(record, invoice)
            return
        if local_changed and self.project(ours, "to") != self.project(theirs, "to"):
            rule = self.config.conflict_rule
            if rule == SyncConfiguration.ConflictRule.PORTAL_WINS:
                self.event(
                    record,
                    "conflict",
                    f"Invoice {invoice.number} changed on both sides; "
                    "the portal wins (conflict rule).",
                    level="warning",
                )
                record.sync_token = str(obj.get("SyncToken"))
                self._retry_update(record, invoice)
                return
            if rule == SyncConfiguration.ConflictRule.HOLD:
                if record.status == S.CONFLICT:
                    # Already held: keep both versions current, count it once.
                    if not self.dry_run:
                        record.conflict_portal, record.conflict_qbo = ours, theirs
                        record.sync_token = str(obj.get("SyncToken"))
                        record.save()
                    return
                self.outcome.conflicts += 1
                self.event(
                    record,
                    "conflict",
                    f"Invoice {invoice.number} changed in the portal "
                    "and in QuickBooks; held for review.",
                    level="warning",
                )
                if not self.dry_run:
                    record.status = S.CONFLICT
                    record.details = (
                        "Changed in the portal and in QuickBooks since the last sync. Nothing was "
                        "overwritten: compare both versions and choose which to keep."
                    )
                    record.conflict_portal = ours
                    record.conflict_qbo = theirs
                    record.sync_token = str(obj.get("SyncToken"))
                    record.save()
                else:
                    self.outcome.planned.append(f"hold invoice {invoice.number} (conflict)")
                return
            self.event(
                record,
                "conflict",
                f"Invoice {invoice.number} changed on both sides; QuickBooks wins (conflict rule).",
                level="warning",
            )
        self.apply_qbo_invoice(record, invoice, obj, theirs)

    def _retry_update(self, record: SyncRecord, invoice: Invoice) -> None:
        ids = self._dependency_ids(invoice)
        if ids is None:
            self.ensure_dependencies([invoice])
            ids = self._dependency_ids(invoice)
        if ids is None:
            self.fail(record, "Its customer or items are not in QuickBooks yet; retry.")
            return
        body = mappers.invoice_to_qbo(
            self.neutral_local(invoice), self.mapping, customer_id=ids[0], item_ids=ids[1]
        )
        body.update({"Id": record.qbo_id, "SyncToken": record.sync_token})
        if self.dry_run:
            self.outcome.planned.append(f"update invoice {invoice.number}")
            return
        self.run.api_calls += 1
        try:
            result = self.client.update("Invoice", body)
        except StaleObjectError:
            self.fail(
                record,
                "QuickBooks changed the invoice again while it was being saved; "
                "it will be compared on the next sync.",
            )
            return
        except QBOError as exc:
            if getattr(exc, "needs_reconnect", False):
                raise RunStopped(exc.user_message) from exc
            result = exc
        self.after_invoice_write(record, invoice, result)

    def apply_qbo_invoice(
        self, record: SyncRecord | None, invoice: Invoice | None, obj: dict, theirs: dict
    ) -> None:
        """Write QuickBooks' version of an invoice into the portal (fields that flow back)."""
        number = invoice.number if invoice else (obj.get("DocNumber") or f"QBO-{obj['Id']}")
        if self.dry_run:
            self.outcome.planned.append(f"pull invoice {number}")
            return
        try:
            with transaction.atomic():
                invoice, created = self._write_local_invoice(invoice, obj, theirs)
        except LocalApplyError as exc:
            # Kept as a record without a portal invoice, so staff see why it is missing and
            # the next pull reads it again.
            record = record or SyncRecord(
                connection=self.connection,
                object_type="invoice",
                qbo_id=str(obj["Id"]),
                qbo_doc_number=obj.get("DocNumber", "") or "",
            )
            self.fail(record, str(exc))
            return
        record = record or self.new_record("invoice", invoice)
        if record.invoice_id is None:
            record.invoice = invoice
        agreed_old = record.agreed or {}
        ours_after = self.neutral_local(invoice)
        agreed = {}
        for name in set(theirs) | set(ours_after):
            if name in self.project(theirs, "from"):
                agreed[name] = theirs[name]
            else:
                agreed[name] = agreed_old.get(name, ours_after.get(name))
        if created:
            self.outcome.created += 1
            self.event(record, "pulled", f"Invoice {invoice.number} created from QuickBooks.")
        else:
            self.outcome.updated += 1
            self.event(record, "pulled", f"Invoice {invoice.number} updated from QuickBooks.")
        self.settle(record, obj, agreed=agreed, pushed=False)
        self._apply_payment_state(invoice, obj)

    def _write_local_invoice(self, invoice: Invoice | None, obj: dict, theirs: dict):
        created = invoice is None
        customer = self._local_for_ref("customer", obj.get("CustomerRef"))
        if created:
            number = obj.get("DocNumber") or f"QBO-{obj['Id']}"
            if Invoice.objects.filter(number=number).exists():
                number = f"{number}-QBO{obj['Id']}"
            invoice = Invoice(number=number, customer=customer)
        flows = self.project(theirs, "from") if not created else theirs
        if "customer" in flows:
            invoice.customer = customer
        for name in ("issue_date", "due_date"):
            if name in flows:
                setattr(invoice, name, _parse_date(flows[name]))
        if created and not invoice.issue_date:
            invoice.issue_date = timezone.localdate()
        for name in ("customer_memo", "private_note", "billing_email", "reference"):
            if name in flows and name != "number":
                setattr(invoice, name, flows[name] or "")
        renumber = "number" in flows and not created and flows["number"]
        if renumber and not (
            Invoice.objects.filter(number=flows["number"]).exclude(pk=invoice.pk).exists()
        ):
            invoice.number = flows["number"]
        if flows.get("currency"):
            invoice.currency = flows["currency"]
        if theirs.get("void"):
            invoice.status = Invoice.Status.VOID
        elif invoice.status == Invoice.Status.DRAFT and created:
            invoice.status = Invoice.Status.SENT
        invoice.save()
        if "lines" in flows and not theirs.get("void"):
            rate = None
            if flows.get("tax_code"):
                rate_id = self.rates_by_code.get(flows["tax_code"])
                if rate_id is None:
                    raise LocalApplyError(
                        f"QuickBooks tax code {flows['tax_code']} is not mapped to a portal tax "
                        "rate, so the invoice's tax cannot be recorded. Map it on the Mapping > "
                        "Tax tab, then retry."
                    )
                rate = TaxRate.objects.get(pk=rate_id)
            lines_qbo = [
                line
                for line in obj.get("Line") or []
                if line.get("DetailType") == "SalesItemLineDetail"
            ]
            invoice.lines.all().delete()
            for position, (line, neutral_line) in enumerate(
                zip(lines_qbo, flows["lines"], strict=True), start=1
            ):
                item = self._local_for_ref("item", line["SalesItemLineDetail"].get("ItemRef"))
                InvoiceLine.objects.create(
                    invoice=invoice,
                    position=position,
                    item=item,
                    description=neutral_line["description"],
                    quantity=Decimal(neutral_line["quantity"]),
                    unit_price=Decimal(neutral_line["unit_price"]),
                    tax_rate=rate if neutral_line["taxable"] else None,
                )
            invoice.refresh_totals()
        return invoice, created

    def _local_for_ref(self, kind: str, ref: dict | None):
        qbo_id = str((ref or {}).get("value", ""))
        record = self._by_qbo.get((kind, qbo_id))
        if record is not None and record.local_object is not None:
            return record.local_object
        # Not pulled yet (older than the cursor): read it now and bind.
        entity = "Customer" if kind == "customer" else "Item"
        try:
            self.run.api_calls += 1
            obj = self.client.read(entity, qbo_id)
        except QBOError as exc:
            raise LocalApplyError(
                f"Its {kind} (QuickBooks id {qbo_id}) could not be read: {exc.user_message}"
            ) from exc
        self.pull_names(kind, [obj], counted=False)
        record = self._by_qbo.get((kind, qbo_id))
        if record is None or record.local_object is None:
            raise LocalApplyError(
                f"Its {kind} {(ref or {}).get('name', qbo_id)} could not be "
                "matched to a portal record."
            )
        return record.local_object

    def pulled_delete(self, record: SyncRecord | None, obj: dict) -> None:
        if record is None or record.invoice is None:
            self.outcome.unchanged += 1
            return
        invoice = record.invoice
        if self.dry_run:
            self.outcome.planned.append(f"void invoice {invoice.number} (deleted in QuickBooks)")
            return
        Invoice.objects.filter(pk=invoice.pk).update(status=Invoice.Status.VOID)
        invoice.status = Invoice.Status.VOID
        self.outcome.updated += 1
        record.status = S.SYNCED
        record.details = (
            "Deleted in QuickBooks; marked void in the portal (portal records are never deleted "
            "by a sync)."
        )
        # The QBO object is gone: a later push must never replay an old create for it.
        record.request_id = ""
        record.agreed = {**(record.agreed or {}), "void": True}
        record.agreed_hash = mappers.neutral_hash(record.agreed)
        record.last_pulled_at = timezone.now()
        record.save()
        self.event(
            record,
            "pulled",
            f"Invoice {invoice.number} was deleted in QuickBooks; marked void in the portal.",
        )

    def _apply_payment_state(self, invoice: Invoice, obj: dict) -> None:
        """QuickBooks' Balance tells how much is paid; the status follows (never for voids)."""
        if "Balance" not in obj or "TotalAmt" not in obj or self.dry_run:
            return
        if not self.config.two_way:
            return
        total = round_money(Decimal(str(obj["TotalAmt"])))
        balance = round_money(Decimal(str(obj["Balance"])))
        paid = max(ZERO, total - balance)
        status = invoice.status
        if status != Invoice.Status.VOID and total > 0:
            if balance <= 0:
                status = Invoice.Status.PAID
            elif paid > 0:
                status = Invoice.Status.PARTIALLY_PAID
            elif status in (Invoice.Status.PAID, Invoice.Status.PARTIALLY_PAID):
                status = Invoice.Status.SENT
        if paid != invoice.amount_paid or status != invoice.status:
            Invoice.objects.filter(pk=invoice.pk).update(amount_paid=paid, status=status)
            invoice.amount_paid, invoice.status = paid, status

    # --- items quick sync ----------------------------------------------------------------

    def quick_sync_items(self) -> None:
        """Push every local item not yet in QuickBooks and pull QuickBooks' items."""
        items = {item.pk: item for item in Item.objects.filter(active=True)}
        self.progress(total=len(items))
        self._ensure("item", items)
        self.progress(done=len(items))
        rows = list(self.client.query_all("Item", "Active IN (true, false)"))
        self.run.api_calls += 1 + len(rows) // 1000
        sellable = [r for r in rows if r.get("Type") in mappers.ITEM_TYPES_FROM_QBO]
        if self.config.two_way:
            self.progress(total=len(sellable))
            self.pull_names("item", sellable)
        else:
            self.event(None, "skipped", "One-way sync: QuickBooks items are not pulled.")


class LocalApplyError(Exception):
    """QuickBooks' version could not be written into the portal; the message says why."""


def _parse_date(value):
    if not value:
        return None
    if isinstance(value, date):
        return value
    return datetime.strptime(str(value)[:10], "%Y-%m-%d").date()


def _label(kind: str, local) -> str:
    if kind == "invoice":
        return str(local)
    return local.display_name if kind == "customer" else local.name


def _name_key(kind: str, local) -> str:
    return _label(kind, local).lower()


def _neutral_qbo(kind: str, obj: dict) -> dict:
    return (
        mappers.customer_neutral_qbo(obj) if kind == "customer" else mappers.item_neutral_qbo(obj)
    )


def _apply_name_record(kind: str, local, neutral: dict, *, new: bool) -> None:
    if kind == "customer":
        local.display_name = neutral["name"]
        local.company_name = neutral["company"][:100]
        local.email = neutral["email"]
        local.phone = neutral["phone"][:30]
        local.billing_line1 = neutral["line1"]
        local.billing_city = neutral["city"]
        local.billing_region = neutral["region"]
        local.billing_postal_code = neutral["postal_code"][:31]
        local.billing_country = neutral["country"]
        local.active = neutral["active"]
    else:
        local.name = neutral["name"]
        local.sku = neutral["sku"]
        local.type = neutral["type"]
        local.description = neutral["description"]
        local.sales_price = Decimal(neutral["sales_price"])
        local.purchase_cost = Decimal(neutral["purchase_cost"])
        local.taxable = neutral["taxable"]
        local.active = neutral["active"]
    local.save()


def preflight_name(kind: str, local) -> str:
    """QuickBooks refuses names with ':' tab or newline, and longer than its limits."""
    name = _label(kind, local)
    limit = 500 if kind == "customer" else 100
    field_label = "Display name" if kind == "customer" else "Name"
    if any(ch in name for ch in NAME_FORBIDDEN):
        return (
            f"{field_label} of {kind} {name!r} contains a colon, tab or line break, which "
            "QuickBooks does not allow in names. Rename it, then retry."
        )
    if len(name) > limit:
        return (
            f"{field_label} of {kind} {name[:40]!r}... is longer than QuickBooks' {limit} "
            "characters. Shorten it, then retry."
        )
    if not name.strip():
        return f"The {kind} has no name; QuickBooks needs one."
    return ""


def _lines_prefetch(path: str) -> Prefetch:
    return Prefetch(path, queryset=InvoiceLine.objects.select_related("item", "tax_rate"))


def invoices_for_push(*, config: SyncConfiguration, invoice_ids: list[int] | None) -> list[Invoice]:
    qs = Invoice.objects.select_related("customer").prefetch_related(_lines_prefetch("lines"))
    if config.first_invoice_date:
        qs = qs.filter(issue_date__gte=config.first_invoice_date)
    if invoice_ids is not None:
        qs = qs.filter(pk__in=invoice_ids)
    return list(qs.order_by("pk"))


def sync_configuration_for(*, connection: Connection) -> SyncConfiguration:
    config, _ = SyncConfiguration.objects.get_or_create(connection=connection)
    return config


def invoice_mapping_for(*, connection: Connection) -> mappers.InvoiceMapping:
    """The field mapping in effect; the defaults until the user saves their own."""
    from integrations.fieldmap import LOCAL_FIELDS

    saved = {
        m.local_field: (m.qbo_field, m.direction)
        for m in FieldMapping.objects.filter(connection=connection)
    }
    fields = {}
    for local in LOCAL_FIELDS:
        fields[local.name] = saved.get(local.name, (local.default, "both"))
    return mappers.InvoiceMapping(fields=fields)
