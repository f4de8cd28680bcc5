"""The in-memory Salesforce org (:class:`FakeSalesforce`); see :mod:`adapters.sync.fakes`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from adapters.sync.ports import RecordResult, Updates, WriteRefused, write_each
from adapters.sync.sample_catalog import EPOCH, SALESFORCE_FIELDS, value_problem
from ledger.catalog import SalesforceField
from ledger.events import SALESFORCE
from ledger.facts import AccountChange, AccountRemoval, ApiUsage, DeletionsMissed
from ledger.values import format_salesforce_datetime, key_of

__all__ = ["COLLECTION_SIZE", "FakeSalesforce"]

#: Records per sObject Collections request (and per ``Id IN`` read).
COLLECTION_SIZE = 200


class FakeSalesforce:
    """A Salesforce org's Accounts in memory (``AccountSystem``).

    Field values are keyed by API name; every field of the catalog that holds data is present
    (``None`` when unset).
    """

    def __init__(self, fields: Iterable[SalesforceField] = SALESFORCE_FIELDS) -> None:
        self.schema: dict[str, SalesforceField] = {f.name: f for f in fields}
        self._data_fields = [
            f.name
            for f in self.schema.values()
            if f.type not in {"address", "id"}
            and f.name not in {"IsPersonAccount", "SystemModstamp"}
        ]
        self.accounts: dict[str, dict[str, Any]] = {}
        self.deleted: dict[str, str] = {}
        #: deletions before this stamp are no longer listed (see :meth:`purge_delete_log`)
        self.delete_log_start: str | None = None
        #: API calls made by the sync, against the org's daily ``api_limit``
        self.api_calls = 0
        self.api_limit = 100_000
        self.api_allocation: int | None = None
        self._tick = 0
        self._ids = 0

    # --- users -------------------------------------------------------------------------------

    def create(
        self, values: Mapping[str, Any] | None = None, *, person: bool = False, **fields: Any
    ) -> str:
        """A user creates an account; returns its Id."""
        merged = {**(values or {}), **fields}
        self._check(merged, "createable")
        self._ids += 1
        record_id = f"001{self._ids:015d}"
        record: dict[str, Any] = dict.fromkeys(self._data_fields)
        record.update(merged, Id=record_id, IsPersonAccount=person)
        record["SystemModstamp"] = self._stamp()
        self.accounts[record_id] = record
        return record_id

    def update(
        self, record_id: str, values: Mapping[str, Any] | None = None, **fields: Any
    ) -> None:
        """A user saves an account (``SystemModstamp`` moves on even if nothing changed)."""
        merged = {**(values or {}), **fields}
        record = self._live(record_id)
        self._check(merged, "updateable")
        record.update(merged)
        record["SystemModstamp"] = self._stamp()

    def delete(self, record_id: str) -> None:
        """A user deletes an account (it goes to the recycle bin; ``getDeleted`` shows it)."""
        self._live(record_id)
        del self.accounts[record_id]
        self.deleted[record_id] = self._stamp()

    def set_picklist_values(self, field: str, values: Sequence[str]) -> None:
        """An admin changes a picklist's active values (the sync's configuration is not told)."""
        self.schema[field] = SalesforceField(
            **{**self.schema[field].to_dict(), "picklist_values": tuple(values)}
        )

    def get(self, record_id: str) -> dict[str, Any] | None:
        """The account as a user sees it (a copy), or ``None`` once deleted."""
        record = self.accounts.get(record_id)
        return None if record is None else dict(record)

    def purge_delete_log(self) -> None:
        """Salesforce empties its recycle bin: deletions so far are no longer listed."""
        self.deleted.clear()
        self.delete_log_start = self._stamp()

    # --- the sync -----------------------------------------------------------------------------

    def changes_since(
        self, watermark: str | None
    ) -> list[AccountChange | AccountRemoval | DeletionsMissed]:
        """Accounts saved after ``watermark`` (all when ``None``), then deletions after it
        (two calls); :class:`DeletionsMissed` if the delete log starts after ``watermark``."""
        self._call(2 if watermark is not None else 1)
        changed: list[AccountChange | AccountRemoval | DeletionsMissed] = [
            self._fact(r, "change", "poll")
            for r in sorted(self.accounts.values(), key=lambda r: r["SystemModstamp"])
            if watermark is None or r["SystemModstamp"] > watermark
        ]
        if watermark is not None:
            changed += [
                AccountRemoval(rid, deleted_at=at, source="poll")
                for rid, at in sorted(self.deleted.items(), key=lambda item: item[1])
                if at > watermark
            ]
            if self.delete_log_start is not None and self.delete_log_start > watermark:
                reason = f"the delete log starts at {self.delete_log_start}, after {watermark}"
                changed.append(DeletionsMissed(SALESFORCE, reason))
        return changed

    def lookup(self, field: str, keys: Sequence[str]) -> list[AccountChange]:
        """Every account whose ``field`` carries one of ``keys`` (one query)."""
        self._call()
        wanted, kind = set(keys), self.schema[field].type
        return [
            self._fact(r, "snapshot", "lookup")
            for rid, r in sorted(self.accounts.items())
            if key_of(r.get(field), kind) in wanted
        ]

    def every_account(self) -> list[AccountChange]:
        """Every account as it is now, least recently saved first (one query)."""
        self._call()
        by_stamp = sorted(self.accounts.values(), key=lambda r: r["SystemModstamp"])
        return [self._fact(r, "snapshot", "read") for r in by_stamp]

    def read(self, ids: Sequence[str]) -> list[AccountChange | AccountRemoval]:
        """The accounts ``ids`` as they are now (a removal for one that is gone)."""
        self._call(-(-len(ids) // COLLECTION_SIZE))
        return [
            self._fact(self.accounts[rid], "snapshot", "read")
            if rid in self.accounts
            else AccountRemoval(rid, deleted_at=self.deleted.get(rid), source="read")
            for rid in ids
        ]

    def write(self, updates: Updates) -> list[RecordResult]:
        """Update accounts, 200 a call like sObject Collections; each record all or nothing."""
        self._call(-(-len(updates) // COLLECTION_SIZE))
        return write_each(updates, self._write_one)

    def api_usage(self) -> ApiUsage | None:
        """The usage after the sync's latest call (``None`` before the first)."""
        if not self.api_calls:
            return None
        return ApiUsage(SALESFORCE, self.api_calls, self.api_limit, self.api_allocation)

    def refresh_api_usage(self) -> ApiUsage | None:
        """One ``limits`` call."""
        self._call()
        return self.api_usage()

    def _write_one(self, record_id: str, values: Mapping[str, Any]) -> None:
        if record_id not in self.accounts:
            code = "ENTITY_IS_DELETED" if record_id in self.deleted else "NOT_FOUND"
            raise WriteRefused(f"account {record_id} does not exist", code=code)
        self.update(record_id, values)

    def _call(self, count: int = 1) -> None:
        self.api_calls += count

    # --- internals ----------------------------------------------------------------------------

    def _stamp(self) -> str:
        stamp = format_salesforce_datetime(EPOCH + timedelta(seconds=self._tick))
        self._tick += 1
        return stamp

    def _live(self, record_id: str) -> dict[str, Any]:
        if record_id not in self.accounts:
            raise WriteRefused(f"account {record_id} does not exist", code="NOT_FOUND")
        return self.accounts[record_id]

    def _check(self, values: Mapping[str, Any], access: str) -> None:
        bad: dict[str, str] = {}
        code = "INVALID_FIELD"
        for name, value in values.items():
            f = self.schema.get(name)
            if f is None or name not in self._data_fields:
                bad[name] = "no such field on Account"
            elif not getattr(f, access) or f.calculated:
                bad[name] = "the field is not writable"
            elif f.restricted_picklist and value is not None and value not in f.picklist_values:
                code = "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
                bad[name] = f"bad value for restricted picklist field: {value}"
            elif (problem := value_problem(value, f.type, f.length)) is not None:
                bad[name] = problem
        if bad:
            text = "; ".join(f"{k}: {v}" for k, v in sorted(bad.items()))
            raise WriteRefused(text, code=code, fields=sorted(bad))

    def _fact(self, record: Mapping[str, Any], kind: str, source: str) -> AccountChange:
        return AccountChange(
            str(record["Id"]),
            {name: record.get(name) for name in self._data_fields},
            str(record["SystemModstamp"]),
            bool(record["IsPersonAccount"]),
            kind="snapshot" if kind == "snapshot" else "change",
            source=source,
        )
