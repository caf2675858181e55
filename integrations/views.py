"""OAuth views outside the admin: Intuit's callback and its disconnect URL."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from integrations import services


@require_GET
@staff_member_required
def oauth_callback(request):
    """Where Intuit sends the person back after Connect (the app's redirect URI)."""
    if not request.user.has_perm("integrations.manage_connection"):
        messages.error(request, "Only Sync administrators may connect QuickBooks.")
        return redirect("admin:quickbooks")
    try:
        connection, created = services.connect_complete(request=request, params=request.GET)
    except services.ConnectError as exc:
        messages.error(request, str(exc))
        return redirect("admin:quickbooks")
    except services.CompanySwitchPending:
        # Another company than the one last connected: staff choose before anything changes.
        return redirect("admin:quickbooks_switch")
    verb = "Connected to" if created else "Reconnected to"
    name = connection.company_name or f"with ID {connection.realm_id}"
    messages.success(request, f"{verb} QuickBooks company {name}.")
    return redirect("admin:quickbooks")


@require_GET
@staff_member_required
def intuit_disconnected(request):
    """Intuit's "Disconnect URL": the company disconnected the app from within QuickBooks.

    Intuit sends the person's browser here; the request's word is not taken, each connection
    of the realm is checked against QuickBooks first (see the service).
    """
    realm_id = request.GET.get("realmId", "").strip()
    checked = services.connection_verify_disconnected(realm_id=realm_id) if realm_id else []
    return TemplateResponse(
        request,
        "integrations/disconnected.html",
        {
            **admin.site.each_context(request),
            "realm_id": realm_id,
            "checked": checked,
            "title": "QuickBooks disconnected",
        },
    )
