"""A push records QuickBooks' answers set-based (``BatchWriter.record_settled``): whatever
stops a run, every answer QuickBooks gave before it stopped is recorded, so a write the portal
made never comes back as a change from QuickBooks, and nothing is written twice."""

import threading
import time
from decimal import Decimal

import pytest

import sync.writer
from integrations import crypto
from integrations.models import Connection
from integrations.quickbooks import backend as qbo_backend
from integrations.quickbooks.backend import QuickBooksBackend
from integrations.quickbooks.errors import AuthenticationError, ReconnectRequired
from portal.history import change_unit
from portal.models import Invoice
from portal.services import invoice_save_lines
from sync.exporter import Exporter
from sync.models import SyncLock, SyncRecord
from tests.sync.conftest import qbo_invoices
from tests.sync.shapes import (
    _bundle,
    _discount,
    _make_in_qbo,
    _paid_in_qbo,
    _sale,
    _text,
    _writes,
)


def _add_line(invoice: Invoice, price: str) -> None:
    """The portal's line editor: the lines saved again (without their QuickBooks ids), plus
    one more."""
    invoice = Invoice.objects.get(pk=invoice.pk)
    lines = [
        {
            "item": line.item,
            "quantity": line.quantity,
            "unit_price": line.unit_price,
            "tax_rate": line.tax_rate,
        }
        for line in invoice.lines.all()
    ]
    lines.append({**lines[0], "quantity": Decimal(1), "unit_price": Decimal(price)})
    invoice_save_lines(invoice=invoice, lines=lines)


def test_updates_answered_before_the_lease_is_lost_are_recorded_and_never_echo(
    run_sync, make_invoice, qbo_ui, qbo, settings, monkeypatch
):
    first, second = make_invoice(number="LL-1"), make_invoice(number="LL-2")
    assert run_sync("push").status == "done"
    _add_line(first, "10.00")
    _add_line(second, "20.00")
    # The lease is renewed at every check; another run takes it once QuickBooks has answered
    # the first update, so this run stops before sending the second.
    settings.SYNC_LOCK_LEASE_SECONDS = 0
    real_update = QuickBooksBackend.update

    def update_then_lose_lease(self, entity, body):
        answer = real_update(self, entity, body)
        SyncLock.objects.update(holder="another-run")
        return answer

    monkeypatch.setattr(QuickBooksBackend, "update", update_then_lose_lease)

    stopped = run_sync("push")

    monkeypatch.undo()
    assert stopped.status == "failed" and "another sync took over" in stopped.message
    [obj] = qbo_invoices(qbo_ui, "LL-1")
    assert obj["SyncToken"] == "1"  # QuickBooks saved the first update
    record = SyncRecord.objects.get(invoice=first)
    assert (record.status, record.sync_token) == ("synced", obj["SyncToken"])
    assert SyncRecord.objects.get(invoice=second).sync_token == "0"  # never sent

    SyncLock.objects.update(holder="", expires_at=None)
    qbo.app.clear_log()
    run = run_sync("both")

    assert run.status == "done", run.message
    # The portal's own update of LL-1 is not taken back in as QuickBooks' change, and only
    # LL-2 is written.
    messages = list(run.events.values_list("message", flat=True))
    assert not [m for m in messages if "LL-1" in m], messages
    assert len(_writes(qbo)) == 1
    [obj] = qbo_invoices(qbo_ui, "LL-1")
    assert obj["SyncToken"] == "1"
    assert [line.amount for line in Invoice.objects.get(pk=first.pk).lines.all()] == [
        Decimal("300.00"),
        Decimal("10.00"),
    ]


@pytest.fixture
def wave_of_single_batches(monkeypatch, settings):
    """A write per batch, four batches in flight at once (as 120 invoices would go)."""
    monkeypatch.setattr(sync.writer, "chunks", lambda values: qbo_backend.chunks(values, 1))
    settings.QBO_WRITES_IN_FLIGHT = 4


