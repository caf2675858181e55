"""The portal's own invoicing records: the side of the sync that back-office staff keep."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, validate_email
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from simple_history.models import HistoricalRecords

from portal.changes import InvoiceLineQuerySet, InvoiceQuerySet, bump, stamping
from portal.history import HistoryFields, update_with_history
from portal.money import ZERO, round_money


def validate_email_list(value: str) -> None:
    """Each comma-separated address must be an email address; names the one that is not."""
    for address in (part.strip() for part in value.split(",")):
        if not address:
            continue
        try:
            validate_email(address)
        except ValidationError as exc:
            raise ValidationError(
                f"{address!r} is not an email address. Separate several addresses with commas."
            ) from exc


def default_currency() -> str:
    return settings.DEFAULT_CURRENCY


class StaffUserManager(UserManager):
    @classmethod
    def normalize_email(cls, email):
        # Stored lower-case: allauth's sign-in by email matches the stored address exactly.
        return (email or "").strip().lower()


class User(AbstractUser):
    """A staff member. Kept as the project's own model so it can grow without a migration dance."""

    objects = StaffUserManager()

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                condition=~models.Q(email=""),
                name="portal_user_email_unique_ci",
                violation_error_message="Another staff member already uses this email address.",
            )
        ]

    def clean(self) -> None:
        super().clean()
        self.email = type(self).objects.normalize_email(self.email)


def change_history(**options) -> HistoricalRecords:
    """Change history for a portal record (``portal.history``): who or what changed which
    field, and when. The timestamps are left out: each row has its own date."""
    options["excluded_fields"] = ["created_at", "updated_at", *options.get("excluded_fields", [])]
    return HistoricalRecords(bases=[HistoryFields], **options)


class TimestampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Customer(TimestampedModel):
    display_name = models.CharField(
        max_length=500, help_text="The name on invoices; unique, whatever the letter case."
    )
    company_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=30, blank=True)
    billing_line1 = models.CharField("address line 1", max_length=500, blank=True)
    billing_line2 = models.CharField("address line 2", max_length=500, blank=True)
    billing_city = models.CharField("city", max_length=255, blank=True)
    billing_region = models.CharField("state / region", max_length=255, blank=True)
    billing_postal_code = models.CharField("postal code", max_length=31, blank=True)
    billing_country = models.CharField("country", max_length=255, blank=True)
    active = models.BooleanField(default=True)
    parent = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="sub_customers",
        help_text="For a sub-customer or project in QuickBooks, the customer it belongs to "
        "(set in QuickBooks).",
    )

    history = change_history()

    class Meta:
        ordering = [Lower("display_name")]
        constraints = [
            models.UniqueConstraint(
                Lower("display_name"),
                name="portal_customer_display_name_unique_ci",
                violation_error_message="A customer with this display name already exists "
                "(names are compared without regard to letter case).",
            )
        ]

    def __str__(self) -> str:
        return self.display_name


class Item(TimestampedModel):
    class Type(models.TextChoices):
        SERVICE = "service", "Service"
        NON_INVENTORY = "non_inventory", "Non-inventory"
        INVENTORY = "inventory", "Inventory"

    name = models.CharField(max_length=100, unique=True)
    sku = models.CharField("SKU", max_length=100, blank=True)
    type = models.CharField(max_length=20, choices=Type.choices, default=Type.SERVICE)
    description = models.TextField(blank=True, max_length=4000)
    # Unit prices, so four places like an invoice line's unit price.
    sales_price = models.DecimalField(
        max_digits=14, decimal_places=4, default=ZERO, validators=[MinValueValidator(ZERO)]
    )
    purchase_cost = models.DecimalField(
        max_digits=14, decimal_places=4, default=ZERO, validators=[MinValueValidator(ZERO)]
    )
    quantity_on_hand = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        default=ZERO,
        help_text="Tracked for inventory items only.",
    )
    taxable = models.BooleanField(default=True)
    active = models.BooleanField(default=True)

    history = change_history()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.type != self.Type.INVENTORY and self.quantity_on_hand:
            raise ValidationError(
                {
                    "quantity_on_hand": "Only inventory items track a quantity on hand; "
                    "set it to 0 or change the type to Inventory."
                }
            )


class TaxRate(TimestampedModel):
    name = models.CharField(max_length=100, unique=True)
    percent = models.DecimalField(
        max_digits=6,
        decimal_places=3,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="For example 8.25 for 8.25%.",
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.percent.normalize():f}%)"


