"""The ledger's state: a left fold of its events, kept in memory and rebuilt from the log.

:meth:`LedgerState.apply` is the only way state changes, so state built live and state rebuilt
from stored events are equal by construction (the property tests check it). Inside
:meth:`LedgerState.transaction` every change is journalled (:mod:`ledger.journal`), so a
decision whose events the store refused (another process got there first) is rolled back
without rebuilding anything. The records it holds are drawn in :mod:`ledger.records`; the
fold of planned writes and their outcomes is :mod:`ledger.pending`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any
from uuid import UUID

from ledger import events as ev
from ledger.config import INITIAL_CONFIG, ActiveConfig
from ledger.facts import CompanyChange, CompanyRemoval
from ledger.pending import PendingWrites
from ledger.records import (
    AccountRecord,
    CompanyRecord,
    IdentityLink,
    PendingWrite,
    RecordedUsage,
)
from ledger.values import key_of

__all__ = [
    "AccountRecord",
    "CompanyRecord",
    "IdentityLink",
    "LedgerState",
    "PendingWrite",
    "RecordedUsage",
]


class LedgerState(PendingWrites):
    """Everything decisions need, derived from the events applied so far."""

    def __init__(self) -> None:
        super().__init__()
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
