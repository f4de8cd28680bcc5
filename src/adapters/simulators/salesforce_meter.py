"""API accounting for the Salesforce simulator: daily usage, calls by kind, open query cursors."""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from adapters.simulators.salesforce_values import ApiError, make_id


class ApiMeter:
    """Daily API usage (behind ``Sforce-Limit-Info``) and call counters by kind; thread-safe.

    The day is the UTC calendar day of ``now()`` (Salesforce uses a rolling 24 hours).
    """

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._lock = threading.Lock()
        self._now = now
        self.calls_by_day: dict[date, int] = {}
        self._calls: Counter[str] = Counter()
        self._events: Counter[str] = Counter()

    def _today(self) -> date:
        return self._now().astimezone(UTC).date()

    def record_call(self, kind: str, daily_limit: int) -> int | None:
        """Count one API call of ``kind``; today's usage, or None once the daily limit is hit."""
        with self._lock:
            day = self._today()
            used = self.calls_by_day.get(day, 0)
            if used >= daily_limit:
                self._events["limit_exceeded"] += 1
                return None
            self.calls_by_day[day] = used + 1
            self._calls[kind] += 1
            return used + 1

    def usage(self) -> int:
        """API calls counted today."""
        with self._lock:
            return self.calls_by_day.get(self._today(), 0)

    def note(self, event: str) -> None:
        """Count an event that is not a call kind (``faults``)."""
        with self._lock:
            self._events[event] += 1

    @property
    def counters(self) -> dict[str, int]:
        """Calls by kind plus ``total``; ``faults`` and ``limit_exceeded`` are not in the total."""
        with self._lock:
            return {**self._calls, "total": sum(self._calls.values()), **self._events}

    def reset_counters(self) -> None:
        """Zero the counters (today's API usage is left alone)."""
        with self._lock:
            self._calls.clear()
            self._events.clear()


class QueryCursors:
    """Query results kept for ``query/{locator}-{offset}``; the oldest go past ``limit`` open.

    Salesforce keeps at most 10 open cursors per user and closes the oldest; a finished cursor
    is evicted first, but re-reading its last batch (a client retry) still works until then.
    """

    def __init__(self, limit: int = 10) -> None:
        self._lock = threading.Lock()
        self.limit = limit
        self._open: OrderedDict[str, list[Any]] = OrderedDict()
        self._seq = 0

    def open(self, records: list[Any]) -> str:
        """Keep ``records``; returns the locator (``01g...``)."""
        with self._lock:
            self._seq += 1
            locator = make_id("01g", self._seq)
            self._open[locator] = records
            while len(self._open) > self.limit:
                self._open.popitem(last=False)
            return locator

    def page(self, locator: str, offset: int, size: int) -> tuple[list[Any], int, bool]:
        """(records, totalSize, done) of one batch; INVALID_QUERY_LOCATOR if it is gone."""
        with self._lock:
            records = self._open.get(locator)
            if records is None or offset > len(records):
                raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            done = offset + size >= len(records)
            self._open.move_to_end(locator, last=not done)
            return records[offset : offset + size], len(records), done