class Invoice(TimestampedModel):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SENT = "sent", "Sent"
        PARTIALLY_PAID = "partially_paid", "Partially paid"
        PAID = "paid", "Paid"
        VOID = "void", "Void"

    number = models.CharField(max_length=30, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    issue_date = models.DateField(default=timezone.localdate)
    due_date = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    currency = models.CharField(max_length=3, default=default_currency)
    # Home-currency units per unit of ``currency``, as QuickBooks states it (multicurrency).
    exchange_rate = models.DecimalField(
        max_digits=20, decimal_places=10, null=True, blank=True, editable=False
    )
    customer_memo = models.TextField(
        blank=True, max_length=1000, help_text="Shown to the customer."
    )
    private_note = models.TextField(blank=True, max_length=4000, help_text="Internal only.")
    # QuickBooks' BillEmail holds several addresses separated by commas, 100 characters at
    # most (qbo-api.md section 13); the portal accepts the same.
    billing_email = models.CharField(
        max_length=100,
        blank=True,
        validators=[validate_email_list],
        help_text="One address, or several separated by commas.",
    )
    reference = models.CharField(
        "reference / PO number",
        max_length=100,
        blank=True,
        help_text="The customer's purchase order or reference, if any.",
    )
    subtotal = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO, editable=False)
    tax_total = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO, editable=False)
    total = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO, editable=False)
    # Payments are recorded in QuickBooks; the pull brings back how much of the total is paid.
    amount_paid = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO, editable=False)
    # Moves up with every change to the invoice or its lines (``portal.changes``).
    version = models.PositiveBigIntegerField(default=0, editable=False)
    # Set with every version move, cleared by the sync once QuickBooks agrees on the version:
    # the small set a sync starts from, found through a partial index (``portal.changes``).
    needs_sync = models.BooleanField(default=True, editable=False)

    objects = InvoiceQuerySet.as_manager()
    # The version only counts changes (``portal.changes``); the history shows the changes.
    history = change_history(excluded_fields=["version", "needs_sync"])

    class Meta:
        ordering = ["-issue_date", "-number"]
        indexes = [
            models.Index(
                fields=["id"], condition=models.Q(needs_sync=True), name="invoice_needs_sync"
            )
        ]
        permissions = [
            ("sync_invoice", "Can sync invoices with QuickBooks and retry failed syncs"),
        ]

    def __str__(self) -> str:
        return f"Invoice {self.number}"

    def save(self, *args, **kwargs) -> None:
        stamped = stamping() and not self._state.adding
        if stamped:
            # Counted in the database, so concurrent changes never reuse a version.
            self.version = models.F("version") + 1
            self.needs_sync = True
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "version", "needs_sync"}
        super().save(*args, **kwargs)
        if stamped:
            self.refresh_from_db(fields=["version"])

    def clean(self) -> None:
        # Only what QuickBooks itself refuses is refused here; portal-only rules are warnings
        # (see ``warnings``).
        if self.currency and (len(self.currency) != 3 or not self.currency.isalpha()):
            raise ValidationError({"currency": "Use a 3-letter ISO currency code, like USD."})

    def warnings(self) -> list[str]:
        """Portal-only rules this invoice breaks, as sentences naming the field. They never
        refuse a save: QuickBooks accepts such an invoice, and so does the portal.

        QuickBooks accepts a DueDate before the TxnDate (the API documents no rule between
        them and its own screens let staff type any due date; UNCONFIRMED in qbo-api.md), so a
        due date before the issue date only warns.
        """
        found = []
        if self.due_date and self.issue_date and self.due_date < self.issue_date:
            found.append(
                f"Due date {self.due_date:%Y-%m-%d} is before the issue date "
                f"{self.issue_date:%Y-%m-%d}; the invoice is overdue from the day it is "
                "issued. Check the due date if that is not intended."
            )
        return found

    @property
    def balance_due(self) -> Decimal:
        return round_money(self.total - self.amount_paid)

    def compute_totals(self, lines=None) -> tuple[Decimal, Decimal, Decimal]:
        """Return (subtotal, tax, total) from the lines.

        Tax is worked out per tax rate on the sum of the lines at that rate, then rounded half
        up to the cent, as QuickBooks does for a transaction's tax lines; so three lines at one
        rate are taxed once, not rounded three times.
        """
        lines = list(self.lines.all() if lines is None else lines)
        subtotal = sum((line.signed_amount for line in lines), ZERO)
        taxable_by_rate: dict[Decimal, Decimal] = defaultdict(lambda: ZERO)
        for line in lines:
            if line.tax_rate_id is not None:
                taxable_by_rate[line.tax_rate.percent] += line.amount
        tax = sum(
            (
                round_money(amount * percent / Decimal(100))
                for percent, amount in taxable_by_rate.items()
            ),
            ZERO,
        )
        return round_money(subtotal), round_money(tax), round_money(subtotal + tax)

    def refresh_totals(self) -> None:
        """Recompute and store subtotal, tax and total from the saved lines."""
        lines = self.lines.select_related("tax_rate")
        subtotal, tax_total, total = self.compute_totals(lines)
        update_with_history(self, subtotal=subtotal, tax_total=tax_total, total=total)


