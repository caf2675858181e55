"""The QuickBooks settings page in the admin: one page, one tab per step of the set-up."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_POST

from integrations import selectors, services
from integrations.models import Connection, QuickBooksAccount
from integrations.quickbooks.errors import QBOError

TABS = [
    ("connection", "Connection"),
    ("journals", "Journals"),
]


def _require(request, permission: str, what: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"You may not {what}.")


def quickbooks_settings(request, admin_site):
    _require(request, "integrations.view_connection", "view the QuickBooks settings")
    connection = selectors.connection_current()
    tab = request.GET.get("tab", "connection")
    if tab not in dict(TABS):
        tab = "connection"
    can_manage = request.user.has_perm("integrations.manage_connection")
    can_change = request.user.has_perm("integrations.change_connection")
    context = {
        **admin_site.each_context(request),
        "title": "QuickBooks",
        "tabs": TABS,
        "tab": tab,
        "connection": connection,
        "connected": bool(connection and connection.is_connected),
        "can_manage": can_manage,
        "can_change": can_change,
        "environment": services.settings.QBO_ENVIRONMENT,
        "other_connections": Connection.objects.exclude(pk=getattr(connection, "pk", None)),
    }
    if connection is not None:
        choices = selectors.journal_choices(connection=connection)
        context["journals"] = [
            {
                "field": field,
                "label": label,
                "options": choices[field],
                "selected": getattr(connection, f"{field}_id"),
                "missing_hint": services.JOURNAL_MISSING_HINT[field],
                "types": " or ".join(services.JOURNAL_ACCOUNT_TYPES[field]),
            }
            for field, label in (
                ("income_account", "Income"),
                ("expense_account", "Expense"),
                ("asset_account", "Inventory Asset"),
            )
        ]
        context["tax_codes"] = list(connection.tax_codes.filter(active=True))
    return TemplateResponse(request, "admin/quickbooks/settings.html", context)


def _current_or_404(request) -> Connection | None:
    connection = selectors.connection_current()
    if connection is None:
        messages.error(request, "No QuickBooks company is connected yet; press Connect first.")
    return connection


def quickbooks_connect(request, admin_site):
    _require(request, "integrations.manage_connection", "connect QuickBooks")
    return redirect(services.connect_start(request=request))


@require_POST
def quickbooks_disconnect(request, admin_site):
    _require(request, "integrations.manage_connection", "disconnect QuickBooks")
    connection = _current_or_404(request)
    if connection is not None and connection.status != Connection.Status.DISCONNECTED:
        note = services.connection_disconnect(connection=connection)
        messages.success(
            request,
            f"Disconnected from {connection}. Mappings and sync history are kept for a reconnect.",
        )
        if note:
            messages.warning(request, note)
    return redirect("admin:quickbooks")


@require_POST
def quickbooks_fetch_accounts(request, admin_site):
    _require(request, "integrations.change_connection", "fetch from QuickBooks")
    connection = _current_or_404(request)
    if connection is None:
        return redirect("admin:quickbooks")
    try:
        accounts = services.accounts_fetch(connection=connection)
        codes = services.tax_codes_fetch(connection=connection)
    except services.ReconnectRequired as exc:
        messages.error(request, exc.user_message)
    except QBOError as exc:
        messages.error(request, f"Fetching from QuickBooks failed: {exc.user_message}")
    else:
        messages.success(request, f"Accounts fetched: {accounts}. Tax codes fetched: {codes}.")
    return redirect(f"{_url('admin:quickbooks')}?tab=journals")


@require_POST
def quickbooks_journals(request, admin_site):
    _require(request, "integrations.change_connection", "change the journals")
    connection = _current_or_404(request)
    if connection is None:
        return redirect("admin:quickbooks")
    chosen = {}
    for field in ("income_account", "expense_account", "asset_account"):
        value = request.POST.get(field, "")
        chosen[field] = (
            QuickBooksAccount.objects.filter(connection=connection, pk=value).first()
            if value.isdigit()
            else None
        )
    try:
        services.journals_save(connection=connection, **chosen)
    except ValidationError as exc:
        for field, errors in exc.message_dict.items():
            label = field.replace("_account", "").replace("asset", "inventory asset").title()
            for error in errors:
                messages.error(request, f"{label} account: {error}")
    else:
        messages.success(request, "Journals saved: new items will be created with these accounts.")
    return redirect(f"{_url('admin:quickbooks')}?tab=journals")


def _url(name: str) -> str:
    from django.urls import reverse

    return reverse(name)
