"""How a company syncs (configuration, tax and field mappings), the bindings between portal
records and QuickBooks objects (``SyncRecord``), sync runs, their event logs and the run lock."""

from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from portal.bulk import BulkUpdateQuerySet


class SyncConfiguration(models.Model):
    """How the Invoices app syncs with one QuickBooks company."""

    class App(models.TextChoices):
        INVOICES = "invoices", "Invoices"

    class SyncType(models.TextChoices):
        ONE_WAY = "one_way", "One-way (portal to QuickBooks)"
        TWO_WAY = "two_way", "Two-way"

    class ConflictRule(models.TextChoices):
        HOLD = "hold", "Hold for review (nothing overwritten)"
        QBO_WINS = "qbo_wins", "QuickBooks wins"
        PORTAL_WINS = "portal_wins", "Portal wins"

    connection = models.OneToOneField(
        "integrations.Connection", on_delete=models.CASCADE, related_name="sync_configuration"
    )
    app = models.CharField(max_length=20, choices=App.choices, default=App.INVOICES)
    sync_type = models.CharField(max_length=10, choices=SyncType.choices, default=SyncType.TWO_WAY)
    enabled = models.BooleanField("sync on", default=True)
    push_on_save = models.BooleanField(
        default=True, help_text="Queue a push as soon as an invoice is saved in the portal."
    )
    pull_interval_minutes = models.PositiveIntegerField(
        "pull every (minutes)",
        default=15,
        validators=[MinValueValidator(1)],
        help_text="How often the schedule pulls changes from QuickBooks (two-way only).",
    )
    first_invoice_date = models.DateField(
        null=True,
        blank=True,
        help_text="Invoices issued before this date are left alone on both sides.",
    )
    auto_create_customers = models.BooleanField(
        default=True, help_text="Create a customer in QuickBooks when none has the same name."
    )
    auto_create_items = models.BooleanField(
        default=True, help_text="Create an item in QuickBooks when none has the same name."
    )
    conflict_rule = models.CharField(
        max_length=20,
        choices=ConflictRule.choices,
        default=ConflictRule.HOLD,
        help_text="What happens when an invoice changed on both sides since they last agreed.",
    )
    # CDC cursor: changes up to this instant have been pulled.
    pull_cursor = models.DateTimeField(null=True, blank=True, editable=False)
    last_pull_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_push_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The scope (mapping signature and first invoice date) under which a push last looked at
    # every invoice: while it holds, pushes start from the changed invoices alone
    # (``sync.entities.invoice.invoices_for_push``).
    push_scope = models.CharField(max_length=64, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "sync configuration"

    def __str__(self) -> str:
        return f"{self.get_app_display()} sync for {self.connection}"

    @property
    def two_way(self) -> bool:
        return self.sync_type == self.SyncType.TWO_WAY


class TaxMapping(models.Model):
    """A portal tax rate and the QuickBooks tax code its invoices are sent with."""

    connection = models.ForeignKey(
        "integrations.Connection", on_delete=models.CASCADE, related_name="tax_mappings"
    )
    tax_rate = models.ForeignKey("portal.TaxRate", on_delete=models.CASCADE, related_name="+")
    tax_code = models.ForeignKey(
        "integrations.QuickBooksTaxCode", on_delete=models.CASCADE, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "tax_rate"], name="integrations_taxmapping_unique_rate"
            )
        ]

    def __str__(self) -> str:
        return f"{self.tax_rate} -> {self.tax_code}"


class FieldMapping(models.Model):
    """One invoice field and the QuickBooks field it maps to, and which way it flows."""

    class Direction(models.TextChoices):
        BOTH = "both", "Both ways"
        TO_QBO = "to_qbo", "Portal to QuickBooks"
        FROM_QBO = "from_qbo", "QuickBooks to portal"

    connection = models.ForeignKey(
        "integrations.Connection", on_delete=models.CASCADE, related_name="field_mappings"
    )
    local_field = models.CharField(max_length=50)
    qbo_field = models.CharField("QuickBooks field", max_length=50, blank=True)
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.BOTH)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "local_field"], name="integrations_fieldmapping_unique_field"
            )
        ]

    def __str__(self) -> str:
        return f"{self.local_field} -> {self.qbo_field or '(not mapped)'}"