def _edited(make_invoice, run_sync, prefix: str, count: int = 3) -> list[Invoice]:
    invoices = [make_invoice(number=f"{prefix}-{n}") for n in range(count)]
    assert run_sync("push").status == "done"
    for invoice in invoices:
        invoice.refresh_from_db()
        invoice.customer_memo = "Edited in the portal"
        invoice.save()
    return invoices


def test_a_wave_sent_with_an_access_token_quickbooks_refuses_is_sent_again_after_a_refresh(
    run_sync, make_invoice, ready, qbo_ui, wave_of_single_batches
):
    """QuickBooks refuses the access token (401) while the refresh token is good: the run
    refreshes it and goes on, as it does for a single batch, instead of asking staff to
    reconnect."""
    invoices = _edited(make_invoice, run_sync, "TK")
    Connection.objects.filter(pk=ready.pk).update(
        access_token_encrypted=crypto.encrypt("an-access-token-quickbooks-no-longer-takes")
    )

    run = run_sync("push")

    assert run.status == "done", run.message
    assert run.updated == 3
    for invoice in invoices:
        [obj] = qbo_invoices(qbo_ui, invoice.number)
        assert obj["CustomerMemo"]["value"] == "Edited in the portal"
        assert SyncRecord.objects.get(invoice=invoice).sync_token == obj["SyncToken"] == "1"


def test_the_batches_of_a_wave_quickbooks_saved_are_recorded_when_another_needs_a_reconnect(
    run_sync, make_invoice, qbo_ui, wave_of_single_batches, monkeypatch
):
    """One batch of a wave is refused for its token (it ran out in flight) and the refresh is
    refused too: the run stops for a reconnect, and the updates QuickBooks saved from the
    other batches are on their bindings, not taken back later as QuickBooks' changes."""
    invoices = _edited(make_invoice, run_sync, "RW")
    real_write = QuickBooksBackend.write_batch
    refused = set()

    def token_runs_out(self, entity, writes, *, request_id, positions=None):
        if not refused and writes[0][0] == "update" and writes[0][1]["Id"] == first_id:
            refused.add(request_id)
        if request_id in refused:
            if not self.client.uses_pinned_token():  # sent again: the refresh is refused
                raise ReconnectRequired(reason="QuickBooks must be reconnected.")
            raise AuthenticationError("token expired", status=401)
        return real_write(self, entity, writes, request_id=request_id, positions=positions)

    first_id = SyncRecord.objects.get(invoice=invoices[0]).qbo_id
    monkeypatch.setattr(QuickBooksBackend, "write_batch", token_runs_out)

    run = run_sync("push")

    monkeypatch.undo()
    assert run.status == "failed" and "reconnect" in run.message.lower()
    for invoice in invoices[1:]:
        [obj] = qbo_invoices(qbo_ui, invoice.number)
        assert obj["SyncToken"] == "1"  # QuickBooks saved it
        assert SyncRecord.objects.get(invoice=invoice).sync_token == "1"
    assert SyncRecord.objects.get(invoice=invoices[0]).sync_token == "0"  # never saved


