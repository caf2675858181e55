"""OAuth views outside the admin: Intuit's callback and its disconnect URL."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from integrations import services
from integrations.models import Connection


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
    verb = "Connected to" if created else "Reconnected to"
    messages.success(request, f"{verb} QuickBooks company {connection.company_name}.")
    return redirect("admin:quickbooks")


@require_GET
@staff_member_required
def intuit_disconnected(request):
    """Intuit's "Disconnect URL": the company disconnected the app from within QuickBooks.

    Anyone can open this address, so it does not take the request's word for it: each
    connection for the realm is checked against QuickBooks, and only one that QuickBooks no
    longer accepts is marked disconnected.
    """
    realm_id = request.GET.get("realmId", "")
    checked = []
    for connection in Connection.objects.filter(
        realm_id=realm_id, status=Connection.Status.CONNECTED
    ):
        try:
            services.connection_client(connection=connection).company_info()
            checked.append((connection, False))
        except services.ReconnectRequired:
            services.connection_disconnected_by_intuit(realm_id=realm_id)
            checked.append((connection, True))
        except Exception as exc:  # any refusal by QuickBooks means the app is gone
            if getattr(exc, "status", None) in (401, 403):
                services.connection_disconnected_by_intuit(realm_id=realm_id)
                checked.append((connection, True))
            else:
                checked.append((connection, False))
    return TemplateResponse(
        request,
        "integrations/disconnected.html",
        {"realm_id": realm_id, "checked": checked, "title": "QuickBooks disconnected"},
    )
