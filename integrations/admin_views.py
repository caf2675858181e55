"""The QuickBooks settings page in the admin: one page, one tab per step of the set-up.

Each view checks its own permission (the page hides what a role may not do; the server refuses
it with 403), parses the request, calls one service and reports with a message.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_http_methods, require_POST

from integrations import selectors, services
from integrations.models import Connection, QuickBooksAccount
from integrations.quickbooks.errors import QBOError, ReconnectRequired
from portal.models import Invoice, TaxRate
from sync import configuration, fieldmap, tasks
from sync import selectors as sync_selectors
from sync.locks import lock_held
from sync.models import FieldMapping, SyncConfiguration, SyncRecord

TABS = [
    ("connection", "Connection"),
    ("configuration", "Configuration"),
    ("journals", "Journals"),
    ("mapping", "Mapping"),
    ("items", "Items"),
    ("history", "Sync history"),
    ("conflicts", "Conflicts"),
]
MAPPING_SUBTABS = [("tax", "Tax"), ("invoices", "Invoices")]

VIEW = "integrations.view_connection"
CHANGE = "integrations.change_connection"
MANAGE = "integrations.manage_connection"
SYNC = "portal.sync_invoice"

# A queued sync shows on the history tab, refreshing, until its run starts or this long passes
# (after which the page says the worker may not be running, rather than refreshing forever).
QUEUED_WAIT = timedelta(seconds=60)
ACTIVE_RUN = ("queued", "running")
RUNNING_NOW = (
    "A sync of this company is running now; Sync is available again when it ends. Its "
    "progress is on the Sync history tab."
)
# How often the settings tabs ask whether the company's run has ended (sync_watch.js).
SYNC_WATCH_INTERVAL_MS = 2000
NOT_STARTED_BY_YOU = (
    "sync has not been started for this company yet. A Sync administrator starts it the "
    "first time, with Sync now."
)


def _require(request, permission: str, what: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"You may not {what}.")


def _url(name: str, **query) -> str:
    url = reverse(name)
    return f"{url}?{urlencode(query)}" if query else url


def _tab_url(tab: str, **query) -> str:
    return _url("admin:quickbooks", tab=tab, **query)


class SyncConfigurationForm(forms.ModelForm):
    class Meta:
        model = SyncConfiguration
        fields = [
            "app",
            "sync_type",
            "enabled",
            "push_on_save",
            "pull_interval_minutes",
            "conflict_rule",
            "first_invoice_date",
            "auto_create_customers",
            "auto_create_items",
        ]
        widgets = {"first_invoice_date": forms.DateInput(attrs={"type": "date"})}


# --- The page --------------------------------------------------------------------------------


def quickbooks_settings(request, admin_site, *, overrides=None, status=200):
    """Render the settings page; ``overrides`` carries a re-rendered form with its errors."""
    _require(request, VIEW, "view the QuickBooks settings")
    connection = selectors.connection_current()
    tab = request.GET.get("tab", "connection")
    if tab not in dict(TABS):
        tab = "connection"
    user = request.user
    context = {
        **admin_site.each_context(request),
        "title": "QuickBooks",
        "tabs": TABS,
        "tab": tab,
        "connection": connection,
        "connected": bool(connection and connection.is_connected),
        "can_manage": user.has_perm(MANAGE),
        "can_change": user.has_perm(CHANGE),
        "can_sync": user.has_perm(SYNC),
        "readiness": _readiness(connection),
        "environment": services.settings.QBO_ENVIRONMENT,
        "other_connections": Connection.objects.exclude(pk=getattr(connection, "pk", None)),
    }
    if connection is not None:
        context.update(_sync_state(connection))
        builder = {
            "configuration": _configuration_context,
            "journals": _journals_context,
            "mapping": _mapping_context,
            "items": _items_context,
            "history": _history_context,
            "conflicts": _conflicts_context,
        }.get(tab)
        if builder is not None:
            context.update(builder(request, connection))
    context.update(overrides or {})
    if context.get("sync_running") and not context.get("auto_refresh"):
        # The tab does not refresh itself (as the history tab does): a script watches the
        # run and brings Sync back when it ends, keeping what staff typed in its forms.
        context["sync_watch"] = {
            "url": reverse("admin:quickbooks_sync_state"),
            "interval": SYNC_WATCH_INTERVAL_MS,
            "reload": request.method == "GET",
        }
    return TemplateResponse(request, "admin/quickbooks/settings.html", context, status=status)


def quickbooks_sync_state(request, admin_site):
    """JSON for the settings tabs' script while a run goes (``sync_watch.js``): whether a
    sync of the company is still running, and the Sync button as it reads now (empty for
    those who may not sync)."""
    _require(request, VIEW, "view the QuickBooks settings")
    connection = selectors.connection_current()
    state = _sync_state(connection) if connection is not None else {"sync_running": False}
    button = ""
    if request.user.has_perm(SYNC):
        button = render_to_string(
            "admin/quickbooks/sync_button.html",
            {
                **state,
                "connection": connection,
                "readiness": _readiness(connection),
                "can_change": request.user.has_perm(CHANGE),
            },
            request=request,
        )
    return JsonResponse({"running": state["sync_running"], "button": button})


def _readiness(connection) -> list[dict]:
    """What is missing before a sync can run, each with the tab that fixes it."""
    return [
        {"message": message, "tab": key, "url": _tab_url(key), "label": dict(TABS)[key]}
        for message, key in configuration.readiness(connection)
    ]


def _sync_state(connection) -> dict:
    """Whether sync was started for the company, and the run going now (for the button)."""
    running = lock_held(connection=connection)
    return {
        "sync_started": connection.sync_started_at is not None,
        "sync_running": running,
        "running_run": sync_selectors.run_running(connection=connection) if running else None,
    }


def _configuration_context(request, connection):
    config = configuration.configuration_get(connection=connection)
    form = SyncConfigurationForm(instance=config)
    if not request.user.has_perm(CHANGE):
        for field in form.fields.values():
            field.disabled = True
    return {"config_form": form, "config": config}


def _journals_context(request, connection):
    choices = selectors.journal_choices(connection=connection)
    inventory = services.inventory_item_count()
    required = services.journals_required(inventory_items=inventory)
    return {
        "inventory_items": inventory,
        "journals": [
            {
                "field": field,
                "label": label,
                "options": choices[field],
                "selected": getattr(connection, f"{field}_id"),
                "missing_hint": services.JOURNAL_MISSING_HINT[field],
                "types": " or ".join(services.JOURNAL_ACCOUNT_TYPES[field]),
                "required": field in required,
            }
            for field, label in (
                ("income_account", "Income"),
                ("expense_account", "Expense"),
                ("asset_account", "Inventory Asset"),
            )
        ],
        "tax_codes": list(connection.tax_codes.filter(active=True)),
    }


def _mapping_context(request, connection):
    sub = request.GET.get("sub", "tax")
    if sub not in dict(MAPPING_SUBTABS):
        sub = "tax"
    context = {"subtabs": MAPPING_SUBTABS, "sub": sub}
    if sub == "tax":
        mapped = sync_selectors.tax_mapping_codes(connection=connection)
        context["tax_codes"] = list(connection.tax_codes.filter(active=True))
        mismatches = configuration.tax_rate_mismatches(connection=connection)
        context["tax_rows"] = [
            {"rate": rate, "selected": mapped.get(rate.pk), "mismatch": mismatches.get(rate.pk)}
            for rate in TaxRate.objects.order_by("-active", "name")
        ]
    else:
        current = configuration.field_mappings_current(connection=connection)
        context["field_rows"] = _field_rows(connection, current, errors={})
        context["directions"] = FieldMapping.Direction.choices
    return context


def _field_rows(connection, values: dict[str, tuple[str, str]], *, errors: dict[str, str]):
    custom = connection.custom_fields or {}
    return [
        {
            "field": field,
            "choices": fieldmap.qbo_choices(field, custom),
            "qbo_field": values.get(field.name, (field.default, "both"))[0],
            "direction": values.get(field.name, (field.default, "both"))[1],
            "default_label": fieldmap.QBO_FIELD_LABELS.get(field.default, "not mapped"),
            "error": errors.get(field.name, ""),
        }
        for field in fieldmap.LOCAL_FIELDS
    ]


def _items_context(request, connection):
    items = sync_selectors.items_with_bindings(connection=connection)
    page = Paginator(items, 50).get_page(request.GET.get("page"))
    for item in page.object_list:
        item.qbo_record = item.qbo_records[0] if item.qbo_records else None
    return {"items_page": page}


def _history_context(request, connection):
    page = Paginator(sync_selectors.runs_for(connection=connection), 25).get_page(
        request.GET.get("page")
    )
    waiting = False
    since = request.GET.get("queued")
    if since and page.number == 1:
        try:
            queued_at = datetime.fromtimestamp(float(since), tz=UTC)
        except (ValueError, OverflowError, OSError):
            queued_at = None
        if queued_at and timezone.now() - queued_at < QUEUED_WAIT:
            # Runs are created when the worker picks the task up; until then, keep looking.
            waiting = sync_selectors.waiting_for_worker(connection=connection, queued_at=queued_at)
        elif queued_at:
            waiting = None  # queued a while ago and never started: say so
    active = any(run.status in ACTIVE_RUN for run in page.object_list)
    return {
        "runs_page": page,
        "waiting_for_worker": waiting,
        "auto_refresh": bool(active or waiting),
    }


def _conflicts_context(request, connection):
    records = sync_selectors.conflicts_for(connection=connection)
    clashes = sync_selectors.number_clashes_for(connection=connection)
    return {
        "conflicts": [_conflict_view(record) for record in records],
        "clashes": [_clash_view(record) for record in clashes],
    }


def _clash_view(record) -> dict:
    """A held QuickBooks invoice and the portal invoice that has its number."""
    holder = Invoice.objects.filter(number=record.qbo_doc_number).first()
    return {"record": record, "holder": holder, "form": RenumberForm(prefix=f"clash-{record.pk}")}


class RenumberForm(forms.Form):
    number = forms.CharField(
        label="New number for the portal's invoice",
        max_length=Invoice._meta.get_field("number").max_length,
        strip=True,
    )

    def clean_number(self):
        number = self.cleaned_data["number"]
        if Invoice.objects.filter(number=number).exists():
            raise forms.ValidationError(
                f"Number {number} is taken in the portal too; choose another."
            )
        return number


def _conflict_view(record) -> dict:
    portal = record.conflict_portal or {}
    qbo = record.conflict_qbo or {}
    labels = {f.name: f.label for f in fieldmap.LOCAL_FIELDS}
    labels.update({"tax_code": "Tax code", "void": "Void", "name": "Name"})
    keys = list(portal) + [k for k in qbo if k not in portal]
    rows = []
    for key in keys:
        left, right = portal.get(key), qbo.get(key)
        rows.append(
            {
                "field": labels.get(key, key.replace("_", " ").capitalize()),
                "portal": _plain(left),
                "qbo": _plain(right),
                "differs": left != right,
            }
        )
    return {"record": record, "rows": rows}


def _plain(value) -> str:
    """A neutral value as staff read it: lines one per row, empty as a dash."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "\n".join(_plain(v) for v in value) or "-"
    if isinstance(value, dict):
        if "item" in value:
            tax = ", taxable" if value.get("taxable") else ""
            return (
                f"{value.get('quantity', '')} x {value.get('item', '')} @ "
                f"{value.get('unit_price', '')} = {value.get('amount', '')}{tax}"
                + (f" ({value['description']})" if value.get("description") else "")
            )
        return ", ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    return str(value)


