"""Invoices: mapped through the field mapping, checked against QuickBooks' rules before any
request, sent with their customer and items bound first, and written back into the portal
(``sync.entities.invoice_local``) when QuickBooks' version wins."""

from __future__ import annotations

import hashlib
from decimal import Decimal

from django.db.models import Exists, F, OuterRef, Prefetch, Q

from integrations.quickbooks.backend import version_ref
from portal.models import Invoice, InvoiceLine, default_currency
from portal.money import round_money
from sync.entities.base import EntityAdapter
from sync.entities.invoice_local import LocalInvoiceWriter, parse_date
from sync.fieldmap import CUSTOM_FIELD_MAX, CUSTOM_PREFIX, CUSTOMER_MEMO_MAX, DOC_NUMBER_MAX
from sync.mappers import invoice as mapper
from sync.models import SyncConfiguration, SyncRecord

# Invoice fields QuickBooks fills in itself when left empty (qbo-api.md section 8, Invoice).
SERVER_FILLED = ("due_date", "billing_email", "issue_date", "number")


def lines_prefetch(path: str) -> Prefetch:
    """Invoice lines with their item and tax rate, for ``prefetch_related``."""
    return Prefetch(path, queryset=InvoiceLine.objects.select_related("item", "tax_rate"))


def only_elsewhere(*, kind: str, connection_id: int) -> Q:
    """A condition on portal invoices, customers or items: linked to another QuickBooks
    company and not to this one."""
    elsewhere = (
        SyncRecord.objects.filter(**{kind: OuterRef("pk")})
        .exclude(connection_id=connection_id)
        .exclude(qbo_id="")
    )
    here = SyncRecord.objects.filter(**{kind: OuterRef("pk")}, connection_id=connection_id)
    return Q(Exists(elsewhere)) & ~Q(Exists(here))


def linked_elsewhere(queryset, *, kind: str, connection_id: int):
    """``queryset`` (portal invoices, customers or items) without the records linked to
    another QuickBooks company and not to this one: after a switch of company, what belongs
    to the old company's books is not sent to the new one by itself."""
    return queryset.exclude(only_elsewhere(kind=kind, connection_id=connection_id))


# Past this many changed invoices a push reads the book in one pass (its work is that large
# anyway); it also keeps the id list far under PostgreSQL's 65,535 parameters.
CHANGED_MAX = 10_000
SETTLED = (SyncRecord.Status.SYNCED, SyncRecord.Status.SKIPPED)


def push_scope(config: SyncConfiguration, signature: str) -> str:
    """The key of what a push compares invoices under: the mapping's ``signature``
    (``runtime.mapping_signature``) and the first invoice date. A push that looked at every
    invoice under a scope leaves it in ``config.push_scope``."""
    text = f"{signature}|{config.first_invoice_date or ''}"
    return hashlib.sha256(text.encode()).hexdigest()


def changed_invoice_ids(config: SyncConfiguration) -> set[int] | None:
    """Ids of the invoices a push has to look at once an earlier push has looked at all of
    them under the same scope: those changed since QuickBooks last agreed on them
    (``Invoice.needs_sync``) and those whose binding here is not settled (failed, held,
    pending, uncertain...). Two index reads, whatever the size of the book; None past
    ``CHANGED_MAX``."""
    ids = set(
        Invoice.objects.filter(needs_sync=True)
        .order_by()
        .values_list("pk", flat=True)[: CHANGED_MAX + 1]
    )
    if len(ids) <= CHANGED_MAX:
        open_statuses = [s for s in SyncRecord.Status.values if s not in SETTLED]
        ids |= set(
            SyncRecord.objects.filter(
                connection_id=config.connection_id, object_type="invoice", invoice__isnull=False
            )
            .filter(Q(status__in=open_statuses) | Q(uncertain=True))
            .order_by()
            .values_list("invoice_id", flat=True)[: CHANGED_MAX + 1]
        )
    return ids if len(ids) <= CHANGED_MAX else None


