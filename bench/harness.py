"""What the benchmarks share: Django on a throwaway database, and the emulator with the portal
pointed at it and a company connected and ready to sync.

Import it after putting the repository on ``sys.path`` (each benchmark does so first).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CLIENT = "bench"


def _configure(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["LEDGERLINK_ENV_FILE"] = os.devnull
    import django

    django.setup()


@contextmanager
def django_database(database_url: str | None = None) -> Iterator[None]:
    """Django set up on a database made for this run and removed after it.

    Without ``database_url``, a SQLite file in a temporary directory. With one (PostgreSQL),
    a new database on that server named after it (``<name>_bench_<pid>``), made and dropped
    as Django's test runner does: the database the URL names is never written to.
    """
    if not database_url:
        with tempfile.TemporaryDirectory() as tmp:
            _configure(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
            call_command("createcachetable", verbosity=0)
            yield
        return
    _configure(database_url)
    from django.db import connection

    name = connection.settings_dict["NAME"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"{name}_bench_{os.getpid()}"
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        yield
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)


def database_reset() -> None:
    """Empty every table (as a fresh migrate leaves them) and the cache, for the next case."""
    from django.core.cache import cache
    from django.core.management import call_command

    call_command("flush", interactive=False, verbosity=0)
    cache.clear()


@contextmanager
def bench_emulator(**options) -> Iterator:
    """The emulator in this process on a free loopback port (throttling off unless
    ``options`` say otherwise), with the portal's settings pointed at it."""
    from django.conf import settings

    from qbo_emulator import start_emulator

    emulator = start_emulator(
        **{"throttle": False, "client_id": CLIENT, "client_secret": CLIENT, **options}
    )
    settings.QBO_ENVIRONMENT = "emulator"
    settings.QBO_EMULATOR_URL = emulator.base_url
    settings.QBO_CLIENT_ID = settings.QBO_CLIENT_SECRET = CLIENT
    try:
        yield emulator
    finally:
        emulator.stop()


def ready_connection(emulator, realm_id: str | None = None):
    """A company connected with real emulator tokens, journals picked and tax mapped."""
    from tests.qbo import connect_with_tokens, set_up_for_sync

    return set_up_for_sync(connect_with_tokens(emulator, realm_id or emulator.realm_ids[0]))
