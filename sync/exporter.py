"""The exporter: portal changes out to QuickBooks.

Dependencies first (customers and items are matched by name or created), then each invoice is
checked (preflight), mapped and written in batches; every write's binding is claimed with its
batch's ``requestid`` before it is sent, and settled or failed from the answer. A write whose
answer was lost stays pending and *uncertain*; ``replay_uncertain`` sends the same batch with
the same ``requestid`` on the next run, so it settles without a duplicate.

Updates QuickBooks refuses as stale (an old SyncToken) are not resolved here: they are handed
back to the caller, which lets the importer compare both versions.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import closing

from integrations.quickbooks.backend import (
    name_key,
    object_id,
    sync_token,
    version_ref,
)
from integrations.quickbooks.errors import (
    NotFoundError,
    QBOError,
    ReconnectRequired,
    StaleObjectError,
    describe,
)
from portal.models import Invoice
from sync.context import Pair
from sync.entities.base import NameListAdapter
from sync.entities.invoice import (
    invoices_for_push,
    linked_elsewhere,
    needs_sync_clear,
    push_scope,
)
from sync.mappers.invoice import qbo_is_void
from sync.models import SyncRecord
from sync.writer import BatchWriter, Write

S = SyncRecord.Status
NOT_READY = "Its customer or items are not in QuickBooks yet; retry."


class Exporter(BatchWriter):
    # --- invoices --------------------------------------------------------------------------

    def push_invoices(
        self,
        *,
        invoice_ids: list[int] | None = None,
        force: bool = False,
        other_companies: bool = False,
    ) -> list[Pair]:
        """Push new and changed invoices (or just ``invoice_ids``; ``force`` sends them even
        when unchanged or held; ``other_companies`` sends them even when they are linked to
        another QuickBooks company). Returns the (binding, invoice) pairs QuickBooks refused
        as stale, for the importer to compare."""
        before = self.log.outcome.settled
        changed_for = None if invoice_ids is not None else self.binder.mapping_signature
        invoices, settled = invoices_for_push(
            config=self.ctx.config,
            invoice_ids=invoice_ids,
            changed_for=changed_for,
            other_companies=other_companies,
        )
        # Settled and untouched since: counted, not loaded.
        self.log.outcome.unchanged += settled
        records = self.binder.invoice_records([inv.pk for inv in invoices])
        to_write: list[Pair] = []
        voids: list[Pair] = []
        recheck: list[Pair] = []
        stale: list[Pair] = []
        # Settled bindings whose invoice was saved without a change QuickBooks would see.
        agreed_again: list[SyncRecord] = []
        for invoice in invoices:
            record = records.get(invoice.pk)
            if record is not None:
                record.invoice = invoice  # with its lines loaded
            if self.binder.waits(record, retry_now=invoice_ids is not None, force=force):
                continue
            neutral = self.invoices.neutral_local(invoice)
            version = self._version(invoice, neutral)
            if self.binder.refused(record, version, retry_now=invoice_ids is not None or force):
                self.log.outcome.unchanged += 1
                continue
            if record is not None and record.qbo_id:
                agreed = record.agreed or {}
                sent = self.ctx.mapping.project(neutral, "to")
                unchanged = sent == self.ctx.mapping.project(agreed, "to")
                settled = record.status in (S.SYNCED, S.DIFFERS, S.SKIPPED) and not force
                if (unchanged and settled) or (neutral["void"] and agreed.get("void")):
                    self.log.outcome.unchanged += 1
                    if unchanged and not neutral["void"]:
                        self.invoices.local.restore_totals(invoice, record.qbo_totals)
                    if settled and self.binder.agree_version(record, invoice):
                        agreed_again.append(record)
                    if record.status == S.DIFFERS:
                        recheck.append((record, invoice))
                elif neutral["void"]:
                    voids.append((record, invoice))
                elif self._lines_unknown(invoice, sent, agreed):
                    # Synced before lines kept their QuickBooks ids: QuickBooks' version is
                    # read and compared first, so no line of its own is dropped.
                    stale.append((record, invoice))
                else:
                    self._check(record, invoice, neutral, to_write)
                continue
            if neutral["void"]:
                if record is None or record.status != S.SKIPPED:
                    record = record or self.binder.new("invoice", invoice)
                    self.binder.skip(
                        record, "Void in the portal and never sent to QuickBooks; nothing to send."
                    )
                continue
            # Saved when it is first written (with its requestid), one query instead of two.
            if record is None:
                record = self.binder.new("invoice", invoice, save=False)
                record.version = version
            self._check(record, invoice, neutral, to_write)
        # Creates, then updates, then voids.
        to_write.sort(key=lambda pair: bool(pair[0].qbo_id))
        # Announced: the invoices already counted (unchanged, refused, failed before sending)
        # and those about to be written.
        handled = self.log.outcome.settled - before
        self.log.progress(total=handled + len(to_write) + len(voids))
        writes = self._bodies(to_write, sparse=not force)
        writes += [(r, inv, "void", version_ref(r.qbo_id, r.sync_token)) for r, inv in voids]
        # Closed at once should settling raise: the answers in flight are recorded first.
        with (
            self.recording(self.invoices),
            closing(self.write_batch(writes, self.invoices)) as sent,
        ):
            for record, invoice, result in sent:
                if self._settle_invoice(record, invoice, result):
                    stale.append((record, invoice))
                self.log.progress(done=1)
        self._recheck(recheck)
        if agreed_again and not self.ctx.dry_run:
            SyncRecord.objects.bulk_update(agreed_again, ["agreed_version", "agreed_mapping"])
        if not self.ctx.dry_run:
            self._settle_scope(looked_at_all=changed_for is not None)
        return stale

    def _settle_scope(self, *, looked_at_all: bool) -> None:
        """Clear the change flag of the invoices QuickBooks now agrees on and, after a push
        that looked at every invoice, keep its scope, so the next push starts from the
        changed invoices alone (``invoices_for_push``)."""
        config, signature = self.ctx.config, self.binder.mapping_signature
        needs_sync_clear(config=config, signature=signature)
        scope = push_scope(config, signature)
        if looked_at_all and config.push_scope != scope:
            config.push_scope = scope
            type(config).objects.filter(pk=config.pk).update(push_scope=scope)

    def _lines_unknown(self, invoice: Invoice, sent: dict, agreed: dict) -> bool:
        """Whether the lines would be sent while none of them knows its QuickBooks line."""
        agreed_to = self.ctx.mapping.project(agreed, "to")
        lines_change = any(sent.get(k) != agreed_to.get(k) for k in ("lines", "tax_code"))
        lines = list(invoice.lines.all())
        return lines_change and bool(lines) and not any(line.qbo_line_id for line in lines)

    def _version(self, invoice: Invoice, neutral: dict) -> str:
        """A fingerprint of what a push of ``invoice`` would send: its own fields and lines
        and the customer and items it uses."""
        uses = {
            kind: sorted(
                json.dumps(self.ctx.adapter(kind).neutral_local(local), sort_keys=True)
                for local in locals_.values()
            )
            for kind, locals_ in self.invoices.dependencies([invoice]).items()
        }
        text = json.dumps([neutral, uses], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def _not_found(self, record: SyncRecord, invoice: Invoice, error: NotFoundError) -> str:
        """Why QuickBooks answered an update with "Object Not Found" (610), which it gives for
        a deleted invoice and for an inactive customer or item alike (qbo-api.md section 7):
        the invoice and what it uses are read to tell the cases apart, each with its fix. A
        fix never says to void an invoice QuickBooks still has."""
        try:
            self.ctx.backend.read(self.invoices.qbo_entity, record.qbo_id)
        except ReconnectRequired:
            raise  # the run stops for a reconnect; the invoice is diagnosed on the next one
        except NotFoundError:
            return (
                f"Invoice {invoice.number} was deleted in QuickBooks, so it was not updated "
                "and not re-created. Void it in the portal, or clear its QuickBooks link and "
                "press Retry to send it as a new invoice."
            )
        except QBOError:
            return describe(error, kind="invoice", number=invoice.number)
        for kind, locals_ in self.invoices.dependencies([invoice]).items():
            adapter = self.ctx.adapter(kind)
            ids = {self.binder.qbo_id(kind, pk): local for pk, local in locals_.items()}
            ids.pop("", None)
            try:
                objs = self.ctx.backend.read_ids(adapter.qbo_entity, sorted(ids))
            except ReconnectRequired:
                raise
            except QBOError:
                continue
            for obj in objs:
                if obj.get("Active") is False:
                    name = adapter.label(ids[object_id(obj)])
                    return (
                        f"The {kind} {name} is inactive in QuickBooks, so QuickBooks refused "
                        f"invoice {invoice.number}: reactivate {kind} {name} in QuickBooks, "
                        "then press Retry."
                    )
        return describe(error, kind="invoice", number=invoice.number)

    def _recheck(self, pairs: list[Pair]) -> None:
        """Invoices whose totals differed and that nobody changed: read QuickBooks' version
        and check again (a corrected rate or mapping clears it; nothing is written)."""
        if not pairs or self.ctx.dry_run:
            return
        objs = {
            object_id(obj): obj
            for obj in self.ctx.backend.read_ids(
                self.invoices.qbo_entity, [r.qbo_id for r, _ in pairs]
            )
        }
        for record, _invoice in pairs:
            obj = objs.get(record.qbo_id)
            # A newer QuickBooks version is the pull's to read; its SyncToken must not move.
            if obj is not None and sync_token(obj) == record.sync_token:
                self.binder.recheck(record, self.invoices.differences(record, obj))

    def _check(self, record, invoice, neutral, to_write: list[Pair]) -> None:
        reason = self.invoices.preflight(invoice, neutral, bound=bool(record.qbo_id))
        if reason:
            self.binder.fail(record, reason)
        else:
            to_write.append((record, invoice))

    def _bodies(self, pairs: list[Pair], *, sparse: bool) -> list[Write]:
        """Bind the invoices' customers and items, then build each invoice's body."""
        try:
            blocked = self.ensure_dependencies([inv for _, inv in pairs])
        except ReconnectRequired:
            raise
        except QBOError as exc:
            # QuickBooks could not be asked about customers and items (an outage,
            # throttling): every invoice waiting on them says so and is retried on the
            # backoff schedule.
            for record, _invoice in pairs:
                self.binder.fail(record, describe(exc), error=exc)
            self.log.progress(done=len(pairs))
            return []
        writes: list[Write] = []
        for record, invoice in pairs:
            operation = "update" if record.qbo_id else "create"
            body = (
                None
                if invoice.pk in blocked
                else self.invoices.body(invoice, record, sparse=sparse)
            )
            if body is None and self.ctx.dry_run and invoice.pk not in blocked:
                writes.append((record, invoice, operation, {}))
            elif body is None:
                self.binder.fail(record, blocked.get(invoice.pk, NOT_READY))
                self.log.progress(done=1)
            else:
                writes.append((record, invoice, operation, body))
        return writes

    def _settle_invoice(self, record: SyncRecord, invoice: Invoice, result) -> bool:
        """Record one invoice write's answer; True when QuickBooks refused it as stale."""
        if result is None:  # dry run
            return False
        if isinstance(result, StaleObjectError):
            return True
        if isinstance(result, NotFoundError) and record.qbo_id:
            self.binder.fail(record, self._not_found(record, invoice, result), error=result)
            return False
        if isinstance(result, Exception):
            names = {
                qbo_id: name
                for kind in self.invoices.dependencies([invoice])
                for qbo_id, name in self.binder.names_by_qbo(kind).items()
            }
            reason = describe(
                result,
                kind="invoice",
                number=invoice.number,
                id_names=names,
                update=bool(record.qbo_id),
            )
            self.binder.fail(record, reason, error=result)
            return False
        if not record.qbo_id:
            self.log.outcome.created += 1
            self.log.event(
                record,
                "created",
                f"Invoice {invoice.number} created in QuickBooks "
                f"(no. {result.get('DocNumber', '')}).",
            )
        else:
            self.log.outcome.updated += 1
            verb = "voided" if qbo_is_void(result) else "updated"
            self.log.event(record, verb, f"Invoice {invoice.number} {verb} in QuickBooks.")
        self._settle_write(self.invoices, record, result)
        self._after_saved(self.invoices, invoice, result)
        return False

    def _after_saved(self, adapter, local, obj: dict) -> None:
        """An invoice QuickBooks saved from the portal's write: its payments (Balance, and
        the status they make) taken at once, as QuickBooks holds them."""
        if adapter is self.invoices:
            self.invoices.local.apply_payments(local, obj)

    def push_updates(self, pairs: list[Pair], *, whole: set[int] | None = None) -> None:
        """Send the portal's changes to invoices the importer decided to push (the portal
        won a clash, or changed what QuickBooks did not), as sparse updates of what differs
        from the agreed version; binding ids in ``whole`` send the whole portal version (a
        void clash). A second stale answer is not chased: the next sync compares again."""
        with self.recording(self.invoices):
            for record, invoice in pairs:
                # Only what the portal changed, unless its whole version goes (``whole``).
                sparse = record.pk not in (whole or set())
                body = self.invoices.body(invoice, record, sparse=sparse)
                if body is None:
                    self.ensure_dependencies([invoice])
                    body = self.invoices.body(invoice, record, sparse=sparse)
                if body is None:
                    self.binder.fail(record, NOT_READY)
                    continue
                if self.ctx.dry_run:
                    self.log.plan(f"update invoice {invoice.number}")
                    continue
                self.log.checkpoint()
                try:
                    if invoice.status == Invoice.Status.VOID:
                        result = self.ctx.backend.void(
                            self.invoices.qbo_entity, record.qbo_id, record.sync_token
                        )
                    else:
                        result = self.ctx.backend.update(self.invoices.qbo_entity, body)
                except ReconnectRequired:
                    raise
                except StaleObjectError:
                    self.binder.fail(
                        record,
                        "QuickBooks changed the invoice again while it was being saved; "
                        "it will be compared on the next sync.",
                    )
                    continue
                except QBOError as exc:
                    result = exc
                self._settle_invoice(record, invoice, result)

    # --- customers and items ---------------------------------------------------------------

    def ensure_dependencies(self, invoices: list[Invoice]) -> dict[int, str]:
        """Make sure every customer and item the invoices use is bound to QuickBooks.

        Returns {invoice id: reason} for invoices whose customer or items could not be made
        ready. Raises ``QBOError`` when QuickBooks could not be asked.
        """
        problems = {
            kind: self.ensure(self.ctx.adapter(kind), records)
            for kind, records in self.invoices.dependencies(invoices).items()
        }
        blocked: dict[int, str] = {}
        for inv in invoices:
            needs = self.invoices.dependencies([inv])
            reason = next(
                (
                    problems[kind][local_id]
                    for kind, records in needs.items()
                    for local_id in records
                    if local_id in problems[kind]
                ),
                None,
            )
            if reason:
                blocked[inv.pk] = reason
        return blocked

    def ensure(self, adapter: NameListAdapter, locals_: dict[int, object]) -> dict[int, str]:
        """Bind each unbound record to the QuickBooks one of the same name, or create it.

        Returns {portal id: reason} for the records that could not be bound.
        """
        kind = adapter.kind
        problems: dict[int, str] = {}
        missing = {}
        for local_id, local in locals_.items():
            if self.binder.qbo_id(kind, local_id):
                continue
            reason = adapter.preflight(local)
            if reason:
                problems[local_id] = reason
            else:
                missing[local_id] = local
        if not missing:
            return problems
        found, refused = self.lookup_by_name(kind, list(missing.values()))
        to_create = []
        before = self.log.outcome.settled
        for local_id, local in missing.items():
            name = adapter.label(local)
            record = self.binder.get(kind, local_id) or self.binder.new(kind, local)
            if name_key(name) in refused:
                # Only the invoices that need this record fail; the others go on.
                exc = refused[name_key(name)]
                reason = (
                    f"QuickBooks refused to look up the {kind} {name}: "
                    f"{describe(exc, kind=kind, name=name)}"
                )
                problems[local_id] = reason
                self.binder.fail(record, reason, error=exc)
                continue
            obj = found.get(name_key(name))
            if obj is not None:
                self.log.event(record, "linked", f"{name} matched by name in QuickBooks.")
                if not self.ctx.dry_run:
                    self.binder.settle(record, obj, agreed=adapter.neutral_qbo(obj), pushed=False)
                else:
                    record.qbo_id = object_id(obj)
                    self.binder.remember(record)
                continue
            reason = adapter.create_preflight(local)
            if not adapter.may_create():
                reason = (
                    f"The {kind} {name} is not in QuickBooks and creating {kind}s "
                    f"automatically is off: create it in QuickBooks, or turn on "
                    f"'auto create {kind}s' on the Configuration tab."
                )
            if reason:
                problems[local_id] = reason
                self.binder.fail(record, reason)
                continue
            to_create.append((record, local, "create", adapter.body(local)))
        # Announced: the records that failed above and those about to be created.
        self.log.progress(total=self.log.outcome.settled - before + len(to_create))
        with closing(self.write_batch(to_create, adapter)) as sent:
            for record, local, result in sent:
                name = adapter.label(local)
                if isinstance(result, Exception):
                    reason = self._name_taken(kind, name, result) or describe(
                        result, kind=kind, name=name
                    )
                    problems[local.pk] = (
                        f"The {kind} {name} could not be created in QuickBooks: {reason}"
                    )
                    self.binder.fail(record, reason, error=result)
                elif result is not None:
                    self.log.outcome.created += 1
                    self.log.event(record, "created", f"Created {kind} {name} in QuickBooks.")
                    self._settle_write(adapter, record, result)
        return problems

    def _name_taken(self, kind: str, name: str, error: Exception) -> str:
        """For a customer QuickBooks refused because its name is taken (6240): which list
        holds the name, read once. Customers, vendors and employees share one set of names
        (qbo-api.md section 13), so the clash is often with a vendor or an employee that the
        customer look-up cannot see. "" when it is not that case or the list is not found."""
        if kind != "customer" or str(getattr(error, "code", "")) != "6240":
            return ""
        for entity, label in (("Vendor", "vendor"), ("Employee", "employee")):
            try:
                found, _refused = self.ctx.backend.find_by_names(entity, "DisplayName", [name])
            except QBOError:
                return ""
            if found:
                return (
                    f"The name {name} is already used by a {label} in QuickBooks: customers, "
                    f"vendors and employees share one list of names there. Rename the customer "
                    f"here (for example {name} (customer)), or the {label} in QuickBooks, "
                    "then press Retry"
                )
        return ""

    def push_list(self, adapter: NameListAdapter) -> None:
        """Bind every active portal record of a name list (the items quick sync), but those
        linked to another QuickBooks company (an invoice sent here takes them along)."""
        active = linked_elsewhere(
            adapter.model.objects.filter(active=True),
            kind=adapter.kind,
            connection_id=self.ctx.connection.pk,
        )
        local = {obj.pk: obj for obj in active}
        self.log.progress(total=len(local))
        self.ensure(adapter, local)
        self.log.progress(done=len(local))

    def lookup_by_name(self, kind: str, locals_: list) -> tuple[dict[str, dict], dict]:
        """QuickBooks objects of ``kind`` named as ``locals_``, and the look-ups QuickBooks
        refused, both keyed by ``name_key`` (``QuickBooksBackend.find_by_names``)."""
        adapter = self.ctx.adapter(kind)
        return self.ctx.backend.find_by_names(
            adapter.qbo_entity, adapter.qbo_name_field, [adapter.label(x) for x in locals_]
        )