# --- Connection and journals (connect flow lives in integrations.services) -------------------


def _current_or_404(request) -> Connection | None:
    connection = selectors.connection_current()
    if connection is None:
        messages.error(request, "No QuickBooks company is connected yet; press Connect first.")
    return connection


def quickbooks_connect(request, admin_site):
    _require(request, MANAGE, "connect QuickBooks")
    return redirect(services.connect_start(request=request))


def _linked(connection) -> dict[str, int]:
    return sync_selectors.linked_counts(connection=connection)


@require_http_methods(["GET", "POST"])
def quickbooks_disconnect(request, admin_site):
    """GET: what disconnecting stops and keeps, to confirm. POST: disconnect."""
    _require(request, MANAGE, "disconnect QuickBooks")
    connection = _current_or_404(request)
    if request.method == "GET":
        if connection is None or connection.status == Connection.Status.DISCONNECTED:
            return redirect("admin:quickbooks")
        context = {
            **admin_site.each_context(request),
            "title": f"Disconnect from {connection}?",
            "connection": connection,
            "linked": _linked(connection),
            "cancel_url": _tab_url("connection"),
        }
        return TemplateResponse(request, "admin/quickbooks/disconnect.html", context)
    if connection is not None and connection.status != Connection.Status.DISCONNECTED:
        note = services.connection_disconnect(connection=connection)
        messages.success(
            request,
            f"Disconnected from {connection}. Mappings and sync history are kept for a reconnect.",
        )
        if note:
            messages.warning(request, note)
    return redirect("admin:quickbooks")


