"""Who changed what, and when: the change history of invoices (with their lines), customers
and items, kept by django-simple-history.

Every save and delete of those records leaves a historical row. A change staff make carries
the person (``HistoryRequestMiddleware``); a change the sync makes carries its source instead,
set with ``changes_by("QuickBooks sync (pull, run 12)")`` around the sync's writes. Writes that
go round ``save()`` (``QuerySet.update``, ``bulk_create``, ``bulk_update``, a delete in bulk)
are invisible to simple-history, so the code making them records them here:
``update_with_history``, ``create_with_history``, ``record_changed``, ``delete_with_history``
and ``record_later``.

One request, or one step of a sync run, is one *unit*: every row recorded in it shares a batch
id, so the history page shows an invoice's header and line changes of one save together. A
record written twice in one unit (saved, then its totals updated) keeps one row, amended, so
the history reads one change per save rather than one per SQL statement.
"""

from __future__ import annotations

import functools
import logging
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, connections, models, transaction
from django.dispatch import receiver
from django.utils import timezone
from simple_history.signals import post_create_historical_record, pre_create_historical_record
from simple_history.utils import bulk_create_with_history, get_history_manager_for_model

logger = logging.getLogger(__name__)
_local = threading.local()


class HistoryFields(models.Model):
    """Added to every historical row: who made the change when no person did, and the unit
    (request or sync step) it belongs to."""

    history_source = models.CharField(
        "changed by (not a person)",
        max_length=120,
        blank=True,
        help_text='What made the change when no person did, e.g. "QuickBooks sync (pull, run 12)".',
    )
    history_batch = models.CharField(max_length=32, blank=True, db_index=True)

    class Meta:
        abstract = True


class _Unit:
    def __init__(self, source: str):
        self.source = source
        self.batch = uuid.uuid4().hex
        # (history model, object pk) -> the row recorded for it in this unit.
        self.rows: dict[tuple[type, object], models.Model] = {}
        # (history model, object pk) -> a record changed in this unit whose row is written
        # when the unit ends (``record_later``).
        self.pending: dict[tuple[type, object], models.Model] = {}


def _current() -> _Unit | None:
    return getattr(_local, "unit", None)


@contextmanager
def _in_unit(unit: _Unit) -> Iterator[_Unit]:
    previous = _current()
    _local.unit = unit
    try:
        yield unit
    finally:
        try:
            _write_pending(unit)
        except DatabaseError:
            # What was changed stays changed; only its history row is missing.
            logger.warning("portal.history.write_failed", exc_info=True)
        finally:
            _local.unit = previous


@contextmanager
def changes_by(source: str) -> Iterator[None]:
    """Record the portal writes made inside as made by ``source`` (a process, not a person),
    in a unit of their own."""
    with _in_unit(_Unit(source)):
        yield


@contextmanager
def change_unit() -> Iterator[None]:
    """Group the writes made inside as one change per record (a request, a service call).
    Inside another unit, the writes join it."""
    if _current() is not None:
        yield
        return
    with _in_unit(_Unit("")):
        yield


def current_source() -> str:
    """The source the writes being made now are recorded with ("" for a person's)."""
    unit = _current()
    return unit.source if unit is not None else ""


@receiver(pre_create_historical_record, dispatch_uid="portal.history.stamp")
def _stamp(sender, history_instance, **kwargs) -> None:
    unit = _current()
    if unit is None or not isinstance(history_instance, HistoryFields):
        return
    history_instance.history_batch = unit.batch
    if unit.source:
        # The sync may run inside a request (tasks run inline): the change is still the sync's.
        history_instance.history_source = unit.source
        history_instance.history_user = None


@receiver(post_create_historical_record, dispatch_uid="portal.history.remember")
def _remember(sender, instance, history_instance, **kwargs) -> None:
    unit = _current()
    if unit is not None:
        unit.rows[(sender, instance.pk)] = history_instance


def _enabled() -> bool:
    return getattr(settings, "SIMPLE_HISTORY_ENABLED", True)


def _attrs() -> dict:
    unit = _current()
    if unit is None:
        return {}
    return {"history_source": unit.source, "history_batch": unit.batch}


def _as_source(objs: Iterable[models.Model]) -> None:
    if current_source():
        for obj in objs:
            obj._history_user = None


def _record(objs: list[models.Model], *, update: bool) -> list[models.Model]:
    """Write one historical row per object, as it is in memory now."""
    if not objs or not _enabled():
        return []
    _as_source(objs)
    manager = get_history_manager_for_model(type(objs[0]))
    rows = manager.bulk_history_create(objs, update=update, custom_historical_attrs=_attrs()) or []
    unit = _current()
    if unit is not None:
        for obj, row in zip(objs, rows, strict=False):
            unit.rows[(manager.model, obj.pk)] = row
    return rows


