"""What every synced kind tells the engine, and the shared part of QuickBooks' name lists.

An adapter knows its portal model, its QuickBooks entity, how to name a record, how to map it
both ways (through its mappers), what QuickBooks refuses before any request (preflight), and
how to write a QuickBooks version into the portal. The exporter and importer work through
adapters only, so adding a kind means adding an adapter and its mappers.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from sync.context import SyncContext

# QuickBooks refuses these characters in names (qbo-api.md section 8, Customer and Item).
NAME_FORBIDDEN = (":", "\t", "\n")


class EntityAdapter:
    """One synced kind. ``kind`` is the binding's ``object_type``."""

    kind: ClassVar[str]
    qbo_entity: ClassVar[str]
    model: ClassVar[type[models.Model]]
    # Name lists (customers, items) are matched by name and pulled before transactions.
    name_list: ClassVar[bool] = False

    def __init__(self, ctx: SyncContext):
        self.ctx = ctx

    def label(self, local) -> str:
        """The record's name for people and for QuickBooks' name look-ups."""
        return str(local)

    def neutral_qbo(self, obj: dict) -> dict:
        raise NotImplementedError

    def after_push(self, record, obj: dict) -> dict:
        """QuickBooks saved ``obj`` from the portal's write: keep what its answer says about
        the portal record, and return what both sides now agree on."""
        return self.neutral_qbo(obj)

    def differences(self, record, obj: dict) -> str:
        """Why QuickBooks' figures for ``obj`` are not the portal's own, or "" (they are)."""
        return ""

    def flush(self) -> None:
        """Write what ``after_push`` kept for writing in bulk (at the end of a step)."""

    def remote_number(self, obj: dict) -> str | None:
        """The document number a binding keeps (None for kinds without one)."""
        return None


class NameListAdapter(EntityAdapter):
    """Customers and items: QuickBooks name lists, matched by name, never deleted there."""

    name_list = True

    name_field: ClassVar[str]  # the portal field holding the name
    qbo_name_field: ClassVar[str]  # the QuickBooks field holding it
    name_label: ClassVar[str]
    name_max: ClassVar[int]
    auto_create_setting: ClassVar[str]  # the SyncConfiguration flag allowing creates

    def label(self, local) -> str:
        return getattr(local, self.name_field)

    def may_create(self) -> bool:
        return bool(getattr(self.ctx.config, self.auto_create_setting))

    def preflight(self, local) -> str:
        """What QuickBooks would refuse in the name, in plain words; "" when fine."""
        name = self.label(local)
        if any(ch in name for ch in NAME_FORBIDDEN):
            return (
                f"{self.name_label} of {self.kind} {name!r} contains a colon, tab or line break, "
                "which QuickBooks does not allow in names. Rename it, then retry."
            )
        if len(name) > self.name_max:
            return (
                f"{self.name_label} of {self.kind} {name[:40]!r}... is longer than QuickBooks' "
                f"{self.name_max} characters. Shorten it, then retry."
            )
        if not name.strip():
            return f"The {self.kind} has no name; QuickBooks needs one."
        return ""

    def create_preflight(self, local) -> str:
        """What stops creating ``local`` in QuickBooks beyond its name; "" when nothing."""
        return ""

    def neutral_local(self, local) -> dict:
        raise NotImplementedError

    def body(self, local) -> dict:
        """The QuickBooks create body for ``local``."""
        raise NotImplementedError

    def sellable(self, obj: dict) -> bool:
        """Whether the portal keeps this kind of QuickBooks entry (see ``ItemAdapter``)."""
        return True

    def find_local(self, name: str):
        """The portal record with this name (case-insensitive), or None."""
        return self.model.objects.filter(**{f"{self.name_field}__iexact": name}).first()

    def ordered(self, objects: list[dict]) -> list[dict]:
        """QuickBooks entries in the order they are brought into the portal."""
        return objects

    def apply_remote(self, local, neutral: dict) -> None:
        """Write QuickBooks' version (``neutral``) into ``local`` and save it."""
        raise NotImplementedError
