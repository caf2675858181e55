"""Writing QuickBooks' version of an invoice into the portal: fields, lines, payments, deletes.

Only the fields that flow from QuickBooks (the field mapping) are written into an existing
portal invoice; a new one takes them all. Portal records are never deleted by a sync.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal

from django.utils import timezone

from portal.models import Invoice, InvoiceLine, TaxRate
from portal.money import ZERO, round_money
from sync.context import SyncContext

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


class LocalApplyError(Exception):
    """QuickBooks' version could not be written into the portal; the message says why."""


class LocalInvoiceWriter:
    def __init__(self, ctx: SyncContext):
        self.ctx = ctx

    def write(
        self, invoice: Invoice | None, obj: dict, theirs: dict, *, resolve: RefResolver
    ) -> tuple[Invoice, bool]:
        """Write QuickBooks invoice ``obj`` (neutral ``theirs``) into ``invoice``, or into a
        new portal invoice when None. Returns (invoice, created). Run it in a transaction.

        Raises ``LocalApplyError`` when it cannot be recorded (an unmapped tax code, a
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
        if flows.get("currency"):
            invoice.currency = flows["currency"]
        if theirs.get("void"):
            invoice.status = Invoice.Status.VOID
        elif invoice.status == Invoice.Status.DRAFT and created:
            invoice.status = Invoice.Status.SENT
        invoice.save()
        if "lines" in flows and not theirs.get("void"):
            self._write_lines(invoice, obj, flows, resolve=resolve)
        return invoice, created

    def _write_lines(self, invoice: Invoice, obj: dict, flows: dict, *, resolve) -> None:
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
        lines_qbo = [
            line
            for line in obj.get("Line") or []
            if line.get("DetailType") == "SalesItemLineDetail"
        ]
        invoice.lines.all().delete()
        for position, (line, neutral_line) in enumerate(
            zip(lines_qbo, flows["lines"], strict=True), start=1
        ):
            InvoiceLine.objects.create(
                invoice=invoice,
                position=position,
                item=resolve("item", line["SalesItemLineDetail"].get("ItemRef")),
                description=neutral_line["description"],
                quantity=Decimal(neutral_line["quantity"]),
                unit_price=Decimal(neutral_line["unit_price"]),
                tax_rate=rate if neutral_line["taxable"] else None,
            )
        invoice.refresh_totals()

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
            Invoice.objects.filter(pk=invoice.pk).update(amount_paid=paid, status=status)
            invoice.amount_paid, invoice.status = paid, status

    def mark_void(self, invoice: Invoice) -> None:
        """QuickBooks deleted the invoice: the portal keeps it, void."""
        Invoice.objects.filter(pk=invoice.pk).update(status=Invoice.Status.VOID)
        invoice.status = Invoice.Status.VOID
