"""Batched writes to QuickBooks: each create's binding claimed with its batch's requestid
before the batch is sent, answers settled as they come, and the replay that settles a batch
whose answer was lost (qbo-api.md section 5: a repeated requestid returns the first answer).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from integrations.quickbooks.backend import (
    batch_ref,
    chunks,
    new_request_id,
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

# (binding, portal record, operation, body)
Write = tuple[SyncRecord, object, str, dict]


class BatchWriter(Component):
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
        self.binder.settle(
            record,
            obj,
            agreed=agreed,
            pushed=True,
            number=adapter.remote_number(obj),
            differs=adapter.differences(record, obj),
            agree_version=not replayed,
        )

    # --- batched writes --------------------------------------------------------------------

    def write_batch(self, writes: list[Write], adapter: EntityAdapter) -> Iterator:
        """Send ``writes`` in batches; yields (binding, record, saved object, fault or None).

        Each create's binding is claimed with its batch's requestid and position before the
        batch is sent; a dry run only plans.
        """
        for chunk in chunks(writes):
            if self.ctx.dry_run:
                for _record, local, operation, _body in chunk:
                    self.log.plan(f"{operation} {adapter.kind} {adapter.label(local)}")
                    yield _record, local, None
                continue
            self.log.checkpoint()
            request_id = new_request_id()
            for position, (record, _local, operation, _body) in enumerate(chunk):
                if operation == "create":
                    self.binder.claim(record, batch_ref(request_id, position))
            yield from self._send(chunk, adapter, request_id=request_id)
            adapter.flush()  # once the caller has settled the chunk's answers

    def _send(
        self,
        chunk: list[Write],
        adapter: EntityAdapter,
        *,
        request_id: str,
        positions: list[int] | None = None,
    ):
        writes = [(operation, body) for _r, _l, operation, body in chunk]
        try:
            results = self.ctx.backend.write_batch(
                adapter.qbo_entity, writes, request_id=request_id, positions=positions
            )
        except ConnectionFailedError as exc:
            reason = describe(exc, kind=adapter.kind)
            for record, local, operation, _body in chunk:
                if operation == "create":
                    self.binder.mark_uncertain(record, reason)
                else:
                    yield record, local, exc
            return
        except ReconnectRequired:
            raise
        except QBOError as exc:
            for record, local, _operation, _body in chunk:
                yield record, local, exc
            return
        for (record, local, _operation, _body), result in zip(chunk, results, strict=True):
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
            adapter.flush()
