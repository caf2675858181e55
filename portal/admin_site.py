"""The Ledgerlink admin site: Django's admin, signed into through django-allauth."""

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import path


def qbo_connection(request):
    """The QuickBooks connection the admin works with, looked up once per request."""
    if not hasattr(request, "_ledgerlink_qbo_connection"):
        from integrations.selectors import connection_current

        request._ledgerlink_qbo_connection = connection_current()
    return request._ledgerlink_qbo_connection


class LedgerlinkAdminSite(admin.AdminSite):
    site_header = "Ledgerlink"
    site_title = "Ledgerlink"
    index_title = "Back office"

    def login(self, request, extra_context=None):
        # The admin's own login form would bypass two-factor and the rate limits; allauth's
        # login handles both, then sends the person back here.
        return secure_admin_login(super().login)(request, extra_context)

    def index(self, request, extra_context=None):
        extra_context = dict(extra_context or {})
        if request.user.has_perm("integrations.view_connection"):
            from integrations.admin_views import dashboard_context

            extra_context["dashboard"] = dashboard_context(request)
        return super().index(request, extra_context)

    def get_urls(self):
        from integrations import admin_views

        def view(func):
            # Each view checks its own permission; admin_view adds staff login and CSRF.
            return self.admin_view(lambda request, **kwargs: func(request, self, **kwargs))

        custom = [
            path("quickbooks/", view(admin_views.quickbooks_settings), name="quickbooks"),
            path(
                "quickbooks/connect/",
                view(admin_views.quickbooks_connect),
                name="quickbooks_connect",
            ),
            path(
                "quickbooks/disconnect/",
                view(admin_views.quickbooks_disconnect),
                name="quickbooks_disconnect",
            ),
            path(
                "quickbooks/switch/",
                view(admin_views.quickbooks_switch),
                name="quickbooks_switch",
            ),
            path(
                "quickbooks/fetch-accounts/",
                view(admin_views.quickbooks_fetch_accounts),
                name="quickbooks_fetch_accounts",
            ),
            path(
                "quickbooks/journals/",
                view(admin_views.quickbooks_journals),
                name="quickbooks_journals",
            ),
            path(
                "quickbooks/configuration/",
                view(admin_views.quickbooks_configuration),
                name="quickbooks_configuration",
            ),
            path(
                "quickbooks/mapping/tax/",
                view(admin_views.quickbooks_tax_mapping),
                name="quickbooks_tax_mapping",
            ),
            path(
                "quickbooks/mapping/invoices/",
                view(admin_views.quickbooks_field_mapping),
                name="quickbooks_field_mapping",
            ),
            path(
                "quickbooks/mapping/invoices/defaults/",
                view(admin_views.quickbooks_field_mapping_defaults),
                name="quickbooks_field_mapping_defaults",
            ),
            path(
                "quickbooks/mapping/custom-fields/",
                view(admin_views.quickbooks_custom_fields),
                name="quickbooks_custom_fields",
            ),
            path("quickbooks/sync/", view(admin_views.quickbooks_sync), name="quickbooks_sync"),
            path(
                "quickbooks/sync/state/",
                view(admin_views.quickbooks_sync_state),
                name="quickbooks_sync_state",
            ),
            path(
                "quickbooks/quick-sync/",
                view(admin_views.quickbooks_quick_sync),
                name="quickbooks_quick_sync",
            ),
            path(
                "quickbooks/runs/<int:run_id>/",
                view(admin_views.quickbooks_run),
                name="quickbooks_run",
            ),
            path(
                "quickbooks/conflicts/<int:record_id>/resolve/",
                view(admin_views.quickbooks_conflict_resolve),
                name="quickbooks_conflict_resolve",
            ),
            path(
                "quickbooks/clashes/<int:record_id>/resolve/",
                view(admin_views.quickbooks_clash_resolve),
                name="quickbooks_clash_resolve",
            ),
        ]
        return custom + super().get_urls()

    def each_context(self, request):
        context = super().each_context(request)
        user = getattr(request, "user", None)
        context["can_view_quickbooks"] = bool(
            user and user.is_active and user.has_perm("integrations.view_connection")
        )
        if context["can_view_quickbooks"]:
            context["qbo_connection"] = qbo_connection(request)
        return context
