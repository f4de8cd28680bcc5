"""The ledger's state: a left fold of its events, kept in memory and rebuilt from the log.

:meth:`LedgerState.apply` is the only way state changes, so state built live and state rebuilt
from stored events are equal by construction (the property tests check it). Inside
:meth:`LedgerState.transaction` every change is journalled, so a decision whose events the store
refused (another process got there first) is rolled back without rebuilding anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID

from ledger import events as ev
from ledger.budget import Tier
from ledger.config import INITIAL_CONFIG, ActiveConfig
from ledger.facts import CompanyChange, CompanyRemoval
from ledger.values import key_of
from ledger.writes import PlannedWrite

_MISSING = object()


@dataclass(frozen=True)
class AccountRecord:
    """What the ledger knows of one Salesforce account."""

    salesforce_id: str
    fields: Mapping[str, Any]
    system_modstamp: str
    is_person_account: bool
    deleted: bool = False
    #: values we wrote (or are writing) whose echo we expect to see next
    expected: Mapping[str, Any] = field(default_factory=dict)
    #: the fields as of the last change Salesforce reported (``None``: only read so far);
    #: changes are derived against this, not against reads and lookups
    baseline: Mapping[str, Any] | None = None
    trigger_stamp: str = ""


@dataclass(frozen=True)
class CompanyRecord:
    """What the ledger knows of one Intercom company (attributes by full name)."""

    intercom_id: str
    company_id: str | None
    attributes: Mapping[str, Any]
    updated_at: int
    deleted: bool = False
    expected: Mapping[str, Any] = field(default_factory=dict)
    #: the attributes as of the last change Intercom reported (``None``: only read so far)
    baseline: Mapping[str, Any] | None = None
    trigger_stamp: int = -1
    #: a ``company.created`` was decided (a later one is a duplicate)
    created: bool = False


@dataclass(frozen=True)
class IdentityLink:
    """An established company ↔ account mapping."""

    company_id: str
    intercom_id: str
    salesforce_id: str
    identifier_field: str
    config_version: int


@dataclass(frozen=True)
class PendingWrite:
    """A planned write without a final outcome yet, to ``system``'s record ``record_id``."""

    seq: int
    system: str
    record_id: str
    write: PlannedWrite
    attempts: int = 0

    @property
    def write_id(self) -> str:
        return self.write.write_id

    @property
    def field(self) -> str:
        return self.write.field

    @property
    def value(self) -> Any:
        return self.write.value


@dataclass(frozen=True)
class RecordedUsage:
    """A system's API usage as the latest ``ApiUsageObserved`` recorded it."""

    used: int
    limit: int
    allocation: int | None
    tier: Tier


