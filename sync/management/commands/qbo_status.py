from django.core.management.base import BaseCommand
from django.db.models import Count

from integrations.management.commands._common import add_connection_argument, connections
from sync.models import SyncRecord


class Command(BaseCommand):
    help = "Show each QuickBooks connection's health and its records by sync status."

    def add_arguments(self, parser):
        add_connection_argument(parser)

    def handle(self, *args, realm=None, **options):
        for connection in connections(realm):
            self.stdout.write(
                f"{connection} ({connection.realm_id}) - {connection.get_status_display()}"
            )
            if connection.access_token_expires_at:
                self.stdout.write(
                    f"  access token until {connection.access_token_expires_at:%Y-%m-%d %H:%M}"
                )
            if connection.refresh_token_expires_at:
                self.stdout.write(
                    f"  authorization until {connection.refresh_token_expires_at:%Y-%m-%d}"
                )
            if connection.last_error:
                self.stdout.write(self.style.ERROR(f"  {connection.last_error}"))
            config = getattr(connection, "sync_configuration", None)
            if config:
                self.stdout.write(
                    f"  {config.get_sync_type_display()}, {'on' if config.enabled else 'off'}, "
                    f"last pull {config.last_pull_at or 'never'}, last push "
                    f"{config.last_push_at or 'never'}"
                )
            counts = (
                SyncRecord.objects.filter(connection=connection)
                .values("object_type", "status")
                .annotate(n=Count("id"))
                .order_by("object_type", "status")
            )
            for row in counts:
                self.stdout.write(f"  {row['object_type']:9} {row['status']:11} {row['n']}")
            for record in SyncRecord.objects.filter(
                connection=connection, status=SyncRecord.Status.FAILED
            ).select_related("invoice", "customer", "item")[:20]:
                self.stdout.write(
                    self.style.WARNING(f"  failed: {record.local_object}: {record.details}")
                )
