"""Batched writes to QuickBooks: each create's binding claimed with its batch's requestid
before the batch is sent, answers settled as they come, and the replay that settles a batch
whose answer was lost (qbo-api.md section 5: a repeated requestid returns the first answer).
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

from django.conf import settings
from django.db import connections as db_connections
from django.db import transaction

from integrations.quickbooks.backend import (
    batch_ref,
    chunks,
    object_id,
    parse_batch_ref,
)
from integrations.quickbooks.errors import (
    ConnectionFailedError,
    QBOError,
    ReconnectRequired,
    describe,
)
from sync.entities.base import EntityAdapter
from sync.entities.invoice import lines_prefetch
from sync.models import SyncRecord
from sync.runtime import Component

logger = logging.getLogger(__name__)

# (binding, portal record, operation, body)
Write = tuple[SyncRecord, object, str, dict]
# (binding, portal record, QuickBooks' answer or fault, operation)
Outcome = tuple[SyncRecord, object, object, str]


class BatchWriter(Component):
    """Writes to QuickBooks in batches, each answer settled on its binding; bindings the
    answers settle are saved together, per batch (``record_settled``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._unsaved: list[SyncRecord] = []
        self._unsaved_fields: set[str] = set()

    def _settle_write(
        self, adapter: EntityAdapter, record: SyncRecord, obj: dict, *, replayed: bool = False
    ) -> None:
        """QuickBooks saved ``obj`` from the portal's write: bind and agree on it.

        ``replayed``: ``obj`` is QuickBooks' first answer to a write sent earlier, so both
        sides agree on QuickBooks' version only; what the portal changed since is sent after.
        """
        agreed = adapter.after_push(record, obj)
        if replayed:
            agreed = adapter.neutral_qbo(obj)
        changed = self.binder.settle(
            record,
            obj,
            agreed=agreed,
            pushed=True,
            number=adapter.remote_number(obj),
            differs=adapter.differences(record, obj),
            agree_version=not replayed,
            save=False,
        )
        self._unsaved.append(record)
        self._unsaved_fields |= changed

    def _after_saved(self, adapter: EntityAdapter, local, obj: dict) -> None:
        """What else the portal takes from ``obj``, QuickBooks' answer to a write of
        ``local`` (an exporter takes an invoice's payments); nothing here."""

    def record_settled(self, adapter: EntityAdapter) -> None:
        """Save what the answers settled since the last call, in one transaction: what they
        changed on the portal records (``adapter.flush``), then their bindings, in bulk. A
        run killed before it commits leaves those bindings claimed, and the next run's replay
        settles them from QuickBooks' first answers."""
        records, fields = self._unsaved, self._unsaved_fields
        self._unsaved, self._unsaved_fields = [], set()
        with transaction.atomic():
            adapter.flush()
            if records:
                self.binder.save_settled(records, fields)

    @contextmanager
    def recording(self, adapter: EntityAdapter) -> Iterator[None]:
        """Around a loop that settles answers: what they settled is recorded when it ends,
        however it ends. A run that stops in it (lease lost, reconnect needed, a fault) keeps
        every answer QuickBooks gave: an update is not claimed, so one settled in memory and
        dropped would leave its binding with the old SyncToken and agreed version, and the
        next pull would take the portal's own write back as QuickBooks' change."""
        try:
            yield
        finally:
            self.record_settled(adapter)

    # --- batched writes --------------------------------------------------------------------

    def write_batch(self, writes: list[Write], adapter: EntityAdapter) -> Iterator:
        """Send ``writes`` in batches; yields (binding, record, saved object, fault or None).

        Up to ``QBO_WRITES_IN_FLIGHT`` batches are in flight at once, from threads that only
        speak HTTP: as the oldest is answered, its answers are settled here (by the caller,
        between yields) and recorded while the others are on their way, and the next batch
        goes out. Each create's binding is claimed with its batch's requestid and position
        before the batch is sent, a group of batches per transaction. A run told to stop at
        a checkpoint (``LeaseLost``) sends nothing more, but first records the answers of
        the batches already sent. Should the run stop otherwise (the caller raises between
        yields, a sending thread fails), the answers not handed over yet are settled and
        recorded before the error goes on (``_settle_abandoned``). Callers close the
        generator when they stop early (``contextlib.closing``), so that happens at once.
        A dry run only plans.
        """
        batches = list(chunks(writes))
        if self.ctx.dry_run:
            for chunk in batches:
                for _record, local, operation, _body in chunk:
                    self.log.plan(f"{operation} {adapter.kind} {adapter.label(local)}")
                    yield _record, local, None
            return
        width = max(1, int(settings.QBO_WRITES_IN_FLIGHT))
        unclaimed: deque[list[Write]] = deque(batches)
        claimed: deque[tuple[list[Write], str]] = deque()
        in_flight: deque[tuple[list[Write], str, Future]] = deque()
        answered: deque[Outcome] = deque()  # not handed over yet
        refused: list[tuple[list[Write], str, list[int]]] = []  # to send again from here
        client = self.ctx.backend.client
        stop: BaseException | None = None
        # The pinned token is for the sending threads; requests made here (between yields,
        # by the caller too) read the token themselves and refresh it when refused.
        with client.pinned_token(), ThreadPoolExecutor(width) as pool:
            try:
                while in_flight or (stop is None and (claimed or unclaimed)):
                    while stop is None and len(in_flight) < width and (claimed or unclaimed):
                        if not claimed:
                            stop = self._checkpoint()
                            if stop is not None:  # what is in flight is still recorded
                                break
                            group = [unclaimed.popleft() for _ in range(min(width, len(unclaimed)))]
                            claimed.extend(self._claim(group))
                            client.pin_token()  # read again: refreshed, should it be near expiry
                        chunk, request_id = claimed.popleft()
                        future = pool.submit(self._send_from_thread, chunk, adapter, request_id)
                        in_flight.append((chunk, request_id, future))
                    if not in_flight:  # told to stop before anything was sent
                        break
                    chunk, request_id, future = in_flight.popleft()
                    yield from self._take(
                        chunk, request_id, future.result(), adapter, answered, refused
                    )
                    if not refused:
                        continue
                    # The token ran out in flight. The batches sent with it are answered
                    # first, and what QuickBooks saved from them recorded, should sending a
                    # refused one again stop the run (reconnect needed); the refused writes
                    # are then sent again from here, where the token is refreshed (the same
                    # requestid and positions, so nothing is written twice), unless the run
                    # was told to stop: then the next run sends them.
                    while in_flight:
                        chunk, request_id, future = in_flight.popleft()
                        yield from self._take(
                            chunk, request_id, future.result(), adapter, answered, refused
                        )
                    while refused and stop is None:
                        stop = self._checkpoint()
                        if stop is None:
                            chunk, request_id, positions = refused.pop(0)
                            answer = self._call(
                                chunk, adapter, request_id=request_id, positions=positions
                            )
                            yield from self._hand_over(chunk, adapter, answer, answered)
                    refused.clear()  # not sent: a claimed create is replayed by the next run
                    client.pin_token()  # the refreshed token, for the threads
            except BaseException:  # the caller stopped between yields, or a thread failed
                self._settle_abandoned(adapter, answered, in_flight)
                raise
        if stop is not None:
            raise stop

    def _checkpoint(self) -> BaseException | None:
        """``LeaseLost`` (or whatever the run's checkpoint raises) as a value, None to go on."""
        try:
            self.log.checkpoint()
        except Exception as exc:
            return exc
        return None

    def _take(self, chunk: list[Write], request_id: str, answer, adapter, answered, refused):
        """Hand over what a sending thread's ``answer`` settles; the writes refused for the
        access token (the whole batch, or, sent one request each, those from the refused
        one on) go to ``refused`` with their positions, to be sent again."""
        done, answer, again = _split_refused(chunk, answer)
        if again:
            refused.append(([chunk[i] for i in again], request_id, again))
        if done:
            yield from self._hand_over(done, adapter, answer, answered)

    def _hand_over(self, chunk: list[Write], adapter: EntityAdapter, answer, answered: deque):
        """Yield ``chunk``'s outcomes one by one for the caller to settle, then record them.
        ``answered`` holds those not yet handed over, should the run stop meanwhile. A write
        refused for a reconnect (sent one request each) stops the run once the others are
        recorded."""
        answered.extend(self._outcomes(chunk, adapter, answer))
        while answered:
            yield answered.popleft()[:3]
        self.record_settled(adapter)  # once the caller has settled the chunk
        if (reconnect := _reconnect_in(answer)) is not None:
            raise reconnect

    def _settle_abandoned(self, adapter: EntityAdapter, answered: deque, in_flight: deque) -> None:
        """The run stops with answers the caller will not settle: those of the batch being
        handed over and of the batches still in flight (waited for here). What QuickBooks
        saved is settled on its binding (an invoice's payments too), recorded, then counted
        and told on the run, so an update's new SyncToken is never dropped (the next pull
        would take the portal's own write back as QuickBooks' change). A create with no
        answer here stays claimed for the replay; a write refused or not sent stays as it
        was, for the next run. Best effort: the run's own error goes on whatever happens
        here; each batch's answers are taken on their own, and nothing is counted unless
        recorded (else the next run's replay counts it again)."""
        outcomes = list(answered)
        answered.clear()
        while in_flight:
            chunk, _request_id, future = in_flight.popleft()
            try:
                done, answer, _again = _split_refused(chunk, future.result())
            except Exception:  # that thread's failure; its creates stay claimed
                continue
            if done:
                outcomes += self._saved_in(done, adapter, answer)
        settled = []
        try:
            for record, local, result, operation in outcomes:
                if isinstance(result, dict):
                    self._settle_write(adapter, record, result)
                    self._after_saved(adapter, local, result)
                    settled.append((record, local, operation))
            self.record_settled(adapter)
        except Exception:
            logger.exception("sync.writer.abandoned_answers_not_recorded")
            return
        for record, local, operation in settled:
            verb = {"create": "created", "void": "voided"}.get(operation, "updated")
            if operation == "create":
                self.log.outcome.created += 1
            else:
                self.log.outcome.updated += 1
            self.log.event(
                record,
                verb,
                f"{adapter.label(local)} {verb} in QuickBooks (recorded as the run stopped).",
            )

    def _saved_in(self, chunk: list[Write], adapter: EntityAdapter, answer) -> list[Outcome]:
        """``_outcomes``, or, should marking a lost create uncertain fail, at least the
        writes QuickBooks answered with the saved object."""
        try:
            return self._outcomes(chunk, adapter, answer)
        except Exception:
            logger.exception("sync.writer.abandoned_outcome_not_marked")
            if not isinstance(answer, list):
                return []
            return [
                (record, local, result, operation)
                for (record, local, operation, _body), result in zip(chunk, answer, strict=True)
                if isinstance(result, dict)
            ]

    def _claim(self, group: list[list[Write]]) -> list[tuple[list[Write], str]]:
        """Give each batch of ``group`` its requestid and claim their creates with it, in one
        transaction (``Binder.claim_all``): (batch, requestid) each, in order."""
        request_ids = [self.ctx.backend.new_request_id() for _ in group]
        self.binder.claim_all(
            [
                (record, batch_ref(request_id, position))
                for chunk, request_id in zip(group, request_ids, strict=True)
                for position, (record, _local, operation, _body) in enumerate(chunk)
                if operation == "create"
            ]
        )
        return list(zip(group, request_ids, strict=True))

    def _send_from_thread(self, chunk: list[Write], adapter: EntityAdapter, request_id: str):
        """``_call`` from a sending thread: a refused access token (the pinned one) is
        returned for the caller to refresh and send again, not raised."""
        try:
            return self._call(chunk, adapter, request_id=request_id)
        except ReconnectRequired as exc:
            if _refused_token(exc):
                return exc
            raise
        finally:
            db_connections.close_all()  # this thread's, should the limiter's cache be SQL

    def _call(
        self,
        chunk: list[Write],
        adapter: EntityAdapter,
        *,
        request_id: str,
        positions: list[int] | None = None,
    ):
        """One batch's results, or the ``QBOError`` its whole request raised."""
        writes = [(operation, body) for _r, _l, operation, body in chunk]
        try:
            return self.ctx.backend.write_batch(
                adapter.qbo_entity, writes, request_id=request_id, positions=positions
            )
        except ReconnectRequired:
            raise
        except QBOError as exc:
            return exc

    def _send(
        self,
        chunk: list[Write],
        adapter: EntityAdapter,
        *,
        request_id: str,
        positions: list[int] | None = None,
    ):
        answer = self._call(chunk, adapter, request_id=request_id, positions=positions)
        for outcome in self._outcomes(chunk, adapter, answer):
            yield outcome[:3]
        if (reconnect := _reconnect_in(answer)) is not None:
            raise reconnect

    def _outcomes(self, chunk: list[Write], adapter: EntityAdapter, answer) -> list[Outcome]:
        """(binding, record, result, operation) per write of ``chunk`` from its batch's
        ``answer``. A create whose answer was lost stays claimed, marked uncertain; a write
        refused for a reconnect (sent one request each: it, and those after it, were not
        saved) is left out, as it was, for the caller to stop the run (``_reconnect_in``)."""
        if isinstance(answer, ConnectionFailedError):
            reason = describe(answer, kind=adapter.kind)
            outcomes = []
            for record, local, operation, _body in chunk:
                if operation == "create":
                    self.binder.mark_uncertain(record, reason)
                else:
                    outcomes.append((record, local, answer, operation))
            return outcomes
        if isinstance(answer, QBOError):
            return [(record, local, answer, operation) for record, local, operation, _ in chunk]
        outcomes = []
        for (record, local, operation, _body), result in zip(chunk, answer, strict=True):
            if isinstance(result, ReconnectRequired):
                continue
            if operation == "create" and _unanswered(result):
                # Sent one request each, this create's own answer was lost: it stays claimed.
                self.binder.mark_uncertain(record, describe(result, kind=adapter.kind))
                continue
            outcomes.append((record, local, result, operation))
        return outcomes

    def replay_uncertain(self) -> None:
        """Settle creates whose answer never came, by sending their batch again with the same
        ``requestid`` (QuickBooks answers with the first result, writing nothing twice)."""
        groups: dict[str, list[tuple[int, SyncRecord]]] = defaultdict(list)
        for record in (
            SyncRecord.objects.filter(connection=self.ctx.connection, uncertain=True)
            .exclude(request_id="")
            .select_related("invoice__customer", "customer", "item")
            .prefetch_related(lines_prefetch("invoice__lines"))
        ):
            request_id, position = parse_batch_ref(record.request_id)
            groups[request_id].append((position, record))
        for request_id, members in groups.items():
            members.sort(key=lambda pair: pair[0])
            adapter = self.ctx.adapter(members[0][1].object_type)
            chunk, positions = [], []
            for position, record in members:
                local = record.local_object
                body = adapter.body(local)
                if body is not None:
                    chunk.append((record, local, "create", body))
                    positions.append(position)
            if self.ctx.dry_run:
                for record, *_ in chunk:
                    self.log.plan(f"settle {record.object_type} {record.label}")
                continue
            self.log.checkpoint()
            with self.recording(adapter):  # what was settled, even if a reconnect stops it
                self._settle_replayed(adapter, chunk, request_id, positions)

    def _settle_replayed(
        self, adapter: EntityAdapter, chunk: list[Write], request_id: str, positions: list[int]
    ) -> None:
        for record, local, result in self._send(
            chunk, adapter, request_id=request_id, positions=positions
        ):
            if isinstance(result, QBOError) and result.retryable:
                # Not answered now (throttled, unavailable): the first write may still
                # have been applied, so the binding keeps its claim for the next replay.
                self.binder.mark_uncertain(record, describe(result, kind=adapter.kind))
                continue
            if isinstance(result, Exception):
                self.binder.fail(record, describe(result, kind=adapter.kind), error=result)
                continue
            self.log.event(
                record,
                "settled",
                # True whether the first request was saved (QuickBooks answers with that
                # first result) or never went out (a run stopped after claiming it).
                f"{adapter.label(local)}: settled by sending its request again with the same "
                "requestid; QuickBooks holds it once.",
            )
            self.log.outcome.created += 1
            self.binder.release_copy(record, object_id(result))
            self._settle_write(adapter, record, result, replayed=True)


def _refused_token(answer) -> bool:
    """Whether a request was refused for its access token (HTTP 401)."""
    return isinstance(answer, QBOError) and getattr(answer, "status", None) == 401


def _split_refused(chunk: list[Write], answer) -> tuple[list[Write], object, list[int]]:
    """A sending thread's ``answer`` to ``chunk`` as (the writes it settles, their answer,
    the positions refused for the access token). A batch is refused whole; writes sent one
    request each are refused from the first 401 on (those after it were not sent), and the
    ones before keep their answers."""
    if _refused_token(answer):
        return [], None, list(range(len(chunk)))
    if not isinstance(answer, list):
        return chunk, answer, []
    again = [i for i, result in enumerate(answer) if _refused_token(result)]
    if not again:
        return chunk, answer, []
    keep = [i for i in range(len(chunk)) if i not in set(again)]
    return [chunk[i] for i in keep], [answer[i] for i in keep], again


def _reconnect_in(answer) -> ReconnectRequired | None:
    """The first write of a one-request-each ``answer`` refused for a reconnect, if any."""
    if isinstance(answer, list):
        return next((r for r in answer if isinstance(r, ReconnectRequired)), None)
    return None


def _unanswered(result) -> bool:
    return isinstance(result, ConnectionFailedError) and result.uncertain
