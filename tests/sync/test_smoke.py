from sync.models import SyncRecord
from sync.services import sync_run


def test_push_then_pull(ready, make_invoice, qbo_ui):
    invoice = make_invoice()
    run = sync_run(connection=ready, trigger="command", direction="push")
    print(run.status, run.message, list(run.events.values_list("message", flat=True)))
    record = SyncRecord.objects.get(invoice=invoice)
    print(record.status, record.details)
    assert record.status == "synced"
    run = sync_run(connection=ready, trigger="command", direction="pull")
    print(run.status, run.message, run.created, run.updated, run.unchanged)
    print(list(run.events.values_list("message", flat=True)))
