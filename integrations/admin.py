"""The connection as a read-only list; everything about it is set on the QuickBooks page."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from integrations.models import Connection


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "realm_id", "environment", "status_badge", "connected_at", "page"]
    list_filter = ["environment", "status"]
    fields = [
        "company_name",
        "realm_id",
        "environment",
        "status",
        "connected_by",
        "connected_at",
        "disconnected_at",
        "last_error",
        "access_token_expires_at",
        "refresh_token_expires_at",
        "accounts_fetched_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: Connection) -> str:
        return format_html(
            '<span class="ll-badge {}">{}</span>', obj.status, obj.get_status_display()
        )

    @admin.display(description="Settings")
    def page(self, obj: Connection) -> str:
        return format_html('<a href="{}">QuickBooks settings</a>', reverse("admin:quickbooks"))
