"""More workers, more companies (issue 13): 1, 2 and 4 ``qcluster`` workers on Redis pushing
1,000 new invoices to each of 4 companies, against the emulator at 100 ms latency with its
throttling on, as QuickBooks throttles (per company: 500 requests and 40 batch requests a
minute, 10 at once).

For each number of workers N, on a fresh database, fresh emulator companies and an empty
Redis database: each company gets its own new invoices (2 lines each, for 50 customers and
20 items, new too); N ``manage.py qcluster`` processes of one worker each (Q_WORKERS=1) start
on the same PostgreSQL database and Redis, as N machines would; one push per company is
queued (``sync.tasks.push_invoices``, Sync now on the company's invoices) and the clusters
share them. Printed per N: wall time from queueing to the last run's end, the runs per
company, and per company from the emulator's log the API calls, the 429s, the most requests
and batch requests in any 60 seconds and the most requests in flight at once, against
QuickBooks' limits; then the time of 1 worker over the time of N, and what the emulator (in
this process) and the workers used of the CPU, so a bottleneck there shows.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/scale_out.py [--companies 4] [--invoices 1000] \\
        [--workers 1,2,4] [--latency-ms 100] [--redis-url redis://127.0.0.1:6379/6]

The Redis database named is emptied before each case. Exits 1 when any company went over a
limit, got a 429 or had a run fail. A measurement, not a timed test.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    CLIENT,
    bench_emulator,
    book_invoices,
    busiest_minute,
    database_reset,
    database_url,
    django_database,
    qcluster_start,
    qcluster_stop,
    ready_connection,
)

# QuickBooks' limits per company (qbo-api.md sections 5 and 6).
PER_MINUTE, BATCHES_PER_MINUTE, AT_ONCE = 500, 40, 10
STARTUP_SECONDS = 60
PROGRESS_EVERY = 10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=4)
    parser.add_argument("--invoices", type=int, default=1000, help="new invoices per company")
    parser.add_argument("--workers", default="1,2,4", help="worker counts to run, in order")
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/6")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per case")
    args = parser.parse_args()
    database = os.environ.get("DATABASE_URL", "")
    if not database.startswith("postgres"):
        parser.error("set DATABASE_URL to a PostgreSQL server: the workers share its database")
    # This process queues the tasks on Redis and empties it between cases.
    os.environ["REDIS_URL"] = args.redis_url
    with django_database(database):
        return run(args)


def _realms(count: int) -> list[tuple[str, str]]:
    """The emulator's companies: its two sandbox companies and more, numbered after them."""
    from qbo_emulator.sandbox import DEFAULT_REALMS

    extra = [(f"93414530503{n:05}", f"Scale Company {n}") for n in range(count)]
    return [*DEFAULT_REALMS, *extra][: max(count, len(DEFAULT_REALMS))]


def in_flight_most(entries: list[dict]) -> int:
    """The most of ``entries`` (the emulator's log) being answered at one moment."""
    edges = []
    for entry in entries:
        edges.append((entry["time"] - entry["duration_ms"] / 1000, 1))
        edges.append((entry["time"], -1))
    most = now = 0
    for _moment, step in sorted(edges):
        now += step
        most = max(most, now)
    return most


