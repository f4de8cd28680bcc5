"""The pending writes in the ledger's state: planned, closed by an outcome, and the echo each
one makes the ledger expect on its destination record.

:class:`PendingWrites` is the part of :class:`ledger.state.LedgerState` that folds
``SyncPlanned`` and the write outcomes; it changes the state only through the journal.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ledger import events as ev
from ledger.journal import Journal
from ledger.records import AccountRecord, CompanyRecord, PendingWrite

_MISSING = object()


class PendingWrites(Journal):
    """Planned writes without a final outcome, indexed by target field and by record."""

    accounts: dict[str, AccountRecord]
    companies: dict[str, CompanyRecord]
    pending: dict[str, PendingWrite]
    pending_by_target: dict[tuple[str, str, str], str]
    #: pending write ids by every record they involve (destination and source)
    pending_by_record: dict[tuple[str, str], frozenset[str]]
    scalars: dict[str, Any]

    def pending_writes(self) -> list[PendingWrite]:
        """Planned writes still waiting for an outcome, in planning order."""
        return sorted(self.pending.values(), key=lambda p: p.seq)

    def pending_involving(self, system: str, record_id: str) -> list[PendingWrite]:
        """Pending writes to or from one record, in planning order."""
        found = [self.pending[w] for w in self.pending_by_record.get((system, record_id), ())]
        return sorted(found, key=lambda p: p.seq)

    def _on_sync_planned(self, e: ev.SyncPlanned) -> None:
        for write in e.writes:
            seq = int(self.scalars["seq"]) + 1
            self._put(self.scalars, "seq", seq)
            pw = PendingWrite(seq, e.system, e.record_id, write)
            self._put(self.pending, pw.write_id, pw)
            self._put(self.pending_by_target, (e.system, e.record_id, pw.field), pw.write_id)
            for record in _records_of(pw):
                ids = self.pending_by_record.get(record, frozenset())
                self._put(self.pending_by_record, record, ids | {pw.write_id})
            self._set_expected(e.system, e.record_id, pw.field, pw.value)

    def _close(self, write_id: str) -> PendingWrite | None:
        pw = self.pending.get(write_id)
        if pw is None:
            return None
        self._pop(self.pending, write_id)
        target = (pw.system, pw.record_id, pw.field)
        if self.pending_by_target.get(target) == write_id:
            self._pop(self.pending_by_target, target)
        for record in _records_of(pw):
            ids = self.pending_by_record.get(record, frozenset()) - {write_id}
            if ids:
                self._put(self.pending_by_record, record, ids)
            else:
                self._pop(self.pending_by_record, record)
        return pw

    def _on_write_closed(self, e: ev.WriteSkipped) -> None:
        pw = self._close(e.write_id)
        if pw is not None:
            self._drop_expected(pw)

    def _on_write_applied(self, e: ev.WriteApplied) -> None:
        write = e.planned_write
        self._close(write.write_id)
        field_name, value = write.field, write.value
        if e.system == ev.SALESFORCE:
            acc = self.accounts.get(e.record_id)
            if acc is not None:
                fields = {**acc.fields, field_name: value}
                expected = {**acc.expected, field_name: value}
                self._put(
                    self.accounts, e.record_id, replace(acc, fields=fields, expected=expected)
                )
        else:
            com = self.companies.get(e.record_id)
            if com is not None:
                attrs = {**com.attributes, field_name: value}
                expected = {**com.expected, field_name: value}
                self._put(
                    self.companies, e.record_id, replace(com, attributes=attrs, expected=expected)
                )

    def _on_write_failed(self, e: ev.WriteFailed) -> None:
        wid = e.write_id
        pw = self.pending.get(wid)
        if pw is None:
            return
        if e.retryable:
            self._put(self.pending, wid, replace(pw, attempts=e.attempt))
        else:
            self._close(wid)
            self._drop_expected(pw)

    def _set_expected(self, system: str, record_id: str, field_name: str, value: Any) -> None:
        if system == ev.SALESFORCE:
            acc = self.accounts.get(record_id)
            if acc is not None:
                expected = {**acc.expected, field_name: value}
                self._put(self.accounts, record_id, replace(acc, expected=expected))
        else:
            com = self.companies.get(record_id)
            if com is not None:
                expected = {**com.expected, field_name: value}
                self._put(self.companies, record_id, replace(com, expected=expected))

    def _drop_expected(self, pw: PendingWrite) -> None:
        record: AccountRecord | CompanyRecord | None
        if pw.system == ev.SALESFORCE:
            record = self.accounts.get(pw.record_id)
        else:
            record = self.companies.get(pw.record_id)
        if record is None or record.expected.get(pw.field, _MISSING) != pw.value:
            return
        expected = {k: v for k, v in record.expected.items() if k != pw.field}
        if isinstance(record, AccountRecord):
            self._put(self.accounts, pw.record_id, replace(record, expected=expected))
        else:
            self._put(self.companies, pw.record_id, replace(record, expected=expected))


def _records_of(pw: PendingWrite) -> tuple[tuple[str, str], tuple[str, str]]:
    return (pw.system, pw.record_id), (pw.write.source_system, pw.write.source_record_id)