def test_a_lease_lost_with_batches_in_flight_records_their_answers_and_sends_no_more(
    run_sync, make_invoice, qbo_ui, qbo, settings, monkeypatch
):
    """Batches go out several at once (``QBO_WRITES_IN_FLIGHT``). A run told to stop while
    some are in flight sends nothing more, but records what QuickBooks answered to those: no
    invoice QuickBooks holds is left pending, and the next run writes only the rest."""
    settings.QBO_WRITES_IN_FLIGHT = 2
    invoices = [make_invoice(number=f"PIPE-{n:03}") for n in range(70)]  # batches 30, 30, 10
    claims = []
    real_claim = sync.writer.BatchWriter._claim

    def claim_then_lose_lease(self, group):
        claimed = real_claim(self, group)
        if isinstance(group[0][0][1], Invoice):
            claims.append(len(group))
            # Another run takes the lease once the first two invoice batches are claimed:
            # the next checkpoint (before claiming the third) stops this run.
            SyncLock.objects.update(holder="another-run")
        return claimed

    settings.SYNC_LOCK_LEASE_SECONDS = 0
    monkeypatch.setattr(sync.writer.BatchWriter, "_claim", claim_then_lose_lease)

    stopped = run_sync("push")

    monkeypatch.undo()
    assert stopped.status == "failed" and "another sync took over" in stopped.message
    assert claims == [2]  # the third batch was never claimed, so never sent
    in_quickbooks = {
        obj["DocNumber"] for obj in qbo_invoices(qbo_ui) if obj["DocNumber"].startswith("PIPE-")
    }
    assert len(in_quickbooks) == 60
    records = SyncRecord.objects.filter(invoice__in=invoices)
    synced = records.filter(status="synced", uncertain=False).exclude(qbo_id="")
    # Both batches in flight when the lease went were answered and recorded, the second
    # while the run was already stopping.
    assert set(synced.values_list("invoice__number", flat=True)) == in_quickbooks
    assert not records.filter(uncertain=True).exists()

    SyncLock.objects.update(holder="", expires_at=None)
    qbo.app.clear_log()
    run = run_sync("push")

    assert run.status == "done", run.message
    assert run.created == 10
    assert len([o for o in qbo_invoices(qbo_ui) if o["DocNumber"].startswith("PIPE-")]) == 70
    assert len(_writes(qbo)) == 1  # one batch: the 10 never sent, nothing twice


def _qbo_id(invoice: Invoice) -> str:
    return SyncRecord.objects.get(invoice=invoice).qbo_id


def _saved_and_recorded(qbo_ui, invoices: list[Invoice]) -> None:
    """QuickBooks saved each edit (SyncToken 1) and its binding holds that SyncToken."""
    for invoice in invoices:
        [obj] = qbo_invoices(qbo_ui, invoice.number)
        record = SyncRecord.objects.get(invoice=invoice)
        assert (invoice.number, obj["SyncToken"], record.sync_token) == (invoice.number, "1", "1")


def test_a_sending_thread_that_fails_leaves_the_answers_in_flight_with_it_recorded(
    run_sync, make_invoice, qbo_ui, qbo, wave_of_single_batches, monkeypatch
):
    """One batch's thread fails with an error that is not QuickBooks' (a bug, the limiter's
    cache down) while three updates are in flight: QuickBooks saved those, so their answers
    are recorded before the run fails, and the next sync writes only the unsent one."""
    invoices = _edited(make_invoice, run_sync, "TX", count=4)
    failing_id = _qbo_id(invoices[0])
    real_write = QuickBooksBackend.write_batch

    def fail_the_first(self, entity, writes, *, request_id, positions=None):
        if writes[0][1].get("Id") == failing_id:
            time.sleep(0.3)  # the others are answered meanwhile
            raise RuntimeError("unexpected fault in a sending thread")
        return real_write(self, entity, writes, request_id=request_id, positions=positions)

    monkeypatch.setattr(QuickBooksBackend, "write_batch", fail_the_first)
    run = run_sync("push")
    monkeypatch.undo()

    assert run.status == "failed" and "RuntimeError" in run.message, run.message
    _saved_and_recorded(qbo_ui, invoices[1:])
    # The run that sent them says so; no later run would.
    messages = list(run.events.values_list("message", flat=True))
    told = [i.number for i in invoices[1:] if any(i.number in m for m in messages)]
    assert (run.updated, told) == (3, [i.number for i in invoices[1:]]), messages
    qbo.app.clear_log()
    after = run_sync("both")
    assert after.status == "done", after.message
    messages = list(after.events.values_list("message", flat=True))
    assert not [m for m in messages for i in invoices[1:] if i.number in m], messages
    assert len(_writes(qbo)) == 1  # TX-0, never sent


