"""The backend's change feed past QuickBooks' 1,000-object cap, with a stand-in client (the
feed's HTTP shape is covered by the client tests and the emulator tests)."""

from datetime import UTC, datetime, timedelta

from integrations.quickbooks.backend import CDC_MAX_OBJECTS, CURSOR_OVERLAP, QuickBooksBackend

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _obj(n: int, second: int, token: str = "0", **extra) -> dict:
    stamp = (T0 + timedelta(seconds=second)).isoformat()
    return {"Id": str(n), "SyncToken": token, "MetaData": {"LastUpdatedTime": stamp}, **extra}


class FeedClient:
    """Answers the change feed oldest first, cut at the cap, as the emulator does."""

    def __init__(self, changes: list[dict], live: list[dict] | None = None):
        self.changes = changes
        self.live = live or []
        self.calls: list[datetime] = []
        self.queries: list[str] = []
        self.requests_sent = 0  # as QBOClient counts the requests it sends

    def cdc_answer(self, entities, since):
        self.calls.append(since)
        self.requests_sent += 1
        rows = sorted(
            (
                o
                for o in self.changes
                if datetime.fromisoformat(o["MetaData"]["LastUpdatedTime"]) >= since
            ),
            key=lambda o: o["MetaData"]["LastUpdatedTime"],
        )[:CDC_MAX_OBJECTS]
        return {"Invoice": rows}, T0 + timedelta(hours=1, seconds=len(self.calls))

    def query_all(self, entity, where):
        self.queries.append(entity)
        self.requests_sent += 1
        return iter(self.live)


def test_an_answer_at_the_cap_is_followed_until_one_comes_back_short():
    changes = [_obj(n, second=n // 10) for n in range(2500)]
    # Object 7 changed again later, then was deleted the same second: the deletion is kept.
    changes += [_obj(7, second=300, token="1"), {**_obj(7, second=300), "status": "Deleted"}]
    client = FeedClient(changes)
    backend = QuickBooksBackend(client)

    found = backend.changes(["Invoice"], T0 + CURSOR_OVERLAP, now=T0 + timedelta(hours=1))

    assert len(found["Invoice"]) == 2500
    [seven] = [o for o in found["Invoice"] if o["Id"] == "7"]
    assert seven.get("status") == "Deleted"
    assert len(client.calls) == backend.api_calls >= 3
    assert client.calls == sorted(client.calls)
    # The next read starts from QuickBooks' time when the feed first answered.
    assert backend.next_cursor == T0 + timedelta(hours=1, seconds=1)


def test_a_full_answer_stamped_one_instant_falls_back_to_reading_everything():
    changes = [_obj(n, second=0) for n in range(CDC_MAX_OBJECTS + 5)]
    client = FeedClient(changes, live=changes)
    backend = QuickBooksBackend(client)

    found = backend.changes(["Invoice"], T0 + CURSOR_OVERLAP, now=T0 + timedelta(hours=1))

    assert len(found["Invoice"]) == CDC_MAX_OBJECTS + 5
    assert client.queries == ["Invoice"]