class InvoiceLine(models.Model):
    """One line of an invoice, of any kind QuickBooks puts on one (qbo-api.md sections 8, 13).

    Staff make and edit *item* lines. The other kinds come from QuickBooks and are kept as
    QuickBooks holds them (``qbo_detail``), shown read-only and sent back unchanged: discounts,
    bundles (``GroupLineDetail`` with their component lines), description-only lines and
    QuickBooks' own subtotal line. An item line may hold an amount without quantity and unit
    price, as QuickBooks allows; a line pulled from QuickBooks keeps QuickBooks' amount.
    """

    class Kind(models.TextChoices):
        ITEM = "item", "Item"
        DISCOUNT = "discount", "Discount"
        BUNDLE = "bundle", "Bundle"
        DESCRIPTION = "description", "Description"
        SUBTOTAL = "subtotal", "Subtotal"

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.ITEM)
    item = models.ForeignKey(
        Item, on_delete=models.PROTECT, null=True, blank=True, related_name="invoice_lines"
    )
    description = models.CharField(max_length=4000, blank=True)
    # Quantities and unit prices keep seven places, as QuickBooks does (qbo-api.md section 13);
    # only amounts and totals are money, rounded to the cent. Negative quantities are credits.
    quantity = models.DecimalField(
        max_digits=22, decimal_places=7, null=True, blank=True, default=Decimal("1")
    )
    unit_price = models.DecimalField(max_digits=22, decimal_places=7, null=True, blank=True)
    tax_rate = models.ForeignKey(
        TaxRate, on_delete=models.PROTECT, null=True, blank=True, related_name="invoice_lines"
    )
    amount = models.DecimalField(max_digits=17, decimal_places=2, default=ZERO, editable=False)
    # The line as QuickBooks holds it (without its Id), and its Line.Id there.
    qbo_line_id = models.CharField("QuickBooks line id", max_length=20, blank=True)
    qbo_detail = models.JSONField(null=True, blank=True, editable=False)

    objects = InvoiceLineQuerySet.as_manager()
    # QuickBooks' copy of the line (qbo_detail) is bookkeeping, not a change anyone made.
    history = change_history(excluded_fields=["qbo_detail"])

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        if self.kind != self.Kind.ITEM:
            return f"{self.get_kind_display()} {self.amount}"
        if self.quantity is None or self.item is None:
            return f"{self.item or self.description or 'Line'} {self.amount}"
        return f"{self.quantity.normalize():f} x {self.item}"

    def save(self, *args, **kwargs) -> None:
        if (
            self.kind == self.Kind.ITEM
            and self.unit_price is None
            and self.quantity not in (None, 0)
            and self.amount
        ):
            # A quantity given to an amount-only line: the rate follows from the amount, as
            # QuickBooks works it out (qbo-api.md section 13).
            self.unit_price = (Decimal(self.amount) / Decimal(self.quantity)).quantize(
                Decimal("0.0000001")
            )
        computed = self.compute_amount()
        if computed is not None:
            self.amount = computed
        super().save(*args, **kwargs)
        bump([self.invoice_id])

    def delete(self, *args, **kwargs):
        invoice_id = self.invoice_id
        result = super().delete(*args, **kwargs)
        bump([invoice_id])
        return result

    @property
    def editable(self) -> bool:
        """Whether staff may edit this line in the portal (item lines only)."""
        return self.kind == self.Kind.ITEM

    @property
    def signed_amount(self) -> Decimal:
        """What the line adds to the invoice: discounts subtract, text and subtotals add 0."""
        if self.kind == self.Kind.DISCOUNT:
            return -self.amount
        if self.kind in (self.Kind.ITEM, self.Kind.BUNDLE):
            return self.amount
        return ZERO

    def compute_amount(self) -> Decimal | None:
        """Quantity x unit price for an item line that has both, else None (the amount as
        stated stays: amount-only lines, and every other kind)."""
        if self.kind != self.Kind.ITEM or self.quantity is None or self.unit_price is None:
            return None
        return round_money(Decimal(self.quantity) * Decimal(self.unit_price))
