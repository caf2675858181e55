"""Admin for the portal's invoicing records and staff accounts."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count

from portal.forms import InvoiceLineForm
from portal.models import Customer, Invoice, InvoiceLine, Item, TaxRate, User


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
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["display_name", "company_name", "email", "phone", "invoice_count", "active"]
    list_filter = ["active"]
    search_fields = ["display_name", "company_name", "email"]
    fieldsets = [
        (None, {"fields": ["display_name", "company_name", "email", "phone", "active"]}),
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
class ItemAdmin(admin.ModelAdmin):
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


@admin.register(TaxRate)
class TaxRateAdmin(admin.ModelAdmin):
    list_display = ["name", "percent", "active"]
    list_filter = ["active"]
    search_fields = ["name"]


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    form = InvoiceLineForm
    extra = 1
    fields = ["item", "description", "quantity", "unit_price", "tax_rate", "amount"]
    readonly_fields = ["amount"]
    autocomplete_fields = ["item"]


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ["number", "customer", "issue_date", "due_date", "status", "total", "currency"]
    list_filter = ["status", "issue_date", "currency"]
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

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        form.instance.refresh_totals()
