"""One page of ledger events turned into read-model rows (pure: no I/O here).

A :class:`Page` is given the rows of the stateful tables it will touch (records, open mapping
spans, write statuses), loaded by the projector beforehand; it appends new rows to ``inserts``
and changes the loaded ones in place (``dirty``). The projector then writes both in one
transaction with the tracking position. The handlers are in :mod:`projections.record_rows`
and :mod:`projections.write_rows`, the shared row helpers in :mod:`projections.rows`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ledger import events as ev
from projections.record_rows import RecordRows
from projections.rows import EPOCH, MAPPING_RULES, RecordKey, Row, from_us, to_us
from projections.write_rows import WriteRows

__all__ = [
    "EPOCH",
    "HANDLERS",
    "MAPPING_RULES",
    "Page",
    "RecordKey",
    "Row",
    "from_us",
    "needs",
    "to_us",
]


def needs(
    events: Iterable[tuple[int, ev.LedgerEvent]],
) -> tuple[set[RecordKey], set[str], set[str]]:
    """What a page will touch in the stateful tables: records, write ids with an outcome, and
    identity keys whose open mapping span may change."""
    records: set[RecordKey] = set()
    write_ids: set[str] = set()
    keys: set[str] = set()
    for _, e in events:
        if isinstance(e, ev.CompanyFact | ev.CompanyDeleted):
            records.add((ev.INTERCOM, e.intercom_id))
        elif isinstance(e, ev.AccountFact | ev.AccountDeleted):
            records.add((ev.SALESFORCE, e.salesforce_id))
        elif isinstance(e, ev.RecordIgnored):
            records.add((e.system, e.record_id))
        elif isinstance(e, ev.WriteEvent):
            write_ids.add(e.write_id)
        elif isinstance(e, ev.IdentityMapped | ev.IdentityUnmapped):
            keys.add(e.company_id)
    return records, write_ids, keys


class Page(RecordRows, WriteRows):
    """Turns events into rows. ``records``, ``spans`` (open mapping span by company_id) and
    ``statuses`` (write status by write id) hold the loaded rows and are updated in place."""

    def apply(self, position: int, event: ev.LedgerEvent) -> None:
        handler = HANDLERS.get(type(event))
        if handler is None:
            return  # inbox, lookups, resyncs: not part of these read models
        if event.timestamp != self._stamp:  # a transaction's events share one
            self._stamp, self._stamp_us = event.timestamp, to_us(event.timestamp)
        self._pos, self._at, self._seq, self._event = position, self._stamp_us, 0, event
        handler(self, event)


#: Each event type's handler (functions, not bound methods: a page holds no reference cycle,
#: so its rows are freed as soon as it is written).
HANDLERS: dict[type[ev.LedgerEvent], Callable[[Page, Any], None]] = {
    ev.ConfigurationApplied: Page._config,
    ev.CompanyCreated: Page._company,
    ev.CompanyUpdated: Page._company,
    ev.CompanyObserved: Page._company,
    ev.CompanyDeleted: Page._company_deleted,
    ev.AccountCreated: Page._account,
    ev.AccountUpdated: Page._account,
    ev.AccountIdentifierChanged: Page._account,
    ev.AccountObserved: Page._account,
    ev.AccountDeleted: Page._account_deleted,
    ev.RecordIgnored: Page._ignored,
    ev.NotSynced: Page._not_synced,
    ev.EchoRecognised: Page._echo,
    ev.IdentityMapped: Page._mapped,
    ev.IdentityUnmapped: Page._unmapped,
    ev.SyncPlanned: Page._planned,
    ev.WriteSkipped: Page._skipped,
    ev.WriteApplied: Page._applied,
    ev.WriteFailed: Page._failed,
    ev.ApiUsageObserved: Page._api_usage,
    ev.LedgerAdvanced: Page._advanced,
}