@require_http_methods(["GET", "POST"])
def quickbooks_switch(request, admin_site):
    """After signing in to another company than the one last connected: GET says which
    company was connected and which now, what is linked to the old one and what happens to
    it; POST ``confirm`` switches, ``keep`` changes nothing."""
    _require(request, MANAGE, "connect QuickBooks")
    pending = services.connect_switch_pending(request=request)
    if request.method == "GET":
        if pending is None:
            messages.error(request, services.SWITCH_EXPIRED)
            return redirect("admin:quickbooks")
        context = {
            **admin_site.each_context(request),
            "title": "Switch QuickBooks company?",
            "pending": pending,
            "previous": pending.previous,
            "linked": _linked(pending.previous),
            "known_linked": _linked(pending.known) if pending.known else None,
        }
        return TemplateResponse(request, "admin/quickbooks/switch.html", context)
    if request.POST.get("choice") == "confirm":
        try:
            connection, created, note = services.connect_switch_confirm(request=request)
        except services.ConnectError as exc:
            messages.error(request, str(exc))
            return redirect("admin:quickbooks")
        previous = pending.previous if pending else None
        verb = "Connected to" if created else "Reconnected to"
        name = connection.company_name or f"with ID {connection.realm_id}"
        messages.success(request, f"{verb} QuickBooks company {name}.")
        if previous is not None:
            messages.info(
                request,
                f"Disconnected from {previous}: its linked records stay linked to it and are "
                f"not sent to {connection}. Set {connection} up on the tabs below; nothing "
                "syncs with it until a Sync administrator presses Sync now.",
            )
        if note:
            messages.warning(request, note)
        return redirect("admin:quickbooks")
    kept = services.connect_switch_decline(request=request)
    messages.info(
        request,
        f"Nothing changed: Ledgerlink stays with {kept}, as it was. The sign-in to the other "
        "company was withdrawn."
        if kept is not None
        else "Nothing changed.",
    )
    return redirect("admin:quickbooks")


