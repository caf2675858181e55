"""Writing QuickBooks' version of an invoice into the portal: fields, lines, payments, deletes.

Only the fields that flow from QuickBooks (the field mapping) are written into an existing
portal invoice; a new one takes them all. Portal records are never deleted by a sync.

Every write lands in the records' change history (``portal.history``), including those that
go round ``save()``.

A write is prepared in memory (``prepare``) and saved with the others of its batch
(``save_all``): a pull of many invoices costs a few queries per batch, not several per invoice.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.utils import timezone

from portal.changes import bump
from portal.history import (
    create_with_history,
    delete_with_history,
    record_changed,
    record_later,
    update_with_history,
)
from portal.models import Invoice, InvoiceLine, TaxRate
from portal.money import ZERO, round_money
from sync.binder import update_in_bulk
from sync.context import SyncContext
from sync.mappers.invoice import ITEM_LINE, invoice_lines, kept_line, line_kind, qbo_is_void

TEXT_FIELDS = ("customer_memo", "private_note", "billing_email", "reference")
DATE_FIELDS = ("issue_date", "due_date")

# (kind, QuickBooks reference) -> the portal customer or item it is bound to.
RefResolver = Callable[[str, dict | None], object]


def parse_date(value) -> date | None:
    """A date from QuickBooks' "YYYY-MM-DD" (or a date), None for empty."""
    if not value:
        return None
    if isinstance(value, date):
        return value
    return datetime.strptime(str(value)[:10], "%Y-%m-%d").date()


def _money(value) -> Decimal:
    return round_money(Decimal(str(value or 0)))


def _decimal(value) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))


class LocalApplyError(Exception):
    """QuickBooks' version could not be written into the portal; the message says why."""


class Numbers:
    """Invoice numbers in use, as the writes prepared so far leave them: read from the
    database for many numbers at once (``load``), then kept current as writes take them.

    A renumbered invoice gives its old number up at once: the importer saves such a write
    before preparing another, so renumberings never chain in one statement (the number's
    unique constraint is checked row by row)."""

    def __init__(self):
        # number -> the invoice having it (its id, or the unsaved invoice itself), or None.
        self._owner: dict[str, int | Invoice | None] = {}

    def load(self, numbers) -> None:
        """Read which of ``numbers`` portal invoices have (one query for those not known)."""
        wanted = {n for n in numbers if n and n not in self._owner}
        if not wanted:
            return
        found = dict(Invoice.objects.filter(number__in=wanted).values_list("number", "pk"))
        for number in wanted:
            self._owner[number] = found.get(number)

    def taken(self, number: str, *, by_other_than: Invoice | None = None) -> bool:
        """Whether a portal invoice (other than ``by_other_than``) has ``number``."""
        self.load([number])
        owner = self._owner[number]
        if owner is None or by_other_than is None:
            return owner is not None
        if isinstance(owner, Invoice):
            return owner is not by_other_than
        return owner != by_other_than.pk

    def free(self, number: str) -> str:
        """``number``, or when a portal invoice has it too, the first of ``number-2``,
        ``number-3``... that none has (one query per number tried)."""
        candidate, n = number, 1
        while self.taken(candidate):
            n += 1
            candidate = f"{number}-{n}"
        return candidate

    def take(self, number: str, invoice: Invoice, *, giving_up: str = "") -> None:
        if giving_up:
            self._owner[giving_up] = None
        self._owner[number] = invoice


# The invoice fields QuickBooks' version may change (``prepare``): what a write saves.
WRITTEN_FIELDS = (
    "customer",
    *DATE_FIELDS,
    *TEXT_FIELDS,
    "number",
    "currency",
    "exchange_rate",
    "status",
    "subtotal",
    "tax_total",
    "total",
    "amount_paid",
)


@dataclass
class LocalWrite:
    """QuickBooks' version of one invoice, made in memory (``prepare``), to be saved with the
    others of its batch (``save_all``)."""

    invoice: Invoice
    created: bool
    # The fields whose values changed (all of them for a new invoice).
    changed: set[str] = field(default_factory=set)
    # A save (the invoice's ``updated_at`` moves and its history has a row even when only its
    # lines changed), not only figures kept (totals, payments).
    saved: bool = True
    # Its lines now, when QuickBooks' replace them, and the lines they replace.
    lines: list[InvoiceLine] | None = None
    replaced: list[InvoiceLine] = field(default_factory=list)

    @property
    def renumbered(self) -> bool:
        return not self.created and "number" in self.changed


