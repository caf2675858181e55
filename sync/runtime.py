"""Building a run's context, and the base of the components that work in it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from integrations.models import Connection
from integrations.quickbooks.backend import QuickBooksBackend
from integrations.quickbooks.client import QBOClient
from integrations.services import connection_client
from sync.binder import Binder
from sync.configuration import invoice_mapping_for, sync_configuration_for
from sync.context import SyncContext
from sync.entities import ADAPTERS
from sync.locks import Heartbeat
from sync.models import SyncRun, TaxMapping
from sync.runlog import RunLog


class Component:
    """A part of the engine working in one run's context (the exporter, the importer)."""

    def __init__(self, ctx: SyncContext):
        self.ctx = ctx
        self.log = ctx.log
        self.binder = ctx.binder
        self.invoices = ctx.adapter("invoice")


def mapping_signature(mapping, tax_codes: dict[int, str]) -> str:
    """A fingerprint of what decides an invoice's neutral form besides the invoice itself:
    the field mapping and the tax mapping. When it changes, every invoice is compared again."""
    text = json.dumps([sorted(mapping.fields.items()), sorted(tax_codes.items())])
    return hashlib.sha256(text.encode()).hexdigest()


def context_for(
    *,
    connection: Connection,
    run: SyncRun,
    client: QBOClient | None = None,
    dry_run: bool = False,
    on_progress: Callable[[SyncRun], None] | None = None,
    heartbeat: Heartbeat | None = None,
) -> SyncContext:
    """A run's context. Raises ``ReconnectRequired`` when the connection cannot be used."""
    log = RunLog(run, dry_run=dry_run, on_progress=on_progress, heartbeat=heartbeat)
    mappings = list(TaxMapping.objects.filter(connection=connection).select_related("tax_code"))
    rates_by_code: dict[str, int] = {}
    for m in mappings:
        rates_by_code.setdefault(m.tax_code.qbo_id, m.tax_rate_id)
    mapping = invoice_mapping_for(connection=connection)
    tax_codes = {m.tax_rate_id: m.tax_code.qbo_id for m in mappings}
    ctx = SyncContext(
        connection=connection,
        config=sync_configuration_for(connection=connection),
        mapping=mapping,
        backend=QuickBooksBackend(client or connection_client(connection=connection)),
        binder=Binder(
            connection=connection,
            log=log,
            dry_run=dry_run,
            mapping_signature=mapping_signature(mapping, tax_codes),
        ),
        log=log,
        dry_run=dry_run,
        tax_codes=tax_codes,
        rates_by_code=rates_by_code,
    )
    ctx.adapters = {adapter.kind: adapter(ctx) for adapter in ADAPTERS}
    log.api_calls = lambda: ctx.backend.requests_sent
    return ctx
