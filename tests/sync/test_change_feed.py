"""The change feed never loses a change: QuickBooks answers at most 1,000 objects per call, and
a pull reads on until it has them all before it moves its cursor."""

import requests

from portal.models import Customer, Invoice, Item
from sync.models import SyncConfiguration, SyncRecord

INVOICES, CUSTOMERS, ITEMS = 2500, 200, 50


def _create_many(qbo_ui, entity: str, bodies: list[dict]) -> list[dict]:
    """Made in QuickBooks as an accountant would, over HTTP (one request each)."""
    made = []
    with requests.Session() as session:
        for body in bodies:
            response = session.post(f"{qbo_ui.base}/{entity.lower()}", json=body, timeout=10)
            assert response.status_code < 300, response.text
            made.append(response.json()[entity])
    return made


def test_thousands_of_changes_between_two_pulls_all_arrive_in_one_run(run_sync, ready, qbo_ui, qbo):
    assert run_sync("pull").status == "done"
    before = SyncConfiguration.objects.get(connection=ready).pull_cursor
    income = qbo_ui.find("Account", AccountType="Income")
    customers = _create_many(
        qbo_ui, "Customer", [{"DisplayName": f"Feed Customer {n:03}"} for n in range(CUSTOMERS)]
    )
    items = _create_many(
        qbo_ui,
        "Item",
        [
            {
                "Name": f"Feed Item {n:02}",
                "Type": "Service",
                "UnitPrice": 10 + n,
                "IncomeAccountRef": {"value": income["Id"]},
            }
            for n in range(ITEMS)
        ],
    )
    invoices = _create_many(
        qbo_ui,
        "Invoice",
        [
            {
                "DocNumber": f"F-{n:04}",
                "CustomerRef": {"value": customers[n % CUSTOMERS]["Id"]},
                "Line": [
                    {
                        "DetailType": "SalesItemLineDetail",
                        "Amount": 2 * (10 + n % ITEMS),
                        "SalesItemLineDetail": {
                            "ItemRef": {"value": items[n % ITEMS]["Id"]},
                            "Qty": 2,
                            "UnitPrice": 10 + n % ITEMS,
                        },
                    }
                ],
            }
            for n in range(INVOICES)
        ],
    )
    qbo.app.clear_log()

    run = run_sync("pull")

    assert run.status == "done", run.message
    numbers = set(Invoice.objects.filter(number__startswith="F-").values_list("number", flat=True))
    assert numbers == {obj["DocNumber"] for obj in invoices}
    assert Customer.objects.filter(display_name__startswith="Feed Customer").count() == CUSTOMERS
    assert Item.objects.filter(name__startswith="Feed Item").count() == ITEMS
    bound = SyncRecord.objects.filter(connection=ready, object_type="invoice", status="synced")
    assert bound.filter(qbo_id__in=[obj["Id"] for obj in invoices]).count() == INVOICES
    # The feed was read past its cap (several calls), and the cursor covers what was read.
    feed_calls = [r for r in qbo.app.requests_log() if "/cdc" in r.get("path", "")]
    assert len(feed_calls) >= (INVOICES + CUSTOMERS + ITEMS) // 1000 + 1, len(feed_calls)
    after = SyncConfiguration.objects.get(connection=ready).pull_cursor
    assert after > before
    # Nothing is left for the next pull.
    again = run_sync("pull")
    assert (again.created, again.updated) == (0, 0)