@require_POST
def quickbooks_fetch_accounts(request, admin_site):
    _require(request, CHANGE, "fetch from QuickBooks")
    connection = _current_or_404(request)
    if connection is None:
        return redirect("admin:quickbooks")
    try:
        accounts = services.accounts_fetch(connection=connection)
        codes = services.tax_codes_fetch(connection=connection)
    except ReconnectRequired as exc:
        messages.error(request, exc.user_message)
    except QBOError as exc:
        messages.error(request, f"Fetching from QuickBooks failed: {exc.user_message}")
    else:
        messages.success(request, f"Accounts fetched: {accounts}. Tax codes fetched: {codes}.")
    return redirect(_tab_url("journals"))


@require_POST
def quickbooks_journals(request, admin_site):
    _require(request, CHANGE, "change the journals")
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
    return redirect(_tab_url("journals"))


# --- Configuration and mapping ---------------------------------------------------------------


@require_POST
def quickbooks_configuration(request, admin_site):
    _require(request, CHANGE, "change the sync configuration")
    connection = _current_or_404(request)
    if connection is None:
        return redirect("admin:quickbooks")
    form = SyncConfigurationForm(
        request.POST, instance=configuration.configuration_get(connection=connection)
    )
    if form.is_valid():
        try:
            configuration.configuration_save(connection=connection, **form.cleaned_data)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, "Configuration saved.")
            return redirect(_tab_url("configuration"))
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else "Configuration"
        messages.error(request, f"{label}: {' '.join(errors)}")
    request.GET = request.GET.copy()
    request.GET["tab"] = "configuration"
    return quickbooks_settings(request, admin_site, overrides={"config_form": form}, status=400)