def update_with_history(instance: models.Model, **values) -> None:
    """``QuerySet.update`` ``values`` on ``instance`` (and set them on it), recorded in its
    history: into the row already recorded for it in this unit, or as a new row."""
    if not values:
        return
    model = type(instance)
    model._default_manager.filter(pk=instance.pk).update(**values)
    for name, value in values.items():
        setattr(instance, name, value)
    if not _enabled():
        return
    history_model = history_model_for(model)
    unit = _current()
    row = unit.rows.get((history_model, instance.pk)) if unit is not None else None
    if row is None:
        _record([instance], update=True)
        return
    tracked = {field.attname for field in history_model.tracked_fields}
    changed = [name for name in values if name in tracked]
    for name in changed:
        setattr(row, name, values[name])
    if changed:
        row.save(update_fields=changed)


@functools.cache
def history_model_for(model: type[models.Model]) -> type[models.Model]:
    """The historical model of ``model`` (simple-history builds a manager for each look-up,
    which costs more than the row it records when done per record)."""
    return get_history_manager_for_model(model).model


def record_later(instance: models.Model) -> None:
    """``instance`` was changed round ``save()``: its historical row is written, as the
    record then is, when this unit ends, with the other records changed in it in one query
    per model (a sync step must not pay a query per record for history). Outside a unit,
    at once."""
    unit = _current()
    if unit is None:
        _record([instance], update=True)
        return
    history_model = history_model_for(type(instance))
    unit.pending[(history_model, instance.pk)] = instance


def _write_pending(unit: _Unit) -> None:
    pending, unit.pending = unit.pending, {}
    if not pending or not _enabled():
        return
    fresh: dict[type, list[models.Model]] = {}
    for key, instance in pending.items():
        row = unit.rows.get(key)
        if row is None:
            fresh.setdefault(key[0], []).append(instance)
            continue
        # Already recorded in this unit (saved, then changed again): one row, amended.
        names = [f.attname for f in key[0].tracked_fields]
        for name in names:
            setattr(row, name, getattr(instance, name))
        row.save(update_fields=names)
    for objs in fresh.values():
        _record(objs, update=True)


def create_with_history(objs: list[models.Model]) -> list[models.Model]:
    """``bulk_create`` ``objs`` with one historical row each ("created"), remembered in this
    unit as a ``save()`` would be (a later change in the unit amends it)."""
    if not objs:
        return []
    model = type(objs[0])
    _as_source(objs)
    if not connections[model._default_manager.db].features.can_return_rows_from_bulk_insert:
        # The new rows' ids are not known without it: simple-history finds them itself.
        return bulk_create_with_history(objs, model, custom_historical_attrs=_attrs() or None)
    with transaction.atomic(using=model._default_manager.db, savepoint=False):
        made = model._default_manager.bulk_create(objs)
        _record(made, update=False)
    return made


def record_changed(objs: list[models.Model]) -> None:
    """``objs`` were changed round ``save()`` (``bulk_update``): their historical rows are
    written now, as they are in memory, in one query per model. A record already recorded in
    this unit has that row amended, as ``update_with_history`` does."""
    if not objs or not _enabled():
        return
    unit = _current()
    history_model = history_model_for(type(objs[0]))
    fresh = []
    for obj in objs:
        row = unit.rows.get((history_model, obj.pk)) if unit is not None else None
        if row is None:
            fresh.append(obj)
            continue
        names = [f.attname for f in history_model.tracked_fields]
        for name in names:
            setattr(row, name, getattr(obj, name))
        row.save(update_fields=names)
    _record(fresh, update=True)


def delete_with_history(objs: list[models.Model], queryset: models.QuerySet) -> None:
    """Delete ``queryset`` in one query, with a historical row ("deleted") for each of
    ``objs``, the records it holds as loaded, in one more. ``QuerySet.delete()`` would write
    those rows one query each (simple-history records deletes per object, by signal), so
    the delete goes round it: only for models nothing else refers to or listens to."""
    if objs and _enabled():
        _as_source(objs)
        history_model = history_model_for(type(objs[0]))
        now = timezone.now()
        attrs = _attrs()
        rows = [
            history_model(
                history_date=now,
                history_user=getattr(
                    obj, "_history_user", history_model.get_default_history_user(obj)
                ),
                history_change_reason="",
                history_type="-",
                **{
                    field.attname: getattr(obj, field.attname)
                    for field in history_model.tracked_fields
                },
                **attrs,
            )
            for obj in objs
        ]
        rows = history_model.objects.bulk_create(rows)
        unit = _current()
        if unit is not None:
            for obj, row in zip(objs, rows, strict=True):
                unit.rows[(history_model, obj.pk)] = row
    queryset._raw_delete(queryset.db)
