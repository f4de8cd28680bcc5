"""The rows one page of ledger events becomes, and the helpers every handler shares.

:class:`PageRows` holds the loaded rows of the stateful tables (records, open mapping spans,
write statuses), the new rows (``inserts``) and which loaded ones changed (``dirty_*``); the
handlers (:mod:`projections.record_rows`, :mod:`projections.write_rows`) add timeline entries
through :meth:`PageRows._entry`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ledger import events as ev
from ledger.config import ActiveConfig

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Row = dict[str, Any]
RecordKey = tuple[str, str]

MAPPING_RULES = ("skip_if_source_empty", "skip_if_destination_has_value")


def to_us(at: datetime) -> int:
    """Microseconds since the epoch; naive datetimes are taken as UTC."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return (at - EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


class PageRows:
    """A page's rows: the loaded ones (``records``; ``spans``, the open mapping span by
    company_id; ``statuses``, the write status by write id), changed in place, and new ones."""

    def __init__(
        self,
        config: ActiveConfig,
        records: dict[RecordKey, Row],
        spans: dict[str, Row],
        statuses: dict[str, Row],
    ) -> None:
        self.config = config
        self.records = records
        self.spans = spans
        self.statuses = statuses
        self.dirty_records: set[RecordKey] = set()
        self.dirty_spans: dict[tuple[str, int], Row] = {}
        self.dirty_statuses: set[str] = set()
        self.inserts: dict[str, list[Row]] = {
            "transactions": [],
            "configs": [],
            "timeline": [],
            "writes": [],
            "rejected": [],
            "api_usage": [],
        }
        self._pos = 0
        self._at = 0
        self._seq = 0
        self._event: ev.LedgerEvent | None = None
        self._stamp: datetime | None = None  # the last timestamp converted, and its value
        self._stamp_us = 0

    # --- helpers -----------------------------------------------------------------------------

    def _entry(
        self,
        system: str,
        record_id: str,
        category: str,
        summary: str,
        *,
        company_id: str | None = None,
        field: str | None = None,
        cause: str | None = None,
        config_version: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        assert self._event is not None
        self.inserts["timeline"].append(
            {
                "position": self._pos,
                "seq": self._seq,
                "system": system,
                "record_id": record_id,
                "company_id": company_id,
                "at_us": self._at,
                "event": type(self._event).__name__,
                "ref": self._event.ref,
                "category": category,
                "field": field,
                "summary": summary,
                "cause": cause,
                "config_version": self.config.version if config_version is None else config_version,
                "details": details or {},
            }
        )
        self._seq += 1

    def _record(self, system: str, record_id: str) -> Row:
        key = (system, record_id)
        row = self.records.get(key)
        if row is None:
            row = {
                "system": system,
                "record_id": record_id,
                "company_id": None,
                "deleted": False,
                "is_person_account": False,
                "last_position": self._pos,
                "last_at_us": self._at,
                "ignored_reason": None,
                "ignored_cause": None,
                "ignored_position": None,
                "ignored_at_us": None,
            }
            self.records[key] = row
        self.dirty_records.add(key)
        return row

    def _seen(self, row: Row, *, company_id: str | None, deleted: bool, person: bool) -> None:
        row.update(
            company_id=company_id,
            deleted=deleted,
            is_person_account=person,
            last_position=self._pos,
            last_at_us=self._at,
            ignored_reason=None,
            ignored_cause=None,
            ignored_position=None,
            ignored_at_us=None,
        )