def _deleted_then(qbo, qbo_ui, monkeypatch, invoice: Invoice, at_intuit) -> None:
    """``invoice`` deleted in QuickBooks, so its update is answered "Object Not Found" and
    the run reads it to say why; once that answer is in, while the other batches are
    answered, ``at_intuit(oauth_state)`` changes what Intuit holds for the connection."""
    deleted_id = _qbo_id(invoice)
    qbo_ui.delete("Invoice", deleted_id)
    real_write = QuickBooksBackend.write_batch

    def then(self, entity, writes, *, request_id, positions=None):
        try:
            return real_write(self, entity, writes, request_id=request_id, positions=positions)
        finally:
            if writes[0][1].get("Id") == deleted_id:
                time.sleep(0.3)  # the others are answered first
                with qbo.app.oauth.lock:
                    at_intuit(qbo.app.oauth.state)

    monkeypatch.setattr(QuickBooksBackend, "write_batch", then)


def test_a_reconnect_needed_while_an_answer_is_settled_keeps_the_answers_in_flight(
    run_sync, make_invoice, qbo_ui, qbo, wave_of_single_batches, monkeypatch
):
    """The first update is answered "Object Not Found" (deleted in QuickBooks) and the run
    reads the invoice to say why, but the company was disconnected at Intuit meanwhile: the
    run stops for a reconnect while three updates QuickBooks saved wait in flight. Their
    answers are recorded before it stops."""
    invoices = _edited(make_invoice, run_sync, "RC", count=4)

    def disconnected(state):
        for connection in state.connections.values():
            connection.revoked = True

    _deleted_then(qbo, qbo_ui, monkeypatch, invoices[0], disconnected)
    run = run_sync("push")
    monkeypatch.undo()

    assert run.status == "failed" and "reconnect" in run.message.lower(), run.message
    _saved_and_recorded(qbo_ui, invoices[1:])


def test_a_token_running_out_while_an_answer_is_settled_is_refreshed_not_a_reconnect(
    run_sync, make_invoice, qbo_ui, qbo, wave_of_single_batches, monkeypatch
):
    """The run reads a deleted invoice to say why its update failed just as the access token
    runs out (the refresh token is good): that read refreshes the token as any other
    request from the run's own thread does, instead of telling staff to reconnect."""
    invoices = _edited(make_invoice, run_sync, "DL", count=4)

    def access_token_ran_out(state):
        for token in state.access.values():
            token.expires_at = 0

    _deleted_then(qbo, qbo_ui, monkeypatch, invoices[0], access_token_ran_out)
    run = run_sync("push")
    monkeypatch.undo()

    assert run.status == "done", run.message
    assert Connection.objects.get(pk=run.connection_id).status == "connected"
    assert "deleted in QuickBooks" in SyncRecord.objects.get(invoice=invoices[0]).details
    _saved_and_recorded(qbo_ui, invoices[1:])


