"""Queueing django-q2 tasks: after the current transaction commits, or once, later.

Tasks are named by their dotted path, so a module can queue another app's task without
importing it (integrations queues sync's pulls this way).
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q import tasks as q_tasks
from django_q.models import Schedule


def queue(func: str, *args, **kwargs) -> None:
    """Queue task ``func`` (a dotted path) with ``args`` once the current transaction commits."""
    # django-q2 reads Q_CLUSTER["sync"] once at import; reading it per call lets tests and
    # single-process set-ups switch to running tasks inline.
    run_inline = bool(settings.Q_CLUSTER.get("sync", False))
    transaction.on_commit(lambda: q_tasks.async_task(func, *args, sync=run_inline, **kwargs))


def queue_later(func: str, *args, key: str, delay: timedelta) -> None:
    """Run task ``func`` once, ``delay`` from now (django-q2's scheduler starts it). ``key``
    names it, so asking again while one is waiting adds nothing."""
    if Schedule.objects.filter(name=key).exists():
        return
    with contextlib.suppress(IntegrityError):
        q_tasks.schedule(
            func, *args, name=key, schedule_type=Schedule.ONCE, next_run=timezone.now() + delay
        )
