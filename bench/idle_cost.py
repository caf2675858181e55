"""What an idle sync costs as the book grows (issue 13): API calls, database queries, wall time
and peak memory of one push-and-pull with nothing changed, over 10,000 and 100,000 invoices
already synced. Targets: at most 2 API calls, the same queries at both sizes, 100,000 idle in
under 1 s and 200 MB, and a 100,000 / 10,000 time ratio under 1.5.

The synced book is written straight into the database (invoices, their lines and their
bindings, agreed at their current version, as a sync leaves them), so the measurement is of
the idle sync alone; QuickBooks (the bundled emulator) holds nothing new for the change feed.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/idle_cost.py

Prints figures and ratios; it is a measurement, not a timed test.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
import tracemalloc
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import bench_emulator, django_database, ready_connection  # noqa: E402

SIZES = (10_000, 100_000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(n) for n in SIZES))
    parser.add_argument("--repeat", type=int, default=5, help="idle syncs timed per size")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    with django_database(os.environ.get("DATABASE_URL")):
        return run(sizes, args.repeat)


def _grow_book(connection, size: int, signature: str) -> None:
    """Synced invoices up to ``size`` in all, two lines each, bound and agreed."""
    from portal.changes import unstamped
    from portal.models import Customer, Invoice, InvoiceLine, Item
    from sync.models import SyncRecord

    customer, _ = Customer.objects.get_or_create(display_name="Idle Customer")
    item, _ = Item.objects.get_or_create(name="Idle Item", defaults={"sales_price": 10})
    start = Invoice.objects.filter(number__startswith="IDLE-").count()
    with unstamped():
        for first in range(start, size, 5000):
            numbers = range(first, min(first + 5000, size))
            invoices = Invoice.objects.bulk_create(
                Invoice(
                    number=f"IDLE-{n:06}",
                    customer=customer,
                    subtotal=Decimal("30.00"),
                    total=Decimal("30.00"),
                    status=Invoice.Status.SENT,
                    needs_sync=False,
                )
                for n in numbers
            )
            InvoiceLine.objects.bulk_create(
                InvoiceLine(
                    invoice=invoice,
                    position=k,
                    item=item,
                    quantity=k,
                    unit_price=Decimal("10"),
                    amount=Decimal(10 * k),
                )
                for invoice in invoices
                for k in (1, 2)
            )
            SyncRecord.objects.bulk_create(
                SyncRecord(
                    connection=connection,
                    object_type="invoice",
                    invoice=invoice,
                    qbo_id=f"9{invoice.pk}",
                    sync_token="0",
                    status=SyncRecord.Status.SYNCED,
                    agreed={},
                    agreed_version=invoice.version,
                    agreed_mapping=signature,
                )
                for invoice in invoices
            )
    if connection_vendor() == "postgresql":
        # What autovacuum does after a bulk load: fresh statistics and visibility.
        from django.db import connection as db

        with db.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")


def connection_vendor() -> str:
    from django.db import connection as db

    return db.vendor


def run(sizes: list[int], repeat: int = 5) -> int:
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    from sync.configuration import invoice_mapping_for
    from sync.models import TaxMapping
    from sync.runtime import mapping_signature
    from sync.services import sync_run

    rows = []
    with bench_emulator() as emulator:
        connection = ready_connection(emulator, emulator.realm_ids[0])
        sync_run(connection=connection, trigger="command", direction="pull")
        tax_codes = {
            m.tax_rate_id: m.tax_code.qbo_id
            for m in TaxMapping.objects.filter(connection=connection).select_related("tax_code")
        }
        signature = mapping_signature(invoice_mapping_for(connection=connection), tax_codes)
        for size in sizes:
            _grow_book(connection, size, signature)
            sync_run(connection=connection, trigger="command", direction="both")  # warm
            emulator.app.clear_log()
            tracemalloc.start()
            with CaptureQueriesContext(db) as captured:
                idle = sync_run(connection=connection, trigger="command", direction="both")
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            calls = len([r for r in emulator.app.requests_log() if "/v3/" in r.get("path", "")])
            # The machines are shared and noisy: the median of several idle syncs.
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                sync_run(connection=connection, trigger="command", direction="both")
                times.append(time.perf_counter() - started)
            took = statistics.median(times)
            rows.append((size, calls, len(captured), took, peak, idle))
            print(f"  {size:,}: median of {repeat} idle syncs {took * 1000:.0f} ms", flush=True)

    print(f"idle sync (push and pull, nothing changed) on {db.vendor}")
    for size, calls, queries, took, peak, idle in rows:
        print(
            f"  {size:>7,} invoices: API calls {calls} (target at most 2), queries {queries}, "
            f"{took * 1000:.0f} ms, peak memory {peak:.1f} MB (Python objects); "
            f"unchanged {idle.unchanged}, updated {idle.updated}"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  the whole benchmark process (book building included) peaked at {rss:.0f} MB RSS")
    ok = all(calls <= 2 for _s, calls, *_ in rows)
    if len(rows) >= 2:
        (small, *_), (large, *_) = rows[0], rows[-1]
        ratio = rows[-1][3] / rows[0][3]
        same = rows[0][2] == rows[-1][2]
        print(
            f"  {large:,} / {small:,}: time ratio {ratio:.2f} (target under 1.5), "
            f"queries {'the same' if same else 'differ'}"
        )
        ok = ok and same and ratio < 1.5
        ok = ok and rows[-1][3] < 1.0 and rows[-1][4] < 200
    print("within targets" if ok else "OUTSIDE TARGETS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