def test_a_run_told_to_stop_does_not_send_a_refused_batch_again(
    run_sync, make_invoice, qbo_ui, wave_of_single_batches, settings, monkeypatch
):
    """One batch of a group is refused for its token; another run takes the lease once the
    first answer is settled. The refused batch was never saved, and this run sends nothing
    more: the next run sends it."""
    invoices = _edited(make_invoice, run_sync, "LR", count=8)
    first_id, refused_id = _qbo_id(invoices[0]), _qbo_id(invoices[1])
    real_write = QuickBooksBackend.write_batch
    sent_after_the_lease_was_lost = []
    lost = threading.Event()

    def refuse_the_second(self, entity, writes, *, request_id, positions=None):
        body_id = writes[0][1].get("Id")
        if lost.is_set():
            sent_after_the_lease_was_lost.append(body_id)
        if body_id == refused_id and self.client.uses_pinned_token():
            raise AuthenticationError("token expired", status=401)
        return real_write(self, entity, writes, request_id=request_id, positions=positions)

    real_settle = Exporter._settle_invoice

    def settle_then_lose_the_lease(self, record, invoice, result):
        answer = real_settle(self, record, invoice, result)
        if record.qbo_id == first_id:  # another run takes the lease
            SyncLock.objects.update(holder="another-run")
            lost.set()
        return answer

    settings.SYNC_LOCK_LEASE_SECONDS = 0
    monkeypatch.setattr(QuickBooksBackend, "write_batch", refuse_the_second)
    monkeypatch.setattr(Exporter, "_settle_invoice", settle_then_lose_the_lease)
    run = run_sync("push")
    monkeypatch.undo()

    assert run.status == "failed" and "another sync took over" in run.message, run.message
    assert refused_id not in sent_after_the_lease_was_lost, sent_after_the_lease_was_lost
    [obj] = qbo_invoices(qbo_ui, invoices[1].number)
    assert obj["SyncToken"] == "0"
    SyncLock.objects.update(holder="", expires_at=None)
    assert run_sync("push").status == "done"
    _saved_and_recorded(qbo_ui, invoices)


@pytest.mark.parametrize("recording_fails", [False, True], ids=["recorded", "not recorded"])
def test_creates_sent_with_a_failing_thread_are_replayed_without_a_duplicate(
    run_sync, make_invoice, qbo_ui, qbo, wave_of_single_batches, monkeypatch, recording_fails
):
    """A create's thread fails while others are in flight: their answers are recorded as the
    run stops, and counted by it; should recording them fail too (the database away for a
    moment), they stay claimed and the next run's replay settles and counts them instead.
    Each create is in QuickBooks once and counted once."""
    invoices = [make_invoice(number=f"CR-{n}") for n in range(9)]
    if recording_fails:
        _database_gone_while_recording_as_the_run_stops(monkeypatch)
    real_write = QuickBooksBackend.write_batch
    calls = []
    lock = threading.Lock()

    def fail_the_fifth(self, entity, writes, *, request_id, positions=None):
        if entity == "Invoice":
            with lock:
                calls.append(request_id)
                fifth = len(calls) == 5
            if fifth:
                time.sleep(0.3)
                raise RuntimeError("unexpected fault in a sending thread")
        return real_write(self, entity, writes, request_id=request_id, positions=positions)

    monkeypatch.setattr(QuickBooksBackend, "write_batch", fail_the_fifth)
    stopped = run_sync("push")
    monkeypatch.undo()

    after = run_sync("push")
    assert after.status == "done", (
        after.message,
        list(after.events.values_list("message", flat=True)),
    )
    # The customer and the item, then the 9 invoices: each counted once, by one run or the
    # other.
    assert stopped.created + after.created == 11, (stopped.created, after.created)
    for invoice in invoices:
        assert len(qbo_invoices(qbo_ui, invoice.number)) == 1, invoice.number
    qbo.app.clear_log()
    assert run_sync("both").status == "done"
    assert _writes(qbo) == []


def _database_gone_while_recording_as_the_run_stops(monkeypatch) -> None:
    from django.db import OperationalError

    from sync.binder import Binder

    real_abandoned = sync.writer.BatchWriter._settle_abandoned
    real_save = Binder.save_settled
    stopping = []

    def save_settled(self, records, fields):
        if stopping and stopping.pop():
            raise OperationalError("the database went away for a moment")
        return real_save(self, records, fields)

    def settle_abandoned(self, adapter, answered, in_flight):
        stopping.append(True)
        return real_abandoned(self, adapter, answered, in_flight)

    monkeypatch.setattr(Binder, "save_settled", save_settled)
    monkeypatch.setattr(sync.writer.BatchWriter, "_settle_abandoned", settle_abandoned)


