"""How a company syncs: its configuration, tax and field mappings, custom fields, and what is
still missing before a sync can run (services and selectors for the settings page and the
engine)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models.functions import Length
from django.utils import timezone

from integrations.models import Connection, QuickBooksTaxCode
from integrations.services import connection_client
from portal.models import Invoice, TaxRate
from sync import fieldmap
from sync.mappers.invoice import InvoiceMapping
from sync.models import FieldMapping, SyncConfiguration, TaxMapping

# The settings page tabs each readiness item links to.
TAB_CONNECTION = "connection"
TAB_JOURNALS = "journals"
TAB_MAPPING = "mapping"


def readiness(connection: Connection | None) -> list[tuple[str, str]]:
    """What is missing before a sync can run, as (message, settings tab that fixes it).

    An empty list means a sync may run.
    """
    if connection is None:
        return [("QuickBooks is not connected yet.", TAB_CONNECTION)]
    if connection.status == Connection.Status.NEEDS_RECONNECT:
        return [("QuickBooks needs to be reconnected.", TAB_CONNECTION)]
    if connection.status != Connection.Status.CONNECTED:
        return [("QuickBooks is disconnected.", TAB_CONNECTION)]
    missing = []
    if connection.income_account_id is None:
        missing.append(("No income account is chosen for new items.", TAB_JOURNALS))
    unmapped = tax_rates_unmapped(connection=connection)
    if unmapped:
        names = ", ".join(rate.name for rate in unmapped)
        noun = "tax rate is" if len(unmapped) == 1 else "tax rates are"
        missing.append(
            (f"{len(unmapped)} {noun} not mapped to a QuickBooks tax code: {names}.", TAB_MAPPING)
        )
    return missing


START_HOW = "A Sync administrator starts it by pressing Sync now on the QuickBooks page."


def sync_gate(connection: Connection) -> str:
    """Why the automatic syncs (the schedule, push on save, webhook pulls and ``qbo_sync``)
    do nothing for ``connection`` now, or "" when they may run.

    Until a Sync administrator has started sync (``sync_start``: the first Sync now, which
    needs every ``readiness`` check to pass), the reason names what is still missing, then
    the start. Once started, this gate is open: what goes wrong later is said where it happens (a
    connection needing reconnecting ends each run with that reason, an unmapped tax rate
    fails the invoices that use it), so one new tax rate does not stop every other invoice.
    """
    connection = Connection.objects.filter(pk=connection.pk).first()  # as it is now
    if connection is None or connection.sync_started_at is not None:
        return ""
    missing = " ".join(message for message, _tab in readiness(connection))
    if missing:
        return (
            f"Nothing was synced: the set-up is not complete. {missing} Once it is, sync "
            f"has to be started. {START_HOW}"
        )
    return f"Nothing was synced: sync has not been started for this company. {START_HOW}"


def sync_start(*, connection: Connection, user) -> bool:
    """Record that ``user`` started sync for the company (the first Sync now), from which on
    the automatic syncs run. Returns whether this call started it (False: already started).

    Raises ``ValidationError`` naming what is missing while a readiness check fails.
    """
    missing = readiness(connection)
    if missing:
        raise ValidationError(" ".join(message for message, _tab in missing))
    now = timezone.now()
    started = Connection.objects.filter(pk=connection.pk, sync_started_at__isnull=True).update(
        sync_started_at=now, sync_started_by=user
    )
    connection.refresh_from_db(fields=["sync_started_at", "sync_started_by"])
    return bool(started)


def tax_rates_unmapped(*, connection: Connection) -> list[TaxRate]:
    """Active portal tax rates without a QuickBooks tax code for this connection."""
    mapped = TaxMapping.objects.filter(connection=connection).values("tax_rate_id")
    return list(TaxRate.objects.filter(active=True).exclude(pk__in=mapped))


def tax_rate_mismatches(*, connection: Connection) -> dict[int, str]:
    """{portal tax rate id: warning} for rates mapped to a QuickBooks tax code whose rate
    differs: QuickBooks taxes those invoices at its own rate, so their totals would differ."""
    warnings = {}
    for mapping in TaxMapping.objects.filter(connection=connection).select_related(
        "tax_rate", "tax_code"
    ):
        rate, code = mapping.tax_rate, mapping.tax_code
        if code.rate_percent is None or code.rate_percent == rate.percent:
            continue
        ours, theirs = f"{rate.percent.normalize():f}%", f"{code.rate_percent.normalize():f}%"
        warnings[rate.pk] = (
            f"{rate.name} ({ours}) is mapped to {code.name} ({theirs}): QuickBooks taxes these "
            f"invoices at {theirs}, the portal at {ours}, so their totals differ. Map a code "
            "with the same rate, or correct the portal rate."
        )
    return warnings


def configuration_get(*, connection: Connection) -> SyncConfiguration:
    """The connection's configuration, unsaved with the defaults when none was saved yet."""
    try:
        return connection.sync_configuration
    except SyncConfiguration.DoesNotExist:
        return SyncConfiguration(connection=connection)


def configuration_save(*, connection: Connection, **fields) -> SyncConfiguration:
    """Save the Invoices sync configuration (``fields`` are SyncConfiguration fields).

    Raises ``ValidationError`` naming the field when a value is not allowed.
    """
    editable = {
        "app",
        "sync_type",
        "enabled",
        "push_on_save",
        "pull_interval_minutes",
        "first_invoice_date",
        "auto_create_customers",
        "auto_create_items",
        "conflict_rule",
    }
    unknown = set(fields) - editable
    if unknown:
        raise ValueError(f"Not configuration fields: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        config, _ = SyncConfiguration.objects.select_for_update().get_or_create(
            connection=connection
        )
        for name, value in fields.items():
            setattr(config, name, value)
        config.full_clean()
        config.save()
    return config