@require_POST
def quickbooks_tax_mapping(request, admin_site):
    _require(request, CHANGE, "change the tax mapping")
    connection = _current_or_404(request)
    if connection is None:
        return redirect("admin:quickbooks")
    codes: dict[int, int | None] = {}
    for key, value in request.POST.items():
        if key.startswith("tax-") and key[4:].isdigit():
            codes[int(key[4:])] = int(value) if value.isdigit() else None
    try:
        counts = configuration.tax_mappings_save(connection=connection, codes=codes)
    except ValidationError as exc:
        for name, errors in exc.message_dict.items():
            messages.error(request, f"Tax rate {name}: {' '.join(errors)}")
    else:
        unmapped = configuration.tax_rates_unmapped(connection=connection)
        message = f"Tax mapping saved: {counts['mapped']} mapped."
        if unmapped:
            message += f" Still not mapped: {', '.join(r.name for r in unmapped)}."
            messages.warning(request, message)
        else:
            messages.success(request, message)
        for warning in configuration.tax_rate_mismatches(connection=connection).values():
            messages.warning(request, warning)
    return redirect(_tab_url("mapping", sub="tax"))


@require_POST
def quickbooks_field_mapping(request, admin_site):
    _require(request, CHANGE, "change the field mapping")
    connection = _current_or_404(request)
    if connection is None:
        return redirect("admin:quickbooks")
    rows = {}
    for field in fieldmap.LOCAL_FIELDS:
        qbo_field = request.POST.get(f"map-{field.name}-qbo", "")
        direction = request.POST.get(f"map-{field.name}-direction", FieldMapping.Direction.BOTH)
        rows[field.name] = (field.default if field.fixed else qbo_field, direction)
    try:
        configuration.field_mappings_save(connection=connection, rows=rows)
    except ValidationError as exc:
        errors = {name: " ".join(messages_) for name, messages_ in exc.message_dict.items()}
        for message in errors.values():
            messages.error(request, message)
        request.GET = request.GET.copy()
        request.GET["tab"], request.GET["sub"] = "mapping", "invoices"
        overrides = {
            "field_rows": _field_rows(connection, rows, errors=errors),
            "mapping_error_all": errors.get("__all__", ""),
        }
        return quickbooks_settings(request, admin_site, overrides=overrides, status=400)
    messages.success(request, "Invoice field mapping saved.")
    return redirect(_tab_url("mapping", sub="invoices"))


@require_POST
def quickbooks_field_mapping_defaults(request, admin_site):
    _require(request, CHANGE, "change the field mapping")
    connection = _current_or_404(request)
    if connection is None:
        return redirect("admin:quickbooks")
    configuration.field_mappings_restore_defaults(connection=connection)
    messages.success(request, "Invoice field mapping restored to the defaults.")
    return redirect(_tab_url("mapping", sub="invoices"))


