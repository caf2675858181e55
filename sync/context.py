"""What one run works with: the connection, its configuration and mappings, the backend, the
bindings, the run log and one adapter per synced kind (built by ``sync.runtime``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from integrations.models import Connection
from integrations.quickbooks.backend import QuickBooksBackend
from portal.models import Invoice
from sync.binder import Binder
from sync.mappers.invoice import InvoiceMapping
from sync.models import SyncConfiguration, SyncRecord
from sync.runlog import RunLog

# An invoice binding and its portal invoice, as the exporter and importer hand them over.
Pair = tuple[SyncRecord, Invoice]


@dataclass
class SyncContext:
    connection: Connection
    config: SyncConfiguration
    mapping: InvoiceMapping
    backend: QuickBooksBackend
    binder: Binder
    log: RunLog
    dry_run: bool
    # Portal tax rate id -> QuickBooks tax code id, and back (the first rate of each code).
    tax_codes: dict[int, str]
    rates_by_code: dict[str, int]
    # kind -> its adapter (``sync.entities``), set by ``sync.runtime.context_for``.
    adapters: dict[str, Any] = field(default_factory=dict)

    def adapter(self, kind: str):
        return self.adapters[kind]
