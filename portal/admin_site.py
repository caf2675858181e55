"""The Ledgerlink admin site: Django's admin, signed into through django-allauth."""

from allauth.account.decorators import secure_admin_login
from django.contrib import admin


class LedgerlinkAdminSite(admin.AdminSite):
    site_header = "Ledgerlink"
    site_title = "Ledgerlink"
    index_title = "Back office"

    def login(self, request, extra_context=None):
        # The admin's own login form would bypass two-factor and the rate limits; allauth's
        # login handles both, then sends the person back here.
        return secure_admin_login(super().login)(request, extra_context)
