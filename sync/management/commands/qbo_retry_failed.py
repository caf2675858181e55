from django.core.management.base import BaseCommand

from integrations.management.commands._common import add_connection_argument, connections
from sync.models import SyncRecord
from sync.services import records_retry, sync_run


class Command(BaseCommand):
    help = "Retry every failed invoice now (push), printing progress and a summary."

    def add_arguments(self, parser):
        add_connection_argument(parser)

    def handle(self, *args, realm=None, **options):
        for connection in connections(realm):
            records = list(
                SyncRecord.objects.filter(
                    connection=connection, status=SyncRecord.Status.FAILED, object_type="invoice"
                )
            )
            if not records:
                self.stdout.write(f"{connection}: no failed invoices.")
                continue
            count = records_retry(records=records)
            self.stdout.write(f"{connection}: retrying {count} failed invoices")
            run = sync_run(
                connection=connection,
                trigger="command",
                direction="push",
                invoice_ids=[r.invoice_id for r in records],
            )
            self.stdout.write(
                f"  {run.outcome_label}: {run.created} created, {run.updated} updated, "
                f"{run.failed} still failing"
            )
            for record in SyncRecord.objects.filter(
                pk__in=[r.pk for r in records], status=SyncRecord.Status.FAILED
            ).select_related("invoice"):
                self.stdout.write(self.style.WARNING(f"  {record.invoice}: {record.details}"))
