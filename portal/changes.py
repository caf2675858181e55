"""Change stamps: what lets a sync find the invoices that changed without loading the book.

Every change to an invoice or to one of its lines moves the invoice's ``version`` up by one,
whichever way it is made: ``save()``, ``delete()``, ``QuerySet.update()``, ``bulk_update()``,
``bulk_create()`` and ``QuerySet.delete()`` on lines (imports and data fixes use these). A
sync binding keeps the version both sides last agreed on, so "changed since" is a comparison
in SQL. Each move also sets ``needs_sync``, which the sync clears once QuickBooks agrees
on that version (compare-and-set on the version, so a change made meanwhile keeps it): a
sync starts from the invoices with it set, through a partial index, and from its own
unsettled bindings, so an idle sync costs the same over 10,000 invoices as over 100,000.
Raw SQL that bypasses the ORM is not seen; run ``qbo_sync --push`` with the affected
invoices after such a fix.

The sync's own writes (QuickBooks' version taken into the portal, QuickBooks' line ids and
totals kept after a push) are not changes to send back, so they run ``unstamped()``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.db import models, transaction
from django.db.models import F

from portal.bulk import BulkUpdateQuerySet

_local = threading.local()


@contextmanager
def unstamped() -> Iterator[None]:
    """Writes in this block (this thread only) leave invoice versions as they are."""
    previous = getattr(_local, "off", False)
    _local.off = True
    try:
        yield
    finally:
        _local.off = previous


def stamping() -> bool:
    """Whether writes made now count as changes to invoices."""
    return not getattr(_local, "off", False)


def bump(invoice_ids: Iterable[int]) -> None:
    """Move these invoices' versions on (their lines changed)."""
    from portal.models import Invoice

    ids = {pk for pk in invoice_ids if pk is not None}
    if ids and stamping():
        Invoice.objects.filter(pk__in=ids).update(version=F("version") + 1)


class InvoiceQuerySet(BulkUpdateQuerySet):
    """Bulk changes to invoices move their versions on."""

    def update(self, **kwargs) -> int:
        if stamping():
            kwargs.setdefault("version", F("version") + 1)
            kwargs.setdefault("needs_sync", True)
        return super().update(**kwargs)

    def bulk_update(self, objs, fields, batch_size=None) -> int:
        objs, fields = list(objs), list(fields)
        if not stamping():
            return super().bulk_update(objs, fields, batch_size=batch_size)
        if "version" in fields:
            # Versions set by the caller: taken as they are, but flagged, or a sync (which
            # starts from the flagged invoices) would never look at these changes.
            for obj in objs:
                obj.needs_sync = True
            fields = [*fields, "needs_sync"] if "needs_sync" not in fields else fields
            return super().bulk_update(objs, fields, batch_size=batch_size)
        # The change and its stamp in one transaction: a change saved without moving its
        # invoice's version on would never be sent.
        with transaction.atomic(using=self.db):
            count = super().bulk_update(objs, fields, batch_size=batch_size)
            # Moved on in the database, not from the objects' own (maybe stale) versions:
            # a version never goes back to one a sync already agreed on.
            ids = [obj.pk for obj in objs]
            models.QuerySet.update(
                self.filter(pk__in=ids), version=F("version") + 1, needs_sync=True
            )
            versions = dict(self.filter(pk__in=ids).values_list("pk", "version"))
        for obj in objs:
            obj.version, obj.needs_sync = versions.get(obj.pk, obj.version), True
        return count


class InvoiceLineQuerySet(BulkUpdateQuerySet):
    """Bulk changes to lines move their invoices' versions on."""

    def _invoice_ids(self) -> set[int]:
        return set(self.values_list("invoice_id", flat=True)) if stamping() else set()

    def update(self, **kwargs) -> int:
        ids = self._invoice_ids()
        count = super().update(**kwargs)
        bump(ids)
        return count

    def delete(self):
        ids = self._invoice_ids()
        result = super().delete()
        bump(ids)
        return result

    def bulk_update(self, objs, fields, batch_size=None) -> int:
        objs = list(objs)
        with transaction.atomic(using=self.db):  # the change and its stamp, together
            count = super().bulk_update(objs, fields, batch_size=batch_size)
            bump(obj.invoice_id for obj in objs)
        return count

    def bulk_create(self, objs, *args, **kwargs):
        made = super().bulk_create(objs, *args, **kwargs)
        bump(obj.invoice_id for obj in made)
        return made
