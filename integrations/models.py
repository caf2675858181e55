"""The QuickBooks connection and what Ledgerlink keeps of the company's lists."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from integrations import crypto

# A refresh token this close to its end shows a warning in the admin.
REFRESH_WARNING = timedelta(days=21)


class Connection(models.Model):
    """One QuickBooks company (realm) connected through OAuth 2.0."""

    class Environment(models.TextChoices):
        EMULATOR = "emulator", "Emulator"
        SANDBOX = "sandbox", "Sandbox"
        PRODUCTION = "production", "Production"

    class Status(models.TextChoices):
        CONNECTED = "connected", "Connected"
        NEEDS_RECONNECT = "needs_reconnect", "Needs reconnect"
        DISCONNECTED = "disconnected", "Disconnected"

    environment = models.CharField(max_length=20, choices=Environment.choices)
    realm_id = models.CharField("company (realm) ID", max_length=32)
    company_name = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CONNECTED)
    access_token_encrypted = models.TextField(blank=True, editable=False)
    refresh_token_encrypted = models.TextField(blank=True, editable=False)
    access_token_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    refresh_token_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Compare-and-swap guard: every token write bumps it, so two workers never both refresh
    # with (and so spend) the same refresh token. Works on SQLite, where select_for_update
    # does nothing.
    token_version = models.PositiveIntegerField(default=0, editable=False)
    refresh_lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    last_refreshed_at = models.DateTimeField(null=True, blank=True, editable=False)
    connected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    connected_at = models.DateTimeField(null=True, blank=True)
    disconnected_at = models.DateTimeField(null=True, blank=True)
    # Automatic syncs (schedule, push on save, webhooks, ``qbo_sync``) run only once a Sync
    # administrator has pressed Sync now with the set-up complete (``sync.configuration``).
    sync_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    sync_started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )
    last_error = models.TextField(blank=True)
    accounts_fetched_at = models.DateTimeField(null=True, blank=True)
    # DefinitionId -> name of the custom sales-form fields in use (from QBO Preferences).
    custom_fields = models.JSONField(default=dict, blank=True)
    income_account = models.ForeignKey(
        "QuickBooksAccount",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Income account new items are created with.",
    )
    expense_account = models.ForeignKey(
        "QuickBooksAccount",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Expense (cost of goods sold) account for new inventory items.",
    )
    asset_account = models.ForeignKey(
        "QuickBooksAccount",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Inventory asset account for new inventory items.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-connected_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "realm_id"], name="integrations_connection_unique_realm"
            )
        ]
        permissions = [("manage_connection", "Can connect and disconnect QuickBooks")]

    def __str__(self) -> str:
        return self.company_name or f"QuickBooks company {self.realm_id}"

    def __repr__(self) -> str:
        # Never the tokens, not even encrypted.
        return f"<Connection {self.pk} realm={self.realm_id} status={self.status}>"

    @property
    def access_token(self) -> str:
        return crypto.decrypt(self.access_token_encrypted)

    @property
    def refresh_token(self) -> str:
        return crypto.decrypt(self.refresh_token_encrypted)

    @property
    def is_connected(self) -> bool:
        return self.status == self.Status.CONNECTED

    @property
    def refresh_token_expiring_soon(self) -> bool:
        return bool(
            self.is_connected
            and self.refresh_token_expires_at
            and self.refresh_token_expires_at - timezone.now() < REFRESH_WARNING
        )


class QuickBooksAccount(models.Model):
    """An account from the company's chart of accounts, as last fetched."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="accounts")
    qbo_id = models.CharField("QuickBooks ID", max_length=32)
    name = models.CharField(max_length=255)
    fully_qualified_name = models.CharField(max_length=1000, blank=True)
    account_type = models.CharField(max_length=64)
    account_sub_type = models.CharField(max_length=64, blank=True)
    classification = models.CharField(max_length=32, blank=True)
    active = models.BooleanField(default=True)
    fetched_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["account_type", "fully_qualified_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "qbo_id"], name="integrations_account_unique_qbo_id"
            )
        ]

    def __str__(self) -> str:
        return f"{self.fully_qualified_name or self.name} ({self.account_type})"


class QuickBooksTaxCode(models.Model):
    """A sales tax code from the company, as last fetched (the tax mapping's choices)."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="tax_codes")
    qbo_id = models.CharField("QuickBooks ID", max_length=32)
    name = models.CharField(max_length=255)
    description = models.CharField(max_length=1000, blank=True)
    taxable = models.BooleanField(default=True)
    tax_group = models.BooleanField(default=False)
    rate_percent = models.DecimalField(max_digits=7, decimal_places=4, null=True, blank=True)
    active = models.BooleanField(default=True)
    fetched_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "qbo_id"], name="integrations_taxcode_unique_qbo_id"
            )
        ]

    def __str__(self) -> str:
        if self.rate_percent is not None:
            return f"{self.name} ({self.rate_percent.normalize():f}%)"
        return self.name


class WebhookEvent(models.Model):
    """One change Intuit notified, recorded once so a redelivery is not processed twice."""

    event_key = models.CharField(max_length=255, unique=True)
    realm_id = models.CharField(max_length=32)
    entity = models.CharField(max_length=50)
    entity_id = models.CharField(max_length=32)
    operation = models.CharField(max_length=20)
    occurred_at = models.CharField(max_length=40, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.operation} {self.entity} {self.entity_id} (realm {self.realm_id})"
