"""Reads used by the portal's own views."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.conf import settings
from django.utils.text import capfirst


def task_queue_state() -> dict:
    """The django-q2 broker's reachability, queue length and running clusters."""
    from django_q.brokers import get_broker
    from django_q.status import Stat

    broker_name = "redis" if "redis" in settings.Q_CLUSTER else "orm"
    try:
        broker = get_broker()
        if not broker.ping():
            return {"status": "error", "broker": broker_name, "error": "broker did not answer"}
        queued = broker.queue_size()
        clusters = [
            {"cluster": str(stat.cluster_id), "status": stat.status, "workers": len(stat.workers)}
            for stat in Stat.get_all(broker=broker)
        ]
    except Exception as exc:  # any broker failure is reported, never raised, by a health check
        return {"status": "error", "broker": broker_name, "error": exc.__class__.__name__}
    return {
        "status": "ok" if clusters else "no workers",
        "broker": broker_name,
        "queued": queued,
        "clusters": clusters,
    }


# --- Change history ---------------------------------------------------------------------------


@dataclass
class Change:
    """One field of one record, before and after (text as staff read it; "" for nothing)."""

    label: str
    old: str
    new: str
    kind: str = "changed"  # changed, set (was empty), cleared (now empty), added, removed


@dataclass
class HistoryEntry:
    """One change on a record's History page: a save by a person, a sync step, an event."""

    when: datetime
    by: str
    action: str  # Created, Changed, Deleted, or what the sync did
    changes: list[Change] = field(default_factory=list)
    by_person: bool = False
    url: str = ""  # where ``by`` links to (a sync run's page)
    note: str = ""  # what happened, in words, for an entry without field changes


# Fields the History page never lists: ids and QuickBooks' bookkeeping.
HIDDEN_FIELDS = {"id", "invoice", "position", "qbo_line_id"}


def _display(model_field, value, names: dict) -> str:
    if value is None or value == "":
        return ""
    if model_field.choices:
        return str(dict(model_field.flatchoices).get(value, value))
    if model_field.is_relation:
        return names.get(model_field.related_model, {}).get(value, f"#{value} (deleted)")
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, Decimal):
        # Amounts keep their cents; quantities and unit prices show the places they use.
        return f"{value:f}" if model_field.decimal_places <= 2 else f"{value.normalize():f}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


class _Replay:
    """Historical rows of a record (and its lines) turned into History page entries."""

    def __init__(self, model, rows: list, line_rows: list):
        self.model = model
        self.fields = [f for f in model.history.model.tracked_fields if f.name not in HIDDEN_FIELDS]
        self.line_fields = []
        if line_rows:
            line_model = type(line_rows[0]).instance_type
            self.line_fields = [
                f for f in line_model.history.model.tracked_fields if f.name not in HIDDEN_FIELDS
            ]
        self.names = self._names(rows, line_rows)
        self.groups: dict[str, list] = {}
        for row in sorted([*rows, *line_rows], key=lambda r: (r.history_date, r.history_id)):
            key = row.history_batch or f"{type(row).__name__}-{row.history_id}"
            self.groups.setdefault(key, []).append(row)

    def _names(self, rows: list, line_rows: list) -> dict:
        """{related model: {id: name}} for every id the rows point at, one query a model."""
        wanted: dict = {}
        for fields, some in ((self.fields, rows), (self.line_fields, line_rows)):
            for f in fields:
                if f.is_relation:
                    ids = {getattr(row, f.attname) for row in some} - {None}
                    wanted.setdefault(f.related_model, set()).update(ids)
        return {
            model: {pk: str(obj) for pk, obj in model._default_manager.in_bulk(ids).items()}
            for model, ids in wanted.items()
        }

    def _values(self, row, fields) -> dict[str, str]:
        return {f.name: _display(f, getattr(row, f.attname), self.names) for f in fields}

    def entries(self) -> list[HistoryEntry]:
        header = None  # the record's fields after the last group
        lines: dict[int, object] = {}  # live lines by id, as their last row left them
        out = []
        for group in self.groups.values():
            mine = [r for r in group if r.instance_type is self.model]
            before_lines = dict(lines)
            for row in group:
                if row.instance_type is self.model:
                    continue
                if row.history_type == "-":
                    lines.pop(row.id, None)
                else:
                    lines[row.id] = row
            after = mine[-1] if mine else header
            changes = self._diff(header, after, self.fields, "")
            changes += self._diff_lines(before_lines, lines)
            types = {r.history_type for r in mine}
            action = "Created" if "+" in types else "Deleted" if "-" in types else "Changed"
            first = group[0]
            if changes or action != "Changed":
                user = first.history_user
                out.append(
                    HistoryEntry(
                        when=first.history_date,
                        by=first.history_source
                        or (user.get_full_name() or user.get_username() if user else "")
                        or "Unknown (made outside the portal)",
                        by_person=user is not None and not first.history_source,
                        action=action,
                        changes=changes,
                    )
                )
            header = after
        return out

    def _diff(self, before, after, fields, prefix: str) -> list[Change]:
        if after is None:
            return []
        new = self._values(after, fields)
        old = self._values(before, fields) if before is not None else {}
        labels = {
            f.name: f"{prefix} {f.verbose_name}" if prefix else capfirst(f.verbose_name)
            for f in fields
        }
        changes = []
        for name, value in new.items():
            was = old.get(name, "")
            if value == was or (before is None and not value):
                continue
            kind = "changed" if was and value else "set" if value else "cleared"
            changes.append(Change(labels[name], was, value, kind))
        return changes

    def _line_text(self, row) -> str:
        values = self._values(row, self.line_fields)
        return "; ".join(
            f"{capfirst(f.verbose_name)} {values[f.name]}"
            for f in self.line_fields
            if values[f.name] and not (f.name == "kind" and values[f.name] == "Item")
        )

    def _diff_lines(self, before: dict, after: dict) -> list[Change]:
        """Lines matched by QuickBooks line id, else by position (a pull writes an invoice's
        lines anew, under new ids, in QuickBooks' order)."""
        left = dict(before)
        changes: list[tuple[int, Change]] = []
        for row in sorted(after.values(), key=lambda r: (r.position, r.id)):
            match = before.get(row.id) if row.id in left else None
            if match is None and row.qbo_line_id:
                match = next((r for r in left.values() if r.qbo_line_id == row.qbo_line_id), None)
            if match is None:
                match = next((r for r in left.values() if r.position == row.position), None)
            label = f"Line {row.position}"
            if match is None:
                changes.append(
                    (row.position, Change(f"{label} added", "", self._line_text(row), "added"))
                )
                continue
            left.pop(match.id)
            for change in self._diff(match, row, self.line_fields, label):
                changes.append((row.position, change))
        for row in left.values():
            text = self._line_text(row)
            changes.append(
                (row.position, Change(f"Line {row.position} removed", text, "", "removed"))
            )
        return [change for _, change in sorted(changes, key=lambda pair: pair[0])]


