"""A push at QuickBooks' limits (issue 13): new invoices pushed to the emulator at 100 ms
latency with its throttling on, as QuickBooks throttles (500 requests and 40 batch requests a
minute per company, 10 at once).

For each size (1,000 and 5,000 new invoices by default, for 50 customers and 20 items that
are new too, so the push creates them), on a fresh database and a company of its own:

- API calls, and the 429s QuickBooks answered (target 0: the limiter keeps under every limit);
- the highest requests and batch requests seen in any 60 seconds of the emulator's log;
- wall time, and the floor QuickBooks' limits allow for the same work: the writes sent 30 to a
  batch while the minute's batch budget lasts and one request each past it, the reads as they
  were made, 10 at once at the emulator's latency, one minute per full minute's budget;
  the ratio of the two (target at most 1.3);
- the same floor with each request taking as long as the emulator took to answer it (its
  latency included), which no client can beat, and the ratio to it: where the limits do not
  bind (1,000 invoices: 0.4 s), the emulator's own work creating the invoices does.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/push_limits.py [--sizes 1000,5000] [--latency-ms 100]

Prints figures and ratios; it is a measurement, not a timed test. The 5,000 case takes about
four minutes: QuickBooks' own budgets make it last at least three.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    bench_emulator,
    book_invoices,
    busiest_minute,
    database_reset,
    django_database,
    ready_connection,
)

# QuickBooks' limits per company (qbo-api.md sections 5 and 6).
PER_MINUTE, BATCHES_PER_MINUTE, AT_ONCE, BATCH_ITEMS = 500, 40, 10, 30
TARGET_RATIO = 1.3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--latency-ms", type=int, default=100)
    args = parser.parse_args()
    with django_database(os.environ.get("DATABASE_URL")):
        return run(args)


def floor_seconds(*, writes: int, reads: int, latency: float) -> float:
    """The least time QuickBooks' limits allow for ``writes`` object writes and ``reads`` other
    requests: each minute's budget holds 40 batches of 30 writes and 460 requests more; the
    last, partial minute is sent 10 requests at once, each taking ``latency`` seconds."""
    per_minute = BATCHES_PER_MINUTE * BATCH_ITEMS + (PER_MINUTE - BATCHES_PER_MINUTE)
    minutes, rest = divmod(writes, per_minute)
    batches = min(BATCHES_PER_MINUTE, math.ceil(rest / BATCH_ITEMS))
    singles = max(0, rest - BATCHES_PER_MINUTE * BATCH_ITEMS)
    return minutes * 60 + math.ceil((batches + singles + reads) / AT_ONCE) * latency


def run(args) -> int:
    from sync.services import sync_run

    sizes = [int(n) for n in args.sizes.split(",")]
    latency = args.latency_ms / 1000
    rows = []
    with bench_emulator(throttle=True, latency_ms=args.latency_ms) as emulator:
        if len(emulator.realm_ids) < len(sizes):
            raise SystemExit(f"the emulator has {len(emulator.realm_ids)} companies")
        for size, realm in zip(sizes, emulator.realm_ids, strict=False):
            database_reset()
            connection = ready_connection(emulator, realm)
            book_invoices(size, customers=args.customers, items=args.items)
            emulator.app.clear_log()
            print(f"pushing {size:,} new invoices ...", flush=True)
            started = time.perf_counter()

            shown = {"step": 0}

            def progress(run, *, _started=started, _shown=shown):
                if run.done // 500 > _shown["step"]:
                    _shown["step"] = run.done // 500
                    elapsed = time.perf_counter() - _started
                    print(f"  {run.done:,}/{run.total:,} after {elapsed:.0f} s", flush=True)

            pushed = sync_run(
                connection=connection, trigger="command", direction="push", on_progress=progress
            )
            took = time.perf_counter() - started
            log = [r for r in emulator.app.requests_log(realm_id=realm) if "/v3/" in r["path"]]
            batches = [r for r in log if r["path"].endswith("/batch")]
            posts = [r for r in log if r["method"] == "POST" and r not in batches]
            throttled = [r for r in log if r["status"] == 429]
            writes = pushed.created + pushed.updated
            reads = len(log) - len(batches) - len(posts)
            floor = floor_seconds(writes=writes, reads=reads, latency=latency)
            # The emulator's own time answering (its latency included), 10 requests at once:
            # no client gets its answers sooner, whatever the limits allow.
            answering = sum(r["duration_ms"] or 0 for r in log) / 1000 / AT_ONCE
            rows.append(
                {
                    "size": size,
                    "run": pushed,
                    "calls": len(log),
                    "batches": len(batches),
                    "singles": len(posts),
                    "throttled": len(throttled),
                    "minute": busiest_minute([r["time"] for r in log]),
                    "batch_minute": busiest_minute([r["time"] for r in batches]),
                    "took": took,
                    "floor": floor,
                    "answering": max(floor, answering),
                }
            )

    print(
        f"push of new invoices ({args.customers} customers, {args.items} items, also new), "
        f"emulator at {args.latency_ms} ms latency, throttling on"
    )
    ok = True
    for row in rows:
        run = row["run"]
        ratio = row["took"] / row["floor"]
        print(
            f"  {row['size']:>6,} invoices: created {run.created}, failed {run.failed}; "
            f"API calls {row['calls']} ({row['batches']} batches, {row['singles']} single "
            f"writes), run record says {run.api_calls}; 429s {row['throttled']} (target 0)"
        )
        print(
            f"          busiest minute: {row['minute']} requests (limit {PER_MINUTE}), "
            f"{row['batch_minute']} batches (limit {BATCHES_PER_MINUTE})"
        )
        print(
            f"          {row['took']:.1f} s; floor the limits allow {row['floor']:.1f} s; "
            f"ratio {ratio:.2f} (target at most {TARGET_RATIO})"
        )
        print(
            f"          floor with the emulator's own answer times {row['answering']:.1f} s; "
            f"ratio {row['took'] / row['answering']:.2f}"
        )
        ok = ok and row["throttled"] == 0 and run.failed == 0
        ok = ok and row["minute"] <= PER_MINUTE and row["batch_minute"] <= BATCHES_PER_MINUTE
        ok = ok and ratio <= TARGET_RATIO
    print("within targets" if ok else "OUTSIDE TARGETS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
