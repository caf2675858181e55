"""The binder: bindings (``SyncRecord``) between portal records and QuickBooks objects.

It loads the customer and item bindings of a connection once per run, finds a binding by
portal id or by QuickBooks id, and records each binding's fate: bound and settled (synced,
with QuickBooks' Id and SyncToken and what both sides agreed on), failed (with the reason
and, when the error may pass, the next retry), or skipped.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from integrations.models import Connection
from integrations.quickbooks.backend import object_id, sync_token
from integrations.quickbooks.errors import error_fields
from portal.history import update_with_history
from portal.models import Invoice
from portal.money import round_money
from sync.models import SyncRecord
from sync.runlog import RunLog

S = SyncRecord.Status
# Retry schedule for failed records whose failure may pass (throttling, outages): minutes.
RETRY_BACKOFF_MINUTES = (1, 5, 15, 60, 240)
NO_ERROR = {"error_code": "", "error_element": "", "intuit_tid": ""}
# What ``Binder.settle`` writes on a binding (its portal invoice too, on its first write).
SETTLED_FIELDS = [
    "invoice",
    "qbo_id",
    "sync_token",
    "qbo_totals",
    "agreed_version",
    "agreed_mapping",
    "qbo_doc_number",
    "status",
    "details",
    "error_code",
    "error_element",
    "intuit_tid",
    "uncertain",
    "request_id",
    "attempts",
    "next_retry_at",
    "conflict_portal",
    "conflict_qbo",
    "agreed",
    "last_pushed_at",
    "last_pulled_at",
    "updated_at",
]
SETTLED_ATTNAMES = [SyncRecord._meta.get_field(name).attname for name in SETTLED_FIELDS]


def update_in_bulk(objs: list, fields: list[str]) -> None:
    """``bulk_update`` ``fields`` of ``objs`` (of one model), but a field with the same value
    on all of them is set in one plain UPDATE: its CASE would cost a branch per object to
    build and to run for nothing."""
    if not objs or not fields:
        return
    manager = type(objs[0])._default_manager
    same, differ = {}, []
    for name in fields:
        attname = type(objs[0])._meta.get_field(name).attname
        first = getattr(objs[0], attname)
        if all(getattr(obj, attname) == first for obj in objs[1:]):
            same[attname] = first
        else:
            differ.append(name)
    if same:
        manager.filter(pk__in=[obj.pk for obj in objs]).update(**same)
    if differ:
        manager.bulk_update(objs, differ)


def retry_at(attempts: int):
    """When a record failed ``attempts`` times by a passing error is due again."""
    step = RETRY_BACKOFF_MINUTES[min(attempts, len(RETRY_BACKOFF_MINUTES)) - 1]
    return timezone.now() + timedelta(minutes=step)


def qbo_totals(obj: dict) -> dict[str, str]:
    """QuickBooks' subtotal (total before tax), tax and total of an invoice, as 2-decimal
    text (``TotalAmt``, ``TxnTaxDetail.TotalTax``; qbo-api.md section 8)."""
    total = round_money(Decimal(str(obj.get("TotalAmt") or 0)))
    tax = round_money(Decimal(str((obj.get("TxnTaxDetail") or {}).get("TotalTax") or 0)))
    return {"subtotal": str(total - tax), "tax": str(tax), "total": str(total)}


class Binder:
    """The bindings of one connection during one run (dry runs write nothing)."""

    def __init__(
        self,
        *,
        connection: Connection,
        log: RunLog,
        dry_run: bool = False,
        mapping_signature: str = "",
    ):
        self.connection = connection
        self.log = log
        self.dry_run = dry_run
        # The field and tax mapping this run sends with (``runtime.mapping_signature``).
        self.mapping_signature = mapping_signature
        self._by_local: dict[tuple[str, int], SyncRecord] = {}
        self._by_qbo: dict[tuple[str, str], SyncRecord] = {}
        self._qbo_ids: dict[str, dict[int, str]] = {}
        for record in SyncRecord.objects.filter(
            connection=connection, object_type__in=["customer", "item"]
        ).select_related("customer", "item"):
            self.remember(record)

    # --- looking up --------------------------------------------------------------------

    def remember(self, record: SyncRecord) -> None:
        """Keep ``record`` findable by portal id and by QuickBooks id for this run."""
        self._qbo_ids.pop(record.object_type, None)
        local_id = record.customer_id or record.item_id or record.invoice_id
        self._by_local[(record.object_type, local_id)] = record
        if record.qbo_id:
            self._by_qbo[(record.object_type, record.qbo_id)] = record

    def get(self, kind: str, local_id: int) -> SyncRecord | None:
        return self._by_local.get((kind, local_id))

    def by_qbo(self, kind: str, qbo_id: str) -> SyncRecord | None:
        return self._by_qbo.get((kind, str(qbo_id)))

    def qbo_id(self, kind: str, local_id: int) -> str:
        """The QuickBooks id bound to a portal record, or ""."""
        record = self.get(kind, local_id)
        return record.qbo_id if record is not None else ""

    def qbo_ids(self, kind: str) -> dict[int, str]:
        """{portal id: QuickBooks id} of every bound record of ``kind``."""
        ids = self._qbo_ids.get(kind)
        if ids is None:
            ids = {
                local_id: record.qbo_id
                for (k, local_id), record in self._by_local.items()
                if k == kind and record.qbo_id
            }
            self._qbo_ids[kind] = ids
        return ids

    def names_by_qbo(self, kind: str) -> dict[str, str]:
        """{QuickBooks id: portal name}, to name records in QuickBooks' messages."""
        return {
            qbo_id: str(record.local_object)
            for (k, qbo_id), record in self._by_qbo.items()
            if k == kind and record.local_object is not None
        }

    def waits(self, record: SyncRecord | None, *, retry_now: bool, force: bool) -> bool:
        """Whether a binding is not pushed now: uncertain (the replay settles it), held for
        review (unless forced), or failed and not due yet (unless asked for by id)."""
        if record is None:
            return False
        if record.uncertain or record.status == S.CLASH:
            return True
        if record.status == S.CONFLICT and not force:
            return True
        return bool(
            record.status == S.FAILED
            and record.next_retry_at
            and record.next_retry_at > timezone.now()
            and not retry_now
        )

    def refused(self, record: SyncRecord | None, version: str, *, retry_now: bool) -> bool:
        """Whether QuickBooks already refused this very ``version`` for good: it is not sent
        again until it changes or staff press Retry (``retry_now``). Remembers ``version``
        on the binding, for ``fail`` to keep should QuickBooks refuse it."""
        if record is None:
            return False
        record.version = version
        return bool(
            record.status == S.FAILED
            and not retry_now
            and record.next_retry_at is None
            and record.refused_version
            and record.refused_version == version
        )

    def invoice_records(self, invoice_ids: list[int]) -> dict[int, SyncRecord]:
        """{invoice id: binding} for these portal invoices."""
        return {
            r.invoice_id: r
            for r in SyncRecord.objects.filter(
                connection=self.connection, object_type="invoice", invoice_id__in=invoice_ids
            )
        }

    # --- recording fates ---------------------------------------------------------------

    def new(self, kind: str, local, *, save: bool = True) -> SyncRecord:
        """A new pending binding for portal record ``local`` of ``kind``."""
        record = SyncRecord(connection=self.connection, object_type=kind, status=S.PENDING)
        setattr(record, kind, local)
        if save and not self.dry_run:
            record.save()
        self.remember(record)
        return record

    def settle(
        self,
        record: SyncRecord,
        obj: dict,
        *,
        agreed: dict | None,
        pushed: bool,
        number: str | None = None,
        differs: str = "",
        agree_version: bool = True,
        save: bool = True,
    ) -> set[str]:
        """A write or read succeeded: keep QuickBooks' Id and SyncToken (and DocNumber as
        ``number``), what both sides agree on, and mark the binding synced, or *totals
        differ* with the reason ``differs`` when QuickBooks' totals are not the portal's.
        ``agree_version``: the invoice as loaded is what was agreed (not so for an answer
        replayed from an earlier write, which the next push compares again). ``save``: saved
        now, or by the caller with others (``save_settled``). Returns the fields it changed."""
        before = {name: getattr(record, name) for name in SETTLED_ATTNAMES}
        record.qbo_id = object_id(obj) or record.qbo_id
        record.sync_token = sync_token(obj) or record.sync_token
        if record.object_type == "invoice" and "TotalAmt" in obj:
            record.qbo_totals = qbo_totals(obj)
        if record.object_type == "invoice" and record.invoice is not None:
            if agree_version:
                self.agree_version(record, record.invoice)
            else:  # compared again by the next push
                record.agreed_version = None
        if number is not None:
            record.qbo_doc_number = number
        record.status = S.DIFFERS if differs else S.SYNCED
        record.details = differs
        record.error_code = record.error_element = record.intuit_tid = ""
        record.uncertain = False
        record.request_id = ""
        record.attempts = 0
        record.next_retry_at = None
        record.conflict_portal = record.conflict_qbo = None
        if agreed is not None:
            record.agreed = agreed
        if pushed:
            record.last_pushed_at = timezone.now()
        else:
            record.last_pulled_at = timezone.now()
        if save:
            record.save()
            self.remember(record)
        return {
            name
            for name, attname in zip(SETTLED_FIELDS, SETTLED_ATTNAMES, strict=True)
            if getattr(record, attname) != before[attname]
        }

    def save_settled(self, records: list[SyncRecord], fields: set[str]) -> None:
        """Save bindings ``settle`` left unsaved: the new ones in one ``bulk_create``, the
        others' ``fields`` (what ``settle`` changed on any of them) in bulk."""
        now = timezone.now()
        for record in records:
            record.updated_at = now
        new = [r for r in records if r.pk is None]
        bound = [r for r in records if r.pk is not None]
        SyncRecord.objects.bulk_create(new)
        update_in_bulk(bound, [name for name in SETTLED_FIELDS if name in fields | {"updated_at"}])
        for record in records:
            self.remember(record)

    def agree_version(self, record: SyncRecord, invoice) -> bool:
        """Keep the invoice's version and the mapping as those both sides agree on (not
        saved here); True when they changed."""
        agreed = (invoice.version, self.mapping_signature)
        if (record.agreed_version, record.agreed_mapping) == agreed:
            return False
        record.agreed_version, record.agreed_mapping = agreed
        return True

    def recheck(self, record: SyncRecord, differs: str) -> None:
        """Totals checked again without a write: synced, or still differing (``differs``)."""
        status = S.DIFFERS if differs else S.SYNCED
        if (record.status, record.details) != (status, differs):
            record.status, record.details = status, differs
            record.save(update_fields=["status", "details", "updated_at"])
            if not differs:
                self.log.event(record, "checked", f"{record.label}: totals agree again.")

    def fail(self, record: SyncRecord, reason: str, *, error: Exception | None = None) -> None:
        """Mark ``record`` failed with ``reason``; retried on the backoff schedule when
        ``error`` may pass (throttling, outages), otherwise when staff retry it."""
        self.log.outcome.failed += 1
        label = record.label
        self.log.event(record, "failed", f"{label}: {reason}", level="error")
        if self.dry_run:
            self.log.plan(f"fail {label}: {reason}")
            return
        record.status = S.FAILED
        record.details = reason
        # QuickBooks answered: the write in flight, if any, is settled (refused).
        record.uncertain = False
        record.request_id = ""
        record.attempts += 1
        retryable = bool(error is not None and getattr(error, "retryable", False))
        record.next_retry_at = retry_at(record.attempts) if retryable else None
        # A refusal retrying cannot fix waits until what was sent changes (``refused``).
        record.refused_version = "" if retryable else getattr(record, "version", "")
        for key, value in (error_fields(error) if error else NO_ERROR).items():
            setattr(record, key, value)
        record.save()
        self.remember(record)

    def skip(self, record: SyncRecord, reason: str) -> None:
        """Nothing to send for ``record``, for ``reason``."""
        self.log.outcome.skipped += 1
        self.log.event(record, "skipped", f"{record.label}: {reason}")
        if not self.dry_run:
            record.status = S.SKIPPED
            record.details = reason
            record.save()

    def mark_deleted(self, record: SyncRecord, details: str) -> None:
        """QuickBooks deleted the object: both sides agree it is void, and no old create of
        it may ever be replayed."""
        record.status = S.SYNCED
        record.details = details
        record.request_id = ""
        record.agreed = {**(record.agreed or {}), "void": True}
        record.last_pulled_at = timezone.now()
        record.save()

    def forget(self, record: SyncRecord) -> None:
        """``record`` is no longer bound to its QuickBooks object (for this run's look-ups)."""
        self._by_qbo.pop((record.object_type, record.qbo_id), None)
        self._qbo_ids = {}

    def release_copy(self, record: SyncRecord, qbo_id: str) -> None:
        """A replay found that ``record``'s create made QuickBooks object ``qbo_id``: if an
        earlier pull bound that object to a portal copy (a sync before Ledgerlink held such
        pulls back), the binding moves to ``record`` and the copy is made void in the portal,
        kept for the record and never sent (nothing is duplicated and nothing crashes)."""
        copy = (
            SyncRecord.objects.filter(
                connection=self.connection, object_type=record.object_type, qbo_id=qbo_id
            )
            .exclude(pk=record.pk)
            .first()
        )
        if copy is None:
            return
        reason = (
            f"A copy of {record.label}: QuickBooks {record.object_type} {qbo_id} is "
            f"{record.label}, which the portal sent before this copy was pulled. This copy is "
            "void and is not sent; it can be deleted."
        )
        if copy.invoice_id is not None:
            update_with_history(copy.invoice, status=Invoice.Status.VOID)
        copy.qbo_id = ""
        copy.sync_token = ""
        copy.status = S.SKIPPED
        copy.details = reason
        copy.uncertain = False
        copy.request_id = ""
        copy.save()
        self._by_qbo.pop((record.object_type, qbo_id), None)
        self.log.event(copy, "skipped", reason, level="warning")

    def mark_uncertain(self, record: SyncRecord, reason: str) -> None:
        """A create was sent and its answer lost: a later run replays its requestid."""
        record.uncertain = True
        record.status = S.PENDING
        record.details = reason
        record.save()
        self.log.event(record, "uncertain", f"{record.label}: {reason}", level="warning")

    def claim(self, record: SyncRecord, request_ref: str) -> None:
        """Store the requestid a create is about to be sent with, before it is sent. Until
        its answer settles it, the binding is uncertain: a run that stops before then (killed,
        lease lost) leaves it for the next run to replay with the same requestid, never to
        send again with a new one."""
        self.claim_all([(record, request_ref)])

    def claim_all(self, claims: list[tuple[SyncRecord, str]]) -> None:
        """``claim`` each (binding, requestid and position) of ``claims``, together: the new
        bindings in one ``bulk_create``, the others in one bulk update, in one transaction
        (either every write of the batches about to be sent is claimed, or none is)."""
        if not claims:
            return
        now = timezone.now()
        for record, request_ref in claims:
            record.request_id = request_ref
            record.status = S.PENDING
            record.uncertain = True
            record.updated_at = now
        new = [record for record, _ref in claims if record.pk is None]
        bound = [record for record, _ref in claims if record.pk is not None]
        with transaction.atomic():
            SyncRecord.objects.bulk_create(new)
            update_in_bulk(bound, ["request_id", "status", "uncertain", "updated_at"])
        for record in new:
            self.remember(record)