class SyncRecord(models.Model):
    """The binding between one portal record and its QuickBooks object, per connection."""

    class ObjectType(models.TextChoices):
        INVOICE = "invoice", "Invoice"
        CUSTOMER = "customer", "Customer"
        ITEM = "item", "Item"

    class Status(models.TextChoices):
        NOT_SYNCED = "not_synced", "Not synced"
        PENDING = "pending", "Pending"
        SYNCED = "synced", "Synced"
        # Written or read, and agreed field by field, but QuickBooks computes another total
        # than the portal's own rates would (the details say by how much and why).
        DIFFERS = "differs", "Totals differ"
        FAILED = "failed", "Failed"
        CONFLICT = "conflict", "Conflict"
        # An invoice number taken on both sides: held until staff choose (never renamed).
        CLASH = "clash", "Number taken"
        SKIPPED = "skipped", "Skipped"

    connection = models.ForeignKey(
        "integrations.Connection", on_delete=models.CASCADE, related_name="sync_records"
    )
    object_type = models.CharField(max_length=10, choices=ObjectType.choices)
    invoice = models.ForeignKey(
        "portal.Invoice",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="sync_records",
    )
    customer = models.ForeignKey(
        "portal.Customer",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="sync_records",
    )
    item = models.ForeignKey(
        "portal.Item", on_delete=models.CASCADE, null=True, blank=True, related_name="sync_records"
    )
    qbo_id = models.CharField("QuickBooks ID", max_length=32, blank=True, db_index=True)
    sync_token = models.CharField(max_length=16, blank=True)
    qbo_doc_number = models.CharField("QuickBooks number", max_length=32, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.NOT_SYNCED)
    details = models.TextField("sync details", blank=True)
    error_code = models.CharField(max_length=16, blank=True)
    error_element = models.CharField(max_length=100, blank=True)
    intuit_tid = models.CharField(max_length=100, blank=True)
    # The requestid of the create in flight; reused until QuickBooks' answer settles it.
    request_id = models.CharField(max_length=50, blank=True)
    uncertain = models.BooleanField(
        default=False, help_text="A write was sent but its answer never came."
    )
    # What both sides last agreed on, in the neutral form the mappers produce.
    agreed = models.JSONField(null=True, blank=True)
    conflict_portal = models.JSONField(null=True, blank=True)
    conflict_qbo = models.JSONField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    # A fingerprint of the version QuickBooks last refused for good (a validation fault, a
    # duplicate name): that version is not sent again until it, or a customer or item it
    # uses, changes, or staff press Retry.
    refused_version = models.CharField(max_length=64, blank=True)
    # QuickBooks' own figures for an invoice when both sides last agreed ({"subtotal", "tax",
    # "total"}, text in the invoice's currency): the portal shows these, never a recomputed
    # figure, while nothing that flows to QuickBooks has changed.
    qbo_totals = models.JSONField(null=True, blank=True)
    # The invoice's ``version`` (``portal.changes``) and the mapping's signature when both
    # sides last agreed: a settled invoice whose version and mapping are still these has
    # nothing to send, and a sync does not even load it.
    agreed_version = models.PositiveBigIntegerField(null=True, blank=True)
    agreed_mapping = models.CharField(max_length=64, blank=True)
    last_pushed_at = models.DateTimeField(null=True, blank=True)
    last_pulled_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    # A sync saves bindings in bulk, a batch of answers at a time (``portal.bulk``).
    objects = BulkUpdateQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "invoice"],
                condition=models.Q(invoice__isnull=False),
                name="sync_record_unique_invoice",
            ),
            models.UniqueConstraint(
                fields=["connection", "customer"],
                condition=models.Q(customer__isnull=False),
                name="sync_record_unique_customer",
            ),
            models.UniqueConstraint(
                fields=["connection", "item"],
                condition=models.Q(item__isnull=False),
                name="sync_record_unique_item",
            ),
            models.UniqueConstraint(
                fields=["connection", "object_type", "qbo_id"],
                condition=~models.Q(qbo_id=""),
                name="sync_record_unique_qbo_id",
            ),
        ]
        indexes = [
            models.Index(fields=["connection", "object_type", "status"]),
            # What an idle sync reads: writes whose answer is unknown, bindings of deleted
            # invoices, and how many invoices are settled (counted from the index alone).
            models.Index(
                fields=["connection", "updated_at"],
                condition=models.Q(uncertain=True),
                name="sync_record_uncertain",
            ),
            models.Index(
                fields=["connection", "object_type", "updated_at"],
                condition=models.Q(invoice__isnull=True),
                name="sync_record_no_invoice",
            ),
            models.Index(
                fields=["connection"],
                condition=models.Q(
                    object_type="invoice",
                    status__in=["synced", "skipped"],
                    uncertain=False,
                    invoice__isnull=False,
                ),
                name="sync_record_settled_invoice",
            ),
        ]
        permissions = [("retry_syncrecord", "Can retry failed syncs")]

    def __str__(self) -> str:
        return f"{self.label} ({self.get_status_display()})"

    @property
    def label(self) -> str:
        """The record's name for people: the portal record, or the QuickBooks document."""
        if self.local_object is not None:
            return str(self.local_object)
        return f"QuickBooks {self.object_type} {self.qbo_doc_number or self.qbo_id}"

    @property
    def local_object(self):
        return self.invoice or self.customer or self.item