@pytest.fixture
def single_writes_in_pairs(monkeypatch, settings):
    """The batch budget spent: each pair of writes goes one request each (``SINGLE_WRITES``),
    four pairs in flight at once."""
    monkeypatch.setattr(sync.writer, "chunks", lambda values: qbo_backend.chunks(values, 2))
    settings.QBO_WRITES_IN_FLIGHT = 4
    monkeypatch.setattr(QuickBooksBackend, "_batch_free", lambda self: False)


def _refusing(monkeypatch, refused_id: str, *, failing_id: str = "") -> None:
    """A sending thread's token is refused (401) for ``refused_id``'s write, sent one request
    on its own; ``failing_id``'s thread fails with an error that is not QuickBooks'."""
    real_one = QuickBooksBackend._write_one

    def write_one(self, entity, operation, body, request_id):
        if body.get("Id") == failing_id:
            time.sleep(0.3)
            raise RuntimeError("unexpected fault in a sending thread")
        if body.get("Id") == refused_id and self.client.uses_pinned_token():
            raise AuthenticationError("token expired", status=401)
        return real_one(self, entity, operation, body, request_id)

    monkeypatch.setattr(QuickBooksBackend, "_write_one", write_one)


def test_a_pair_sent_one_request_each_and_half_refused_keeps_the_saved_ones_answer(
    run_sync, make_invoice, qbo_ui, qbo, single_writes_in_pairs, settings, monkeypatch
):
    """In a pair sent one request each, the first update is saved and the second's token
    refused; the run is told to stop before it would send the refused one again. QuickBooks
    saved the first: its answer is recorded, and the next sync writes only what was not."""
    invoices = _edited(make_invoice, run_sync, "SW", count=8)
    first_id = _qbo_id(invoices[0])
    _refusing(monkeypatch, _qbo_id(invoices[3]))
    real_settle = Exporter._settle_invoice

    def settle_then_lose_the_lease(self, record, invoice, result):
        answer = real_settle(self, record, invoice, result)
        if record.qbo_id == first_id:
            SyncLock.objects.update(holder="another-run")
        return answer

    settings.SYNC_LOCK_LEASE_SECONDS = 0
    monkeypatch.setattr(Exporter, "_settle_invoice", settle_then_lose_the_lease)
    run = run_sync("push")
    monkeypatch.undo()

    assert run.status == "failed" and "another sync took over" in run.message, run.message
    _saved_and_recorded(qbo_ui, invoices[2:3])
    [obj] = qbo_invoices(qbo_ui, invoices[3].number)
    assert obj["SyncToken"] == "0"  # refused, never saved
    SyncLock.objects.update(holder="", expires_at=None)
    after = run_sync("both")
    assert after.status == "done", after.message
    messages = list(after.events.values_list("message", flat=True))
    assert not [m for m in messages if m.startswith("Invoice SW-") and "from QuickBooks" in m]
    _saved_and_recorded(qbo_ui, invoices)


def test_a_half_refused_pair_in_flight_when_a_thread_fails_keeps_the_saved_ones_answer(
    run_sync, make_invoice, qbo_ui, single_writes_in_pairs, monkeypatch
):
    invoices = _edited(make_invoice, run_sync, "SX", count=8)
    _refusing(monkeypatch, _qbo_id(invoices[3]), failing_id=_qbo_id(invoices[0]))
    run = run_sync("push")
    monkeypatch.undo()

    assert run.status == "failed" and "RuntimeError" in run.message, run.message
    _saved_and_recorded(qbo_ui, invoices[2:3])
    [obj] = qbo_invoices(qbo_ui, invoices[3].number)
    assert obj["SyncToken"] == "0"


