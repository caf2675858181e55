"""Reads for the admin pages: bindings, runs, their events, conflicts and the dashboard."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db.models import (
    Case,
    Count,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncDate

from integrations.models import Connection
from portal.models import Invoice, Item
from sync.entities.invoice import only_elsewhere
from sync.models import SyncEvent, SyncRecord, SyncRun, TaxMapping

S = SyncRecord.Status
# The sync state of a portal invoice with no binding to this company but one to another
# (``only_elsewhere``): not a binding status, as no binding to this company says so.
LINKED_ELSEWHERE = "linked_elsewhere"


def tax_mapping_codes(*, connection: Connection) -> dict[int, int]:
    """{portal tax rate id: QuickBooks tax code row id} as mapped for the connection."""
    return dict(
        TaxMapping.objects.filter(connection=connection).values_list("tax_rate_id", "tax_code_id")
    )


def linked_counts(*, connection: Connection) -> dict[str, int]:
    """{"invoice", "customer", "item": how many portal records are linked to a QuickBooks
    object of the connection}."""
    counts = dict(
        SyncRecord.objects.filter(connection=connection)
        .exclude(qbo_id="")
        .filter(Q(invoice__isnull=False) | Q(customer__isnull=False) | Q(item__isnull=False))
        .values_list("object_type")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {kind: counts.get(kind, 0) for kind in ("invoice", "customer", "item")}


def items_with_bindings(*, connection: Connection) -> QuerySet[Item]:
    """Portal items by name, each with ``qbo_records`` (its binding for the connection)."""
    return Item.objects.order_by("name").prefetch_related(
        Prefetch(
            "sync_records",
            queryset=SyncRecord.objects.filter(connection=connection),
            to_attr="qbo_records",
        )
    )


def runs_for(*, connection: Connection) -> QuerySet[SyncRun]:
    """The connection's runs, newest first."""
    return SyncRun.objects.filter(connection=connection)


def run_running(*, connection: Connection) -> SyncRun | None:
    """The company's newest run still going, if any."""
    return (
        SyncRun.objects.filter(connection=connection, status=SyncRun.Status.RUNNING)
        .order_by("-started_at")
        .first()
    )


def run_started_since(*, connection: Connection, moment: datetime) -> bool:
    """Whether a run of the connection started at or after ``moment``."""
    return SyncRun.objects.filter(connection=connection, started_at__gte=moment).exists()


def run_get(*, run_id: int) -> SyncRun | None:
    return SyncRun.objects.select_related("connection").filter(pk=run_id).first()


def run_events(*, run: SyncRun) -> QuerySet[SyncEvent]:
    """A run's events in order, each with its binding and portal record."""
    return run.events.select_related(
        "record", "record__invoice", "record__customer", "record__item"
    )


def conflicts_for(*, connection: Connection) -> QuerySet[SyncRecord]:
    """Bindings held for review, most recent first."""
    return (
        SyncRecord.objects.filter(connection=connection, status=S.CONFLICT)
        .select_related("invoice", "customer", "item")
        .order_by("-updated_at")
    )


def number_clashes_for(*, connection: Connection) -> QuerySet[SyncRecord]:
    """QuickBooks invoices held because a portal invoice has their number, most recent first
    (the portal invoices they wait on are found by ``qbo_doc_number``)."""
    return (
        SyncRecord.objects.filter(connection=connection, status=S.CLASH)
        .exclude(qbo_id="")
        .select_related("invoice")
        .order_by("-updated_at")
    )


def record_get(*, record_id: int) -> SyncRecord | None:
    return SyncRecord.objects.select_related("connection", "invoice").filter(pk=record_id).first()


