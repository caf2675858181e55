"""Read-only admin for sync runs and sync records (the engine writes them, people read them)."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from integrations.admin_text import settings_links
from portal.admin import CsvExportAdmin
from portal.exports import SyncRecordResource
from sync import tasks
from sync.models import SyncEvent, SyncRecord, SyncRun
from sync.services import records_retry


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class SyncEventInline(ReadOnlyMixin, admin.TabularInline):
    model = SyncEvent
    fields = ["created_at", "level", "action", "record", "message"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("record__invoice", "record__customer", "record__item")
        )


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "started_at",
        "connection",
        "trigger",
        "direction",
        "outcome",
        "progress",
        "created",
        "updated",
        "unchanged",
        "failed",
        "conflicts",
        "skipped",
        "api_calls",
    ]
    list_filter = ["status", "trigger", "direction", "dry_run"]
    list_select_related = ["connection"]
    date_hierarchy = "started_at"
    inlines = [SyncEventInline]
    readonly_fields = [
        "connection",
        "trigger",
        "direction",
        "status",
        "dry_run",
        "started_at",
        "finished_at",
        "progress",
        "total",
        "done",
        "created",
        "updated",
        "unchanged",
        "failed",
        "conflicts",
        "skipped",
        "api_calls",
        "message",
    ]
    fields = readonly_fields

    @admin.display(description="Status", ordering="status")
    def outcome(self, obj: SyncRun) -> str:
        return format_html(
            '<span class="ll-badge run-{}">{}</span>', obj.outcome, obj.outcome_label
        )

    @admin.display(description="Progress")
    def progress(self, obj: SyncRun) -> str:
        return format_html(
            '<span class="ll-progress"><progress max="100" value="{}">{}%</progress>'
            "<span>{} / {}</span></span>",
            obj.progress_percent,
            obj.progress_percent,
            obj.done,
            obj.total,
        )


@admin.register(SyncRecord)
class SyncRecordAdmin(ReadOnlyMixin, CsvExportAdmin, admin.ModelAdmin):
    list_display = [
        "local",
        "object_type",
        "status_badge",
        "details_linked",
        "qbo_id",
        "qbo_doc_number",
        "uncertain",
        "updated_at",
    ]
    list_filter = ["status", "object_type", "uncertain", "connection"]
    list_select_related = ["invoice", "customer", "item", "connection"]
    search_fields = [
        "qbo_id",
        "qbo_doc_number",
        "invoice__number",
        "customer__display_name",
        "item__name",
        "details",
    ]
    actions = ["retry"]
    resource_classes = [SyncRecordResource]
    readonly_fields = [
        "connection",
        "object_type",
        "invoice",
        "customer",
        "item",
        "status",
        "details",
        "error_code",
        "error_element",
        "intuit_tid",
        "qbo_id",
        "qbo_doc_number",
        "sync_token",
        "uncertain",
        "attempts",
        "next_retry_at",
        "last_pushed_at",
        "last_pulled_at",
        "updated_at",
    ]
    fields = readonly_fields

    @admin.display(description="Record")
    def local(self, obj: SyncRecord) -> str:
        local = obj.local_object
        if obj.invoice_id:
            url = reverse("admin:portal_invoice_change", args=[obj.invoice_id])
            return format_html('<a href="{}">{}</a>', url, local)
        return str(local) if local is not None else "-"

    @admin.display(description="Sync details")
    def details_linked(self, obj: SyncRecord) -> str:
        return settings_links(obj.details)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: SyncRecord) -> str:
        return format_html(
            '<span class="ll-badge {}">{}</span>', obj.status, obj.get_status_display()
        )

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("sync.retry_syncrecord")

    @admin.action(description="Retry failed records", permissions=["retry"])
    def retry(self, request, queryset):
        records = list(queryset.select_related(None))
        retried = records_retry(records=records)
        failed = [
            r for r in records if r.status in (SyncRecord.Status.FAILED, SyncRecord.Status.SKIPPED)
        ]
        invoices: dict[int, list[int]] = {}
        others: set[int] = set()
        for record in failed:
            if record.invoice_id:
                invoices.setdefault(record.connection_id, []).append(record.invoice_id)
            else:
                others.add(record.connection_id)
        for connection_id, ids in invoices.items():
            tasks.queue("sync.tasks.push_invoices", connection_id, sorted(ids), "retry")
        for connection_id in others - set(invoices):
            # Customers and items go with the invoices that need them; a push retries them.
            tasks.queue("sync.tasks.run_sync", connection_id, "push", "retry")
        message = f"Retrying {retried} failed record{'s' if retried != 1 else ''}."
        if len(records) > retried:
            message += f" {len(records) - retried} selected had not failed and were left alone."
        self.message_user(request, message, messages.SUCCESS if retried else messages.WARNING)
