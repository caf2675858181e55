"""A controllable clock and the timestamp formats QBO puts on the wire."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta, timezone

try:
    from zoneinfo import ZoneInfo

    # Sandbox companies are created in US Pacific time, and QBO stamps MetaData and
    # envelope times in the company's zone (e.g. "2015-07-24T10:35:08-07:00").
    COMPANY_TZ = ZoneInfo("America/Los_Angeles")
except Exception:  # pragma: no cover - only on hosts without tz data
    COMPANY_TZ = timezone(timedelta(hours=-8))


class Clock:
    """Wall-clock time plus an offset that tests can move forward.

    Every expiry (tokens, codes, CDC window, throttle windows) reads this clock, so a test
    can jump a day ahead instead of sleeping.
    """

    def __init__(self, offset: float = 0.0) -> None:
        self._offset = float(offset)
        self._lock = threading.Lock()

    @property
    def offset(self) -> float:
        return self._offset

    def time(self) -> float:
        """Seconds since the epoch, as the emulator sees them."""
        return time.time() + self._offset

    def now(self) -> datetime:
        """The current emulator time in the company's time zone."""
        return datetime.fromtimestamp(self.time(), COMPANY_TZ)

    def today(self) -> date:
        return self.now().date()

    def advance(self, seconds: float) -> float:
        """Move the clock forward (or back, with a negative value); returns the new offset."""
        with self._lock:
            self._offset += float(seconds)
            return self._offset

    def set_offset(self, offset: float) -> None:
        with self._lock:
            self._offset = float(offset)


def iso_seconds(ts: float) -> str:
    """MetaData style: ``2015-07-24T10:35:08-07:00``."""
    return datetime.fromtimestamp(ts, COMPANY_TZ).isoformat(timespec="seconds")


def iso_millis(ts: float) -> str:
    """Envelope ``time`` style: ``2017-03-12T20:05:48.317-07:00``."""
    return datetime.fromtimestamp(ts, COMPANY_TZ).isoformat(timespec="milliseconds")


def iso_utc(ts: float) -> str:
    """Webhook style: ``2025-09-08T20:52:31.657Z``."""
    stamp = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def parse_timestamp(value: str) -> float:
    """Parse a QBO date or date-time into epoch seconds.

    A bare date means midnight in the company's zone; a date-time without an offset is
    read in the company's zone too. Raises ValueError on anything else.
    """
    value = value.strip()
    if len(value) == 10:
        day = date.fromisoformat(value)
        return datetime(day.year, day.month, day.day, tzinfo=COMPANY_TZ).timestamp()
    stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=COMPANY_TZ)
    return stamp.timestamp()