@require_POST
def quickbooks_custom_fields(request, admin_site):
    _require(request, CHANGE, "fetch custom fields from QuickBooks")
    connection = _current_or_404(request)
    if connection is None:
        return redirect("admin:quickbooks")
    try:
        found = configuration.custom_fields_fetch(connection=connection)
    except ReconnectRequired as exc:
        messages.error(request, exc.user_message)
    except QBOError as exc:
        messages.error(request, f"Fetching custom fields failed: {exc.user_message}")
    else:
        if found:
            names = ", ".join(f"{n}: {label}" for n, label in found.items())
            messages.success(request, f"Custom fields in use in QuickBooks: {names}.")
        else:
            messages.warning(
                request,
                "QuickBooks has no text custom fields in use on sales forms. Turn them on in "
                "QuickBooks (Account and settings > Sales > Custom fields) and fetch again.",
            )
    return redirect(_tab_url("mapping", sub="invoices"))


# --- Sync, quick sync, history and conflicts -------------------------------------------------


def _queue(func: str, *args) -> None:
    # Looked up at call time so tests can capture what is queued.
    tasks.queue(func, *args)


def _queued_history_url(queued_at) -> str:
    return _tab_url("history", queued=f"{queued_at.timestamp():.3f}")


@require_POST
def quickbooks_sync(request, admin_site):
    """Sync now. The first press by a Sync administrator, with the set-up complete, also
    starts sync for the company: from then on the schedule, saves and webhooks sync it."""
    _require(request, SYNC, "start a sync")
    connection = selectors.connection_current()
    missing = configuration.readiness(connection)
    if missing:
        messages.error(request, "Sync cannot run yet: " + " ".join(m for m, _ in missing))
        return redirect(_tab_url(missing[0][1]))
    if lock_held(connection=connection):
        messages.error(request, RUNNING_NOW)
        return redirect(_tab_url("history"))
    started = False
    if connection.sync_started_at is None:
        if not request.user.has_perm(CHANGE):
            messages.error(request, f"Sync cannot run yet: {NOT_STARTED_BY_YOU}")
            return redirect(_tab_url("history"))
        try:
            started = configuration.sync_start(connection=connection, user=request.user)
        except ValidationError as exc:
            messages.error(request, "Sync cannot run yet: " + " ".join(exc.messages))
            return redirect(_tab_url("history"))
    queued_at = timezone.now()
    _queue("sync.tasks.run_sync", connection.pk, "both", "button")
    if started:
        messages.success(
            request,
            f"Sync started for {connection}: from now on the schedule, saving an invoice and "
            "QuickBooks' notifications keep it in step too.",
        )
    messages.success(
        request,
        "Sync queued: pushing portal changes to QuickBooks, then pulling QuickBooks' changes. "
        "Progress shows below.",
    )
    return redirect(_queued_history_url(queued_at))


@require_POST
def quickbooks_quick_sync(request, admin_site):
    _require(request, SYNC, "start a sync")
    connection = selectors.connection_current()
    missing = [
        (m, tab)
        for m, tab in configuration.readiness(connection)
        if tab != configuration.TAB_MAPPING  # items carry no tax code
    ]
    if missing:
        messages.error(request, "Quick sync cannot run yet: " + " ".join(m for m, _ in missing))
        return redirect(_tab_url("items"))
    if lock_held(connection=connection):
        messages.error(request, RUNNING_NOW)
        return redirect(_tab_url("items"))
    queued_at = timezone.now()
    _queue("sync.tasks.run_sync", connection.pk, "items", "button")
    messages.success(
        request, "Quick sync queued: portal items go to QuickBooks and QuickBooks items come back."
    )
    return redirect(_queued_history_url(queued_at))