class LocalInvoiceWriter:
    def __init__(self, ctx: SyncContext):
        self.ctx = ctx
        self._lines_to_save: list[InvoiceLine] = []
        # {invoice id: (invoice, fields)} a push's answers changed, saved by ``flush``.
        self._invoices_to_save: dict[int, tuple[Invoice, set[str]]] = {}
        self._rates: dict[int, TaxRate] | None = None

    def prepare(
        self,
        invoice: Invoice | None,
        obj: dict,
        theirs: dict,
        *,
        resolve: RefResolver,
        numbers: Numbers,
        fields: frozenset[str] | None = None,
        keep_lines: frozenset[int] = frozenset(),
    ) -> LocalWrite:
        """QuickBooks invoice ``obj`` (neutral ``theirs``) written in memory into ``invoice``,
        or into a new portal invoice when None, with its lines, QuickBooks' totals and what
        its Balance says is paid; nothing is saved (``save_all`` does it). ``numbers`` tells
        which invoice numbers are taken, and takes the one the invoice ends with.

        ``fields`` limits an existing invoice to those neutral fields; ``keep_lines`` are the
        positions (0-based) of lines the portal keeps as it has them (a line merge). Raises
        ``LocalApplyError`` when it cannot be recorded (an unmapped tax code, a
        customer or item that cannot be read or matched).
        """
        created = invoice is None
        customer = resolve("customer", obj.get("CustomerRef"))
        if created:
            number = obj.get("DocNumber") or f"QBO-{obj['Id']}"
            if numbers.taken(number):
                number = numbers.free(f"{number}-QBO{obj['Id']}")
            invoice = Invoice(number=number, customer=customer)
            before = {}
        else:
            before = {name: _value(invoice, name) for name in WRITTEN_FIELDS}
        flows = self.ctx.mapping.project(theirs, "from") if not created else theirs
        if fields is not None and not created:
            # The lines carry their tax code: taking the lines takes QuickBooks' code too.
            wanted = set(fields) | ({"tax_code"} if "lines" in fields else set())
            flows = {name: value for name, value in flows.items() if name in wanted}
        if "customer" in flows:
            invoice.customer = customer
        for name in DATE_FIELDS:
            if name in flows:
                setattr(invoice, name, parse_date(flows[name]))
        if created and not invoice.issue_date:
            invoice.issue_date = timezone.localdate()
        for name in TEXT_FIELDS:
            if name in flows:
                setattr(invoice, name, flows[name] or "")
        renumber = "number" in flows and not created and flows["number"]
        if (
            renumber
            and flows["number"] != invoice.number
            and not numbers.taken(flows["number"], by_other_than=invoice)
        ):
            invoice.number = flows["number"]
        # QuickBooks' currency and exchange rate, whatever the field mapping says: an invoice
        # is never taken into the portal in a currency guessed from the portal's default.
        currency = str((obj.get("CurrencyRef") or {}).get("value") or "")
        if currency:
            invoice.currency = currency
        if obj.get("ExchangeRate") not in (None, ""):
            invoice.exchange_rate = Decimal(str(obj["ExchangeRate"]))
        if theirs.get("void"):
            invoice.status = Invoice.Status.VOID
        elif invoice.status == Invoice.Status.DRAFT and created:
            invoice.status = Invoice.Status.SENT
        write = LocalWrite(invoice=invoice, created=created)
        if "lines" in flows and not theirs.get("void"):
            write.lines, write.replaced = self._lines(
                invoice, obj, flows, resolve=resolve, keep=keep_lines, created=created
            )
            self.totals(invoice, obj)
        self.payments(invoice, obj)
        write.changed = {
            name for name in WRITTEN_FIELDS if created or _value(invoice, name) != before[name]
        }
        if created:
            numbers.take(invoice.number, invoice)
        elif write.renumbered:
            numbers.take(invoice.number, invoice, giving_up=before["number"])
        return write

    def _lines(
        self,
        invoice: Invoice,
        obj: dict,
        flows: dict,
        *,
        resolve,
        keep: frozenset[int],
        created: bool,
    ) -> tuple[list[InvoiceLine], list[InvoiceLine]]:
        """QuickBooks' lines for ``invoice`` (unsaved), and the portal lines they replace."""
        rate = None
        if flows.get("tax_code"):
            rate_id = self.ctx.rates_by_code.get(flows["tax_code"])
            if rate_id is None:
                raise LocalApplyError(
                    f"QuickBooks tax code {flows['tax_code']} is not mapped to a portal tax "
                    "rate, so the invoice's tax cannot be recorded. Map it on the Mapping > "
                    "Tax tab, then retry."
                )
            rate = self._rate(rate_id)
        # In position order (the lines' ordering), prefetched when the caller loaded them.
        previous = [] if created else list(invoice.lines.all())
        lines = []
        for position, line in enumerate(invoice_lines(obj), start=1):
            if position - 1 in keep:
                # Kept as the portal has it, saved anew with the others (the old row goes).
                mine = copy.copy(previous[position - 1])
                mine.pk, mine.position = None, position
                lines.append(mine)
                continue
            kind = line_kind(line)
            values = {
                "invoice": invoice,
                "position": position,
                "kind": kind,
                "qbo_line_id": str(line.get("Id", "") or ""),
                "qbo_detail": kept_line(line),
                "description": (line.get("Description") or "")[:4000],
                "amount": _money(line.get("Amount")),
                "quantity": None,
            }
            if kind == InvoiceLine.Kind.ITEM:
                detail = line.get(ITEM_LINE) or {}
                item_ref = detail.get("ItemRef")
                taxable = (detail.get("TaxCodeRef") or {}).get("value") == "TAX"
                values.update(
                    item=resolve("item", item_ref) if item_ref else None,
                    quantity=_decimal(detail.get("Qty")),
                    unit_price=_decimal(detail.get("UnitPrice")),
                    tax_rate=rate if taxable else None,
                )
            lines.append(InvoiceLine(**values))
        return lines, previous

    def _rate(self, rate_id: int) -> TaxRate:
        """A mapped portal tax rate (all of them read once per run)."""
        if self._rates is None:
            self._rates = TaxRate.objects.in_bulk(set(self.ctx.rates_by_code.values()))
        return self._rates.get(rate_id) or TaxRate.objects.get(pk=rate_id)

    def save_all(self, writes: list[LocalWrite]) -> None:
        """Save prepared writes in a few queries whatever their number: the invoices changed
        (one ``bulk_update`` per set of fields changed), the lines replaced (one delete), the
        new invoices and all new lines (one ``bulk_create`` each), each with its history rows
        in one more. Lines are created as QuickBooks states them (``save()`` is not called,
        so nothing is recomputed into another number). Run it in a transaction."""
        now = timezone.now()
        updated = [w for w in writes if not w.created and (w.saved or w.changed)]
        by_fields: dict[frozenset[str], list[Invoice]] = {}
        for write in updated:
            names = set(write.changed)
            if write.saved:  # as ``save()`` would
                write.invoice.updated_at = now
                names.add("updated_at")
            by_fields.setdefault(frozenset(names), []).append(write.invoice)
        for names, invoices in by_fields.items():
            update_in_bulk(invoices, sorted(names))
        replacing = [w for w in writes if not w.created and w.lines is not None]
        if replacing:
            ids = [w.invoice.pk for w in replacing]
            delete_with_history(
                [line for w in replacing for line in w.replaced],
                InvoiceLine.objects.filter(invoice_id__in=ids),
            )
            bump(ids)  # as ``QuerySet.delete()`` would (a pull writes unstamped)
        record_changed([w.invoice for w in updated])
        create_with_history([w.invoice for w in writes if w.created])
        # A new invoice's lines take its id as they are created (it has one now).
        create_with_history([line for w in writes if w.lines for line in w.lines])
        for write in writes:
            if write.lines is not None:
                _show_lines(write.invoice, write.lines)

    def totals(self, invoice: Invoice, obj: dict) -> dict:
        """QuickBooks' totals (``TotalAmt``, ``TxnTaxDetail.TotalTax``; the subtotal is the
        total before tax), set on ``invoice``; returns those that changed, to be saved."""
        if "TotalAmt" not in obj:
            return {}
        total = round_money(Decimal(str(obj["TotalAmt"])))
        tax = round_money(Decimal(str((obj.get("TxnTaxDetail") or {}).get("TotalTax") or 0)))
        changed = {}
        for name, value in (("subtotal", total - tax), ("tax_total", tax), ("total", total)):
            if getattr(invoice, name) != value:
                setattr(invoice, name, value)
                changed[name] = value
        return changed

    def restore_totals(self, invoice: Invoice, totals: dict | None) -> None:
        """An invoice nothing sent to QuickBooks has changed shows QuickBooks' figures
        (``SyncRecord.qbo_totals``), not the portal's own recomputation of the same lines,
        which may round or apply a discount differently by a cent."""
        if not totals:
            return
        wanted = {name: Decimal(totals[name]) for name in ("subtotal", "tax", "total")}
        changed = {
            field: wanted[name]
            for field, name in (("subtotal", "subtotal"), ("tax_total", "tax"), ("total", "total"))
            if getattr(invoice, field) != wanted[name]
        }
        if changed:
            update_with_history(invoice, **changed)

    def save_after_push(self, invoice: Invoice, changed: dict) -> None:
        """What a push's answer changed on ``invoice`` (already set on it), saved by
        ``flush`` with the other invoices of the batch; its history row is written at the
        end of the step, with the other invoices'."""
        _invoice, fields = self._invoices_to_save.setdefault(invoice.pk, (invoice, set()))
        fields.update(changed)
        record_later(invoice)

    def take_lines(self, invoice: Invoice, obj: dict) -> None:
        """After a push: each portal line keeps its QuickBooks Line.Id and the line as
        QuickBooks now holds it (written in bulk by ``flush``)."""
        theirs = invoice_lines(obj)
        ours = list(invoice.lines.all())
        if "Line" not in obj or len(theirs) != len(ours):
            return
        for local, line in zip(ours, theirs, strict=True):
            kept, line_id = kept_line(line), str(line.get("Id", "") or "")
            # QuickBooks works out the lines it keeps (a percent discount of a new subtotal).
            amount = local.amount if local.editable else _money(line.get("Amount"))
            if (local.qbo_line_id, local.qbo_detail, local.amount) != (line_id, kept, amount):
                if local.amount != amount:
                    record_later(local)
                local.qbo_line_id, local.qbo_detail, local.amount = line_id, kept, amount
                self._lines_to_save.append(local)

    def flush(self) -> None:
        """Write what ``take_lines`` and ``save_after_push`` kept: the lines in one bulk
        update, the invoices in one per set of changed fields."""
        if self._lines_to_save:
            InvoiceLine.objects.bulk_update(
                self._lines_to_save, ["qbo_line_id", "qbo_detail", "amount"]
            )
            self._lines_to_save = []
        by_fields: dict[frozenset[str], list[Invoice]] = {}
        for invoice, fields in self._invoices_to_save.values():
            by_fields.setdefault(frozenset(fields), []).append(invoice)
        self._invoices_to_save = {}
        for fields, invoices in by_fields.items():
            update_in_bulk(invoices, sorted(fields))

    def payments(self, invoice: Invoice, obj: dict) -> dict:
        """QuickBooks' Balance tells how much is paid; the status follows (never for voids).
        Set on ``invoice``; returns what changed, to be saved.

        Two-way only; amounts in the invoice's currency, rounded to cents."""
        if "Balance" not in obj or "TotalAmt" not in obj or self.ctx.dry_run:
            return {}
        if not self.ctx.config.two_way:
            return {}
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
        if paid == invoice.amount_paid and status == invoice.status:
            return {}
        invoice.amount_paid, invoice.status = paid, status
        return {"amount_paid": paid, "status": status}

    def apply_payments(self, invoice: Invoice, obj: dict) -> None:
        """``payments``, saved at once (after a push)."""
        changed = self.payments(invoice, obj)
        if changed:
            update_with_history(invoice, **changed)

    def figures(self, invoice: Invoice, obj: dict) -> LocalWrite:
        """QuickBooks' totals (not for a void) and payments for ``invoice``, whose mapped
        fields did not change: set in memory, saved by ``save_all`` when they changed."""
        changed = {} if qbo_is_void(obj) else self.totals(invoice, obj)
        changed.update(self.payments(invoice, obj))
        return LocalWrite(invoice=invoice, created=False, changed=set(changed), saved=False)

    def mark_void(self, invoice: Invoice) -> None:
        """QuickBooks deleted the invoice: the portal keeps it, void."""
        update_with_history(invoice, status=Invoice.Status.VOID)


def _value(invoice: Invoice, name: str):
    """A written field's value, by id for the customer (compared before and after)."""
    return invoice.customer_id if name == "customer" else getattr(invoice, name)


def _show_lines(invoice: Invoice, lines: list[InvoiceLine]) -> None:
    """``invoice.lines.all()`` gives ``lines`` from now on, as if prefetched (what both sides
    agree on is worked out from them without reading them back)."""
    cached = InvoiceLine.objects.filter(invoice=invoice)
    cached._result_cache, cached._prefetch_done = list(lines), True
    invoice._prefetched_objects_cache = {
        **getattr(invoice, "_prefetched_objects_cache", {}),
        "lines": cached,
    }