def invoices_for_push(
    *,
    config: SyncConfiguration,
    invoice_ids: list[int] | None,
    changed_for: str | None = None,
    other_companies: bool = False,
) -> tuple[list[Invoice], int]:
    """Portal invoices the sync looks at (on or after the first invoice date), in id order,
    with customer, lines, items and tax rates loaded; only ``invoice_ids`` when given.

    ``changed_for``: a mapping signature (``runtime.mapping_signature``); leaves out, in SQL,
    the invoices settled with QuickBooks whose version and mapping are still those both sides
    agreed on, so a sync with nothing to do loads nothing (``portal.changes``). When an
    earlier push looked at every invoice under the same scope (``push_scope``), only the
    changed ones are even considered (``changed_invoice_ids``).

    Invoices linked to another QuickBooks company (and not to this one) are left out unless
    ``other_companies``: staff send such an invoice on purpose, one by one.

    Returns (invoices, how many settled and unchanged invoices were left out: 0 without
    ``changed_for``)."""
    qs = Invoice.objects.select_related("customer").prefetch_related(lines_prefetch("lines"))
    if config.first_invoice_date:
        qs = qs.filter(issue_date__gte=config.first_invoice_date)
    if invoice_ids is not None:
        qs = qs.filter(pk__in=invoice_ids)
    changed = None
    if changed_for is not None:
        if config.push_scope == push_scope(config, changed_for):
            changed = changed_invoice_ids(config)
        if changed is not None:
            qs = qs.filter(pk__in=changed)
        qs = qs.exclude(_settled(config, changed_for))
    if not other_companies:
        qs = linked_elsewhere(qs, kind="invoice", connection_id=config.connection_id)
    invoices = list(qs.order_by("pk"))
    if changed_for is None:
        return invoices, 0
    return invoices, _settled_count(config, changed_for, changed)


def _settled_count(config: SyncConfiguration, signature: str, changed: set[int] | None) -> int:
    """How many invoices in scope are settled at their current version under this mapping.

    From the changed set (``changed_invoice_ids``): the settled bindings here, counted from
    their partial index alone (since the push that looked at every invoice under this scope,
    every settled binding agreed under this mapping), less those whose invoice changed since
    and those issued before the first invoice date (read through the invoices' dates);
    otherwise one COUNT over the book."""
    if changed is None:
        qs = Invoice.objects.all()
        if config.first_invoice_date:
            qs = qs.filter(issue_date__gte=config.first_invoice_date)
        return qs.filter(_settled(config, signature)).count()
    settled = SyncRecord.objects.filter(
        connection_id=config.connection_id,
        object_type="invoice",
        status__in=SETTLED,
        uncertain=False,
        invoice__isnull=False,
    )
    count = settled.count()
    if config.first_invoice_date:
        count -= settled.filter(invoice__issue_date__lt=config.first_invoice_date).count()
        settled = settled.filter(invoice__issue_date__gte=config.first_invoice_date)
    if changed:
        count -= (
            settled.filter(invoice_id__in=changed)
            .exclude(agreed_version=F("invoice__version"), agreed_mapping=signature)
            .count()
        )
    return count


def _settled(config: SyncConfiguration, signature: str) -> Exists:
    """An invoice settled with QuickBooks at its current version, under this mapping."""
    return Exists(
        SyncRecord.objects.filter(
            connection_id=config.connection_id,
            object_type="invoice",
            invoice=OuterRef("pk"),
            agreed_version=OuterRef("version"),
            agreed_mapping=signature,
            status__in=SETTLED,
            uncertain=False,
        )
    )


