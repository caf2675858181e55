"""Admin for the portal's invoicing records and staff accounts."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import PAGE_VAR
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count
from django.db.models.functions import Lower
from django.http import Http404, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator, capfirst
from django.views.decorators.http import require_POST
from import_export.admin import ExportMixin
from import_export.formats import base_formats

from integrations.admin_text import (
    InvoiceTaxNotes,
    TaxRateMappingNotes,
    linked_elsewhere_label,
    linked_elsewhere_note,
)
from integrations.quickbooks.endpoints import endpoints_for
from portal.admin_site import qbo_connection
from portal.exports import InvoiceResource
from portal.forms import InvoiceLineForm
from portal.models import Customer, Invoice, InvoiceLine, Item, TaxRate, User
from portal.selectors import (
    HistoryEntry,
    invoice_number_next,
    item_line_defaults,
    record_history,
)
from sync import tasks
from sync.models import SyncEvent, SyncRecord
from sync.selectors import (
    LINKED_ELSEWHERE,
    invoice_binding,
    invoice_link_elsewhere,
    invoices_with_sync_state,
)
from sync.services import records_retry

SYNC_STATUS_LABELS = dict(SyncRecord.Status.choices)
# How an invoice's History page names the sync's events about it.
SYNC_EVENT_ACTIONS = {
    "created": "Sent to QuickBooks (created)",
    "updated": "Sent to QuickBooks (updated)",
    "voided": "Sent to QuickBooks (voided)",
    "failed": "Not sent: QuickBooks sync failed",
    "skipped": "Not sent",
    "uncertain": "Sent, answer not received",
    "conflict": "Held: changed on both sides",
    "checked": "Checked against QuickBooks",
    "linked": "Linked to a QuickBooks invoice",
}


class SyncRecordsGoWithTheirObject:
    """Deleting an invoice, customer or item deletes its sync records with it.

    Sync records are read-only in the admin (nobody deletes one on its own), so Django would
    otherwise refuse the delete for lack of the sync record delete permission.
    """

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed = set(perms_needed) - {str(SyncRecord._meta.verbose_name)}
        # What is linked to QuickBooks stays: deleting it here would leave it there, and the
        # next pull would bring it back. Invoices are voided, customers and items made
        # inactive, which both sides then agree on.
        field = self.model._meta.model_name
        linked = SyncRecord.objects.filter(**{f"{field}__in": list(objs)}).exclude(qbo_id="")
        instead = "void it instead" if field == "invoice" else "make it inactive instead"
        for record in linked.select_related(field):
            protected = [
                *protected,
                f"{record.label}: it is in QuickBooks, so it cannot be deleted here; {instead}.",
            ]
        return deleted, counts, perms_needed, protected


class ChangeHistoryAdmin:
    """The History page lists who or what changed which field, and when (``portal.history``),
    newest first: staff by name, the sync by its run ("QuickBooks sync (pull, run 12)")."""

    history_lines: str | None = None  # the related lines listed with the record
    history_per_page = 50

    def history_entries(self, obj) -> list[HistoryEntry]:
        return record_history(obj=obj, lines=self.history_lines)

    def history_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        entries = sorted(self.history_entries(obj), key=lambda e: e.when, reverse=True)
        paginator = Paginator(entries, self.history_per_page)
        page = paginator.get_page(request.GET.get(PAGE_VAR, 1))
        context = {
            **self.admin_site.each_context(request),
            "title": f"History: {obj}",
            "subtitle": None,
            "entries": page,
            "page_range": paginator.get_elided_page_range(page.number),
            "page_var": PAGE_VAR,
            "pagination_required": paginator.num_pages > 1,
            "module_name": str(capfirst(self.opts.verbose_name_plural)),
            "object": obj,
            "opts": self.opts,
            "preserved_filters": self.get_preserved_filters(request),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/portal/change_history.html", context)


class CsvExportAdmin(ExportMixin):
    """An *Export CSV* button on the list: the rows it shows (its filters, search and order),
    downloaded at once for anyone who may view them (``IMPORT_EXPORT_EXPORT_PERMISSION_CODE``)."""

    skip_export_form = True
    formats = [base_formats.CSV]

    def get_export_filename(self, request, queryset, file_format):
        name = str(self.opts.verbose_name_plural).replace(" ", "-")
        return f"{name}-{timezone.localtime():%Y-%m-%d-%H%M}.{file_format.get_extension()}"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ["username", "email", "first_name", "last_name", "is_staff", "roles"]
    list_filter = ["is_staff", "is_superuser", "is_active", "groups"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="Roles")
    def roles(self, obj: User) -> str:
        return ", ".join(g.name for g in obj.groups.all()) or "-"


@admin.register(Customer)
class CustomerAdmin(ChangeHistoryAdmin, SyncRecordsGoWithTheirObject, admin.ModelAdmin):
    list_display = [
        "display_name",
        "parent",
        "company_name",
        "email",
        "phone",
        "invoice_count",
        "active",
    ]
    list_filter = ["active"]
    list_select_related = ["parent"]
    readonly_fields = ["parent"]
    # The invoice-count annotation groups rows, which drops the model's default ordering.
    ordering = [Lower("display_name")]
    search_fields = ["display_name", "company_name", "email"]
    fieldsets = [
        (None, {"fields": ["display_name", "parent", "company_name", "email", "phone", "active"]}),
        (
            "Billing address",
            {
                "fields": [
                    "billing_line1",
                    "billing_line2",
                    ("billing_city", "billing_region"),
                    ("billing_postal_code", "billing_country"),
                ]
            },
        ),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_invoice_count=Count("invoices"))

    @admin.display(description="Invoices", ordering="_invoice_count")
    def invoice_count(self, obj: Customer) -> int:
        return obj._invoice_count


@admin.register(Item)
class ItemAdmin(ChangeHistoryAdmin, SyncRecordsGoWithTheirObject, admin.ModelAdmin):
    list_display = ["name", "sku", "type", "sales_price", "quantity_on_hand", "taxable", "active"]
    list_filter = ["type", "taxable", "active"]
    search_fields = ["name", "sku", "description"]
    fields = [
        ("name", "sku"),
        "type",
        "description",
        ("sales_price", "purchase_cost"),
        "quantity_on_hand",
        ("taxable", "active"),
    ]

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/defaults/",
                self.admin_site.admin_view(self.line_defaults_view),
                name="{}_{}_defaults".format(*info),
            ),
            *super().get_urls(),
        ]

    def line_defaults_view(self, request, object_id):
        """What choosing the item fills into an invoice line, as JSON (the invoice form's
        script asks for it); for those who may view items."""
        if not self.has_view_permission(request):
            raise PermissionDenied("You may not view items.")
        item = self.get_object(request, unquote(object_id))
        if item is None:
            raise Http404("No such item.")
        return JsonResponse(item_line_defaults(item=item))


@admin.register(TaxRate)
class TaxRateAdmin(TaxRateMappingNotes, admin.ModelAdmin):
    list_display = ["name", "percent", "active"]
    list_filter = ["active"]
    search_fields = ["name"]


class InvoiceLineFormSet(forms.BaseInlineFormSet):
    def save_new(self, form, commit=True):
        # A new line goes after the invoice's last line (pulled lines are numbered 1..n).
        last = max((line.position for line in self.instance.lines.all()), default=0)
        form.instance.position = last + 1
        return super().save_new(form, commit=commit)

    def clean(self):
        super().clean()
        for form in self.forms:
            if self.can_delete and self._should_delete_form(form) and not form.instance.editable:
                raise forms.ValidationError(
                    f"The {form.instance.get_kind_display().lower()} line comes from QuickBooks "
                    "and is kept as QuickBooks has it; remove it in QuickBooks."
                )


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    form = InvoiceLineForm
    formset = InvoiceLineFormSet
    extra = 1
    fields = ["line_kind", "item", "description", "quantity", "unit_price", "tax_rate", "amount"]
    readonly_fields = ["line_kind", "amount"]
    autocomplete_fields = ["item"]

    @admin.display(description="Kind")
    def line_kind(self, line: InvoiceLine) -> str:
        # data-kind tells the totals script how the line counts (a discount subtracts).
        if line.pk is None or line.editable:
            return format_html('<span data-kind="{}">{}</span>', line.kind, line.get_kind_display())
        return format_html(
            '<span data-kind="{}">{}</span><div class="ll-note">From QuickBooks, kept as it is '
            "there; edit it in QuickBooks.</div>",
            line.kind,
            line.get_kind_display(),
        )


def _queue(func: str, *args) -> None:
    # Looked up at call time so tests can capture what is queued.
    tasks.queue(func, *args)


class SyncStatusFilter(admin.SimpleListFilter):
    title = "QuickBooks sync status"
    parameter_name = "qbo_status"

    def lookups(self, request, model_admin):
        lookups = list(SYNC_STATUS_LABELS.items())
        if qbo_connection(request) is not None:
            lookups.append((LINKED_ELSEWHERE, "Linked to another company"))
        return lookups

    def queryset(self, request, queryset):
        if self.value() in SYNC_STATUS_LABELS or self.value() == LINKED_ELSEWHERE:
            # qbo_status is annotated by InvoiceAdmin.get_queryset (sync.selectors).
            return queryset.filter(qbo_status=self.value())
        return queryset


@admin.register(Invoice)
class InvoiceAdmin(
    ChangeHistoryAdmin,
    CsvExportAdmin,
    SyncRecordsGoWithTheirObject,
    InvoiceTaxNotes,
    admin.ModelAdmin,
):
    # The key columns (sync status, QuickBooks no., status, total) come first, so they show
    # without scrolling at 1280 px beside the filters; the rest scroll sideways after them.
    list_display = [
        "number",
        "customer",
        "qbo_sync_status",
        "qbo_number",
        "status",
        "total",
        "qbo_sync_details",
        "qbo_link",
        "issue_date",
        "due_date",
        "currency",
    ]
    list_filter = [SyncStatusFilter, "status", "issue_date", "currency"]
    list_select_related = ["customer"]
    search_fields = ["number", "customer__display_name", "billing_email"]
    date_hierarchy = "issue_date"
    autocomplete_fields = ["customer"]
    inlines = [InvoiceLineInline]
    readonly_fields = ["subtotal", "tax_total", "total", "amount_paid", "balance_due"]
    fieldsets = [
        (None, {"fields": [("number", "status"), "customer", ("issue_date", "due_date")]}),
        (
            "Billing",
            {"fields": ["currency", "billing_email", "reference", "customer_memo", "private_note"]},
        ),
        ("Totals", {"fields": ["subtotal", "tax_total", "total", "amount_paid", "balance_due"]}),
    ]
    actions = ["sync_now", "retry_failed"]
    change_form_template = "admin/portal/invoice/change_form.html"
    history_lines = "lines"
    resource_classes = [InvoiceResource]

    def history_entries(self, obj: Invoice) -> list[HistoryEntry]:
        """The invoice's and its lines' changes, and what the sync did with it: each event
        of its binding (sent, refused, held...), linked to its run. A pull's own changes are
        listed field by field, so its "updated from QuickBooks" event is left out."""
        entries = super().history_entries(obj)
        events = (
            SyncEvent.objects.filter(record__invoice=obj)
            .exclude(action="pulled")
            .select_related("run")
        )
        for event in events:
            entries.append(
                HistoryEntry(
                    when=event.created_at,
                    by=f"QuickBooks sync (run {event.run_id})",
                    action=SYNC_EVENT_ACTIONS.get(event.action, "QuickBooks sync"),
                    changes=[],
                    url=reverse("admin:quickbooks_run", args=[event.run_id]),
                    note=event.message,
                )
            )
        return entries

    class Media:
        # Fills a line from its item and updates amounts and totals as staff type.
        js = ["portal/invoice_form.js"]

    def get_changeform_initial_data(self, request):
        return {"number": invoice_number_next(), **super().get_changeform_initial_data(request)}

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None and "number" in form.base_fields:
            form.base_fields["number"].help_text = (
                "Suggested: the next number after the highest one ending in digits "
                "(INV-1006 is followed by INV-1007). Change it if needed."
            )
        return form

    def get_queryset(self, request):
        return invoices_with_sync_state(
            super().get_queryset(request), connection=qbo_connection(request)
        )

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Totals follow the lines; an invoice whose lines were not touched keeps its totals
        # (QuickBooks' own, for an invoice that came from or went to QuickBooks).
        if not change or any(formset.has_changed() for formset in formsets):
            form.instance.refresh_totals()
        for warning in form.instance.warnings():
            self.message_user(request, f"Saved, with a warning: {warning}", messages.WARNING)

    # --- QuickBooks columns ---------------------------------------------------------------

    @staticmethod
    def qbo_record(obj: Invoice):
        return invoice_binding(obj)

    @staticmethod
    def qbo_record_elsewhere(obj: Invoice):
        return invoice_link_elsewhere(obj)

    @admin.display(description="QuickBooks Sync Status", ordering="qbo_status")
    def qbo_sync_status(self, obj: Invoice) -> str:
        status = getattr(obj, "qbo_status", None) or "not_synced"
        elsewhere = self.qbo_record_elsewhere(obj)
        if elsewhere is not None:
            return format_html(
                '<span class="ll-badge {}" title="{}">{}</span>',
                status,
                linked_elsewhere_note(elsewhere),
                linked_elsewhere_label(elsewhere),
            )
        record = self.qbo_record(obj)
        label = SYNC_STATUS_LABELS.get(status, status)
        if record is not None and record.uncertain:
            label += " (unconfirmed)"
        return format_html('<span class="ll-badge {}">{}</span>', status, label)

    @admin.display(description="QuickBooks Sync Details")
    def qbo_sync_details(self, obj: Invoice) -> str:
        elsewhere = self.qbo_record_elsewhere(obj)
        if elsewhere is not None:
            return format_html(
                '<span title="{}">Left out of this company\'s pushes; Sync now sends it on '
                "purpose.</span>",
                linked_elsewhere_note(elsewhere),
            )
        record = self.qbo_record(obj)
        if record is None or not record.details:
            return "-"
        return format_html(
            '<span title="{}">{}</span>',
            record.details,
            Truncator(record.details).chars(80),
        )

    @admin.display(description="QuickBooks no.")
    def qbo_number(self, obj: Invoice) -> str:
        record = self.qbo_record(obj)
        return (record.qbo_doc_number if record else "") or "-"

    @admin.display(description="Open in QuickBooks")
    def qbo_link(self, obj: Invoice) -> str:
        record = self.qbo_record(obj)
        url = self._qbo_url(record.connection if record else None, record)
        if not url:
            return "-"
        return format_html(
            '<a href="{}" target="_blank" rel="noopener noreferrer">Open in QuickBooks</a>', url
        )

    @staticmethod
    def _qbo_url(connection, record) -> str:
        if connection is None or record is None or not record.qbo_id:
            return ""
        try:
            endpoints = endpoints_for(connection.environment)
        except ValueError:
            return ""
        return endpoints.invoice_web_url(connection.realm_id, record.qbo_id)

    # --- Sync actions ---------------------------------------------------------------------

    def has_sync_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("portal.sync_invoice")

    def _connected_or_message(self, request):
        connection = qbo_connection(request)
        if connection is None or not connection.is_connected:
            self.message_user(
                request,
                "QuickBooks is not connected: connect it on the QuickBooks page first.",
                messages.ERROR,
            )
            return None
        return connection

    @admin.action(description="Sync now with QuickBooks", permissions=["sync"])
    def sync_now(self, request, queryset):
        connection = self._connected_or_message(request)
        if connection is None:
            return None
        ids = sorted(queryset.values_list("pk", flat=True))
        _queue("sync.tasks.push_invoices", connection.pk, ids, "button")
        self.message_user(
            request,
            f"Queued {len(ids)} invoice{'s' if len(ids) != 1 else ''} to sync with QuickBooks. "
            "Their status updates when the sync has run.",
            messages.SUCCESS,
        )
        return None

    @admin.action(description="Retry failed sync", permissions=["sync"])
    def retry_failed(self, request, queryset):
        connection = self._connected_or_message(request)
        if connection is None:
            return None
        selected = queryset.count()
        records = list(
            SyncRecord.objects.filter(
                connection=connection,
                invoice__in=queryset.values("pk"),
                status__in=[SyncRecord.Status.FAILED, SyncRecord.Status.SKIPPED],
            )
        )
        retried = records_retry(records=records)
        if retried:
            ids = sorted(r.invoice_id for r in records)
            _queue("sync.tasks.push_invoices", connection.pk, ids, "retry")
        skipped = selected - retried
        message = f"Retrying {retried} failed invoice{'s' if retried != 1 else ''}."
        if skipped:
            message += f" {skipped} of the {selected} selected had not failed and were left alone."
        self.message_user(request, message, messages.SUCCESS if retried else messages.WARNING)
        return None

    # --- The QuickBooks panel on the invoice page ------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/quickbooks/sync/",
                self.admin_site.admin_view(require_POST(self.qbo_sync_view)),
                name="{}_{}_qbo_sync".format(*info),
            ),
            path(
                "<path:object_id>/quickbooks/retry/",
                self.admin_site.admin_view(require_POST(self.qbo_retry_view)),
                name="{}_{}_qbo_retry".format(*info),
            ),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["invoice_form_config"] = {
            # The item's URL with 0 for its id; the script puts the chosen item's id in.
            "itemDefaultsUrl": reverse("admin:portal_item_defaults", args=[0]),
            "taxRates": {
                str(pk): f"{percent:f}"
                for pk, percent in TaxRate.objects.values_list("pk", "percent")
            },
        }
        if obj is not None and obj.pk:
            connection = qbo_connection(request)
            record = self.qbo_record(obj)
            status = getattr(obj, "qbo_status", None) or "not_synced"
            elsewhere = self.qbo_record_elsewhere(obj)
            context["qbo"] = {
                "connection": connection,
                "record": record,
                "status": status,
                "status_label": (
                    linked_elsewhere_label(elsewhere)
                    if elsewhere is not None
                    else SYNC_STATUS_LABELS.get(status)
                ),
                "elsewhere_note": (
                    linked_elsewhere_note(elsewhere, connection=connection) if elsewhere else ""
                ),
                "url": self._qbo_url(connection, record),
                "can_sync": self.has_sync_permission(request)
                and bool(connection and connection.is_connected),
                "can_retry": record is not None and record.status in ("failed", "skipped"),
                "history_url": reverse("admin:quickbooks") + "?tab=history",
                "conflicts_url": reverse("admin:quickbooks") + "?tab=conflicts",
            }
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _sync_target(self, request, object_id):
        if not self.has_sync_permission(request):
            raise PermissionDenied("You may not sync invoices.")
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("No such invoice.")
        return obj

    def _change_url(self, obj) -> str:
        return reverse("admin:portal_invoice_change", args=[obj.pk])

    def qbo_sync_view(self, request, object_id):
        obj = self._sync_target(request, object_id)
        connection = self._connected_or_message(request)
        if connection is not None:
            _queue("sync.tasks.push_invoices", connection.pk, [obj.pk], "button")
            self.log_change(request, obj, "Queued a sync with QuickBooks.")
            self.message_user(
                request,
                f"{obj} is queued to sync with QuickBooks; its status below updates when done.",
                messages.SUCCESS,
            )
        return redirect(self._change_url(obj))

    def qbo_retry_view(self, request, object_id):
        obj = self._sync_target(request, object_id)
        connection = self._connected_or_message(request)
        if connection is not None:
            record = self.qbo_record(obj)
            if record is None or not records_retry(records=[record]):
                self.message_user(
                    request, f"{obj} has not failed: there is nothing to retry.", messages.WARNING
                )
            else:
                _queue("sync.tasks.push_invoices", connection.pk, [obj.pk], "retry")
                self.log_change(request, obj, "Queued a retry of the QuickBooks sync.")
                self.message_user(
                    request, f"{obj}: retry queued with QuickBooks.", messages.SUCCESS
                )
        return redirect(self._change_url(obj))
