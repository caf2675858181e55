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
        answered: deque[tuple[SyncRecord, object, object]] = deque()  # not handed over yet
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
                    answer = future.result()
                    if not _refused_token(answer):
                        yield from self._hand_over(chunk, adapter, answer, answered)
                        continue
                    # The token ran out in flight. The batches sent with it are answered
                    # first, and what QuickBooks saved from them recorded, should sending a
                    # refused one again stop the run (reconnect needed); the refused ones are
                    # then sent again from here, where the token is refreshed (the same
                    # requestid, so nothing is written twice) unless the run was told to stop.
                    refused = [(chunk, request_id)]
                    while in_flight:
                        chunk, request_id, future = in_flight.popleft()
                        answer = future.result()
                        if _refused_token(answer):
                            refused.append((chunk, request_id))
                            continue
                        yield from self._hand_over(chunk, adapter, answer, answered)
                    for chunk, request_id in refused:
                        stop = stop or self._checkpoint()
                        if stop is not None:  # claimed creates are replayed by the next run
                            break
                        answer = self._call(chunk, adapter, request_id=request_id)
                        yield from self._hand_over(chunk, adapter, answer, answered)
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

    def _hand_over(self, chunk: list[Write], adapter: EntityAdapter, answer, answered: deque):
        """Yield ``chunk``'s outcomes one by one for the caller to settle, then record them.
        ``answered`` holds those not yet handed over, should the run stop meanwhile."""
        answered.extend(self._outcomes(chunk, adapter, answer))
        while answered:
            yield answered.popleft()
        self.record_settled(adapter)  # once the caller has settled the chunk

    def _settle_abandoned(self, adapter: EntityAdapter, answered: deque, in_flight: deque) -> None:
        """The run stops with answers the caller will not settle: those of the batch being
        handed over and of the batches still in flight (waited for here). What QuickBooks
        saved is settled on its binding and recorded, without the caller's events, so an
        update's new SyncToken is never dropped (the next pull would take the portal's own
        write back as QuickBooks' change). A create with no answer here stays claimed for
        the replay; a write refused stays as it was, sent again by the next run. Best effort:
        the run's own error goes on whatever happens here."""
        outcomes = list(answered)
        answered.clear()
        while in_flight:
            chunk, _request_id, future = in_flight.popleft()
            try:
                answer = future.result()
            except BaseException:  # that thread's failure; its creates stay claimed
                continue
            if not _refused_token(answer):
                outcomes += self._outcomes(chunk, adapter, answer)
        try:
            for record, _local, result in outcomes:
                if isinstance(result, dict):
                    self._settle_write(adapter, record, result)
            self.record_settled(adapter)
        except Exception:
            logger.exception("sync.writer.abandoned_answers_not_recorded")

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
        yield from self._outcomes(chunk, adapter, answer)

    def _outcomes(self, chunk: list[Write], adapter: EntityAdapter, answer):
        """(binding, record, result) per write of ``chunk`` from its batch's ``answer``; a
        create whose answer was lost stays claimed, marked uncertain."""
        if isinstance(answer, ConnectionFailedError):
            reason = describe(answer, kind=adapter.kind)
            for record, local, operation, _body in chunk:
                if operation == "create":
                    self.binder.mark_uncertain(record, reason)
                else:
                    yield record, local, answer
            return
        if isinstance(answer, QBOError):
            for record, local, _operation, _body in chunk:
                yield record, local, answer
            return
        for (record, local, operation, _body), result in zip(chunk, answer, strict=True):
            if operation == "create" and _unanswered(result):
                # Sent one request each, this create's own answer was lost: it stays claimed.
                self.binder.mark_uncertain(record, describe(result, kind=adapter.kind))
                continue
            yield record, local, result

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
            sent = self._send(chunk, adapter, request_id=request_id, positions=positions)
            for record, local, result in sent:
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
                    f"{adapter.label(local)}: the earlier write was confirmed by replaying "
                    "its request; no duplicate was made.",
                )
                self.log.outcome.created += 1
                self.binder.release_copy(record, object_id(result))
                self._settle_write(adapter, record, result, replayed=True)
            self.record_settled(adapter)


def _refused_token(answer) -> bool:
    """Whether a batch's whole request was refused for its access token (HTTP 401)."""
    return isinstance(answer, QBOError) and getattr(answer, "status", None) == 401


def _unanswered(result) -> bool:
    return isinstance(result, ConnectionFailedError) and result.uncertain