def quickbooks_run(request, admin_site, run_id: int):
    _require(request, VIEW, "view the sync history")
    run = sync_selectors.run_get(run_id=run_id)
    if run is None:
        raise Http404("No such sync run.")
    page = Paginator(sync_selectors.run_events(run=run), 200).get_page(request.GET.get("page"))
    context = {
        **admin_site.each_context(request),
        "title": f"Sync run {run.pk}",
        "run": run,
        "events_page": page,
        "auto_refresh": run.status in ACTIVE_RUN,
        "history_url": _tab_url("history"),
    }
    return TemplateResponse(request, "admin/quickbooks/run.html", context)


@require_POST
def quickbooks_conflict_resolve(request, admin_site, record_id: int):
    _require(request, CHANGE, "resolve conflicts")
    record = sync_selectors.record_get(record_id=record_id)
    if record is None:
        raise Http404("No such sync record.")
    keep = request.POST.get("keep", "")
    if keep not in ("portal", "quickbooks"):
        messages.error(request, "Choose Keep portal or Keep QuickBooks.")
        return redirect(_tab_url("conflicts"))
    label = record.label
    if record.status != SyncRecord.Status.CONFLICT:
        messages.error(request, f"{label} is not in conflict any more.")
        return redirect(_tab_url("conflicts"))
    side = "the portal's" if keep == "portal" else "QuickBooks'"
    # Like every sync, the resolution runs in the worker; the history tab shows its run.
    tasks.queue("sync.tasks.resolve_conflict", record.pk, keep)
    messages.success(
        request, f"{label}: keeping {side} version. The result shows on the Sync history tab."
    )
    return redirect(_tab_url("conflicts"))


@require_POST
def quickbooks_clash_resolve(request, admin_site, record_id: int):
    """Link a held QuickBooks invoice and the portal invoice with its number as one, or give
    the portal's invoice a new number. Runs in the worker, like every sync."""
    _require(request, CHANGE, "settle invoice numbers")
    record = sync_selectors.record_get(record_id=record_id)
    if record is None:
        raise Http404("No such sync record.")
    if record.status != SyncRecord.Status.CLASH:
        messages.error(request, f"{record.label} is not held for its number any more.")
        return redirect(_tab_url("conflicts"))
    action = request.POST.get("action", "")
    if action == "link":
        tasks.queue("sync.tasks.resolve_number_clash", record.pk, "link")
        messages.success(
            request,
            f"{record.label}: linking it with portal invoice {record.qbo_doc_number} as one "
            "invoice, with QuickBooks' version. The result shows on the Sync history tab.",
        )
        return redirect(_tab_url("conflicts"))
    if action != "renumber":
        messages.error(request, "Choose Link as one invoice or Renumber the portal's invoice.")
        return redirect(_tab_url("conflicts"))
    form = RenumberForm(request.POST, prefix=f"clash-{record.pk}")
    if not form.is_valid():
        for error in form.errors.get("number", []):
            messages.error(request, f"{record.label}: {error}")
        return redirect(_tab_url("conflicts"))
    number = form.cleaned_data["number"]
    tasks.queue("sync.tasks.resolve_number_clash", record.pk, "renumber", number)
    messages.success(
        request,
        f"Portal invoice {record.qbo_doc_number} is being renumbered {number} and sent; "
        f"QuickBooks' invoice keeps number {record.qbo_doc_number}. The result shows on the "
        "Sync history tab.",
    )
    return redirect(_tab_url("conflicts"))


# --- Dashboard on the admin index ------------------------------------------------------------

CHART_DAYS = 30
CHART_SERIES = (
    # (SyncRun count, label, colour): the chart adds up the runs' own counts, so a day's
    # bars are what its runs say on the history tab.
    ("created", "Created", "#2e7d32"),
    ("updated", "Updated", "#1565c0"),
    ("failed", "Failed", "#c62828"),
    ("conflicts", "Conflicts", "#ad5a00"),
)


