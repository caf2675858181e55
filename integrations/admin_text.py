"""What the admin says about QuickBooks outside its own page: reasons with the settings tab
they name linked, and the notes the portal's own pages show about unmapped tax rates.

Everything here escapes the text it is given before adding links, so a reason quoting a
customer's or an invoice's own text stays text.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.urls import reverse
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe

from integrations.models import Connection
from integrations.selectors import connection_current
from portal.models import Invoice, TaxRate
from sync.configuration import tax_rates_unmapped
from sync.models import SyncRecord, TaxMapping

# The settings tabs reasons name, as they name them (sync/ and integrations/ messages), and
# the page each opens: (words, tab, sub-tab).
TAB_NAMES = (
    ("Mapping > Tax tab", "mapping", "tax"),
    ("Mapping > Invoices tab", "mapping", "invoices"),
    ("Mapping tab", "mapping", ""),
    ("Journals tab", "journals", ""),
    ("Configuration tab", "configuration", ""),
    ("Connection tab", "connection", ""),
    ("Items tab", "items", ""),
    ("Conflicts tab", "conflicts", ""),
    ("Sync history tab", "history", ""),
)
_TAB_PATTERN = re.compile(
    "|".join(re.escape(conditional_escape(words)) for words, _tab, _sub in TAB_NAMES)
)


def settings_tab_url(tab: str, sub: str = "") -> str:
    query = {"tab": tab, **({"sub": sub} if sub else {})}
    return f"{reverse('admin:quickbooks')}?{urlencode(query)}"


def settings_links(text) -> SafeString:
    """``text`` escaped, with each settings tab it names ("Map it on the Mapping > Tax tab")
    a link to that tab."""
    escaped = str(conditional_escape(text if text is not None else ""))
    urls = {
        str(conditional_escape(words)): settings_tab_url(tab, sub) for words, tab, sub in TAB_NAMES
    }

    def link(match: re.Match) -> str:
        return str(format_html('<a href="{}">{}</a>', urls[match.group(0)], mark_safe(match[0])))

    return mark_safe(_TAB_PATTERN.sub(link, escaped))  # escaped above, links built here


# --- Notes for the portal's own admin pages --------------------------------------------------


def linked_elsewhere_label(record: SyncRecord) -> str:
    """The sync status of an invoice linked to another QuickBooks company (``record``, its
    link there) and not to the one connected."""
    return f"Linked to {record.connection}"


def linked_elsewhere_note(record: SyncRecord, *, connection: Connection | None = None) -> str:
    """Why such an invoice is not sent to ``connection`` (the company connected now) and how
    staff send it on purpose: a Sync now that names it (``sync.services``, ``chosen``)."""
    there = f" (as {record.qbo_doc_number})" if record.qbo_doc_number else ""
    here = str(connection) if connection is not None else "the company connected now"
    to_here = f"to {connection}" if connection is not None else "there"
    return (
        f"Linked to {record.connection}{there}, not to {here}, whose pushes leave it out. To "
        f"send it {to_here} on purpose, press Sync now on the invoice, or select it in the "
        "invoice list and run Sync now with QuickBooks."
    )


def _unmapped(connection: Connection, rates) -> list[TaxRate]:
    ids = {rate.pk for rate in rates}
    return [rate for rate in tax_rates_unmapped(connection=connection) if rate.pk in ids]


def tax_rate_notes(*, rates=None) -> list[SafeString]:
    """For the tax rate pages: the active rates (of ``rates``, default all) not mapped to a
    QuickBooks tax code of the company, with where to map them. Empty without a company."""
    connection = connection_current()
    if connection is None:
        return []
    rates = list(rates if rates is not None else TaxRate.objects.filter(active=True))
    unmapped = _unmapped(connection, rates)
    if not unmapped:
        return []
    names = ", ".join(rate.name for rate in unmapped)
    one = len(unmapped) == 1
    noun, verb, it = ("Tax rate", "is", "it") if one else ("Tax rates", "are", "them")
    return [
        settings_links(
            f"{noun} {names} {verb} not mapped to a QuickBooks tax code of {connection}: "
            f"invoices that use {it} are not sent to QuickBooks (they would go untaxed). Map "
            f"{it} on the Mapping > Tax tab."
        )
    ]


def invoice_tax_notes(invoice: Invoice) -> list[SafeString]:
    """For the invoice's save message: the tax rates its lines use that are not mapped, so
    the invoice is not sent. Empty without a company or when every rate is mapped."""
    connection = connection_current()
    if connection is None:
        return []
    used = {line.tax_rate for line in invoice.lines.select_related("tax_rate") if line.tax_rate}
    mapped = set(
        TaxMapping.objects.filter(connection=connection, tax_rate__in=used).values_list(
            "tax_rate_id", flat=True
        )
    )
    unmapped = sorted(rate.name for rate in used if rate.pk not in mapped)
    if not unmapped:
        return []
    names = ", ".join(unmapped)
    noun, it = ("tax rate", "it") if len(unmapped) == 1 else ("tax rates", "them")
    return [
        settings_links(
            f"Invoice {invoice.number} uses {noun} {names}, not mapped to a QuickBooks tax "
            f"code, so the invoice is not sent to QuickBooks (it would go untaxed). Map {it} "
            "on the Mapping > Tax tab, then press Retry on the invoice."
        )
    ]


class TaxRateMappingNotes:
    """For the tax rate admin: its list and change page say which rates are not mapped to a
    QuickBooks tax code, with a link to the Mapping > Tax tab."""

    def changelist_view(self, request, extra_context=None):
        if request.method == "GET":
            for note in tax_rate_notes():
                self.message_user(request, note, messages.WARNING)
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        rate = self.get_object(request, unquote(object_id)) if request.method == "GET" else None
        if rate is not None:
            for note in tax_rate_notes(rates=[rate]):
                self.message_user(request, note, messages.WARNING)
        return super().change_view(request, object_id, form_url, extra_context)


class InvoiceTaxNotes:
    """For the invoice admin: saving an invoice whose lines use an unmapped tax rate says so
    (the invoice is not sent until the rate is mapped)."""

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        for note in invoice_tax_notes(form.instance):
            self.message_user(request, note, messages.WARNING)
