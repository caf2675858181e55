"""The soak, small: about 200 invoices per seed under QuickBooks' transient faults, then faults
off until a run changes nothing; no duplicate on either side, nothing lost, nothing differing.

Held conflicts and explained failures are set aside (``tests/sync/soak.py`` says what
"explained" means: QuickBooks refused the data with a fault code no retry changes, and the
record says why). Each finding raises its own ``AssertionError`` subclass, checked in a fixed
order, so a failure names what went wrong first. ``bench/soak.py`` runs the same soak at full
size.
"""

from __future__ import annotations

import pytest
import requests

from tests.sync.soak import FAULT_KINDS, Soak, SoakResult, SoakSettings


class DuplicatesInPortal(AssertionError):
    pass


class DuplicatesInQuickBooks(AssertionError):
    pass


class InvoicesLost(AssertionError):
    pass


class InvoicesDiffer(AssertionError):
    pass


class RunsCrashed(AssertionError):
    pass


class NotSettled(AssertionError):
    pass


CHECKS = (
    (DuplicatesInPortal, ("duplicates in the portal",)),
    (DuplicatesInQuickBooks, ("duplicates in QuickBooks",)),
    (InvoicesLost, ("only in the portal", "only in QuickBooks")),
    (InvoicesDiffer, ("differing",)),
    (RunsCrashed, ("runs crashed", "runs left running")),
    (NotSettled, ("not settled",)),
)
REPORT_LINES = 40

CASES = [
    # Every fault kind, at a rate where retries alone do not always get through.
    pytest.param(
        1,
        SoakSettings(invoices=200, rounds=4, fault_rate=0.5, rule="portal_wins"),
        id="1-every-fault",
    ),
    # The same, with the accountant deleting an invoice in round 2.
    pytest.param(
        3,
        SoakSettings(invoices=200, rounds=4, fault_rate=0.5, rule="qbo_wins"),
        id="3-every-fault-and-a-delete",
    ),
    # Answers lost past every retry in the first run, which pushes the portal's new invoices
    # and pulls QuickBooks' own (this seed's rounds delete nothing in QuickBooks).
    pytest.param(
        2,
        SoakSettings(invoices=200, rounds=4, fault_rate=0.1, lost_rate=0.8, rule="hold"),
        id="2-lost-answers",
    ),
]


@pytest.fixture
def soak(ready, qbo):
    """Run one seed of the soak on this test's company; faults are off again afterwards."""
    made = []

    def start(seed: int, options: SoakSettings) -> Soak:
        made.append(Soak(connection=ready, emulator=qbo, seed=seed, settings=options, echo=print))
        return made[-1]

    yield start
    requests.post(
        f"{qbo.base_url}/_emulator/options",
        json={"fault_rate": 0, "lost_rate": 0, "seed": None},
        timeout=10,
    )


def assert_clean(result: SoakResult) -> None:
    """Raise the first finding, in ``CHECKS`` order, with the seed's details and report."""
    findings = result.findings
    for error, kinds in CHECKS:
        if any(kind in findings for kind in kinds):
            report = "\n".join(result.report.splitlines()[:REPORT_LINES])
            details = "\n".join(result.details())
            raise error(f"{result.line()}\n{details}\n{report}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("seed", "options"), CASES)
def test_soak_under_faults_leaves_no_duplicate_lost_or_differing_invoice(soak, seed, options):
    result = soak(seed, options).run()

    if options.lost_rate:
        assert result.round_lost_answers[0] > 0, "no answer was lost past the retries"
    else:
        missing = set(FAULT_KINDS) - set(result.faults)
        assert not missing, f"faults never injected: {missing} ({result.line()})"
    assert_clean(result)


@pytest.mark.django_db(transaction=True)
def test_soak_finds_duplicates_on_either_side(soak, qbo_ui):
    from portal.models import Invoice

    run = soak(5, SoakSettings(invoices=6, qbo_invoices=2, rounds=1, fault_rate=0))
    assert run.run().problems == []

    # A second QuickBooks invoice with a portal invoice's number (QuickBooks refuses one
    # unless asked to allow it), and a portal invoice imported back under its own number.
    customer = qbo_ui.find("Customer", DisplayName="Cool Cars")
    item = qbo_ui.find("Item", Name="Hours")
    line = {"DetailType": "SalesItemLineDetail", "Amount": 50}
    line["SalesItemLineDetail"] = {"ItemRef": {"value": item["Id"]}}
    body = {"DocNumber": "P-00001", "CustomerRef": {"value": customer["Id"]}, "Line": [line]}
    copy = qbo_ui.create("Invoice", body, include="allowduplicatedocnum")
    original = Invoice.objects.get(number="P-00002")
    Invoice.objects.create(number="P-00002-QBO999", customer=original.customer)

    result = run.measure()
    assert result.qbo_duplicates == [f"DocNumber P-00001 on ids {_id_of('P-00001')}, {copy['Id']}"]
    assert result.portal_duplicates == ["P-00002-QBO999 is P-00002 imported again"]
    assert "only in the portal: P-00002-QBO999: never synced" in result.problems
    with pytest.raises(DuplicatesInPortal):
        assert_clean(result)


def _id_of(number: str) -> str:
    from sync.models import SyncRecord

    return SyncRecord.objects.get(invoice__number=number).qbo_id