def _cpu_seconds() -> float:
    """CPU time used so far by this process (the emulator's threads and the polling)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _clusters_cpu_seconds(clusters) -> float:
    """CPU time used so far by the live processes of the clusters' process groups (Linux)."""
    groups = {process.pid for process in clusters}
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state, ppid, pgrp, ..., utime (14th field) and stime (15th).
        if int(fields[2]) in groups:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def run_case(args, emulator, workers: int) -> dict:
    """Push every company's invoices with ``workers`` one-worker clusters; the figures."""
    from django.utils import timezone
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    from sync.models import SyncRecord, SyncRun

    database_reset()  # the tables, and the Redis database (broker, cache, leases)
    companies = []
    for n, realm_id in enumerate(emulator.realm_ids[: args.companies]):
        emulator.app.reset_realm(realm_id)
        connection = ready_connection(emulator, realm_id)
        ids = book_invoices(
            args.invoices, customers=args.customers, items=args.items, tag=f"Company {n}"
        )
        companies.append((connection, ids))
    # QuickBooks' windows start empty too, as the limiter's budgets in Redis do: the last
    # case's requests would otherwise still count for a minute (and be answered 429).
    emulator.app.throttle.reset()
    emulator.app.clear_log()
    env = {
        "DATABASE_URL": database_url(),
        "REDIS_URL": args.redis_url,
        "Q_WORKERS": "1",
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "LEDGERLINK_ENV_FILE": os.devnull,
        "QBO_ENVIRONMENT": "emulator",
        "QBO_EMULATOR_URL": emulator.base_url,
        "QBO_CLIENT_ID": CLIENT,
        "QBO_CLIENT_SECRET": CLIENT,
    }
    logs = ROOT / "artifacts" / "scale_out"
    logs.mkdir(parents=True, exist_ok=True)
    clusters = [qcluster_start(env, logs / f"qcluster-{workers}-{n}.log") for n in range(workers)]
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not all("running." in Path(p.log.name).read_text() for p in clusters):
            if any(p.poll() is not None for p in clusters) or time.monotonic() > deadline:
                raise SystemExit(f"a qcluster did not start: see {logs}")
            time.sleep(0.1)
        cpu_before = _cpu_seconds()
        workers_cpu_before = _clusters_cpu_seconds(clusters)
        started = time.perf_counter()
        queued_at = timezone.now()
        for connection, ids in companies:
            async_task("sync.tasks.push_invoices", connection.pk, ids, "button")
        broker = get_broker()
        shown = 0.0
        while True:
            time.sleep(0.5)
            took = time.perf_counter() - started
            runs = SyncRun.objects.exclude(status=SyncRun.Status.SKIPPED)
            ended = runs.exclude(status=SyncRun.Status.RUNNING)
            if ended.values("connection").distinct().count() == len(companies) and not (
                runs.filter(status=SyncRun.Status.RUNNING).exists() or broker.queue_size()
            ):
                break
            if any(p.poll() is not None for p in clusters):
                raise SystemExit(f"a qcluster stopped: see {logs}")
            if took > args.timeout:
                raise SystemExit(f"the runs did not end in {args.timeout:.0f} s: see {logs}")
            if took - shown >= PROGRESS_EVERY:
                shown = took
                going = [
                    f"company {run.connection_id} {run.done:,}/{run.total:,}"
                    for run in runs.filter(status=SyncRun.Status.RUNNING)
                ]
                print(
                    f"    {took:5.0f} s: {ended.count()} of {len(companies)} ended; "
                    f"{', '.join(going) or 'none running'}; "
                    f"{len(emulator.app.requests_log())} requests",
                    flush=True,
                )
        last = SyncRun.objects.order_by("-finished_at").values_list("finished_at", flat=True)[0]
        took = (last - queued_at).total_seconds()
        ran = _runs_by_process(clusters)
        emulator_cpu = _cpu_seconds() - cpu_before
        workers_cpu = _clusters_cpu_seconds(clusters) - workers_cpu_before
    finally:
        qcluster_stop(clusters)
    figures = []
    for connection, ids in companies:
        log = [
            r
            for r in emulator.app.requests_log(realm_id=connection.realm_id)
            if "/v3/" in r["path"]
        ]
        batches = [r for r in log if r["path"].endswith("/batch")]
        runs = SyncRun.objects.filter(connection=connection)
        figures.append(
            {
                "company": connection.company_name,
                "runs": runs.exclude(status=SyncRun.Status.SKIPPED).count(),
                "skipped": runs.filter(status=SyncRun.Status.SKIPPED).count(),
                "failed": runs.filter(status=SyncRun.Status.FAILED).count(),
                "synced": SyncRecord.objects.filter(
                    connection=connection, object_type="invoice", status="synced"
                ).count(),
                "invoices": len(ids),
                "calls": len(log),
                "throttled": sum(1 for r in log if r["status"] == 429),
                "minute": busiest_minute([r["time"] for r in log]),
                "batch_minute": busiest_minute([r["time"] for r in batches]),
                "at_once": in_flight_most(log),
                "overhead_ms": _median(
                    [r["duration_ms"] - args.latency_ms for r in log if r["duration_ms"]]
                ),
            }
        )
    return {
        "workers": workers,
        "took": took,
        "companies": figures,
        "emulator_cpu": emulator_cpu,
        "workers_cpu": workers_cpu,
        "ran": ran,
    }


