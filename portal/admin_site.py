"""The Ledgerlink admin site: Django's admin, signed into through django-allauth."""

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import path


class LedgerlinkAdminSite(admin.AdminSite):
    site_header = "Ledgerlink"
    site_title = "Ledgerlink"
    index_title = "Back office"

    def login(self, request, extra_context=None):
        # The admin's own login form would bypass two-factor and the rate limits; allauth's
        # login handles both, then sends the person back here.
        return secure_admin_login(super().login)(request, extra_context)

    def get_urls(self):
        from integrations import admin_views

        def view(func):
            return self.admin_view(lambda request: func(request, self))

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
                "quickbooks/fetch-accounts/",
                view(admin_views.quickbooks_fetch_accounts),
                name="quickbooks_fetch_accounts",
            ),
            path(
                "quickbooks/journals/",
                view(admin_views.quickbooks_journals),
                name="quickbooks_journals",
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
            from integrations.selectors import connection_current

            context["qbo_connection"] = connection_current()
        return context