def tax_mappings_save(*, connection: Connection, codes: dict[int, int | None]) -> dict[str, int]:
    """Map each portal tax rate (id) to a QuickBooks tax code (id), or unmap it (None).

    Raises ``ValidationError`` keyed by the tax rate's name when a code is not one fetched for
    this connection. Returns the counts ``{"mapped": n, "unmapped": n}``.
    """
    rates = TaxRate.objects.in_bulk(list(codes))
    tax_codes = QuickBooksTaxCode.objects.filter(connection=connection, active=True).in_bulk(
        [c for c in codes.values() if c is not None]
    )
    errors = {}
    for rate_id, code_id in codes.items():
        rate = rates.get(rate_id)
        if rate is None:
            errors[f"tax rate {rate_id}"] = "This tax rate no longer exists."
        elif code_id is not None and code_id not in tax_codes:
            errors[rate.name] = (
                "Pick one of the tax codes fetched from QuickBooks (fetch them again on the "
                "Journals tab if it is missing)."
            )
    if errors:
        raise ValidationError(errors)
    counts = {"mapped": 0, "unmapped": 0}
    with transaction.atomic():
        for rate_id, code_id in codes.items():
            if code_id is None:
                TaxMapping.objects.filter(connection=connection, tax_rate_id=rate_id).delete()
                counts["unmapped"] += 1
            else:
                TaxMapping.objects.update_or_create(
                    connection=connection,
                    tax_rate_id=rate_id,
                    defaults={"tax_code": tax_codes[code_id]},
                )
                counts["mapped"] += 1
    return counts


def field_mappings_current(*, connection: Connection) -> dict[str, tuple[str, str]]:
    """local field -> (QuickBooks field, direction): saved ones, else the defaults."""
    saved = {
        m.local_field: (m.qbo_field, m.direction)
        for m in FieldMapping.objects.filter(connection=connection)
    }
    return {
        f.name: saved.get(f.name, (f.default, FieldMapping.Direction.BOTH))
        for f in fieldmap.LOCAL_FIELDS
    }


def invoice_mapping_for(*, connection: Connection) -> InvoiceMapping:
    """The field mapping in effect, for the mappers: the defaults until staff save their own."""
    return InvoiceMapping(fields=field_mappings_current(connection=connection))


def sync_configuration_for(*, connection: Connection) -> SyncConfiguration:
    """The connection's saved configuration, created with the defaults when there is none."""
    config, _ = SyncConfiguration.objects.get_or_create(connection=connection)
    return config


def longest_values() -> dict[str, tuple[int, str]]:
    """Per portal text field, the length and an example of its longest value on an invoice."""
    result = {}
    for field in fieldmap.LOCAL_FIELDS:
        if field.kind != "text":
            continue
        row = (
            Invoice.objects.annotate(_length=Length(field.name))
            .order_by("-_length", "pk")
            .values_list("_length", field.name)
            .first()
        )
        if row and row[0]:
            result[field.name] = (row[0], row[1])
    return result


def field_mappings_save(*, connection: Connection, rows: dict[str, tuple[str, str]]) -> None:
    """Save the invoice field mapping: ``rows`` maps each local field to (qbo field, direction).

    Validated as a whole against QuickBooks' limits (with the longest values the portal holds);
    raises ``ValidationError`` keyed by local field name, each message naming the field.
    """
    directions = set(FieldMapping.Direction.values)
    errors = {}
    for name, (_qbo, direction) in rows.items():
        if direction not in directions:
            label = fieldmap.LOCAL_BY_NAME[name].label if name in fieldmap.LOCAL_BY_NAME else name
            choices = ", ".join(FieldMapping.Direction.labels)
            errors[name] = f"{label}: pick a direction ({choices})."
    errors.update(
        fieldmap.validate_mappings(
            rows, custom_fields=connection.custom_fields or {}, longest_values=longest_values()
        )
    )
    missing = [f.label for f in fieldmap.LOCAL_FIELDS if f.name not in rows]
    if missing:
        errors["__all__"] = f"The mapping is incomplete; missing: {', '.join(missing)}."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        for name, (qbo_field, direction) in rows.items():
            FieldMapping.objects.update_or_create(
                connection=connection,
                local_field=name,
                defaults={"qbo_field": qbo_field, "direction": direction},
            )


def field_mappings_restore_defaults(*, connection: Connection) -> int:
    """Put the invoice field mapping back to the defaults (``fieldmap.LOCAL_FIELDS``): the
    saved rows go, and the defaults apply again. Returns how many saved rows there were."""
    deleted, _ = FieldMapping.objects.filter(connection=connection).delete()
    return deleted


def custom_fields_fetch(*, connection: Connection, client=None) -> dict[str, str]:
    """Read QuickBooks' Preferences and store the custom sales-form fields in use.

    Raises ``ReconnectRequired`` or ``QBOError`` as the client does. Returns
    {DefinitionId: name}.
    """
    client = client or connection_client(connection=connection)
    definitions = fieldmap.custom_field_definitions(client.preferences())
    Connection.objects.filter(pk=connection.pk).update(custom_fields=definitions)
    connection.custom_fields = definitions
    return definitions