def record_history(*, obj, lines: str | None = None) -> list[HistoryEntry]:
    """The change history of ``obj`` (a customer, item or invoice), oldest first: one entry
    per request or sync step, with each field that changed, before and after. ``lines`` names
    the related lines kept with it (``"lines"`` for an invoice), listed as "Line 2 ..."."""
    model = type(obj)
    rows = list(model.history.filter(id=obj.pk).select_related("history_user"))
    line_rows = []
    if lines:
        line_model = model._meta.get_field(lines).related_model
        fk = model._meta.get_field(lines).field.attname
        line_rows = list(line_model.history.filter(**{fk: obj.pk}).select_related("history_user"))
    return _Replay(model, rows, line_rows).entries()


# --- Invoice entry ----------------------------------------------------------------------------

TRAILING_DIGITS = re.compile(r"^(.*?)(\d+)$")
FIRST_INVOICE_NUMBER = "INV-1001"


def invoice_number_next() -> str:
    """The number suggested for a new invoice.

    The rule: among the invoice numbers that end in digits, the one whose trailing number is
    highest (compared as a number, whatever comes before it; the newest invoice on a tie)
    gives the next one: the same prefix, the number plus one, zero-padded to the same width
    (INV-1006 -> INV-1007, A-0099 -> A-0100). With no such invoice, ``FIRST_INVOICE_NUMBER``.
    """
    from portal.models import Invoice

    best: tuple[int, int, str, int] | None = None  # (number, id, prefix, width)
    for pk, number in Invoice.objects.values_list("pk", "number").iterator():
        match = TRAILING_DIGITS.match(number.strip())
        if match is None:
            continue
        prefix, digits = match.groups()
        candidate = (int(digits), pk, prefix, len(digits))
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    if best is None:
        return FIRST_INVOICE_NUMBER
    value, _, prefix, width = best
    # Never taken: it would end in a higher number than the highest.
    return f"{prefix}{value + 1:0{width}d}"


def item_line_defaults(*, item) -> dict:
    """What choosing ``item`` fills into an invoice line: its sales price and description,
    and a tax rate. A non-taxable item has none. A taxable one takes the rate of the latest
    line it was invoiced on; never invoiced with a rate, the only active tax rate if there is
    exactly one; otherwise None (the line keeps the rate staff chose)."""
    from portal.models import InvoiceLine, TaxRate

    rate_id = None
    if item.taxable:
        rate_id = (
            InvoiceLine.objects.filter(item=item, tax_rate__isnull=False, tax_rate__active=True)
            .order_by("-invoice__issue_date", "-pk")
            .values_list("tax_rate_id", flat=True)
            .first()
        )
        if rate_id is None:
            active = list(TaxRate.objects.filter(active=True).values_list("pk", flat=True)[:2])
            rate_id = active[0] if len(active) == 1 else None
    return {
        "id": item.pk,
        "name": item.name,
        "unit_price": f"{item.sales_price.normalize():f}",
        "description": item.description,
        "taxable": item.taxable,
        "tax_rate": rate_id,
        "active": item.active,
    }