def test_a_pair_refused_then_sent_again_after_a_refresh_is_saved_once(
    run_sync, make_invoice, qbo_ui, qbo, single_writes_in_pairs, monkeypatch
):
    invoices = _edited(make_invoice, run_sync, "SR", count=6)
    _refusing(monkeypatch, _qbo_id(invoices[1]))
    run = run_sync("push")
    monkeypatch.undo()

    assert run.status == "done", run.message
    assert run.updated == 6
    _saved_and_recorded(qbo_ui, invoices)


def test_an_error_while_recording_what_was_in_flight_leaves_the_runs_own_reason(
    run_sync, make_invoice, qbo_ui, wave_of_single_batches, monkeypatch
):
    """Recording the answers in flight is best effort, batch by batch: should marking a lost
    create fail (the database gone for a moment), the run still names the error that stopped
    it, and the updates QuickBooks saved in flight with them are recorded."""
    from django.db import OperationalError

    from integrations.quickbooks.errors import ConnectionFailedError
    from sync.binder import Binder

    edited = _edited(make_invoice, run_sync, "UP", count=2)
    for n in range(2):  # the two creates, then the two updates: four in flight at once
        make_invoice(number=f"MK-{n}")
    real_write = QuickBooksBackend.write_batch

    def faults(self, entity, writes, *, request_id, positions=None):
        number = writes[0][1].get("DocNumber") if entity == "Invoice" else None
        if number == "MK-0":
            time.sleep(0.3)
            raise RuntimeError("unexpected fault in a sending thread")
        if number == "MK-1":
            raise ConnectionFailedError("connection dropped after sending", uncertain=True)
        return real_write(self, entity, writes, request_id=request_id, positions=positions)

    real_mark = Binder.mark_uncertain
    once = [True]

    def database_gone_once(self, record, reason):
        if once and once.pop():
            raise OperationalError("the database went away for a moment")
        return real_mark(self, record, reason)

    monkeypatch.setattr(QuickBooksBackend, "write_batch", faults)
    monkeypatch.setattr(Binder, "mark_uncertain", database_gone_once)
    run = run_sync("push")
    monkeypatch.undo()

    assert run.status == "failed" and "RuntimeError" in run.message, run.message
    # The updates in flight with them, saved by QuickBooks, are recorded all the same.
    _saved_and_recorded(qbo_ui, edited)
    after = run_sync("both")
    later = [m for m in after.events.values_list("message", flat=True) if "UP-" in m]
    assert later == [], later


@pytest.mark.parametrize("fault", [False, True], ids=["answered", "recorded as the run stops"])
def test_a_paid_invoice_made_in_quickbooks_and_edited_here_takes_its_new_balance(
    run_sync, qbo_ui, qbo, wave_of_single_batches, monkeypatch, fault
):
    """An invoice made and paid in full in QuickBooks (item, description, bundle and
    discount lines) is edited here: 75 more to pay. Whether its answer comes back to the
    loop or is recorded as the run stops (another batch's thread failed), the portal takes
    QuickBooks' balance and says partly paid, and the next sync writes nothing."""
    assert run_sync("pull").status == "done"
    other = _make_in_qbo(qbo_ui, "7001", [_sale(qbo_ui, "Hours", 100, 2, 50)])
    made = _make_in_qbo(
        qbo_ui,
        "7002",
        [
            _sale(qbo_ui, "Hours", 100, 2, 50),
            _text("Phase two"),
            _bundle(qbo_ui),
            _sale(qbo_ui, "Design", 150, 2, 75),
            _discount(qbo_ui, amount=20),
        ],
    )
    _paid_in_qbo(qbo_ui, made, 350)
    assert run_sync("pull").status == "done"
    invoice = Invoice.objects.get(number="7002")
    assert (invoice.status, invoice.amount_paid) == ("paid", Decimal("350.00"))
    edited = Invoice.objects.get(number="7001")
    edited.customer_memo = "Edited in the portal"
    edited.save()
    with change_unit():  # the line editor: Design from 2 to 3
        line = invoice.lines.get(kind="item", item__name="Design")
        line.quantity = Decimal(3)
        line.amount = line.quantity * line.unit_price
        line.save()
        invoice.refresh_totals()
    if fault:
        real_write = QuickBooksBackend.write_batch

        def fail_the_other(self, entity, writes, *, request_id, positions=None):
            if writes[0][1].get("Id") == other["Id"]:
                time.sleep(0.3)  # 7002 is answered meanwhile
                raise RuntimeError("unexpected fault in a sending thread")
            return real_write(self, entity, writes, request_id=request_id, positions=positions)

        monkeypatch.setattr(QuickBooksBackend, "write_batch", fail_the_other)
    run = run_sync("push")
    monkeypatch.undo()

    assert run.status == ("failed" if fault else "done"), run.message
    [obj] = qbo_invoices(qbo_ui, "7002")
    assert (obj["TotalAmt"], obj["Balance"]) == (425, 75)
    assert SyncRecord.objects.get(invoice=invoice).sync_token == obj["SyncToken"]
    invoice.refresh_from_db()
    assert (invoice.total, invoice.amount_paid, invoice.balance_due, invoice.status) == (
        Decimal("425.00"),
        Decimal("350.00"),
        Decimal("75.00"),
        "partially_paid",
    )
    qbo.app.clear_log()
    assert run_sync("both").status == "done"
    assert [w for w in _writes(qbo) if "7002" in str(w)] == []


