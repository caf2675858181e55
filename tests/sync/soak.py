"""A soak of two-way sync under QuickBooks' transient faults, shared by ``bench/soak.py``
(hundreds of invoices, a line per seed) and ``tests/sync/test_soak.py`` (a smaller version
that asserts the outcome).

One seed: portal invoices and invoices an accountant makes in QuickBooks (discounts, text
lines, amount-only lines, bundles); rounds of random edits on both sides (the portal through
its models and services as staff would, QuickBooks over HTTP as a person in its screens would,
with a few voids and deletes), each followed by one two-way sync run with faults on (5xx, 429,
dropped connections, answers lost after the write, from the emulator's seeded injector); then
faults off and one run after another until a run changes nothing, up to a cap. Then both sides
are compared:

- *duplicates in the portal*: two portal invoices for one QuickBooks invoice (bound to the
  same Id, or one imported back under its own number plus ``-QBO<Id>``, the number the importer
  gives an invoice whose number is taken);
- *duplicates in QuickBooks*: one DocNumber on two QuickBooks invoices (a portal invoice is
  sent with its number, so two QuickBooks copies of one portal invoice share it);
- *lost*: an invoice on one side only, except a portal void QuickBooks does not have (voided
  before it was ever sent, or deleted in QuickBooks and voided in the portal by design);
- *differing*: an invoice whose fields, lines or totals differ (``sync.reconcile``).

Held conflicts and *explained failures* are set aside from lost and differing, and listed: an
explained failure is a record the engine marked failed because QuickBooks refused the data
with a fault code that no retry can change (e.g. lowering a total below the payments applied
to it), so it says why, has no retry time and no write in doubt. Not explained: anything that
failed for a reason that passes (throttling, outages, lost answers, a dependency not bound
yet), which the runs with faults off must have resolved, nor QuickBooks answering that it
already has the invoice (portal and QuickBooks numbers never collide here, so that means the
portal sent one invoice twice).

Between runs, failed records' retry times are made due, standing for the time the schedule
lets pass between runs; the runs are the soak's own (``push_on_save`` off), all two-way.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import requests
from django.utils import timezone

from integrations.models import QuickBooksTaxCode
from integrations.services import connection_client
from portal.models import Customer, Invoice, InvoiceLine, Item, TaxRate
from portal.services import invoice_save_lines
from sync.mappers.invoice import qbo_is_void
from sync.models import SyncConfiguration, SyncEvent, SyncRecord, SyncRun, TaxMapping
from sync.reconcile import reconcile_report
from sync.services import sync_run
from tests.qbo import EmulatorUI
from tests.sync.shapes import _bundle, _discount, _sale, _tax, _text

FAULT_KINDS = ("http500", "http503", "http429", "drop", "lost")
RULES = ("qbo_wins", "portal_wins", "hold")
# Portal customers and items; the first push matches Amy's and Hours with QuickBooks' own by
# name and creates the others.
PORTAL_CUSTOMERS = (
    "Bayside Dental",
    "Cooper's Hardware",
    "Greenleaf Cafe",
    "Northwind Traders",
    "Amy's Bird Sanctuary",
)
PORTAL_ITEMS = (
    ("Consulting hour", "150.00"),
    ("Site survey", "420.00"),
    ("Garden lights (pack)", "39.99"),
    ("Hours", "50.00"),
)
# The sandbox company's customers (Dukes is in Arizona, taxed by the Tucson code) and items
# (with the price an accountant types).
QBO_CUSTOMERS = (
    "Amy's Bird Sanctuary",
    "Bill's Windsurf Shop",
    "Cool Cars",
    "Dukes Basketball Camp",
)
QBO_ITEMS = (("Hours", 50), ("Design", 75), ("Gardening", 35), ("Services", 100))
# What staff and the accountant do in a round, and how often (weights).
PORTAL_ACTIONS = {"create": 2, "memo": 3, "quantity": 3, "add line": 1, "due date": 1, "void": 1}
QBO_ACTIONS = {
    "create": 2,
    "memo": 3,
    "note": 1,
    "extra line": 2,
    "due date": 1,
    "pay": 1,
    "void": 1,
    "delete": 1,
}
# QuickBooks' codes for "this already exists": a used DocNumber or name, a duplicate object.
ALREADY_THERE = ("6140", "6240", "630")
# The number the importer gives a QuickBooks invoice whose DocNumber a portal invoice has.
IMPORTED_AGAIN = re.compile(r"^(?P<number>.+)-QBO\d+$")
VOID_NOT_SENT = "void (not in QuickBooks)"


@dataclass
class SoakSettings:
    invoices: int = 500
    qbo_invoices: int | None = None  # about 15% of ``invoices`` when None
    rounds: int = 5
    fault_rate: float = 0.1
    lost_rate: float = 0.0
    settle_runs: int = 10
    rule: str = "qbo_wins"

    @property
    def qbo_count(self) -> int:
        if self.qbo_invoices is not None:
            return self.qbo_invoices
        return round(self.invoices * 0.15)

    @property
    def edits(self) -> tuple[int, int]:
        """Edits per round in the portal and in QuickBooks."""
        return max(4, self.invoices // 25), max(3, self.invoices // 50)


@dataclass
class SoakResult:
    seed: int
    settings: SoakSettings
    runs: int = 0
    seconds: float = 0.0
    converged: bool = False
    portal_duplicates: list[str] = field(default_factory=list)
    qbo_duplicates: list[str] = field(default_factory=list)
    only_portal: list[str] = field(default_factory=list)
    only_qbo: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)
    set_aside: list[str] = field(default_factory=list)
    records: Counter = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    left_running: int = 0
    faults: Counter = field(default_factory=Counter)
    # Writes whose answer never came, even after the client's retries (the run marked them
    # uncertain for the next run to replay), in all and by round.
    lost_answers: int = 0
    round_lost_answers: list[int] = field(default_factory=list)
    report: str = ""
    last_run: str = ""

    @property
    def findings(self) -> dict[str, list[str]]:
        """What makes the seed fail, by kind: duplicates, lost or differing invoices, runs
        that crashed or were left running, and not settling within the cap."""
        found = {
            "duplicates in the portal": self.portal_duplicates,
            "duplicates in QuickBooks": self.qbo_duplicates,
            "only in the portal": self.only_portal,
            "only in QuickBooks": self.only_qbo,
            "differing": self.differing,
            "runs crashed": self.crashes,
            "runs left running": [str(self.left_running)] if self.left_running else [],
            "not settled": []
            if self.converged
            else [f"after {self.runs} runs with faults off (last: {self.last_run})"],
        }
        return {kind: values for kind, values in found.items() if values}

    @property
    def problems(self) -> list[str]:
        return [f"{kind}: {value}" for kind, values in self.findings.items() for value in values]

    def details(self, examples: int = 3) -> list[str]:
        """A few examples of each finding and of what was set aside, to print."""
        lines = []
        for kind, values in [*self.findings.items(), ("set aside", self.set_aside)]:
            counted = Counter(values)
            shown = [f"{v} (x{n})" if n > 1 else v for v, n in counted.items()][:examples]
            lines += [f"{kind}: {value}" for value in shown]
            if len(counted) > examples:
                lines.append(f"{kind}: ... {len(counted) - examples} more")
        return lines

    def line(self) -> str:
        settled = "settled" if self.converged else "NOT settled"
        return (
            f"seed {self.seed} ({self.settings.rule}): {settled} in {self.runs} runs "
            f"({self.seconds:.1f} s) | {_figures([self])}"
        )


def total_line(results: list[SoakResult], seconds: float) -> str:
    """The summary row: every seed's figures added up."""
    settled = sum(result.converged for result in results)
    return (
        f"total ({len(results)} seeds, {seconds:.0f} s): settled {settled}/{len(results)}, "
        f"runs {sum(r.runs for r in results)} ({sum(r.seconds for r in results):.1f} s) | "
        f"{_figures(results)}"
    )


