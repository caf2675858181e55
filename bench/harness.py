"""What the benchmarks share: Django on a throwaway database, the emulator with the portal
pointed at it and a company connected and ready to sync, a book of new invoices, the busiest
minute of the emulator's log, and ``qcluster`` worker processes.

Import it after putting the repository on ``sys.path`` (each benchmark does so first).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

CLIENT = "bench"
ROOT = Path(__file__).resolve().parents[1]


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


def database_url() -> str:
    """The URL of the database Django uses now (the benchmark's own), for worker processes."""
    from django.db import connection

    db = connection.settings_dict
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    return f"postgres://{auth}@{host}:{port}/{db['NAME']}"


def book_invoices(size: int, *, customers: int, items: int, tag: str = "Limits") -> list[int]:
    """``size`` new invoices of two lines each, for ``customers`` and ``items`` new ones named
    after ``tag`` (numbered ``<first letters of tag>-00000``). Returns the invoices' ids."""
    from portal.models import Customer, Invoice, InvoiceLine, Item

    prefix = "".join(word[0] for word in tag.split()).upper()
    people = Customer.objects.bulk_create(
        Customer(display_name=f"{tag} Customer {n:03}") for n in range(customers)
    )
    goods = Item.objects.bulk_create(
        Item(name=f"{tag} Item {n:03}", sales_price=Decimal(10 + n)) for n in range(items)
    )
    ids = []
    for first in range(0, size, 1000):
        numbers = range(first, min(first + 1000, size))
        lines, invoices = [], []
        for n in numbers:
            pair = [goods[n % items], goods[(n + 1) % items]]
            amount = pair[0].sales_price + 2 * pair[1].sales_price
            invoices.append(
                Invoice(
                    number=f"{prefix}-{n:05}",
                    customer=people[n % customers],
                    status=Invoice.Status.SENT,
                    subtotal=amount,
                    total=amount,
                )
            )
        Invoice.objects.bulk_create(invoices)
        ids += [invoice.pk for invoice in invoices]
        for invoice, n in zip(invoices, numbers, strict=True):
            for k in (0, 1):
                item = goods[(n + k) % items]
                lines.append(
                    InvoiceLine(
                        invoice=invoice,
                        position=k + 1,
                        item=item,
                        quantity=k + 1,
                        unit_price=item.sales_price,
                        amount=item.sales_price * (k + 1),
                    )
                )
        InvoiceLine.objects.bulk_create(lines)
    return ids


def busiest_minute(times: list[float]) -> int:
    """The most entries of ``times`` (seconds) inside any 60 seconds."""
    times, most, start = sorted(times), 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 60:
            start += 1
        most = max(most, end - start + 1)
    return most


# ``manage.py qcluster``, with django-q2's own lines (cluster running, task taken) logged.
QCLUSTER = """
import logging, django
django.setup()
logging.getLogger("django-q").setLevel(logging.INFO)
from django.core.management import execute_from_command_line
execute_from_command_line(["manage.py", "qcluster"])
"""


def qcluster_start(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start a ``manage.py qcluster`` process with ``env`` (added to this one's), its output
    in ``log_path``, in a process group of its own (``qcluster_stop`` ends it)."""
    log = open(log_path, "w")  # noqa: SIM115 - closed by qcluster_stop
    process = subprocess.Popen(
        [sys.executable, "-c", QCLUSTER],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    process.log = log
    return process


def qcluster_stop(processes: list[subprocess.Popen], wait: float = 15) -> None:
    """SIGTERM each cluster (it finishes its task and stops), then SIGKILL what is left of
    its process group after ``wait`` seconds."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(wait)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
        process.log.close()
