"""CSV exports of the admin's lists (django-import-export, export only): the rows the list
shows, with its filters and search applied, in columns staff read.

Text cells that a spreadsheet would take for a formula (starting with =, +, -, @, a tab or a
carriage return) get a leading apostrophe, as OWASP advises against CSV injection; numbers
and dates are written as they are.
"""

from __future__ import annotations

from import_export import fields, resources, widgets

from integrations.admin_text import linked_elsewhere_label, linked_elsewhere_note
from portal.models import Invoice
from sync.models import SyncRecord
from sync.selectors import invoice_binding, invoice_link_elsewhere

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
DATE = widgets.DateWidget(format="%Y-%m-%d")
DATETIME = widgets.DateTimeWidget(format="%Y-%m-%d %H:%M:%S")
SYNC_STATUS_LABELS = dict(SyncRecord.Status.choices)


class TextWidget(widgets.CharWidget):
    """Text, never read as a formula by a spreadsheet."""

    def render(self, value, obj=None, **kwargs):
        text = super().render(value, **kwargs)
        return f"'{text}" if text.startswith(FORMULA_START) else text


def text(attribute: str | None, column: str) -> fields.Field:
    return fields.Field(attribute=attribute, column_name=column, widget=TextWidget())


def money(attribute: str, column: str) -> fields.Field:
    return fields.Field(attribute=attribute, column_name=column, widget=widgets.DecimalWidget())


class InvoiceResource(resources.ModelResource):
    """Invoices with their totals and QuickBooks sync state (``InvoiceAdmin.get_queryset``
    annotates the status and prefetches the links: ``sync.selectors``)."""

    number = text("number", "Number")
    customer = text("customer__display_name", "Customer")
    status = text(None, "Status")
    issue_date = fields.Field(attribute="issue_date", column_name="Issue date", widget=DATE)
    due_date = fields.Field(attribute="due_date", column_name="Due date", widget=DATE)
    currency = text("currency", "Currency")
    subtotal = money("subtotal", "Subtotal")
    tax_total = money("tax_total", "Tax")
    total = money("total", "Total")
    amount_paid = money("amount_paid", "Amount paid")
    balance_due = money("balance_due", "Balance due")
    qbo_status = text(None, "QuickBooks sync status")
    qbo_details = text(None, "QuickBooks sync details")
    qbo_number = text(None, "QuickBooks no.")

    class Meta:
        model = Invoice
        fields = (
            "number",
            "customer",
            "status",
            "issue_date",
            "due_date",
            "currency",
            "subtotal",
            "tax_total",
            "total",
            "amount_paid",
            "balance_due",
            "qbo_status",
            "qbo_details",
            "qbo_number",
        )
        export_order = fields

    @staticmethod
    def _record(invoice: Invoice) -> SyncRecord | None:
        return invoice_binding(invoice)

    @staticmethod
    def _elsewhere(invoice: Invoice) -> SyncRecord | None:
        return invoice_link_elsewhere(invoice)

    def dehydrate_status(self, invoice: Invoice) -> str:
        return invoice.get_status_display()

    def dehydrate_qbo_status(self, invoice: Invoice) -> str:
        elsewhere = self._elsewhere(invoice)
        if elsewhere is not None:
            return TextWidget().render(linked_elsewhere_label(elsewhere))
        status = getattr(invoice, "qbo_status", None) or SyncRecord.Status.NOT_SYNCED
        label = SYNC_STATUS_LABELS.get(status, status)
        record = self._record(invoice)
        return f"{label} (unconfirmed)" if record is not None and record.uncertain else label

    def dehydrate_qbo_details(self, invoice: Invoice) -> str:
        elsewhere = self._elsewhere(invoice)
        if elsewhere is not None:
            return TextWidget().render(linked_elsewhere_note(elsewhere))
        record = self._record(invoice)
        return TextWidget().render(record.details if record else "")

    def dehydrate_qbo_number(self, invoice: Invoice) -> str:
        record = self._record(invoice)
        return TextWidget().render(record.qbo_doc_number if record else "")


class SyncRecordResource(resources.ModelResource):
    """Sync records (bindings) with their status and reason, as the Sync records list."""

    record = text(None, "Record")
    object_type = text(None, "Kind")
    status = text(None, "Status")
    details = text("details", "Reason")
    qbo_id = text("qbo_id", "QuickBooks ID")
    qbo_doc_number = text("qbo_doc_number", "QuickBooks no.")
    error_code = text("error_code", "QuickBooks error code")
    error_element = text("error_element", "QuickBooks field")
    intuit_tid = text("intuit_tid", "Intuit reference")
    uncertain = fields.Field(
        attribute="uncertain", column_name="Unconfirmed", widget=widgets.BooleanWidget()
    )
    attempts = fields.Field(attribute="attempts", column_name="Attempts")
    next_retry_at = fields.Field(
        attribute="next_retry_at", column_name="Next retry", widget=DATETIME
    )
    last_pushed_at = fields.Field(
        attribute="last_pushed_at", column_name="Last pushed", widget=DATETIME
    )
    last_pulled_at = fields.Field(
        attribute="last_pulled_at", column_name="Last pulled", widget=DATETIME
    )
    updated_at = fields.Field(attribute="updated_at", column_name="Updated", widget=DATETIME)

    class Meta:
        model = SyncRecord
        fields = (
            "record",
            "object_type",
            "status",
            "details",
            "qbo_id",
            "qbo_doc_number",
            "error_code",
            "error_element",
            "intuit_tid",
            "uncertain",
            "attempts",
            "next_retry_at",
            "last_pushed_at",
            "last_pulled_at",
            "updated_at",
        )
        export_order = fields

    def dehydrate_record(self, record: SyncRecord) -> str:
        return TextWidget().render(record.label)

    def dehydrate_object_type(self, record: SyncRecord) -> str:
        return record.get_object_type_display()

    def dehydrate_status(self, record: SyncRecord) -> str:
        return record.get_status_display()