class SyncRun(models.Model):
    """One run of the engine: what started it, how far it got, what it did."""

    class Trigger(models.TextChoices):
        SAVE = "save", "Save"
        SCHEDULE = "schedule", "Schedule"
        WEBHOOK = "webhook", "Webhook"
        BUTTON = "button", "Button"
        COMMAND = "command", "Command"
        RETRY = "retry", "Retry"

    class Direction(models.TextChoices):
        PUSH = "push", "Push"
        PULL = "pull", "Pull"
        BOTH = "both", "Push and pull"
        ITEMS = "items", "Items quick sync"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    # What staff read for a run that ended with failed records: *done*, but not cleanly.
    DONE_WITH_FAILURES = "done_with_failures"

    connection = models.ForeignKey(
        "integrations.Connection", on_delete=models.CASCADE, related_name="sync_runs"
    )
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    direction = models.CharField(max_length=10, choices=Direction.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    dry_run = models.BooleanField(default=False)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    conflicts = models.PositiveIntegerField(default=0)
    # Records with nothing to send (a void never sent); with the counts above they make
    # ``done``, the records the run has finished.
    skipped = models.PositiveIntegerField(default=0)
    # Requests sent to QuickBooks' API, retries and pages included (token refreshes are not
    # API requests).
    api_calls = models.PositiveIntegerField("API calls", default=0)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} run {self.pk} ({self.outcome_label})"

    @property
    def progress_percent(self) -> int:
        if not self.total:
            return 100 if self.status == self.Status.DONE else 0
        return min(100, round(100 * self.done / self.total))

    @property
    def outcome(self) -> str:
        """The status as staff read it: ``DONE_WITH_FAILURES`` for a run that ended with
        failed records (its ``status`` stays *done*: the run itself went to its end)."""
        if self.status == self.Status.DONE and self.failed:
            return self.DONE_WITH_FAILURES
        return self.status

    @property
    def outcome_label(self) -> str:
        if self.outcome == self.DONE_WITH_FAILURES:
            return "Done with failures"
        return self.get_status_display()

    @property
    def active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)


class SyncEvent(models.Model):
    """One line of a run's log: what happened to one record."""

    class Level(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="events")
    record = models.ForeignKey(
        SyncRecord, on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    action = models.CharField(max_length=20)
    message = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.message


class SyncLock(models.Model):
    """At most one sync per connection: a row claimed by compare-and-swap (SQLite-safe)."""

    connection = models.OneToOneField(
        "integrations.Connection", on_delete=models.CASCADE, related_name="sync_lock"
    )
    holder = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Sync lock for {self.connection_id}"
