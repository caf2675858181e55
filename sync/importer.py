"""The importer: QuickBooks changes into the portal (two-way only).

It reads the change feed from the configuration's cursor (or everything, the first time or
past the feed's 30 days), skips what is already up to date, and applies the rest through the
adapters, inside ``sync_writing()`` so its writes never echo back as pushes. An invoice that
changed on both sides goes through the conflict rule (``sync.conflicts``); invoices whose
portal version must still be sent are returned to the caller for the exporter.

Invoices are pulled in chunks (``PULL_CHUNK``): what a chunk needs is read in a few queries,
its writes are prepared in memory and saved together in one transaction (``_flush``), so a
pull costs about the same number of queries for 10 invoices as for 200.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Min
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from integrations.quickbooks.backend import is_deleted, object_id, paid_invoice_ids, sync_token
from integrations.quickbooks.errors import QBOError, ReconnectRequired, describe
from portal.models import Customer, Invoice
from sync import conflicts
from sync.binder import qbo_totals, update_in_bulk
from sync.conflicts import Action
from sync.context import Pair
from sync.entities.base import NameListAdapter
from sync.entities.invoice import lines_prefetch
from sync.entities.invoice_local import LocalApplyError, LocalWrite, Numbers
from sync.models import SyncConfiguration, SyncRecord
from sync.runtime import Component

S = SyncRecord.Status
# Payments are read for the invoices they pay (amount paid, status).
PAYMENT = "Payment"
HOLD_DETAILS = (
    "Changed in the portal and in QuickBooks since the last sync. Nothing was "
    "overwritten: compare both versions and choose which to keep."
)
# QuickBooks invoices a pull writes into the portal together, in one transaction: a run
# stopped midway leaves each such chunk whole or not written at all (the cursor moves only
# after the whole pull, so the next pull brings the rest).
PULL_CHUNK = 200


@dataclass
class _Staged:
    """One invoice's write, prepared in memory, waiting to be saved with its chunk's."""

    record: SyncRecord
    write: LocalWrite
    obj: dict
    # QuickBooks' version taken (None: only its SyncToken and figures, ``Action.TAKE_TOKEN``)
    # and of it only ``fields`` when given.
    theirs: dict | None
    fields: frozenset[str] | None = None


@dataclass
class _Batch:
    """The writes of one chunk of a pull, and the invoice numbers as they leave them."""

    numbers: Numbers = field(default_factory=Numbers)
    staged: list[_Staged] = field(default_factory=list)


class Importer(Component):
    _read_at = None  # when the last pull started reading (our clock)
    _cursor = None  # where the next pull starts reading (QuickBooks' clock when it can be)

    def __init__(self, ctx):
        super().__init__(ctx)
        # Bindings whose portal version goes whole (a void clash), not only what changed.
        self.send_whole: set[int] = set()
        # New QuickBooks invoices left for a later pull (``_defer``).
        self.deferred = 0
        # Customers QuickBooks no longer has (merged into another), and the invoices this
        # pull moved from one portal customer to another: {old customer id: [(invoice, new)]}.
        self.merged: list[SyncRecord] = []
        self.moved: dict[int, list[tuple[Invoice, int]]] = {}
        # The chunk of invoices being pulled (``import_invoices``); None between chunks.
        self._batch: _Batch | None = None

    def pull(self) -> list[Pair]:
        """Bring QuickBooks' changes in since the cursor (``advance_cursor`` moves it after).

        Returns the invoices whose portal version must be sent (for the exporter)."""
        if not self.ctx.config.two_way:
            self.log.event(None, "skipped", "One-way sync: nothing is written into the portal.")
            return []
        now = timezone.now()
        config = self.ctx.config
        adapters = list(self.ctx.adapters.values())
        feed = [adapter.qbo_entity for adapter in adapters] + [PAYMENT]
        changes = self.ctx.backend.changes(
            feed, config.pull_cursor, now=now, invoices_from=config.first_invoice_date
        )
        # Payments reach no outcome of their own (they set an invoice's amount paid).
        self.log.progress(total=sum(len(v) for k, v in changes.items() if k != PAYMENT))
        for adapter in adapters:
            if adapter.name_list:
                self.import_names(adapter, changes.get(adapter.qbo_entity, []))
        invoices = list(changes.get(self.invoices.qbo_entity, []))
        again = paid_invoice_ids(changes.get(PAYMENT, []))
        # QuickBooks invoices that could not be pulled before are read again.
        again |= set(
            SyncRecord.objects.filter(
                connection=self.ctx.connection, object_type="invoice", invoice__isnull=True
            ).values_list("qbo_id", flat=True)
        )
        again -= {object_id(obj) for obj in invoices}
        if again:
            extra = self.ctx.backend.read_ids(self.invoices.qbo_entity, sorted(again))
            self.log.progress(total=len(extra))
            invoices += extra
        to_push = self.import_invoices(invoices)
        self.settle_merged()
        self._read_at = now
        self._cursor = self.ctx.backend.next_cursor or now
        return to_push

    def advance_cursor(self) -> None:
        """After the pull and what it decided to send: the next pull reads from the time this
        one started (dry runs, and pulls that left invoices for later, leave it alone)."""
        if self._read_at is None or self.ctx.dry_run or self.deferred:
            return
        SyncConfiguration.objects.filter(pk=self.ctx.config.pk).update(
            pull_cursor=self._cursor, last_pull_at=self._read_at
        )

    def pull_list(self, adapter: NameListAdapter) -> None:
        """Read a whole name list (items for the quick sync) and bring it in."""
        rows = self.ctx.backend.read_list(adapter.qbo_entity)
        if not self.ctx.config.two_way:
            self.log.event(
                None, "skipped", f"One-way sync: QuickBooks {adapter.kind}s are not pulled."
            )
            return
        sellable = [row for row in rows if adapter.sellable(row)]
        self.log.progress(total=len(sellable))
        self.import_names(adapter, sellable)

    # --- customers and items ---------------------------------------------------------------

    def import_names(
        self, adapter: NameListAdapter, objects: list[dict], *, counted: bool = True
    ) -> None:
        """Create, link or update portal customers or items from QuickBooks objects.

        ``counted``: the objects are part of the run's announced total (progress)."""
        kind = adapter.kind
        for obj in adapter.ordered(objects):
            self.log.checkpoint()
            if counted:
                self.log.progress(done=1)
            record = self.binder.by_qbo(kind, object_id(obj))
            if is_deleted(obj):
                # A name disappears only when merged into another (made inactive otherwise):
                # settled once the invoices it moved have been pulled (``settle_merged``).
                if record is not None and record.local_object is not None:
                    self.merged.append(record)
                continue
            neutral = adapter.neutral_qbo(obj)
            if record is not None and record.sync_token == sync_token(obj):
                self.log.outcome.unchanged += 1
                continue
            if record is not None and record.agreed == neutral:
                if not self.ctx.dry_run:
                    self.binder.settle(record, obj, agreed=neutral, pushed=False)
                self.log.outcome.unchanged += 1
                continue
            if self.ctx.dry_run:
                self.log.plan(f"pull {kind} {neutral['name']}")
                continue
            if record is None:
                local = adapter.find_local(neutral["name"])
                if local is not None and self.binder.get(kind, local.pk):
                    self.log.event(
                        None,
                        "skipped",
                        f"QuickBooks {kind} {neutral['name']} has the "
                        "same name as a portal record already linked to another one.",
                        level="warning",
                    )
                    continue
                created = local is None
                local = local or adapter.model()
                adapter.apply_remote(local, neutral)
                record = self.binder.get(kind, local.pk) or self.binder.new(kind, local)
                self.log.outcome.created += created
                verb = "Created" if created else "Linked"
                self.log.event(
                    record, "pulled", f"{verb} {kind} {neutral['name']} from QuickBooks."
                )
            else:
                adapter.apply_remote(record.local_object, neutral)
                self.log.outcome.updated += 1
                self.log.event(
                    record, "pulled", f"Updated {kind} {neutral['name']} from QuickBooks."
                )
            self.binder.settle(record, obj, agreed=neutral, pushed=False)

    def local_for_ref(self, kind: str, ref: dict | None):
        """The portal customer or item a QuickBooks reference points to, read and brought in
        first when it is not bound yet. Raises ``LocalApplyError`` when it cannot be."""
        qbo_id = str((ref or {}).get("value", ""))
        record = self.binder.by_qbo(kind, qbo_id)
        if record is not None and record.local_object is not None:
            return record.local_object
        adapter = self.ctx.adapter(kind)
        try:
            obj = self.ctx.backend.read(adapter.qbo_entity, qbo_id)
        except ReconnectRequired:
            raise
        except QBOError as exc:
            raise LocalApplyError(
                f"Its {kind} (QuickBooks id {qbo_id}) could not be read: {exc.user_message}"
            ) from exc
        self.import_names(adapter, [obj], counted=False)
        record = self.binder.by_qbo(kind, qbo_id)
        if record is None or record.local_object is None:
            raise LocalApplyError(
                f"Its {kind} {(ref or {}).get('name', qbo_id)} could not be "
                "matched to a portal record."
            )
        return record.local_object

    # --- invoices --------------------------------------------------------------------------

    def import_invoices(self, objects: list[dict]) -> list[Pair]:
        """Bring QuickBooks invoices in, ``PULL_CHUNK`` at a time: what a chunk needs is read
        in a few queries, and its writes are saved together (``_flush``), so a pull costs a
        few queries per chunk rather than several per invoice."""
        records = {
            r.qbo_id: r
            for r in SyncRecord.objects.filter(
                connection=self.ctx.connection,
                object_type="invoice",
                qbo_id__in=[object_id(o) for o in objects],
            )
            .select_related("invoice__customer")
            .prefetch_related(lines_prefetch("invoice__lines"))
        }
        first_date = self.ctx.config.first_invoice_date
        unsettled_since = self._unsettled_creates_since()
        to_push: list[Pair] = []
        for start in range(0, len(objects), PULL_CHUNK):
            chunk = objects[start : start + PULL_CHUNK]
            self._batch = _Batch()
            # The numbers new invoices would take, read at once (``_pull_new``).
            self._batch.numbers.load(
                number
                for obj in chunk
                if getattr(records.get(object_id(obj)), "invoice_id", None) is None
                for number in (obj.get("DocNumber"), f"QBO-{object_id(obj)}")
            )
            try:
                for obj in chunk:
                    self.log.checkpoint()
                    to_push += self._import_invoice(
                        records.get(object_id(obj)), obj, first_date, unsettled_since
                    )
                self._flush()
            finally:
                self._batch = None
            self.log.progress(done=len(chunk))
        return to_push

    def _import_invoice(
        self,
        record: SyncRecord | None,
        obj: dict,
        first_date,
        unsettled_since: datetime | None,
    ) -> list[Pair]:
        if is_deleted(obj):
            self.pulled_delete(record)
        elif record is None and _made_since(obj, unsettled_since):
            self._defer(obj)
        elif record is None or record.invoice_id is None:
            if not (first_date and self.invoices.remote_date(obj) < first_date.isoformat()):
                self._pull_new(record, obj)
        elif record.status == S.CLASH:
            self.refresh_clash(record, obj)
        elif record.sync_token == sync_token(obj) and record.status in (S.SYNCED, S.DIFFERS):
            self.log.outcome.unchanged += 1
        else:
            return self.reconcile(record, record.invoice, obj)
        return []

    def _pull_new(self, record: SyncRecord | None, obj: dict) -> None:
        """A QuickBooks invoice the portal does not have yet. One whose number a portal
        invoice has is written at once and held with that invoice (``hold_clash``)."""
        number = obj.get("DocNumber") or ""
        holder = None
        if number and self._batch.numbers.taken(number):
            self._flush()  # the holder may be waiting in this chunk
            holder = self._number_holder(obj)
        record = self.apply(record, None, obj, self.invoices.neutral_qbo(obj))
        if holder is not None and record is not None:
            self._flush()
            self.hold_clash(record, holder)

    def _unsettled_creates_since(self) -> datetime | None:
        """When the earliest invoice create whose answer never came was claimed, or None.

        Such a create may be in QuickBooks already, as a new invoice the feed now shows: until
        its requestid is replayed (``BatchWriter.replay_uncertain``) the portal cannot tell it
        from an accountant's new invoice, and importing it would make a second portal invoice
        (and a clash on the binding once the replay settles it)."""
        return SyncRecord.objects.filter(
            connection=self.ctx.connection, object_type="invoice", uncertain=True
        ).aggregate(since=Min("updated_at"))["since"]

    def _defer(self, obj: dict) -> None:
        """Leave a new QuickBooks invoice for a later pull: it may be a create of the
        portal's whose answer was lost. The cursor then stays where it was, so the feed brings
        it again once the replay has settled those creates."""
        self.deferred += 1
        self.log.outcome.unchanged += 1
        if self.deferred == 1:
            self.log.event(
                None,
                "skipped",
                "New QuickBooks invoices are left for the next pull: some invoices sent "
                "earlier are not confirmed yet, and these may be those very invoices. The "
                "next run confirms them first.",
                level="warning",
            )

    def reconcile_stale(self, pairs: list[Pair]) -> list[Pair]:
        """Invoices QuickBooks refused as stale: read its version and decide by the rule."""
        to_push: list[Pair] = []
        for record, invoice in pairs:
            self.log.checkpoint()
            try:
                obj = self.ctx.backend.read(self.invoices.qbo_entity, record.qbo_id)
            except ReconnectRequired:
                raise
            except QBOError as exc:
                self.binder.fail(record, describe(exc, kind="invoice"), error=exc)
                continue
            to_push += self.reconcile(record, invoice, obj)
        return to_push

    def reconcile(self, record: SyncRecord, invoice: Invoice, obj: dict) -> list[Pair]:
        """Compare both sides with what they last agreed and act on the difference; returns
        the invoice when its portal version must be sent."""
        theirs = self.invoices.neutral_qbo(obj)
        ours = self.invoices.neutral_local(invoice)
        decision = conflicts.decide(
            agreed=record.agreed or {},
            ours=ours,
            theirs=theirs,
            mapping=self.ctx.mapping,
            rule=self.ctx.config.conflict_rule,
            held=record.status == S.CONFLICT,
        )
        token = sync_token(obj) or record.sync_token
        action = decision.action
        if action == Action.TAKE_TOKEN:
            self.log.outcome.unchanged += 1
            if not self.ctx.dry_run:
                record.sync_token = token
                if "TotalAmt" in obj:
                    record.qbo_totals = qbo_totals(obj)
                # Nothing mapped changed, but QuickBooks' figures may have (a tax setting).
                figures = self.invoices.local.figures(invoice, obj)
                self._stage(self._batch or _Batch(), _Staged(record, figures, obj, None))
            return [(record, invoice)] if decision.push_after else []
        if action == Action.REFRESH_HELD:
            if not self.ctx.dry_run:
                record.conflict_portal, record.conflict_qbo = ours, theirs
                record.sync_token = token
                record.save()
            return []
        if action == Action.HOLD:
            self.hold(record, invoice, ours, theirs, token)
            return []
        if decision.conflict:
            winner = "the portal wins" if decision.winner == "portal" else "QuickBooks wins"
            self.log.event(
                record,
                "conflict",
                f"Invoice {invoice.number} changed on both sides; {winner} (conflict rule).",
                level="warning",
            )
        if decision.apply:
            self.apply(
                record, invoice, obj, theirs, fields=decision.apply, keep_lines=decision.keep_lines
            )
        else:
            record.sync_token = token  # the portal's version goes over QuickBooks' newer one
        if decision.whole:
            self.send_whole.add(record.pk)
        return [(record, invoice)] if decision.push_after else []

    def hold(self, record: SyncRecord, invoice: Invoice, ours, theirs, token: str) -> None:
        """Keep both versions for staff to choose; nothing is overwritten."""
        self.log.outcome.conflicts += 1
        self.log.event(
            record,
            "conflict",
            f"Invoice {invoice.number} changed in the portal and in QuickBooks; held for review.",
            level="warning",
        )
        if self.ctx.dry_run:
            self.log.plan(f"hold invoice {invoice.number} (conflict)")
            return
        record.status = S.CONFLICT
        record.details = HOLD_DETAILS
        record.conflict_portal = ours
        record.conflict_qbo = theirs
        record.sync_token = token
        record.save()

    # --- invoice numbers taken on both sides ----------------------------------------------

    def _number_holder(self, obj: dict) -> Invoice | None:
        """The portal invoice that already has a new QuickBooks invoice's DocNumber."""
        number = obj.get("DocNumber") or ""
        return Invoice.objects.filter(number=number).first() if number else None

    def hold_clash(self, record: SyncRecord, holder: Invoice) -> None:
        """A QuickBooks invoice was pulled whose number portal invoice ``holder`` has. The
        portal keeps it under a number of its own (``N-QBO<id>``) and holds both for staff:
        QuickBooks' number is never changed, and ``holder``, if it is not in QuickBooks yet,
        is not sent with the same number. Staff link them as one or renumber the portal's
        (``sync.services.number_clash_link`` / ``number_clash_renumber``)."""
        if self.ctx.dry_run:
            return
        number, copy = record.qbo_doc_number, record.invoice
        theirs = self.binder.get("invoice", holder.pk) or self.binder.invoice_records(
            [holder.pk]
        ).get(holder.pk)
        self.log.outcome.conflicts += 1
        if theirs is not None and theirs.qbo_id:
            details = (
                f"QuickBooks has two invoices numbered {number}: this one (QuickBooks id "
                f"{record.qbo_id}) and the one portal invoice {number} is linked to (QuickBooks "
                f"id {theirs.qbo_id}). The portal keeps this one as {copy.number}, and neither "
                "number is changed in QuickBooks. Renumber one of them in QuickBooks; the next "
                "pull takes the new number."
            )
        else:
            details = (
                f"Invoice number {number} is taken on both sides: by portal invoice {number}, "
                f"not in QuickBooks yet, and by this invoice made in QuickBooks (id "
                f"{record.qbo_id}), kept in the portal as {copy.number}. QuickBooks' number is "
                "never changed. On the QuickBooks page's Conflicts tab, link them as one "
                "invoice, or renumber the portal's invoice."
            )
            theirs = theirs or self.binder.new("invoice", holder)
            self._mark_clash(
                theirs,
                f"Invoice number {number} is also on an invoice made in QuickBooks (id "
                f"{record.qbo_id}), kept in the portal as {copy.number}. This invoice is not "
                "sent until staff choose on the QuickBooks page's Conflicts tab: link them as "
                "one invoice, or renumber this one.",
            )
        self._mark_clash(record, details)

    def _mark_clash(self, record: SyncRecord, details: str) -> None:
        record.status, record.details = S.CLASH, details
        record.save()
        self.log.event(record, "conflict", f"{record.label}: {details}", level="warning")

    def refresh_clash(self, record: SyncRecord, obj: dict) -> None:
        """A held QuickBooks invoice changed there: its changes are taken (never its number
        into the portal's, nor the portal's into QuickBooks), and once its DocNumber is free
        in the portal (renumbered in QuickBooks) it takes that number and the hold ends."""
        if record.sync_token == sync_token(obj) or self.ctx.dry_run:
            self.log.outcome.unchanged += 1
            return
        theirs = self.invoices.neutral_qbo(obj)
        self._flush()  # the numbers as this chunk leaves them so far
        holder = self._number_holder(obj)
        if holder is not None and holder.pk != record.invoice_id:
            self.apply(record, record.invoice, obj, theirs, fields=frozenset(theirs) - {"number"})
            self._flush()
            self.hold_clash(record, holder)
            return
        # Free now: the hold ends, and the number QuickBooks has is taken.
        self.apply(record, record.invoice, obj, theirs)
        self._flush()
        for waiting in SyncRecord.objects.filter(
            connection=self.ctx.connection, object_type="invoice", status=S.CLASH, qbo_id=""
        ).select_related("invoice"):
            if (
                not Invoice.objects.filter(number=waiting.invoice.number)
                .exclude(pk=waiting.invoice_id)
                .exists()
            ):
                waiting.status, waiting.details = S.PENDING, ""
                waiting.save(update_fields=["status", "details", "updated_at"])

    def apply(
        self,
        record: SyncRecord | None,
        invoice: Invoice | None,
        obj: dict,
        theirs: dict,
        *,
        fields: frozenset[str] | None = None,
        keep_lines: frozenset[int] = frozenset(),
    ) -> SyncRecord | None:
        """Write QuickBooks' version of an invoice into the portal: the fields that flow back,
        or only ``fields`` of them (a merge keeps the portal's own changes to the others), and
        of its lines all but the positions in ``keep_lines`` (``conflicts.merge_lines``).
        Returns the binding (None for a dry run, or when the invoice could not be written:
        the binding then says why)."""
        if self.ctx.dry_run:
            number = invoice.number if invoice else (obj.get("DocNumber") or f"QBO-{obj['Id']}")
            self.log.plan(f"pull invoice {number}")
            return None
        before = invoice.customer_id if invoice is not None else None
        batch = self._batch or _Batch()
        try:
            write = self.invoices.local.prepare(
                invoice,
                obj,
                theirs,
                resolve=self.local_for_ref,
                numbers=batch.numbers,
                fields=fields,
                keep_lines=keep_lines,
            )
        except LocalApplyError as exc:
            # Kept as a binding without a portal invoice, so staff see why it is missing and
            # the next pull reads it again.
            record = record or SyncRecord(
                connection=self.ctx.connection,
                object_type="invoice",
                qbo_id=object_id(obj),
                qbo_doc_number=self.invoices.remote_number(obj),
            )
            self.binder.fail(record, str(exc))
            return None
        invoice = write.invoice
        if before is not None and invoice.customer_id != before:
            self.moved.setdefault(before, []).append((invoice, invoice.customer_id))
        record = record or SyncRecord(
            connection=self.ctx.connection, object_type="invoice", status=S.PENDING
        )
        # A renumbering is saved at once: the number it gives up is then free for the next.
        self._stage(batch, _Staged(record, write, obj, theirs, fields), now=write.renumbered)
        return record

    def _stage(self, batch: _Batch, staged: _Staged, *, now: bool = False) -> None:
        """Keep a write for its chunk's ``_flush``; outside a chunk (``now``), save it now."""
        batch.staged.append(staged)
        if now or batch is not self._batch:
            self._flush(batch)

    def _flush(self, batch: _Batch | None = None) -> None:
        """Save the writes kept so far, in one transaction: the portal invoices and their
        lines (``LocalInvoiceWriter.save_all``), then their bindings, settled with what both
        sides now agree on, in one ``bulk_create`` and one ``bulk_update``. Their events and
        counts follow once saved."""
        batch = batch or self._batch
        if batch is None or not batch.staged:
            return
        staged, batch.staged = batch.staged, []
        with transaction.atomic():
            self.invoices.local.save_all([s.write for s in staged])
            settled, changed = [], set()
            for s in staged:
                record, invoice = s.record, s.write.invoice
                if s.theirs is None:
                    continue
                if record.invoice_id is None:
                    record.invoice = invoice
                    changed.add("invoice")
                agreed = self.invoices.agreed_after_pull(record, invoice, s.theirs, fields=s.fields)
                changed |= self.binder.settle(
                    record,
                    s.obj,
                    agreed=agreed,
                    pushed=False,
                    number=self.invoices.remote_number(s.obj),
                    differs=self.invoices.differences(record, s.obj),
                    save=False,
                )
                settled.append(record)
            self.binder.save_settled(settled, changed)
            tokens = [s.record for s in staged if s.theirs is None]
            now = timezone.now()
            for record in tokens:
                record.updated_at = now
            update_in_bulk(tokens, ["sync_token", "qbo_totals", "updated_at"])
        for s in staged:
            if s.theirs is None:
                continue
            number = s.write.invoice.number
            if s.write.created:
                self.log.outcome.created += 1
                self.log.event(s.record, "pulled", f"Invoice {number} created from QuickBooks.")
            else:
                self.log.outcome.updated += 1
                self.log.event(s.record, "pulled", f"Invoice {number} updated from QuickBooks.")

    def settle_merged(self) -> None:
        """Customers QuickBooks merged into another (they disappear from its feed as deleted,
        and their invoices move to the survivor, qbo-api.md section 13): the portal moves its
        own invoices of theirs to the survivor too, with an event on each, and keeps the
        merged customer inactive and unlinked, so nothing is sent to a customer QuickBooks no
        longer has. The survivor is the customer QuickBooks moved their invoices to."""
        if self.ctx.dry_run:
            return
        for record in self.merged:
            customer = record.customer
            if customer is None:
                continue
            moves = self.moved.get(customer.pk, [])
            survivors = Counter(new for _invoice, new in moves)
            survivor = (
                Customer.objects.filter(pk=survivors.most_common(1)[0][0]).first()
                if survivors
                else None
            )
            gone = record.qbo_id
            for invoice, _new in moves:
                self.log.event(
                    self.binder.get("invoice", invoice.pk),
                    "pulled",
                    f"Invoice {invoice.number} moved to customer {survivor or invoice.customer}: "
                    f"{customer} was merged into it in QuickBooks.",
                )
            if survivor is not None:
                for invoice in Invoice.objects.filter(customer=customer):
                    invoice.customer = survivor
                    invoice.save(update_fields=["customer", "updated_at"])
                    self.log.event(
                        self.binder.get("invoice", invoice.pk),
                        "pulled",
                        f"Invoice {invoice.number} moved to customer {survivor}: {customer} "
                        "was merged into it in QuickBooks.",
                    )
                why = (
                    f"Merged into {survivor} in QuickBooks (QuickBooks customer {gone} is no "
                    f"more); its invoices are now {survivor}'s."
                )
            else:
                why = (
                    f"QuickBooks no longer has this customer (id {gone}; merged into another "
                    "or removed there). It is inactive here and not sent again."
                )
            Customer.objects.filter(pk=customer.pk).update(active=False)
            self.binder.forget(record)
            record.qbo_id, record.sync_token = "", ""
            record.status, record.details = S.SKIPPED, why
            record.save()
            self.log.outcome.updated += 1
            self.log.event(record, "pulled", f"{customer}: {why}")

    def pulled_delete(self, record: SyncRecord | None) -> None:
        """QuickBooks deleted an invoice: the portal keeps it, void; nothing is re-created."""
        if record is None or record.invoice is None:
            self.log.outcome.unchanged += 1
            return
        invoice = record.invoice
        if invoice.status == Invoice.Status.VOID and (record.agreed or {}).get("void"):
            # Already applied: the feed repeats a deletion for as long as it overlaps.
            self.log.outcome.unchanged += 1
            return
        if self.ctx.dry_run:
            self.log.plan(f"void invoice {invoice.number} (deleted in QuickBooks)")
            return
        self.invoices.local.mark_void(invoice)
        self.log.outcome.updated += 1
        self.binder.mark_deleted(
            record,
            "Deleted in QuickBooks; marked void in the portal (portal records are never "
            "deleted by a sync).",
        )
        self.log.event(
            record,
            "pulled",
            f"Invoice {invoice.number} was deleted in QuickBooks; marked void in the portal.",
        )


# QuickBooks' clock and ours may disagree; an invoice made up to this long before the
# earliest unconfirmed create may still be that create.
CLOCK_SLACK = timedelta(hours=1)


def _made_since(obj: dict, since: datetime | None) -> bool:
    """Whether QuickBooks made ``obj`` at or after ``since`` (less ``CLOCK_SLACK``); True when
    its ``MetaData.CreateTime`` cannot be read, so an unknown age never counts as old."""
    if since is None:
        return False
    created = parse_datetime(str((obj.get("MetaData") or {}).get("CreateTime") or ""))
    return created is None or created >= since - CLOCK_SLACK