class LedgerState:
    """Everything decisions need, derived from the events applied so far."""

    def __init__(self) -> None:
        self.accounts: dict[str, AccountRecord] = {}
        self.companies: dict[str, CompanyRecord] = {}
        #: live company by company_id
        self.company_by_key: dict[str, str] = {}
        #: live business accounts by their key under the identifier field in force
        self.accounts_by_key: dict[str, frozenset[str]] = {}
        self.links: dict[str, IdentityLink] = {}
        self.link_by_account: dict[str, str] = {}
        self.pending: dict[str, PendingWrite] = {}
        self.pending_by_target: dict[tuple[str, str, str], str] = {}
        #: pending write ids by every record they involve (destination and source)
        self.pending_by_record: dict[tuple[str, str], frozenset[str]] = {}
        self.looked_up: dict[tuple[str, str, str], tuple[str, ...]] = {}
        #: webhook notifications received and not yet decided on, oldest first (id -> fact)
        self.inbox: dict[str, CompanyChange | CompanyRemoval] = {}
        #: every notification id ever received (duplicates are dropped durably)
        self.notifications_seen: dict[str, bool] = {}
        self.versions: dict[UUID, int] = {}
        self.scalars: dict[str, Any] = {
            "position": 0,
            "seq": 0,
            "poll_watermark": None,
            "config": INITIAL_CONFIG,
            #: system -> the latest ApiUsageObserved, as a RecordedUsage
            "api_usage": {},
            #: system -> why a resync is needed (absent when none is)
            "resync_needed": {},
        }
        self._journal: list[tuple[dict[Any, Any], Any, Any]] | None = None
        self._handlers: dict[type[ev.LedgerEvent], Callable[[Any], None]] = {
            ev.ConfigurationApplied: self._on_config,
            ev.CompanyCreated: self._on_company,
            ev.CompanyUpdated: self._on_company,
            ev.CompanyObserved: self._on_company,
            ev.CompanyDeleted: self._on_company_deleted,
            ev.AccountCreated: self._on_account,
            ev.AccountUpdated: self._on_account,
            ev.AccountIdentifierChanged: self._on_account,
            ev.AccountObserved: self._on_account,
            ev.AccountDeleted: self._on_account_deleted,
            ev.LookupAnswered: self._on_lookup,
            ev.IdentityMapped: self._on_mapped,
            ev.IdentityUnmapped: self._on_unmapped,
            ev.SyncPlanned: self._on_sync_planned,
            ev.WriteSkipped: self._on_write_closed,
            ev.WriteApplied: self._on_write_applied,
            ev.WriteFailed: self._on_write_failed,
            ev.NotificationReceived: self._on_notification,
            ev.NotificationsTaken: self._on_notifications_taken,
            ev.ApiUsageObserved: self._on_api_usage,
            ev.ResyncNeeded: self._on_resync_needed,
            ev.ResyncCompleted: self._on_resync_completed,
        }

    # --- reading ---------------------------------------------------------------------------

    @property
    def config(self) -> ActiveConfig:
        """The configuration in force."""
        config: ActiveConfig = self.scalars["config"]
        return config

    @property
    def position(self) -> int:
        """The notification id of the last event applied."""
        return int(self.scalars["position"])

    def set_position(self, position: int) -> None:
        """Note that the events up to ``position`` are applied (outside any transaction)."""
        self.scalars["position"] = position

    @property
    def poll_watermark(self) -> str | None:
        """The greatest ``SystemModstamp`` a Salesforce poll has shown us."""
        value = self.scalars["poll_watermark"]
        return None if value is None else str(value)

    def api_usage(self, system: str) -> RecordedUsage | None:
        """The latest recorded API usage of ``system``, if any."""
        usage: RecordedUsage | None = self.scalars["api_usage"].get(system)
        return usage

    def resync_needed(self, system: str) -> str | None:
        """Why every known record of ``system`` must be read again, or ``None``."""
        reason: str | None = self.scalars["resync_needed"].get(system)
        return reason

    def account_key(self, account: AccountRecord) -> str | None:
        """The account's identifier value under the configuration in force."""
        ident = self.config.identifier
        return key_of(account.fields.get(ident.name), ident.type)

    def is_candidate(self, account: AccountRecord) -> bool:
        return not account.deleted and not account.is_person_account

    def candidates(self, key: str) -> list[AccountRecord]:
        """Live business accounts carrying ``key``, best first (most recently updated; ties by
        smallest Id)."""
        ids = self.accounts_by_key.get(key, frozenset())
        found = [self.accounts[i] for i in ids]
        found.sort(key=lambda a: a.salesforce_id)
        found.sort(key=lambda a: a.system_modstamp, reverse=True)
        return found

    def live_company(self, company_id: str) -> CompanyRecord | None:
        iid = self.company_by_key.get(company_id)
        return None if iid is None else self.companies[iid]

    def pending_writes(self) -> list[PendingWrite]:
        """Planned writes still waiting for an outcome, in planning order."""
        return sorted(self.pending.values(), key=lambda p: p.seq)

    def pending_involving(self, system: str, record_id: str) -> list[PendingWrite]:
        """Pending writes to or from one record, in planning order."""
        found = [self.pending[w] for w in self.pending_by_record.get((system, record_id), ())]
        return sorted(found, key=lambda p: p.seq)

    def snapshot(self) -> dict[str, Any]:
        """A canonical, comparable rendering of the whole state."""
        return {
            "accounts": dict(sorted(self.accounts.items())),
            "companies": dict(sorted(self.companies.items())),
            "company_by_key": dict(sorted(self.company_by_key.items())),
            "accounts_by_key": {k: sorted(v) for k, v in sorted(self.accounts_by_key.items())},
            "links": dict(sorted(self.links.items())),
            "link_by_account": dict(sorted(self.link_by_account.items())),
            "pending": [
                (p.seq, p.system, p.record_id, p.write, p.attempts) for p in self.pending_writes()
            ],
            "pending_by_target": dict(sorted(self.pending_by_target.items())),
            "pending_by_record": {k: sorted(v) for k, v in sorted(self.pending_by_record.items())},
            "looked_up": dict(sorted(self.looked_up.items())),
            "inbox": list(self.inbox.items()),
            "notifications_seen": sorted(self.notifications_seen),
            "versions": {str(k): v for k, v in sorted(self.versions.items())},
            "scalars": {**self.scalars, "config": self.config.to_dict()},
        }

    # --- transactions ------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Journal every change made in the block; undo them all if the block raises."""
        if self._journal is not None:
            raise RuntimeError("nested ledger state transaction")
        self._journal = []
        try:
            yield
        except BaseException:
            journal, self._journal = self._journal, None
            for d, key, old in reversed(journal):
                if old is _MISSING:
                    d.pop(key, None)
                else:
                    d[key] = old
            raise
        else:
            self._journal = None

    def _put(self, d: dict[Any, Any], key: Any, value: Any) -> None:
        if self._journal is not None:
            self._journal.append((d, key, d.get(key, _MISSING)))
        d[key] = value

    def _pop(self, d: dict[Any, Any], key: Any) -> None:
        if key in d:
            if self._journal is not None:
                self._journal.append((d, key, d[key]))
            del d[key]

    # --- applying events ------------------------------------------------------------------

    def apply(self, event: ev.LedgerEvent, position: int | None = None) -> None:
        """Fold one event into the state. ``position`` is its notification id, if known."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)
        self._put(self.versions, event.originator_id, event.originator_version)
        if position is not None:
            self._put(self.scalars, "position", position)

    def _on_config(self, e: ev.ConfigurationApplied) -> None:
        old_identifier = self.config.identifier
        self._put(self.scalars, "config", ActiveConfig.from_dict(e.config))
        if self.config.identifier != old_identifier:
            self._reindex_accounts()

    def _reindex_accounts(self) -> None:
        for old in list(self.accounts_by_key):
            self._pop(self.accounts_by_key, old)
        index: dict[str, set[str]] = {}
        for account in self.accounts.values():
            key = self.account_key(account)
            if key is not None and self.is_candidate(account):
                index.setdefault(key, set()).add(account.salesforce_id)
        for new, members in index.items():
            self._put(self.accounts_by_key, new, frozenset(members))

    def _on_company(self, e: ev.CompanyFact) -> None:
        prev = self.companies.get(e.intercom_id)
        if (
            prev is not None
            and prev.company_id
            and self.company_by_key.get(prev.company_id) == e.intercom_id
        ):
            self._pop(self.company_by_key, prev.company_id)
        observed = isinstance(e, ev.CompanyObserved)
        alive = prev is not None and not prev.deleted
        record = CompanyRecord(
            intercom_id=e.intercom_id,
            company_id=e.company_id or None,
            attributes=dict(e.attributes),
            updated_at=e.updated_at,
            expected=dict(prev.expected) if observed and prev is not None else {},
            baseline=(prev.baseline if alive and prev else None)
            if observed
            else dict(e.attributes),
            trigger_stamp=(prev.trigger_stamp if alive and prev else -1)
            if observed
            else e.updated_at,
            created=isinstance(e, ev.CompanyCreated) or bool(alive and prev and prev.created),
        )
        self._put(self.companies, e.intercom_id, record)
        if record.company_id:
            self._put(self.company_by_key, record.company_id, e.intercom_id)

    def _on_company_deleted(self, e: ev.CompanyDeleted) -> None:
        prev = self.companies.get(e.intercom_id)
        if prev is None:
            prev = CompanyRecord(e.intercom_id, e.company_id, {}, 0)
        if prev.company_id and self.company_by_key.get(prev.company_id) == e.intercom_id:
            self._pop(self.company_by_key, prev.company_id)
        self._put(self.companies, e.intercom_id, replace(prev, deleted=True, expected={}))

    def _on_account(self, e: ev.AccountFact) -> None:
        prev = self.accounts.get(e.salesforce_id)
        if prev is not None:
            self._unindex(prev)
        observed = isinstance(e, ev.AccountObserved)
        alive = prev is not None and not prev.deleted
        record = AccountRecord(
            salesforce_id=e.salesforce_id,
            fields=dict(e.fields),
            system_modstamp=e.system_modstamp,
            is_person_account=e.is_person_account,
            expected=dict(prev.expected) if observed and prev is not None else {},
            baseline=(prev.baseline if alive and prev else None) if observed else dict(e.fields),
            trigger_stamp=(prev.trigger_stamp if alive and prev else "")
            if observed
            else e.system_modstamp,
        )
        self._put(self.accounts, e.salesforce_id, record)
        self._index(record)
        if e.source == "poll":
            mark = self.scalars["poll_watermark"]
            if mark is None or e.system_modstamp > mark:
                self._put(self.scalars, "poll_watermark", e.system_modstamp)

    def _on_account_deleted(self, e: ev.AccountDeleted) -> None:
        prev = self.accounts.get(e.salesforce_id)
        if prev is None:
            prev = AccountRecord(e.salesforce_id, {}, e.deleted_at or "", False)
        self._unindex(prev)
        self._put(self.accounts, e.salesforce_id, replace(prev, deleted=True, expected={}))

    def _index(self, account: AccountRecord) -> None:
        key = self.account_key(account)
        if key is not None and self.is_candidate(account):
            ids = self.accounts_by_key.get(key, frozenset())
            self._put(self.accounts_by_key, key, ids | {account.salesforce_id})

    def _unindex(self, account: AccountRecord) -> None:
        key = self.account_key(account)
        if key is not None and account.salesforce_id in self.accounts_by_key.get(key, ()):
            ids = self.accounts_by_key[key] - {account.salesforce_id}
            if ids:
                self._put(self.accounts_by_key, key, ids)
            else:
                self._pop(self.accounts_by_key, key)

    def _on_notification(self, e: ev.NotificationReceived) -> None:
        self._put(self.inbox, e.notification_id, e.reported)
        self._put(self.notifications_seen, e.notification_id, True)

    def _on_notifications_taken(self, e: ev.NotificationsTaken) -> None:
        for notification_id in e.notification_ids:
            self._pop(self.inbox, notification_id)

    def _on_api_usage(self, e: ev.ApiUsageObserved) -> None:
        usage = RecordedUsage(e.used, e.limit, e.allocation, e.tier)
        self._put(self.scalars, "api_usage", {**self.scalars["api_usage"], e.system: usage})

    def _on_resync_needed(self, e: ev.ResyncNeeded) -> None:
        self._put(
            self.scalars, "resync_needed", {**self.scalars["resync_needed"], e.system: e.reason}
        )

    def _on_resync_completed(self, e: ev.ResyncCompleted) -> None:
        rest = {k: v for k, v in self.scalars["resync_needed"].items() if k != e.system}
        self._put(self.scalars, "resync_needed", rest)

    def _on_lookup(self, e: ev.LookupAnswered) -> None:
        self._put(self.looked_up, (e.system, e.field, e.key), tuple(e.found))

    def _on_mapped(self, e: ev.IdentityMapped) -> None:
        link = IdentityLink(
            e.company_id, e.intercom_id, e.salesforce_id, e.identifier_field, e.config_version
        )
        self._put(self.links, e.company_id, link)
        self._put(self.link_by_account, e.salesforce_id, e.company_id)

    def _on_unmapped(self, e: ev.IdentityUnmapped) -> None:
        link = self.links.get(e.company_id)
        if link is not None and link.salesforce_id == e.salesforce_id:
            self._pop(self.links, e.company_id)
        if self.link_by_account.get(e.salesforce_id) == e.company_id:
            self._pop(self.link_by_account, e.salesforce_id)

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