def _figures(results: list[SoakResult]) -> str:
    def count(name: str) -> int:
        return sum(len(getattr(result, name)) for result in results)

    records = sum((result.records for result in results), Counter())
    faults = sum((result.faults for result in results), Counter())
    return (
        f"duplicates portal {count('portal_duplicates')} QuickBooks "
        f"{count('qbo_duplicates')} | one side only portal {count('only_portal')} QuickBooks "
        f"{count('only_qbo')} | differing {count('differing')} | set aside "
        f"{count('set_aside')} | records {_counts(records, RECORD_STATES)} | crashed runs "
        f"{count('crashes')}, left running {sum(r.left_running for r in results)} | faults "
        f"{_counts(faults, FAULT_KINDS)}, answers lost past retries "
        f"{sum(r.lost_answers for r in results)}"
    )


RECORD_STATES = ("pending", "failed", "conflict", "uncertain")


def _counts(counter: Counter, keys) -> str:
    return " ".join(f"{key} {counter.get(key, 0)}" for key in keys)


class _UI(EmulatorUI):
    """The emulator's screens, with the lists an accountant picks from read once."""

    LISTS = ("Account", "Item", "TaxCode", "Customer")

    def __init__(self, emulator, realm_id: str):
        super().__init__(emulator, realm_id)
        self._lists: dict[str, list[dict]] = {}

    def rows(self, entity: str) -> list[dict]:
        if entity not in self.LISTS:
            return super().rows(entity)
        if entity not in self._lists:
            self._lists[entity] = super().rows(entity)
        return self._lists[entity]