def invoices_with_sync_state(queryset: QuerySet[Invoice], *, connection: Connection | None):
    """``queryset`` with each invoice's ``qbo_status`` (its binding's status for the
    connection; ``LINKED_ELSEWHERE`` when only another QuickBooks company has it; else
    "not_synced") and its links (``invoice_binding``, ``invoice_link_elsewhere``), in a
    fixed number of queries whatever the number of invoices."""
    if connection is None:
        return queryset.annotate(qbo_status=Value(S.NOT_SYNCED))
    records = SyncRecord.objects.filter(connection=connection)
    # The binding to this company first (there is at most one), then links to other
    # companies, newest first: the two readers below rely on this order.
    links = (
        SyncRecord.objects.filter(Q(connection=connection) | ~Q(qbo_id=""))
        .select_related("connection")
        .order_by(Case(When(connection=connection, then=Value(0)), default=Value(1)), "-updated_at")
    )
    return queryset.annotate(
        qbo_status=Coalesce(
            Subquery(records.filter(invoice=OuterRef("pk")).values("status")[:1]),
            Case(
                When(
                    only_elsewhere(kind="invoice", connection_id=connection.pk),
                    then=Value(LINKED_ELSEWHERE),
                ),
                default=Value(S.NOT_SYNCED),
            ),
        )
    ).prefetch_related(Prefetch("sync_records", queryset=links, to_attr="qbo_links"))


def invoice_binding(invoice: Invoice) -> SyncRecord | None:
    """The invoice's binding to the company, from ``invoices_with_sync_state``."""
    links = getattr(invoice, "qbo_links", None)
    if not links or invoice.qbo_status == LINKED_ELSEWHERE:
        return None
    # Not linked elsewhere, so its first link is its binding here (see the order above).
    return links[0]


def invoice_link_elsewhere(invoice: Invoice) -> SyncRecord | None:
    """The invoice's newest link to another QuickBooks company when it has no binding to
    the company (its ``qbo_status`` is ``LINKED_ELSEWHERE``), from
    ``invoices_with_sync_state``."""
    links = getattr(invoice, "qbo_links", None)
    if not links or invoice.qbo_status != LINKED_ELSEWHERE:
        return None
    return links[0]


def invoices_linked_elsewhere(*, connection: Connection) -> int:
    """Portal invoices linked to another QuickBooks company and not to this one (left out of
    this company's pushes)."""
    elsewhere = only_elsewhere(kind="invoice", connection_id=connection.pk)
    return Invoice.objects.filter(elsewhere).count()


def invoice_status_counts(*, connection: Connection) -> dict[str, int]:
    """{binding status: invoices}; portal invoices without a binding count as not synced,
    but those linked to another QuickBooks company (``invoices_linked_elsewhere``)."""
    records = SyncRecord.objects.filter(connection=connection, object_type="invoice")
    by_status = dict(records.values_list("status").annotate(n=Count("id")).order_by())
    unbound = max(
        0,
        Invoice.objects.count()
        - sum(by_status.values())
        - invoices_linked_elsewhere(connection=connection),
    )
    by_status[S.NOT_SYNCED] = by_status.get(S.NOT_SYNCED, 0) + unbound
    return by_status


def invoices_needing_attention(*, connection: Connection, limit: int = 10) -> list[SyncRecord]:
    """The latest failed, held or differing invoice bindings."""
    return list(
        SyncRecord.objects.filter(
            connection=connection,
            object_type="invoice",
            status__in=[S.FAILED, S.CONFLICT, S.DIFFERS],
        )
        .select_related("invoice")
        .order_by("-updated_at")[:limit]
    )


def last_run(*, connection: Connection) -> SyncRun | None:
    return SyncRun.objects.filter(connection=connection).order_by("-started_at").first()


def run_counts_per_day(
    *, connection: Connection, since: datetime, counts: list[str]
) -> list[tuple[date, dict[str, int]]]:
    """(day, {count: sum}) of the connection's runs started since ``since``, for the run
    fields ``counts`` (dry runs changed nothing and are left out)."""
    rows = (
        SyncRun.objects.filter(connection=connection, started_at__gte=since, dry_run=False)
        .annotate(day=TruncDate("started_at"))
        .values("day")
        .annotate(**{f"sum_{name}": Sum(name) for name in counts})
        .order_by("day")
    )
    return [(row["day"], {name: row[f"sum_{name}"] or 0 for name in counts}) for row in rows]


def waiting_for_worker(*, connection: Connection, queued_at: datetime) -> bool:
    """True while no run has started since a sync was queued at ``queued_at`` (runs are
    created when the worker picks the task up)."""
    return not run_started_since(connection=connection, moment=queued_at - timedelta(seconds=1))