def needs_sync_clear(*, config: SyncConfiguration, signature: str) -> int:
    """Clear ``Invoice.needs_sync`` on invoices QuickBooks agrees on at their current version
    (one UPDATE over the flagged invoices; a change made meanwhile moved the version and
    keeps the flag). Left set while another connected company has a binding not settled at
    this version, or, when another company is connected, while the invoice is not linked
    here (that company may still send it). Returns how many were cleared."""
    from integrations.models import Connection
    from portal.changes import unstamped

    here = SyncRecord.objects.filter(
        connection_id=config.connection_id,
        object_type="invoice",
        invoice=OuterRef("pk"),
        agreed_version=OuterRef("version"),
        agreed_mapping=signature,
        status__in=SETTLED,
        uncertain=False,
    )
    others = Connection.objects.filter(status=Connection.Status.CONNECTED).exclude(
        pk=config.connection_id
    )
    qs = Invoice.objects.filter(needs_sync=True)
    if others.exists():
        here = here.exclude(qbo_id="")
        open_elsewhere = SyncRecord.objects.filter(
            invoice=OuterRef("pk"), connection__in=others
        ).exclude(Q(agreed_version=OuterRef("version")) & Q(status__in=SETTLED))
        qs = qs.exclude(Exists(open_elsewhere))
    with unstamped():
        return qs.filter(Exists(here)).update(needs_sync=False)


