"""What a pull costs in database queries per invoice (issue 13's target: at most 3), and in
API calls, for invoices made in QuickBooks and for invoices changed there.

Invoices are made in the bundled emulator over HTTP as an accountant would (customers and
items already in the portal), then one pull brings them in; each is then changed in
QuickBooks (a note, and the quantity on its item line) and a second pull brings the changes:

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


class QueryCount:
    """Counts every statement sent to the database (``CaptureQueriesContext`` keeps only
    the last 9,000)."""

    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=1000)
    args = parser.parse_args()
    with django_database(os.environ.get("DATABASE_URL")):
        return run(args)


def run(args) -> int:
    import requests
    from django.db import connection as db

    from portal.models import Invoice
    from sync.services import sync_run
    from tests.qbo import EmulatorUI

    def measured_pull():
        emulator.app.clear_log()
        counted = QueryCount()
        started = time.perf_counter()
        with db.execute_wrapper(counted):
            pull = sync_run(connection=connection, trigger="command", direction="pull")
        took = time.perf_counter() - started
        calls = len([r for r in emulator.app.requests_log() if "/v3/" in r.get("path", "")])
        return pull, counted.count, took, calls

    with bench_emulator() as emulator:
        realm = emulator.realm_ids[0]
        connection = ready_connection(emulator, realm)
        ui = EmulatorUI(emulator, realm)
        # The first pull brings the sandbox's customers and items, and sets the cursor.
        sync_run(connection=connection, trigger="command", direction="pull")
        customers = [c for c in ui.rows("Customer") if c.get("Active", True)][:20]
        item = ui.find("Item", Name="Design")
        made = []
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
                answer = session.post(f"{ui.base}/invoice", json=body, timeout=10)
                answer.raise_for_status()
                made.append(answer.json()["Invoice"])
        run, queries, took, calls = measured_pull()
        pulled = Invoice.objects.filter(number__startswith="PULL-").count()

        with requests.Session() as session:
            for obj in made:
                lines = [
                    line for line in obj["Line"] if line.get("DetailType") != "SubTotalLineDetail"
                ]
                item_line = lines[0]["SalesItemLineDetail"]
                item_line["Qty"] += 1
                lines[0]["Amount"] = item_line["Qty"] * item_line["UnitPrice"]
                change = {"Id": obj["Id"], "PrivateNote": "Changed in QuickBooks", "Line": lines}
                answer = session.post(
                    f"{ui.base}/invoice?operation=update", json=change, timeout=10
                )
                answer.raise_for_status()
        second, update_queries, update_took, update_calls = measured_pull()
        changed = Invoice.objects.filter(
            number__startswith="PULL-", private_note="Changed in QuickBooks"
        ).count()

    ok = True
    print(f"pull of {args.invoices} invoices ({db.vendor})")
    for label, pull, count, n, seconds, api in (
        ("made in QuickBooks", run, queries, pulled, took, calls),
        ("changed in QuickBooks", second, update_queries, changed, update_took, update_calls),
    ):
        per_invoice = count / max(n, 1)
        print(f"  {label}: created {pull.created}, updated {pull.updated}, failed {pull.failed},")
        print(f"    in {seconds:.1f} s, API calls {api}")
        print(
            f"    database queries: {count} ({per_invoice:.2f} per invoice)   "
            f"target at most {TARGET}   ratio {per_invoice / TARGET:.2f}"
        )
        ok = ok and n == args.invoices and per_invoice <= TARGET
    print("within targets" if ok else "OUTSIDE TARGETS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
