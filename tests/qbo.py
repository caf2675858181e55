"""Test helpers for talking to the QBO emulator (fixtures live in conftest.py)."""

from __future__ import annotations

import requests


class EmulatorUI:
    """Changes made 'as a QBO user would in the QBO UI', through the emulator's control API."""

    def __init__(self, emulator, realm_id: str):
        self.emulator = emulator
        self.realm_id = realm_id
        self.base = f"{emulator.base_url}/_emulator/realms/{realm_id}"

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        response = requests.request(method, f"{self.base}/{path}", json=body, timeout=10)
        assert response.status_code < 300, response.text
        return response.json() if response.content else {}

    def rows(self, entity: str) -> list[dict]:
        return self._call("GET", entity.lower()).get(entity, [])

    def create(self, entity: str, body: dict, *, include: str = "") -> dict:
        """``include`` as QuickBooks takes it, e.g. ``allowduplicatedocnum``."""
        path = f"{entity.lower()}?include={include}" if include else entity.lower()
        return self._call("POST", path, body)[entity]

    def update(self, entity: str, body: dict) -> dict:
        return self._call("POST", f"{entity.lower()}?operation=update", body)[entity]

    def void(self, entity: str, obj_id: str) -> dict:
        return self._call("POST", f"{entity.lower()}?operation=void", {"Id": obj_id})[entity]

    def delete(self, entity: str, obj_id: str) -> dict:
        return self._call("POST", f"{entity.lower()}?operation=delete", {"Id": obj_id})[entity]

    def find(self, entity: str, **match) -> dict | None:
        for row in self.rows(entity):
            if all(row.get(k) == v for k, v in match.items()):
                return row
        return None


def connect_with_tokens(emulator, realm_id: str | None = None):
    """A Connection holding real emulator tokens, as the Connect flow leaves it."""
    from datetime import timedelta

    from django.utils import timezone

    from integrations import crypto
    from integrations.models import Connection

    realm_id = realm_id or emulator.realm_ids[0]
    tokens = emulator.tokens(realm_id)
    now = timezone.now()
    connection, _ = Connection.objects.update_or_create(
        environment="emulator",
        realm_id=realm_id,
        defaults={
            "company_name": dict(emulator.app.companies).get(realm_id, ""),
            "status": Connection.Status.CONNECTED,
            "access_token_encrypted": crypto.encrypt(tokens["access_token"]),
            "refresh_token_encrypted": crypto.encrypt(tokens["refresh_token"]),
            "access_token_expires_at": now + timedelta(seconds=tokens["expires_in"]),
            "refresh_token_expires_at": now
            + timedelta(seconds=tokens["x_refresh_token_expires_in"]),
            "connected_at": now,
        },
    )
    return connection


def pick_journals(connection) -> None:
    """Fetch the chart of accounts and choose the first account QuickBooks allows for each
    journal, as a Sync administrator would on the Journals tab."""
    from integrations import services

    services.accounts_fetch(connection=connection)
    accounts = list(connection.accounts.all())
    services.journals_save(
        connection=connection,
        income_account=next(a for a in accounts if a.account_type == "Income"),
        expense_account=next(a for a in accounts if a.account_type == "Cost of Goods Sold"),
        asset_account=next(a for a in accounts if a.account_sub_type == "Inventory"),
    )


def record_start(connection) -> None:
    """Sync started for the company, as when a Sync administrator first presses Sync now:
    from then on the schedule, saves, webhooks and ``qbo_sync`` sync it."""
    from django.utils import timezone

    from integrations.models import Connection

    Connection.objects.filter(pk=connection.pk).update(sync_started_at=timezone.now())
    connection.refresh_from_db()


def set_up_for_sync(connection, *, tax_rate_name: str = "California", start: bool = True):
    """Journals picked, tax codes fetched and one portal tax rate mapped to QuickBooks'
    code of the same name: a company ready to sync, and (``start``) started."""
    from decimal import Decimal

    from integrations import services
    from integrations.models import QuickBooksTaxCode
    from portal.models import TaxRate
    from sync.models import TaxMapping

    pick_journals(connection)
    services.tax_codes_fetch(connection=connection)
    code = QuickBooksTaxCode.objects.get(connection=connection, name=tax_rate_name)
    rate, _ = TaxRate.objects.get_or_create(
        name=tax_rate_name, defaults={"percent": code.rate_percent or Decimal("8")}
    )
    TaxMapping.objects.create(connection=connection, tax_rate=rate, tax_code=code)
    if start:
        record_start(connection)
    connection.refresh_from_db()
    return connection
