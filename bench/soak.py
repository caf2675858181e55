"""Soak two-way sync under QuickBooks' transient faults, seed by seed, and count what went wrong.

Per seed, on a fresh database and a fresh emulator company: N portal invoices and about 15% as
many made in QuickBooks; rounds of random edits on both sides, each followed by a two-way sync
with faults on (5xx, 429, dropped connections, answers lost after the write); then faults off
and sync until a run changes nothing (at most --settle-runs). Then a line per seed: runs and
seconds to settle, duplicates in the portal and in QuickBooks, invoices on one side only,
differing invoices (``sync.reconcile``), records pending, failed, held or uncertain, runs that
crashed or were left running, and the faults injected. What counts as each is in
``tests/sync/soak.py``.

    DATABASE_URL=postgres://... .venv/bin/python bench/soak.py --seeds 2 [--invoices 500]
        [--qbo-invoices K] [--rounds 5] [--fault-rate 0.1] [--lost-rate 0] [--rule RULE]

Runs on the database server DATABASE_URL names (SQLite without it), in a database made for
the run and dropped after it. Exits 1 when any seed has a duplicate, a lost or differing
invoice, a crashed run or does not settle.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    bench_emulator,
    database_reset,
    django_database,
    ready_connection,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, required=True, help="how many seeds (1..N)")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--invoices", type=int, default=500)
    parser.add_argument("--qbo-invoices", type=int, default=None, help="default: 15%% of N")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--lost-rate", type=float, default=0.0)
    parser.add_argument("--settle-runs", type=int, default=10)
    parser.add_argument(
        "--rule",
        choices=["qbo_wins", "portal_wins", "hold", "rotate"],
        default="rotate",
        help="the conflict rule; 'rotate' takes each in turn by seed",
    )
    args = parser.parse_args()
    with django_database(os.environ.get("DATABASE_URL")):
        return run(args)


def run(args) -> int:
    from tests.sync.soak import FAULT_KINDS, RULES, Soak, SoakSettings, total_line

    # The engine logs each retry and failure; the soak counts them itself.
    logging.disable(logging.WARNING)

    results = []
    started = time.perf_counter()
    with bench_emulator() as emulator:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            database_reset()
            emulator.app.reset_realm(emulator.realm_ids[0])
            emulator.app.clear_log()
            rule = RULES[seed % len(RULES)] if args.rule == "rotate" else args.rule
            settings = SoakSettings(
                invoices=args.invoices,
                qbo_invoices=args.qbo_invoices,
                rounds=args.rounds,
                fault_rate=args.fault_rate,
                lost_rate=args.lost_rate,
                settle_runs=args.settle_runs,
                rule=rule,
            )
            soak = Soak(
                connection=ready_connection(emulator),
                emulator=emulator,
                seed=seed,
                settings=settings,
                echo=lambda line: print(line, flush=True),
            )
            result = soak.run()
            results.append(result)
            print(result.line(), flush=True)
            for line in result.details():
                print(f"    {line}", flush=True)

    print(total_line(results, time.perf_counter() - started))
    faults = sum((result.faults for result in results), Counter())
    missing = [kind for kind in FAULT_KINDS if not faults.get(kind)]
    if missing:
        print(f"faults never injected: {', '.join(missing)} (raise --fault-rate or --rounds)")
    failing = [result.seed for result in results if result.problems]
    print(f"FAILED seeds: {', '.join(map(str, failing))}" if failing else "all seeds clean")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
