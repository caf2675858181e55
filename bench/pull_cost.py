"""What a pull costs in database queries per invoice made in QuickBooks (issue 13's target:
at most 3), and in API calls.

Invoices are made in the bundled emulator over HTTP as an accountant would (customers and
items already in the portal), then one pull brings them in:

    .venv/bin/python bench/pull_cost.py [--invoices 1000]

Uses a throwaway SQLite database, or a throwaway PostgreSQL one when DATABASE_URL names a
server. Prints figures and ratios to the target; it is a measurement, not a timed test.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import bench_emulator, django_database, ready_connection  # noqa: E402

TARGET = 3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=1000)
    args = parser.parse_args()
    with django_database(os.environ.get("DATABASE_URL")):
        return run(args)


def run(args) -> int:
    import requests
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    from portal.models import Invoice
    from sync.services import sync_run
    from tests.qbo import EmulatorUI

    with bench_emulator() as emulator:
        realm = emulator.realm_ids[0]
        connection = ready_connection(emulator, realm)
        ui = EmulatorUI(emulator, realm)
        # The first pull brings the sandbox's customers and items, and sets the cursor.
        sync_run(connection=connection, trigger="command", direction="pull")
        customers = [c for c in ui.rows("Customer") if c.get("Active", True)][:20]
        item = ui.find("Item", Name="Design")
        with requests.Session() as session:
            for n in range(args.invoices):
                body = {
                    "DocNumber": f"PULL-{n:05}",
                    "CustomerRef": {"value": customers[n % len(customers)]["Id"]},
                    "Line": [
                        {
                            "DetailType": "SalesItemLineDetail",
                            "Amount": 75 * (1 + n % 3),
                            "SalesItemLineDetail": {
                                "ItemRef": {"value": item["Id"]},
                                "Qty": 1 + n % 3,
                                "UnitPrice": 75,
                            },
                        },
                        {"DetailType": "DescriptionOnly", "Description": f"Visit {n}"},
                    ],
                }
                made = session.post(f"{ui.base}/invoice", json=body, timeout=10)
                made.raise_for_status()
        emulator.app.clear_log()
        started = time.perf_counter()
        with CaptureQueriesContext(db) as captured:
            run = sync_run(connection=connection, trigger="command", direction="pull")
        took = time.perf_counter() - started
        calls = len([r for r in emulator.app.requests_log() if "/v3/" in r.get("path", "")])
        pulled = Invoice.objects.filter(number__startswith="PULL-").count()

    per_invoice = len(captured) / max(pulled, 1)
    print(f"pull of {args.invoices} invoices made in QuickBooks ({db.vendor})")
    print(f"  created {run.created}, failed {run.failed}, in {took:.1f} s, API calls {calls}")
    print(
        f"  database queries: {len(captured)} ({per_invoice:.2f} per invoice)   "
        f"target at most {TARGET}   ratio {per_invoice / TARGET:.2f}"
    )
    ok = pulled == args.invoices and per_invoice <= TARGET
    print("within targets" if ok else "OUTSIDE TARGETS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