def _runs_by_process(clusters) -> list[int]:
    """How many sync tasks each cluster took, from django-q2's lines in its log."""
    taken = re.compile(r"processing \S+ 'sync\.tasks\.push_invoices'")
    return [len(taken.findall(Path(process.log.name).read_text())) for process in clusters]


def _median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2] if values else 0.0


def run(args) -> int:
    counts = [int(n) for n in args.workers.split(",")]
    cases = []
    print(
        f"{args.companies} companies x {args.invoices:,} new invoices ({args.customers} "
        f"customers, {args.items} items, new too); emulator in this process at "
        f"{args.latency_ms} ms latency, throttling on; Redis {args.redis_url}; "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    with bench_emulator(
        throttle=True, latency_ms=args.latency_ms, realms=_realms(args.companies)
    ) as emulator:
        if len(emulator.realm_ids) < args.companies:
            raise SystemExit(f"the emulator has {len(emulator.realm_ids)} companies")
        for workers in counts:
            print(f"  {workers} worker(s): pushing ...", flush=True)
            cases.append(run_case(args, emulator, workers))
            print(f"  {workers} worker(s): {cases[-1]['took']:.1f} s", flush=True)

    ok = True
    print(
        f"\nscale-out: {args.companies} companies x {args.invoices:,} new invoices, one "
        f"worker per qcluster process; limits per company: {PER_MINUTE} requests and "
        f"{BATCHES_PER_MINUTE} batches in any 60 s, {AT_ONCE} at once"
    )
    for case in cases:
        wall = case["took"]
        print(
            f"  {case['workers']} worker(s): {wall:.1f} s; CPU used: emulator and this process "
            f"{case['emulator_cpu']:.1f} s ({case['emulator_cpu'] / wall:.0%} of one core), "
            f"workers {case['workers_cpu']:.1f} s ({case['workers_cpu'] / wall:.0%} of one core); "
            f"pushes taken by each process: {', '.join(map(str, case['ran']))}"
        )
        for row in case["companies"]:
            print(
                f"      {row['company'][:28]:<28} runs {row['runs']} (skipped {row['skipped']}, "
                f"failed {row['failed']}); invoices synced {row['synced']}/{row['invoices']}; "
                f"API calls {row['calls']}, 429s {row['throttled']}; busiest 60 s: "
                f"{row['minute']} requests, {row['batch_minute']} batches; "
                f"at once {row['at_once']}; emulator's own time per request (median) "
                f"{row['overhead_ms']:.1f} ms"
            )
            ok = ok and row["throttled"] == 0 and row["failed"] == 0
            ok = ok and row["synced"] == row["invoices"]
            ok = ok and row["minute"] <= PER_MINUTE and row["batch_minute"] <= BATCHES_PER_MINUTE
            ok = ok and row["at_once"] <= AT_ONCE
    base = cases[0]
    for case in cases[1:]:
        print(
            f"  time of {base['workers']} worker(s) / time of {case['workers']}: "
            f"{base['took'] / case['took']:.2f}"
        )
    slow = [
        case["workers"]
        for case in cases
        if case["emulator_cpu"] / case["took"] > 0.8
        or max(row["overhead_ms"] for row in case["companies"]) > args.latency_ms / 2
    ]
    if slow:
        print(
            "  the emulator may be the bottleneck with "
            f"{', '.join(map(str, slow))} worker(s): this process was busy or its answers slow"
        )
    else:
        print("  the emulator was not the bottleneck (its process stayed under 80% of a core)")
    print("within QuickBooks' limits" if ok else "OUTSIDE QuickBooks' limits (or a run failed)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