class InvoiceAdapter(EntityAdapter):
    kind = "invoice"
    qbo_entity = "Invoice"
    model = Invoice

    def __init__(self, ctx):
        super().__init__(ctx)
        self.local = LocalInvoiceWriter(ctx)

    # --- mapping ---------------------------------------------------------------------------

    def neutral_local(self, invoice: Invoice) -> dict:
        binder = self.ctx.binder
        return mapper.invoice_neutral_local(
            invoice,
            self.ctx.mapping,
            tax_codes=self.ctx.tax_codes,
            customer_ids=binder.qbo_ids("customer"),
            item_ids=binder.qbo_ids("item"),
        )

    def neutral_qbo(self, obj: dict) -> dict:
        return mapper.invoice_neutral_qbo(obj, self.ctx.mapping)

    def remote_number(self, obj: dict) -> str:
        return obj.get("DocNumber", "") or ""

    def remote_date(self, obj: dict) -> str:
        """QuickBooks' invoice date ("YYYY-MM-DD", "" when absent)."""
        return obj.get("TxnDate", "") or ""

    def dependencies(self, invoices: list[Invoice]) -> dict[str, dict[int, object]]:
        """{kind: {portal id: record}} of what the invoices need bound in QuickBooks first."""
        return {
            "customer": {inv.customer_id: inv.customer for inv in invoices},
            "item": {
                line.item_id: line.item
                for inv in invoices
                for line in inv.lines.all()
                if line.item_id is not None
            },
        }

    def dependency_ids(self, invoice: Invoice) -> tuple[str, dict[str, str]] | None:
        """(customer's QuickBooks id, {neutral item: QuickBooks id}); None while unbound."""
        binder = self.ctx.binder
        customer_id = binder.qbo_id("customer", invoice.customer_id)
        if not customer_id:
            return None
        item_ids = {}
        for line in invoice.lines.all():
            if line.item_id is None:
                continue
            qbo_id = binder.qbo_id("item", line.item_id)
            if not qbo_id:
                return None
            item_ids[f"qbo:{qbo_id}"] = qbo_id
            item_ids[f"name:{line.item.name}"] = qbo_id
        return customer_id, item_ids

    def body(
        self, invoice: Invoice, record: SyncRecord | None = None, *, sparse: bool = False
    ) -> dict | None:
        """The QuickBooks body for ``invoice`` (an update when ``record`` is bound); None
        while its customer or items are not in QuickBooks.

        ``sparse``: an update carries only the fields that changed since both sides last
        agreed (the lines only when they changed), so nothing else is written.
        """
        ids = self.dependency_ids(invoice)
        if ids is None:
            return None
        neutral = self.neutral_local(invoice)
        only = None
        if sparse and record is not None and record.qbo_id and record.agreed:
            sent = self.ctx.mapping.project(neutral, "to")
            agreed = self.ctx.mapping.project(record.agreed, "to")
            only = {name for name, value in sent.items() if agreed.get(name) != value}
        stored = [(line.qbo_line_id, line.qbo_detail) for line in invoice.lines.all()]
        body = mapper.invoice_to_qbo(
            neutral,
            self.ctx.mapping,
            customer_id=ids[0],
            item_ids=ids[1],
            stored_lines=stored,
            only=only,
        )
        if record is not None and record.qbo_id:
            body.update(version_ref(record.qbo_id, record.sync_token))
        return body

    # --- checks ----------------------------------------------------------------------------

    def preflight(self, invoice: Invoice, neutral: dict, *, bound: bool = False) -> str:
        """What QuickBooks would refuse, in plain words with the fix; "" when fine.

        ``bound``: QuickBooks has the invoice already (its currency is QuickBooks' own)."""
        mapping = self.ctx.mapping
        to_doc_number = mapping.to_qbo("number") and mapping.qbo_field("number") == "DocNumber"
        if to_doc_number and len(invoice.number) > DOC_NUMBER_MAX:
            return (
                f"Invoice number {invoice.number!r} has {len(invoice.number)} characters; "
                f"QuickBooks allows at most {DOC_NUMBER_MAX} in DocNumber. Shorten the "
                "number, then retry."
            )
        lines = [line for line in invoice.lines.all() if line.kind != InvoiceLine.Kind.SUBTOTAL]
        if not lines:
            return (
                "The invoice has no lines; QuickBooks needs at least one. Add a line, then retry."
            )
        tax_codes = self.ctx.tax_codes
        unmapped = sorted(
            {
                line.tax_rate.name
                for line in lines
                if line.tax_rate_id and line.tax_rate_id not in tax_codes
            }
        )
        if unmapped:
            return (
                f"Tax rate {', '.join(unmapped)} is not mapped to a QuickBooks tax code, so the "
                "invoice was not sent (it would have gone untaxed). Map it on the Mapping > Tax "
                "tab, then retry."
            )
        if len({tax_codes[line.tax_rate_id] for line in lines if line.tax_rate_id}) > 1:
            return (
                "The lines use tax rates mapped to different QuickBooks tax codes; a US "
                "QuickBooks invoice carries one sales tax code. Use one tax rate per invoice "
                "(or map them to one combined code), then retry."
            )
        for name in mapping.mapped:
            if mapping.qbo_field(name).startswith(CUSTOM_PREFIX) and mapping.to_qbo(name):
                value = neutral.get(name) or ""
                if len(value) > CUSTOM_FIELD_MAX:
                    return (
                        f"{name.replace('_', ' ').capitalize()} {value!r} is longer than the "
                        f"{CUSTOM_FIELD_MAX} characters a QuickBooks custom field holds. "
                        "Shorten it, then retry."
                    )
        if len(invoice.customer_memo) > CUSTOMER_MEMO_MAX:
            return "The customer memo is longer than QuickBooks' 1000 characters. Shorten it."
        if invoice.currency != default_currency() and not mapping.to_qbo("currency") and not bound:
            # Sent without its currency, QuickBooks would book it in the home currency.
            return (
                f"The invoice is in {invoice.currency}, and the Currency field is not mapped, "
                "so QuickBooks would record it in its home currency. Map Currency to "
                "CurrencyRef on the Mapping > Invoices tab (with multicurrency on in "
                "QuickBooks), or correct the invoice's currency, then retry."
            )
        customers, items = self.ctx.adapter("customer"), self.ctx.adapter("item")
        with_items = [line.item for line in lines if line.item_id is not None]
        return customers.preflight(invoice.customer) or next(
            (items.preflight(item) for item in with_items if items.preflight(item)), ""
        )

    # --- agreement -------------------------------------------------------------------------

    def after_push(self, record: SyncRecord, obj: dict) -> dict:
        """What both sides agree on after a push, with QuickBooks' answer taken in.

        The lines keep their QuickBooks ids and the invoice QuickBooks' totals (not for a
        void: the portal keeps a void invoice's lines and totals for the record). QuickBooks
        fills some fields the portal left empty (DueDate from the terms, BillEmail from the
        customer); for fields that flow back, its value is taken into the portal at once, so
        neither side sees the other's default as a change; otherwise what was sent is what
        both agree on. One update of the invoice at most.
        """
        mapping = self.ctx.mapping
        invoice = record.invoice
        theirs = self.neutral_qbo(obj)
        changed = {}
        if not theirs.get("void"):
            self.local.take_lines(invoice, obj)
            changed = self.local.totals(invoice, obj)
        sent = mapping.project(self.neutral_local(invoice), "to")
        absorbed = {}
        if self.ctx.config.two_way and not theirs.get("void"):
            for name in SERVER_FILLED:
                if (
                    name in theirs
                    and mapping.from_qbo(name)
                    and theirs[name] != sent.get(name)
                    and theirs[name] not in (None, "")
                ):
                    absorbed[name] = theirs[name]
        for name, value in absorbed.items():
            changed[name] = parse_date(value) if name.endswith("_date") else value
            setattr(invoice, name, changed[name])
        if changed:
            self.local.save_after_push(invoice, changed)
        return {**theirs, **sent, **absorbed}

    def flush(self) -> None:
        self.local.flush()

    def differences(self, record: SyncRecord, obj: dict) -> str:
        """Why QuickBooks' totals for ``obj`` are not what the portal's own rates make them,
        or "": QuickBooks taxes the invoice at another rate than the portal rate on its lines
        (a tax mapping whose rates differ). Amounts in the invoice's currency. QuickBooks' tax
        base (``NetAmountTaxable``) already counts discounts, so only the rates are compared.
        """
        invoice = record.invoice
        tax = obj.get("TxnTaxDetail") or {}
        details = [t.get("TaxLineDetail") or {} for t in tax.get("TaxLine") or []]
        if invoice is None or not details or mapper.qbo_is_void(obj):
            return ""
        rates = {line.tax_rate for line in invoice.lines.all() if line.tax_rate_id}
        if len(rates) != 1:
            return ""
        rate = rates.pop()
        theirs = sum((Decimal(str(d.get("TaxPercent") or 0)) for d in details), Decimal(0))
        if theirs == rate.percent:
            return ""
        base = round_money(Decimal(str(details[0].get("NetAmountTaxable") or 0)))
        their_tax = round_money(Decimal(str(tax.get("TotalTax") or 0)))
        our_tax = round_money(base * rate.percent / 100)
        gap = their_tax - our_tax
        total = round_money(Decimal(str(obj.get("TotalAmt") or 0)))
        ours_pct, theirs_pct = f"{rate.percent.normalize():f}%", f"{theirs.normalize():f}%"
        return (
            f"QuickBooks taxes this invoice at {theirs_pct} ({their_tax} on {base}); the portal "
            f"rate {rate.name} is {ours_pct} ({our_tax}), so QuickBooks' total {total} is "
            f"{abs(gap)} {'more' if gap > 0 else 'less'} than the portal's rate makes it. The "
            f"invoice shows QuickBooks' figures. Map {rate.name} to a QuickBooks tax code of "
            f"{ours_pct} on the Mapping > Tax tab, or correct the portal rate; the next sync "
            "checks it again."
        )

    def agreed_after_pull(
        self,
        record: SyncRecord,
        invoice: Invoice,
        theirs: dict,
        *,
        fields: frozenset[str] | None = None,
    ) -> dict:
        """What both sides agree on after QuickBooks' version was written into the portal:
        QuickBooks' values for the fields that flow back, the earlier agreement (or the
        portal's value) for the others."""
        agreed_old = record.agreed or {}
        ours_after = self.neutral_local(invoice)
        from_qbo = self.ctx.mapping.project(theirs, "from")
        if fields is not None:
            taken = set(fields) | ({"tax_code"} if "lines" in fields else set())
            from_qbo = {name: value for name, value in from_qbo.items() if name in taken}
        agreed = {
            name: theirs[name] if name in from_qbo else agreed_old.get(name, ours_after.get(name))
            for name in set(theirs) | set(ours_after)
        }
        if "number" in theirs and not theirs["number"]:
            # QuickBooks has no number for it; the one the portal made up (QBO-<Id>) is the
            # portal's own and is never written into QuickBooks by itself.
            agreed["number"] = ours_after.get("number", "")
        return agreed