class Soak:
    """One seed of the soak against one connected company (see the module's docstring).

    ``emulator`` needs ``base_url`` (the control API is spoken over HTTP); ``echo`` prints
    progress, a line per round.
    """

    def __init__(
        self,
        *,
        connection,
        emulator,
        seed: int,
        settings: SoakSettings,
        echo: Callable[[str], None] = lambda line: None,
    ):
        self.connection = connection
        self.base_url = emulator.base_url
        self.realm_id = connection.realm_id
        self.ui = _UI(emulator, self.realm_id)
        self.seed = seed
        self.settings = settings
        self.echo = echo
        # The actions of every round are drawn first, from their own generator, so which
        # edits a seed makes does not depend on what the engine did; the data they touch and
        # write comes from another.
        plan = random.Random(f"soak-plan-{seed}")
        portal_edits, qbo_edits = settings.edits
        self.plan = [
            (_draw(plan, PORTAL_ACTIONS, portal_edits), _draw(plan, QBO_ACTIONS, qbo_edits))
            for _ in range(settings.rounds)
        ]
        self.rng = random.Random(f"soak-data-{seed}")
        self.result = SoakResult(seed=seed, settings=settings)
        self._log_seq = 0
        self._numbers = {"portal": 0, "qbo": 0}
        self.lost = 0

    # --- the seed, start to end ------------------------------------------------------------

    def run(self) -> SoakResult:
        self._configure()
        self._faults(0, 0)
        for _ in range(self.settings.invoices):
            self._portal_create()
        for _ in range(self.settings.qbo_count):
            self._qbo_create()
        self.echo(
            f"seed {self.seed}: {self.settings.invoices} portal invoices, "
            f"{self.settings.qbo_count} made in QuickBooks ({self.settings.rule})"
        )
        self._faults(self.settings.fault_rate, self.settings.lost_rate)
        for number, (portal_actions, qbo_actions) in enumerate(self.plan, start=1):
            # The first round's edits land before the first run, so its push and pull (the
            # portal's creates and QuickBooks' own invoices) happen in one run.
            portal = Counter(self._portal_edit(action) for action in portal_actions)
            qbo = self._qbo_round(qbo_actions)
            took, run = self._sync()
            self.result.round_lost_answers.append(self.lost)
            faults = self._fault_counts()
            self.echo(
                f"seed {self.seed} round {number}/{self.settings.rounds}: portal "
                f"{_summary(portal)} | QuickBooks {_summary(qbo)} | {_describe(run)} in "
                f"{took:.1f} s | faults {_summary(faults) or 'none'}"
            )
        self._faults(0, 0)
        self._settle()
        self._fault_counts()
        return self.measure()

    def _configure(self) -> None:
        SyncConfiguration.objects.update_or_create(
            connection=self.connection,
            defaults={"conflict_rule": self.settings.rule, "push_on_save": False},
        )
        tucson, _ = TaxRate.objects.get_or_create(
            name="Tucson", defaults={"percent": Decimal("7.6")}
        )
        TaxMapping.objects.get_or_create(
            connection=self.connection,
            tax_rate=tucson,
            defaults={
                "tax_code": QuickBooksTaxCode.objects.get(connection=self.connection, qbo_id="3")
            },
        )
        self.california = TaxRate.objects.get(name="California")
        email = {"email": "ap@example.com"}
        self.customers = [
            Customer.objects.get_or_create(display_name=name, defaults=email)[0]
            for name in PORTAL_CUSTOMERS
        ]
        self.items = [
            Item.objects.get_or_create(name=name, defaults={"sales_price": Decimal(price)})[0]
            for name, price in PORTAL_ITEMS
        ]

    # --- runs ------------------------------------------------------------------------------

    def _sync(self) -> tuple[float, SyncRun | None]:
        """One two-way run, as the schedule would start it once failed records are due.

        An exception escaping the engine is recorded and the soak goes on, as the next
        scheduled run would."""
        SyncRecord.objects.filter(
            connection=self.connection, next_retry_at__gt=timezone.now()
        ).update(next_retry_at=timezone.now())
        client = connection_client(connection=self.connection, sleep=lambda seconds: None)
        started = time.perf_counter()
        try:
            run = sync_run(
                connection=self.connection, trigger="command", direction="both", client=client
            )
        except Exception as exc:  # the soak reports what escapes the engine, and goes on
            self.result.crashes.append(f"{type(exc).__name__}: {exc}".splitlines()[0])
            run = None
        latest = SyncRun.objects.filter(connection=self.connection).order_by("-pk").first()
        self.lost = SyncEvent.objects.filter(run=latest, action="uncertain").count()
        self.result.lost_answers += self.lost
        return time.perf_counter() - started, run

    def _settle(self) -> None:
        """Faults off: run until a run changes nothing on either side, at most the cap."""
        started = time.perf_counter()
        for count in range(1, self.settings.settle_runs + 1):
            before = self._qbo_versions()
            _took, run = self._sync()
            self.result.runs = count
            self.result.last_run = _describe(run)
            if run is not None:
                # What the run says it did, for the report when runs never fall quiet.
                events = SyncEvent.objects.filter(run=run).exclude(action="checked")
                self.result.last_run += "".join(
                    f"; {event.message}" for event in events.order_by("pk")[:5]
                )
            quiet = (
                run is not None
                and run.status == SyncRun.Status.DONE
                and not (run.created or run.updated or run.failed or run.conflicts)
                and self._qbo_versions() == before
            )
            if quiet:
                self.result.converged = True
                break
        self.result.seconds = time.perf_counter() - started
        state = "settled" if self.result.converged else "did not settle"
        self.echo(
            f"seed {self.seed}: faults off, {state} after {self.result.runs} runs "
            f"({self.result.seconds:.1f} s); last {self.result.last_run}"
        )

    def _qbo_versions(self) -> dict[str, str]:
        return {row["Id"]: row.get("SyncToken") for row in self.ui.rows("Invoice")}

    # --- the emulator's levers -------------------------------------------------------------

    def _faults(self, rate: float, lost_rate: float) -> None:
        response = requests.post(
            f"{self.base_url}/_emulator/options",
            json={"fault_rate": rate, "lost_rate": lost_rate, "seed": self.seed},
            timeout=10,
        )
        response.raise_for_status()

    def _fault_counts(self) -> Counter:
        """Faults the emulator injected since the last call (and added to the seed's)."""
        response = requests.get(
            f"{self.base_url}/_emulator/requests",
            params={"since": self._log_seq, "realm_id": self.realm_id},
            timeout=10,
        )
        entries = response.json()["requests"]
        if entries:
            self._log_seq = max(entry["seq"] for entry in entries)
        found = Counter(entry["fault"] for entry in entries if entry.get("fault") in FAULT_KINDS)
        self.result.faults.update(found)
        return found

    # --- the portal's side -----------------------------------------------------------------

    def _portal_create(self) -> str:
        self._numbers["portal"] += 1
        invoice = Invoice.objects.create(
            number=f"P-{self._numbers['portal']:05}",
            customer=self.rng.choice(self.customers),
            customer_memo=self.rng.choice(["", "Thank you for your business."]),
        )
        lines = []
        for item in self.rng.sample(self.items, self.rng.randint(1, 3)):
            lines.append(
                {
                    "item": item,
                    "quantity": Decimal(self.rng.choice(["1", "2", "3", "1.5", "4"])),
                    "unit_price": item.sales_price,
                    "tax_rate": self.california if self.rng.random() < 0.4 else None,
                }
            )
        invoice_save_lines(invoice=invoice, lines=lines)
        return "create"

    def _portal_edit(self, action: str) -> str:
        if action == "create":
            return self._portal_create()
        invoice = self._portal_pick()
        if invoice is None:
            return self._portal_create()
        if action == "memo":
            invoice.customer_memo = f"portal memo {self.rng.randint(1, 9999)}"
            invoice.save()
        elif action == "quantity":
            line = next(
                (
                    line
                    for line in invoice.lines.all()
                    if line.kind == InvoiceLine.Kind.ITEM
                    and line.quantity is not None
                    and line.unit_price is not None
                ),
                None,
            )
            if line is None:
                return "quantity (no item line)"
            line.quantity = Decimal(self.rng.randint(1, 9))
            line.save()
            invoice.refresh_totals()
            invoice.save()
        elif action == "add line":
            item = self.rng.choice(self.items)
            last = invoice.lines.order_by("-position").first()
            InvoiceLine.objects.create(
                invoice=invoice,
                position=(last.position if last else 0) + 1,
                item=item,
                quantity=Decimal(self.rng.randint(1, 3)),
                unit_price=item.sales_price,
            )
            invoice.refresh_totals()
            invoice.save()
        elif action == "due date":
            invoice.due_date = invoice.issue_date + timedelta(days=self.rng.choice([15, 30, 45]))
            invoice.save()
        else:
            invoice.status = Invoice.Status.VOID
            invoice.save()
        return action

    def _portal_pick(self) -> Invoice | None:
        ids = list(
            Invoice.objects.exclude(status=Invoice.Status.VOID)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        return Invoice.objects.get(pk=self.rng.choice(ids)) if ids else None

    # --- QuickBooks' side (a person in QuickBooks' screens, over HTTP) ---------------------

    def _qbo_create(self) -> str:
        self._numbers["qbo"] += 1
        ui, rng = self.ui, self.rng
        customer = ui.find("Customer", DisplayName=rng.choice(QBO_CUSTOMERS))
        taxable = rng.random() < 0.3
        lines = []
        for name, price in rng.sample(QBO_ITEMS, rng.randint(1, 3)):
            if rng.random() < 0.2:  # an amount-only line, as QuickBooks allows
                lines.append(_sale(ui, name, rng.randint(1, 9) * 10, taxable=taxable))
            else:
                qty = rng.randint(1, 4)
                lines.append(_sale(ui, name, qty * price, qty, price, taxable=taxable))
            if rng.random() < 0.15:
                lines.append(_text(f"note {rng.randint(1, 99)}"))
        if rng.random() < 0.1:
            lines.append(_bundle(ui, taxable=taxable))
        if rng.random() < 0.25:
            if rng.random() < 0.5:
                lines.append(_discount(ui, percent=rng.choice([5, 10])))
            else:
                lines.append(_discount(ui, amount=rng.choice([5, 10, 15])))
        body = {
            "DocNumber": f"Q-{self._numbers['qbo']:04}",
            "CustomerRef": {"value": customer["Id"]},
            "Line": lines,
        }
        if taxable:
            arizona = customer["DisplayName"] == "Dukes Basketball Camp"
            body["TxnTaxDetail"] = _tax(ui, "Tucson" if arizona else "California")
        try:
            ui.create("Invoice", body)
        except AssertionError:
            # QuickBooks refuses a discount larger than the invoice (a negative total); the
            # accountant drops the discount, as they would on its screen.
            body["Line"] = [x for x in lines if x["DetailType"] != "DiscountLineDetail"]
            ui.create("Invoice", body)
        return "create"

    def _qbo_round(self, actions: list[str]) -> Counter:
        """The round's edits in QuickBooks, each on another invoice (read once per round)."""
        done: Counter = Counter()
        invoices = [
            row
            for row in self.ui.rows("Invoice")
            if row.get("status") != "Deleted" and not qbo_is_void(row)
        ]
        self.rng.shuffle(invoices)
        for action in actions:
            if action == "create" or not invoices:
                done[self._qbo_create()] += 1
            else:
                done[self._qbo_edit(action, invoices.pop())] += 1
        return done

    def _qbo_edit(self, action: str, obj: dict) -> str:
        ui, rng = self.ui, self.rng
        paid = Decimal(str(obj.get("Balance", 0))) < Decimal(str(obj.get("TotalAmt", 0)))
        if action == "memo":
            memo = {"value": f"qbo memo {rng.randint(1, 9999)}"}
            ui.update("Invoice", {"Id": obj["Id"], "CustomerMemo": memo})
        elif action == "note":
            ui.update("Invoice", {"Id": obj["Id"], "PrivateNote": f"note {rng.randint(1, 99)}"})
        elif action == "extra line":
            kept = [line for line in obj["Line"] if line["DetailType"] != "SubTotalLineDetail"]
            has_discount = any(line["DetailType"] == "DiscountLineDetail" for line in kept)
            kinds = ["text", "amount only"] + ([] if has_discount or paid else ["discount"])
            kind = rng.choice(kinds)
            if kind == "text":
                line = _text(f"qbo note {rng.randint(1, 99)}")
            elif kind == "discount":
                line = _discount(ui, percent=rng.choice([5, 10]))
            else:
                name, _price = rng.choice(QBO_ITEMS)
                line = _sale(ui, name, rng.randint(1, 9) * 10)
            ui.update("Invoice", {"Id": obj["Id"], "Line": [*kept, line]})
            action = f"{kind} line"
        elif action == "due date":
            due = timezone.localdate() + timedelta(days=rng.choice([10, 20, 60]))
            ui.update("Invoice", {"Id": obj["Id"], "DueDate": due.isoformat()})
        elif action == "pay":
            balance = Decimal(str(obj.get("Balance", 0)))
            if balance <= 1:
                return "pay (nothing due)"
            amount = float((balance / 2).quantize(Decimal("0.01")))
            ui.create(
                "Payment",
                {
                    "CustomerRef": obj["CustomerRef"],
                    "TotalAmt": amount,
                    "Line": [
                        {
                            "Amount": amount,
                            "LinkedTxn": [{"TxnId": obj["Id"], "TxnType": "Invoice"}],
                        }
                    ],
                },
            )
        elif action == "void":
            ui.void("Invoice", obj["Id"])
        else:
            ui.delete("Invoice", obj["Id"])
        return action

    # --- the outcome -----------------------------------------------------------------------

    def measure(self) -> SoakResult:
        """Compare both sides as they are now (see the module's docstring) into the result."""
        result = self.result
        result.records = Counter()
        result.only_portal, result.only_qbo, result.differing = [], [], []
        records = list(
            SyncRecord.objects.filter(
                connection=self.connection, object_type="invoice"
            ).select_related("invoice")
        )
        for record in records:
            if record.status in ("pending", "failed", "conflict"):
                result.records[record.status] += 1
            if record.uncertain:
                result.records["uncertain"] += 1
        result.left_running = SyncRun.objects.filter(
            connection=self.connection, status=SyncRun.Status.RUNNING
        ).count()
        result.portal_duplicates = _portal_duplicates(records)
        qbo_rows = [row for row in self.ui.rows("Invoice") if row.get("status") != "Deleted"]
        result.qbo_duplicates = _qbo_duplicates(qbo_rows)

        report = reconcile_report(connection=self.connection)
        result.report = report.render()
        by_number = {r.invoice.number: r for r in records if r.invoice_id}
        by_doc = {r.qbo_doc_number: r for r in records if not r.invoice_id}
        aside = {}
        for record in records:
            if record.status == SyncRecord.Status.CONFLICT:
                aside[record.label] = f"held for review: {record.details}"
            elif explained_failure(record):
                aside[record.label] = f"failed ({record.error_code}): {record.details}"
        result.set_aside = [f"{label}: {why}" for label, why in sorted(aside.items())]
        for number, why in report.only_portal:
            if why == VOID_NOT_SENT:
                continue
            if not _set_aside(by_number.get(number), aside):
                result.only_portal.append(f"{number}: {why}")
        for number in report.only_qbo:
            if not _set_aside(by_doc.get(number), aside):
                result.only_qbo.append(number)
        for number, fields in report.differing:
            if not _set_aside(by_number.get(number), aside):
                details = report.details.get(number, {})
                shown = "; ".join(
                    f"{name}: portal {ours!r} / QuickBooks {theirs!r}"
                    for name, (ours, theirs) in details.items()
                )
                result.differing.append(f"{number} ({shown or ', '.join(fields)})")
        return result


def explained_failure(record: SyncRecord) -> bool:
    """A record failed because QuickBooks refused its data with a fault code no retry changes:
    it says why, has no retry time and no write in doubt (see the module's docstring).

    QuickBooks saying it already has the invoice (a used DocNumber, a duplicate object) never
    explains anything here: portal and QuickBooks numbers never collide in the soak, so it
    means the portal sent one invoice twice."""
    return bool(
        record.status == SyncRecord.Status.FAILED
        and record.details
        and record.error_code
        and record.error_code not in ALREADY_THERE
        and record.next_retry_at is None
        and not record.uncertain
    )


def _set_aside(record: SyncRecord | None, aside: dict) -> bool:
    return record is not None and record.label in aside


def _portal_duplicates(records: list[SyncRecord]) -> list[str]:
    found = []
    by_qbo: dict[str, list[str]] = defaultdict(list)
    for record in records:
        if record.qbo_id and record.invoice_id:
            by_qbo[record.qbo_id].append(record.invoice.number)
    found += [
        f"QuickBooks invoice {qbo_id} bound to {', '.join(numbers)}"
        for qbo_id, numbers in sorted(by_qbo.items())
        if len(numbers) > 1
    ]
    numbers = set(Invoice.objects.values_list("number", flat=True))
    for number in sorted(numbers):
        match = IMPORTED_AGAIN.match(number)
        if match and match["number"] in numbers:
            found.append(f"{number} is {match['number']} imported again")
    return found


def _qbo_duplicates(rows: list[dict]) -> list[str]:
    by_doc: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        if row.get("DocNumber"):
            by_doc[row["DocNumber"]].append(row["Id"])
    return [
        f"DocNumber {doc} on ids {', '.join(ids)}"
        for doc, ids in sorted(by_doc.items())
        if len(ids) > 1
    ]


def _draw(rng: random.Random, weights: dict[str, int], count: int) -> list[str]:
    return rng.choices(list(weights), weights=list(weights.values()), k=count)


def _summary(counter: Counter) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counter.items()))


def _describe(run: SyncRun | None) -> str:
    if run is None:
        return "run crashed (an exception escaped sync_run)"
    text = (
        f"run {run.status}: created {run.created}, updated {run.updated}, failed "
        f"{run.failed}, conflicts {run.conflicts}"
    )
    return f"{text} ({run.message})" if run.message else text
