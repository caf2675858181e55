"""Reconciliation: are the portal's invoices and QuickBooks' the same, by mapped fields,
lines, totals and tax?"""

from __future__ import annotations

from dataclasses import dataclass, field

from integrations.models import Connection
from sync.entities.invoice import invoices_for_push
from sync.mappers.common import money
from sync.mappers.invoice import qbo_is_void
from sync.models import SyncRecord, SyncRun
from sync.runtime import context_for


@dataclass
class ReconcileReport:
    connection: Connection
    equal: list[str] = field(default_factory=list)
    differing: list[tuple[str, list[str]]] = field(default_factory=list)
    # number -> {field: (portal value, QuickBooks value)}, for the report's detail lines.
    details: dict[str, dict] = field(default_factory=dict)
    only_portal: list[tuple[str, str]] = field(default_factory=list)
    only_qbo: list[str] = field(default_factory=list)
    # One sentence per duplicate found, on either side.
    duplicates: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [
            f"Reconciliation for {self.connection} ({self.connection.realm_id})",
            f"  equal on both sides: {len(self.equal)}",
            f"  differing: {len(self.differing)}",
        ]
        for number, fields in self.differing:
            lines.append(f"    {number}: {', '.join(fields)}")
            for name, (ours, theirs) in self.details.get(number, {}).items():
                lines.append(f"      {name}: portal {ours!r} / QuickBooks {theirs!r}")
        lines.append(f"  only in the portal: {len(self.only_portal)}")
        lines += [f"    {number}: {why}" for number, why in self.only_portal]
        lines.append(f"  only in QuickBooks: {len(self.only_qbo)}")
        lines += [f"    {number}" for number in self.only_qbo]
        lines.append(f"  duplicates: {len(self.duplicates)}")
        lines += [f"    {text}" for text in self.duplicates]
        return "\n".join(lines) + "\n"


def _totals_local(invoice) -> dict:
    """The portal's total and tax, compared with QuickBooks' (not for a void: QuickBooks zeroes
    a void invoice, the portal keeps its figures for the record)."""
    if invoice.status == "void":
        return {}
    return {"total": money(invoice.total), "tax": money(invoice.tax_total)}


def _totals_qbo(obj: dict) -> dict:
    if qbo_is_void(obj):
        return {}
    tax = (obj.get("TxnTaxDetail") or {}).get("TotalTax") or 0
    return {"total": money(obj.get("TotalAmt") or 0), "tax": money(tax)}


def reconcile_report(*, connection: Connection, client=None) -> ReconcileReport:
    """Read every QuickBooks invoice and compare it with its portal invoice; changes nothing."""
    run = SyncRun(connection=connection, trigger="command", direction="pull")
    ctx = context_for(connection=connection, run=run, client=client, dry_run=True)
    invoices = ctx.adapter("invoice")
    report = ReconcileReport(connection=connection)
    qbo = {obj["Id"]: obj for obj in ctx.backend.read_all("Invoice")}
    records = {
        r.invoice_id: r
        for r in SyncRecord.objects.filter(
            connection=connection, object_type="invoice"
        ).select_related("invoice")
    }
    seen = set()
    for invoice in invoices_for_push(config=ctx.config, invoice_ids=None)[0]:
        record = records.get(invoice.pk)
        obj = qbo.get(record.qbo_id) if record and record.qbo_id else None
        if obj is None:
            why = record.details if record and record.details else "never synced"
            if record and record.qbo_id and record.qbo_id not in qbo and invoice.status != "void":
                why = f"bound to QuickBooks invoice {record.qbo_id}, which QuickBooks no longer has"
            if invoice.status == "void" and (
                record is None or not record.qbo_id or record.qbo_id not in qbo
            ):
                why = "void (not in QuickBooks)"
            report.only_portal.append((invoice.number, why))
            continue
        seen.add(obj["Id"])
        ours = {**invoices.neutral_local(invoice), **_totals_local(invoice)}
        theirs = {**invoices.neutral_qbo(obj), **_totals_qbo(obj)}
        if record.status == SyncRecord.Status.DIFFERS:
            # QuickBooks taxes at another rate than the portal's (the record says how).
            ours["tax rate"], theirs["tax rate"] = record.details, ""
        differing = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        if differing:
            report.differing.append((invoice.number, differing))
            report.details[invoice.number] = {k: (ours.get(k), theirs.get(k)) for k in differing}
        else:
            report.equal.append(invoice.number)
    for qbo_id, obj in qbo.items():
        if qbo_id not in seen:
            report.only_qbo.append(obj.get("DocNumber") or f"(id {qbo_id})")
    report.duplicates = _duplicates(qbo, records, seen)
    return report


def _duplicates(qbo: dict[str, dict], records: dict, seen: set[str]) -> list[str]:
    """Duplicates on either side, one sentence each: a DocNumber QuickBooks holds twice, a
    QuickBooks invoice bound to no portal invoice that matches a bound one (same customer,
    date and total), and a portal copy of an invoice the portal already has (``-QBO<id>``)."""
    found = []
    by_number: dict[str, list[str]] = {}
    for qbo_id, obj in qbo.items():
        if obj.get("DocNumber") and not qbo_is_void(obj):
            by_number.setdefault(obj["DocNumber"], []).append(qbo_id)
    for number, ids in sorted(by_number.items()):
        if len(ids) > 1:
            found.append(
                f"QuickBooks has invoice number {number} {len(ids)} times "
                f"(ids {', '.join(sorted(ids))})"
            )

    def shape(obj: dict) -> tuple:
        ref = (obj.get("CustomerRef") or {}).get("value")
        return ref, obj.get("TxnDate"), money(obj.get("TotalAmt") or 0)

    bound = {shape(qbo[i]): i for i in seen if not qbo_is_void(qbo[i])}
    for qbo_id, obj in sorted(qbo.items()):
        twin = bound.get(shape(obj))
        if qbo_id in seen or twin is None or qbo_is_void(obj):
            continue
        if obj.get("DocNumber") and obj["DocNumber"] == qbo[twin].get("DocNumber"):
            continue  # reported above, by number
        found.append(
            f"QuickBooks invoice {qbo_id} ({obj.get('DocNumber') or 'no number'}) is bound to "
            f"no portal invoice and may duplicate QuickBooks invoice {twin} "
            f"({qbo[twin].get('DocNumber') or 'no number'}): same customer, date and total"
        )
    numbers = {r.invoice.number for r in records.values() if r.invoice_id}
    for record in records.values():
        if record.invoice_id and "-QBO" in record.invoice.number:
            original = record.invoice.number.rsplit("-QBO", 1)[0]
            if original in numbers and record.invoice.status != "void":
                found.append(
                    f"Portal invoice {record.invoice.number} is a copy of portal invoice {original}"
                )
    return found
