"""With REDIS_URL set, Redis is both django-q2's broker and the cache (production set-up)."""

import socket

import pytest

from tests.portal.test_settings_and_health import _start


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.skipif(
    not _redis_up(), reason="Redis is not running on 127.0.0.1:6379 (.ci/run starts it)"
)
def test_redis_url_makes_redis_the_broker_and_the_cache():
    script = (
        "from django.conf import settings; from django.core.cache import cache;"
        "from portal.selectors import task_queue_state;"
        "cache.set('ledgerlink-test', 42, 5); assert cache.get('ledgerlink-test') == 42;"
        "state = task_queue_state(); print(settings.Q_CLUSTER.get('redis'), state['broker'],"
        " state['status'] != 'error', settings.CACHES['default']['BACKEND'])"
    )
    result = _start({"REDIS_URL": "redis://127.0.0.1:6379/5"}, "shell", "-v", "0", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "redis://127.0.0.1:6379/5",
        "redis",
        "True",
        "django.core.cache.backends.redis.RedisCache",
    ]
