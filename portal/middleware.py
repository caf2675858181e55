"""Middleware: two-factor for staff when STAFF_REQUIRE_MFA is on; one change unit per request."""

from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse

from portal.history import change_unit


class StaffMFARequiredMiddleware:
    """Send staff without an authenticator to the TOTP set-up page before any admin page.

    allauth can demand the second factor of those who set one up, but has no switch that makes
    every staff member set one up; this closes that gap for the admin and the portal's pages.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.STAFF_REQUIRE_MFA and self._must_set_up(request):
            messages.warning(
                request,
                "Two-factor authentication is required for staff. Set up an authenticator app "
                "to continue.",
            )
            return redirect(reverse("mfa_activate_totp"))
        return self.get_response(request)

    @staticmethod
    def _must_set_up(request) -> bool:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not user.is_staff:
            return False
        admin_prefix = reverse("admin:index")
        protected = request.path.startswith(admin_prefix) or request.path.startswith(
            "/integrations/"
        )
        return protected and not is_mfa_enabled(user)


def change_unit_middleware(get_response):
    """One request's writes are one change of each record in its history (``portal.history``)."""

    def middleware(request):
        with change_unit():
            return get_response(request)

    return middleware
