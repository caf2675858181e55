"""Writing QuickBooks' version of an invoice into the portal: fields, lines, payments, deletes.

Only the fields that flow from QuickBooks (the field mapping) are written into an existing
portal invoice; a new one takes them all. Portal records are never deleted by a sync.

Every write lands in the records' change history (``portal.history``), including those that
go round ``save()``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal

from django.utils import timezone

from portal.history import create_with_history, record_later, update_with_history
from portal.models import Invoice, InvoiceLine, TaxRate
from portal.money import ZERO, round_money
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


class LocalInvoiceWriter:
    def __init__(self, ctx: SyncContext):
        self.ctx = ctx
        self._lines_to_save: list[InvoiceLine] = []

    def write(
        self,
        invoice: Invoice | None,
        obj: dict,
        theirs: dict,
        *,
        resolve: RefResolver,
        fields: frozenset[str] | None = None,
        keep_lines: frozenset[int] = frozenset(),
    ) -> tuple[Invoice, bool]:
        """Write QuickBooks invoice ``obj`` (neutral ``theirs``) into ``invoice``, or into a
        new portal invoice when None. Returns (invoice, created). Run it in a transaction.

        ``fields`` limits an existing invoice to those neutral fields; ``keep_lines`` are the
        positions (0-based) of lines the portal keeps as it has them (a line merge). Raises
        ``LocalApplyError`` when it cannot be recorded (an unmapped tax code, a
        customer or item that cannot be read or matched).
        """
        created = invoice is None
        customer = resolve("customer", obj.get("CustomerRef"))
        if created:
            number = obj.get("DocNumber") or f"QBO-{obj['Id']}"
            if Invoice.objects.filter(number=number).exists():
                number = f"{number}-QBO{obj['Id']}"
            invoice = Invoice(number=number, customer=customer)
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
        if renumber and not (
            Invoice.objects.filter(number=flows["number"]).exclude(pk=invoice.pk).exists()
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
        invoice.save()
        if "lines" in flows and not theirs.get("void"):
            self._write_lines(invoice, obj, flows, resolve=resolve, keep=keep_lines)
        return invoice, created

    def _write_lines(
        self, invoice: Invoice, obj: dict, flows: dict, *, resolve, keep: frozenset[int]
    ) -> None:
        rate = None
        if flows.get("tax_code"):
            rate_id = self.ctx.rates_by_code.get(flows["tax_code"])
            if rate_id is None:
                raise LocalApplyError(
                    f"QuickBooks tax code {flows['tax_code']} is not mapped to a portal tax "
                    "rate, so the invoice's tax cannot be recorded. Map it on the Mapping > "
                    "Tax tab, then retry."
                )
            rate = TaxRate.objects.get(pk=rate_id)
        previous = list(invoice.lines.order_by("position")) if keep else []
        invoice.lines.all().delete()
        lines = []
        for position, line in enumerate(invoice_lines(obj), start=1):
            if position - 1 in keep:
                mine = previous[position - 1]
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
        # Created as QuickBooks states them: amounts are QuickBooks' (save() is not called, so
        # nothing is recomputed into another number).
        create_with_history(lines)
        update_with_history(invoice, **self.totals(invoice, obj))

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

    def save_totals(self, invoice: Invoice, obj: dict) -> None:
        """QuickBooks' totals for ``invoice``, saved when they changed (not for a void)."""
        if qbo_is_void(obj):
            return
        changed = self.totals(invoice, obj)
        if changed:
            update_with_history(invoice, **changed)

    def save_after_push(self, invoice: Invoice, changed: dict) -> None:
        """Save what a push's answer changed on ``invoice`` (its history row is written at
        the end of the step, with the other invoices')."""
        Invoice.objects.filter(pk=invoice.pk).update(**changed)
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
        if self._lines_to_save:
            InvoiceLine.objects.bulk_update(
                self._lines_to_save, ["qbo_line_id", "qbo_detail", "amount"]
            )
            self._lines_to_save = []

    def apply_payments(self, invoice: Invoice, obj: dict) -> None:
        """QuickBooks' Balance tells how much is paid; the status follows (never for voids).

        Two-way only; amounts in the invoice's currency, rounded to cents."""
        if "Balance" not in obj or "TotalAmt" not in obj or self.ctx.dry_run:
            return
        if not self.ctx.config.two_way:
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
            update_with_history(invoice, amount_paid=paid, status=status)

    def mark_void(self, invoice: Invoice) -> None:
        """QuickBooks deleted the invoice: the portal keeps it, void."""
        update_with_history(invoice, status=Invoice.Status.VOID)
