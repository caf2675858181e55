"""Reads used by the portal's own views."""

from __future__ import annotations

from django.conf import settings


def task_queue_state() -> dict:
    """The django-q2 broker's reachability, queue length and running clusters."""
    from django_q.brokers import get_broker
    from django_q.status import Stat

    broker_name = "redis" if "redis" in settings.Q_CLUSTER else "orm"
    try:
        broker = get_broker()
        if not broker.ping():
            return {"status": "error", "broker": broker_name, "error": "broker did not answer"}
        queued = broker.queue_size()
        clusters = [
            {"cluster": str(stat.cluster_id), "status": stat.status, "workers": len(stat.workers)}
            for stat in Stat.get_all(broker=broker)
        ]
    except Exception as exc:  # any broker failure is reported, never raised, by a health check
        return {"status": "error", "broker": broker_name, "error": exc.__class__.__name__}
    return {
        "status": "ok" if clusters else "no workers",
        "broker": broker_name,
        "queued": queued,
        "clusters": clusters,
    }
