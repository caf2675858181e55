"""Queue a push when staff save an invoice (only the queueing lives here)."""

from django.db.models.signals import post_save
from django.dispatch import receiver

from portal.models import Invoice
from sync import tasks
from sync.models import SyncConfiguration
from sync.services import is_sync_writing


@receiver(post_save, sender=Invoice, dispatch_uid="sync.invoice_saved")
def invoice_saved(sender, instance: Invoice, raw=False, **kwargs):
    if raw:
        return
    if is_sync_writing():
        return  # the sync's own write: pushing it back would be an echo
    for config in SyncConfiguration.objects.filter(
        enabled=True, push_on_save=True, connection__status="connected"
    ).only("connection_id"):
        tasks.queue("sync.tasks.push_invoices", config.connection_id, [instance.pk], "save")