def dashboard_context(request) -> dict:
    """The admin index's dashboard: connection health, counts, failures and the chart."""
    connection = selectors.connection_current()
    context = {"connection": connection, "readiness": configuration.readiness(connection)}
    if connection is None:
        return context
    config = configuration.configuration_get(connection=connection)
    by_status = sync_selectors.invoice_status_counts(connection=connection)
    changelist = reverse("admin:portal_invoice_changelist")
    context["status_counts"] = [
        {
            "status": value,
            "label": label,
            "count": by_status.get(value, 0),
            "url": f"{changelist}?qbo_status={value}",
        }
        for value, label in SyncRecord.Status.choices
    ]
    context["linked_elsewhere"] = sync_selectors.invoices_linked_elsewhere(connection=connection)
    context["attention"] = sync_selectors.invoices_needing_attention(connection=connection)
    context["attention_total"] = sum(
        by_status.get(status, 0)
        for status in (
            SyncRecord.Status.FAILED,
            SyncRecord.Status.CONFLICT,
            SyncRecord.Status.DIFFERS,
        )
    )
    context["config"] = config
    context["last_run"] = sync_selectors.last_run(connection=connection)

    today = timezone.localdate()
    start = today - timedelta(days=CHART_DAYS - 1)
    start_at = timezone.make_aware(datetime.combine(start, datetime.min.time()))
    keys = [key for key, _label, _colour in CHART_SERIES]
    rows = sync_selectors.run_counts_per_day(connection=connection, since=start_at, counts=keys)
    days = [start + timedelta(days=i) for i in range(CHART_DAYS)]
    per_day = {day: dict.fromkeys(keys, 0) for day in days}
    for day, counts in rows:
        if day in per_day:
            per_day[day] = counts
    context["chart"] = outcomes_chart_svg(days=days, per_day=per_day)
    context["chart_totals"] = [
        (label, colour, sum(per_day[d][key] for d in days)) for key, label, colour in CHART_SERIES
    ]
    return context


def outcomes_chart_svg(*, days: list, per_day: dict) -> SafeString:
    """Stacked bars of sync outcomes per day, as inline SVG (no script, no external files).

    Numbers are formatted here; every text (labels, dates) goes through ``escape``.
    """
    width, height = 720, 220
    left, right, top, bottom = 36, 8, 12, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(per_day[d].values()) for d in days]
    peak = max([*totals, 1])
    step = _nice_step(peak)
    y_max = step * -(-peak // step)
    slot = plot_w / len(days)
    bar_w = max(2.0, slot * 0.7)
    parts = [
        f'<svg id="qbo-outcomes-chart" class="ll-chart" viewBox="0 0 {width} {height}" '
        'role="img" aria-labelledby="qbo-chart-title" preserveAspectRatio="xMidYMid meet" '
        'xmlns="http://www.w3.org/2000/svg">'
        f'<title id="qbo-chart-title">Sync outcomes per day, last {len(days)} days</title>'
    ]
    for tick in range(0, y_max + 1, step):
        y = top + plot_h - plot_h * tick / y_max
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ccc" '
            f'stroke-width="1"/><text x="{left - 4}" y="{y + 3:.1f}" font-size="10" '
            f'text-anchor="end" fill="currentColor">{tick}</text>'
        )
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h
        rects = []
        summary = []
        for key, label, colour in CHART_SERIES:
            n = per_day[day][key]
            summary.append(f"{n} {label.lower()}")
            if not n:
                continue
            h = plot_h * n / y_max
            y -= h
            rects.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{colour}"/>'
            )
        title = escape(f"{day.strftime('%d %b')}: {', '.join(summary)}")
        parts.append(
            f'<g class="ll-chart-day" data-day="{day.isoformat()}"><title>{title}</title>'
            f"{''.join(rects)}</g>"
        )
        if i % 5 == 0 or i == len(days) - 1:
            parts.append(
                f'<text x="{left + i * slot + slot / 2:.1f}" y="{top + plot_h + 14}" '
                f'font-size="10" text-anchor="middle" fill="currentColor">'
                f"{escape(day.strftime('%d %b'))}</text>"
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # numbers and escaped text only


def _nice_step(peak: int) -> int:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000):
        if peak / step <= 5:
            return step
    return 10 ** len(str(peak))