def test_an_update_whose_answer_was_lost_says_so_and_is_not_written_twice(
    run_sync, qbo_ui, qbo, wave_of_single_batches, monkeypatch
):
    """QuickBooks saves an edit to a partly paid invoice made there (discount, bundle,
    description lines, a private note) but its answer is lost. The reason says what happens
    to an update (not the replay a create gets), and the next syncs write nothing more: the
    invoice keeps every line, its note and its payment."""
    from integrations.quickbooks.errors import ConnectionFailedError

    assert run_sync("pull").status == "done"
    made = _make_in_qbo(
        qbo_ui,
        "7101",
        [
            _sale(qbo_ui, "Hours", 100, 2, 50, description="Consulting"),
            _text("Phase two"),
            _bundle(qbo_ui),
            _sale(qbo_ui, "Design", 150, 2, 75),
            _discount(qbo_ui, percent=10),
        ],
        PrivateNote="Kept in QuickBooks",
    )
    _paid_in_qbo(qbo_ui, made, 50)
    assert run_sync("pull").status == "done"
    invoice = Invoice.objects.get(number="7101")
    invoice.customer_memo = "Edited in the portal"
    invoice.save()
    real_write = QuickBooksBackend.write_batch

    def answer_lost(self, entity, writes, *, request_id, positions=None):
        real_write(self, entity, writes, request_id=request_id, positions=positions)
        raise ConnectionFailedError("connection dropped after sending", uncertain=True)

    monkeypatch.setattr(QuickBooksBackend, "write_batch", answer_lost)
    run_sync("push")
    monkeypatch.undo()

    details = SyncRecord.objects.get(invoice=invoice).details
    assert "whether it saved this change to the invoice" in details, details
    assert "same request" not in details
    qbo.app.clear_log()
    assert run_sync("both").status == "done"
    assert run_sync("both").status == "done"
    assert _writes(qbo) == []
    [obj] = qbo_invoices(qbo_ui, "7101")
    assert [line["DetailType"] for line in obj["Line"]] == [
        line["DetailType"] for line in made["Line"]
    ]
    assert (obj["PrivateNote"], obj["CustomerMemo"]["value"]) == (
        "Kept in QuickBooks",
        "Edited in the portal",
    )
    invoice.refresh_from_db()
    assert SyncRecord.objects.get(invoice=invoice).sync_token == obj["SyncToken"]
    assert (invoice.amount_paid, invoice.status) == (Decimal("50.00"), "partially_paid")
