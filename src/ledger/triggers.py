"""Triggers: what a change or removal of a company or an account leads to.

The seed's trigger tables, as implemented here:

=============================  ==========================  ====================================
trigger                        mapping exists              no mapping yet
=============================  ==========================  ====================================
company updated (Intercom)     sync updated attributes     map; sync updated attributes
company created (Intercom)     (sync all)                  map; sync all mapped attributes
company deleted (Intercom)     unmap (company kept)        --
account updated (Salesforce)   sync all mapped attributes  map; sync all mapped attributes
key updated (Salesforce)       unmap; map anew; sync all   map; sync all mapped attributes
account created (Salesforce)   --                          map; sync all mapped attributes
account deleted (Salesforce)   unmap (account kept)        --
=============================  ==========================  ====================================

Every fact is recorded first (``Company*``/``Account*``); a read (``snapshot``) is a fact but
triggers nothing, a repeat or an out-of-date fact records nothing, and a change that only shows
our own write is recorded as an echo (:mod:`ledger.changes`).
"""

from __future__ import annotations

from typing import Any

from ledger import events as ev
from ledger import ids
from ledger.changes import (
    INTERCOM_VOLATILE_ATTRIBUTES,
    READ_AGAIN,
    SALESFORCE_SYSTEM_FIELDS,
    Repeat,
    Reread,
    changed_keys,
    compared_with,
    is_echo,
)
from ledger.config import Direction
from ledger.facts import AccountChange, AccountRemoval, CompanyChange, CompanyKind, CompanyRemoval
from ledger.identity import IdentityDecisions
from ledger.state import AccountRecord, CompanyRecord
from ledger.values import key_of

_COMPANY_FACTS: dict[CompanyKind, type[ev.CompanyFact]] = {
    "created": ev.CompanyCreated,
    "updated": ev.CompanyUpdated,
    "snapshot": ev.CompanyObserved,
}
_ACCOUNT_TRIGGERS: dict[type[ev.AccountFact], str] = {
    ev.AccountCreated: "account_created",
    ev.AccountUpdated: "account_updated",
    ev.AccountIdentifierChanged: "account_identifier_changed",
}


class TriggerDecisions(IdentityDecisions):
    """Records companies' and accounts' changes and removals, and decides what follows."""

    # --- Intercom ------------------------------------------------------------------------

    def company_change(self, change: CompanyChange) -> None:
        """Record an Intercom company change and decide what follows from it."""
        prev = self.state.companies.get(change.intercom_id)
        placed = _place_company(change, prev)
        if placed is None:
            return
        kind, before = placed
        attrs = dict(change.attributes)
        changed = changed_keys(before, attrs, INTERCOM_VOLATILE_ATTRIBUTES)
        fact = self.emit(
            _COMPANY_FACTS[kind](
                **self.stamp(ids.company_stream(change.intercom_id)),
                intercom_id=change.intercom_id,
                company_id=change.company_id or None,
                attributes=attrs,
                updated_at=change.updated_at,
                changed=changed,
                source=change.source,
            )
        )
        cause = fact.ref
        iid = change.intercom_id
        self._rejudge_record(ev.INTERCOM, iid, cause)
        if not change.company_id:
            self.emit(
                ev.RecordIgnored(
                    **self.stamp(fact.originator_id),
                    system=ev.INTERCOM,
                    record_id=iid,
                    reason="company has no company_id (created automatically during "
                    "qualification); such companies are never synced",
                    cause=cause,
                )
            )
            return
        if kind == "snapshot":
            return
        if (
            kind != "created"  # we update companies; creating one is a user's trigger
            and before is not None
            and prev is not None
            and is_echo(prev.expected, attrs, changed)
        ):
            self.emit(
                ev.EchoRecognised(
                    **self.stamp(fact.originator_id),
                    system=ev.INTERCOM,
                    record_id=iid,
                    fields=changed,
                    cause=cause,
                )
            )
            return
        only = None if kind == "created" else set(changed)
        self._sync_company(iid, change.company_id, kind, only, cause)

    def _sync_company(
        self, iid: str, key: str, kind: CompanyKind, only: set[str] | None, cause: str
    ) -> None:
        """Map the company that triggered (if it is not) and plan its attributes."""
        st = self.state
        trigger = "company_created" if kind == "created" else "company_updated"
        link = st.links.get(key)
        if link is not None and link.intercom_id != iid:
            self.unmap_pair(link, "company replaced", cause)
            link = None
        if link is None:
            winner = next(iter(st.candidates(key)), None)
            if winner is None:
                self._not_synced(
                    ev.INTERCOM,
                    iid,
                    f"no Salesforce account has {st.config.identifier_field} = {key!r} "
                    "yet; the company waits for one",
                    key=key,
                    cause=cause,
                )
                return
            link = self.map_pair(key, iid, winner.salesforce_id, trigger, cause)
        self.plan_sync(Direction.INTERCOM_TO_SALESFORCE, link, only, trigger, cause)

    def company_removal(self, removal: CompanyRemoval) -> None:
        """Record an Intercom company deletion: the mapping goes, the account stays."""
        st = self.state
        prev = st.companies.get(removal.intercom_id)
        if prev is not None and prev.deleted:
            return
        company_id = removal.company_id or (prev.company_id if prev else None)
        fact = self.emit(
            ev.CompanyDeleted(
                **self.stamp(ids.company_stream(removal.intercom_id)),
                intercom_id=removal.intercom_id,
                company_id=company_id,
                source=removal.source,
            )
        )
        if company_id:
            link = st.links.get(company_id)
            if link is not None and link.intercom_id == removal.intercom_id:
                self.unmap_pair(link, "company deleted", fact.ref)
        self._rejudge_record(ev.INTERCOM, removal.intercom_id, fact.ref)

    # --- Salesforce ----------------------------------------------------------------------

    def account_change(self, change: AccountChange) -> None:
        """Record a Salesforce account change and decide what follows from it."""
        st = self.state
        sid = change.salesforce_id
        prev = st.accounts.get(sid)
        placed = _place_account(change, prev)
        if placed is None:
            return
        snapshot, before = placed
        fields = dict(change.fields)
        ident = st.config.identifier
        old_key = None if before is None else key_of(before.get(ident.name), ident.type)
        new_key = key_of(fields.get(ident.name), ident.type)
        fact = self.emit(self._account_fact(change, snapshot, before, old_key, new_key))
        cause = fact.ref
        self._rejudge_record(ev.SALESFORCE, sid, cause)
        linked_key = st.link_by_account.get(sid)
        if change.is_person_account:
            self.emit(
                ev.RecordIgnored(
                    **self.stamp(fact.originator_id),
                    system=ev.SALESFORCE,
                    record_id=sid,
                    reason="person account: only business accounts are synced",
                    cause=cause,
                )
            )
            if linked_key is not None:
                self.unmap_pair(st.links[linked_key], "account is a person account", cause)
                self._reevaluate(linked_key, cause, take_over=True)
            return
        if snapshot:
            # A read can show that the holder left its key or that a duplicate now holds it;
            # it ends or switches mappings but creates none (that is for the triggers).
            if linked_key is not None and linked_key != new_key:
                self.unmap_pair(st.links[linked_key], "key changed", cause)
                self._reevaluate(linked_key, cause, take_over=True)
            for key in sorted({k for k in (old_key, new_key) if k is not None}):
                self._reevaluate(key, cause, take_over=False)
            return
        if (
            isinstance(fact, ev.AccountUpdated)
            and prev is not None
            and prev.baseline is not None  # known from reads only: its first poll triggers
            and is_echo(prev.expected, fields, fact.changed)
        ):
            self.emit(
                ev.EchoRecognised(
                    **self.stamp(fact.originator_id),
                    system=ev.SALESFORCE,
                    record_id=sid,
                    fields=fact.changed,
                    cause=cause,
                )
            )
            return
        trigger = _ACCOUNT_TRIGGERS[type(fact)]
        self._sync_account(sid, linked_key, old_key, new_key, trigger, cause)

    def _account_fact(
        self,
        change: AccountChange,
        snapshot: bool,
        before: dict[str, Any] | None,
        old_key: str | None,
        new_key: str | None,
    ) -> ev.AccountFact:
        """The event recording ``change``: read, created, updated, or its key changed."""
        stream = ids.account_stream(change.salesforce_id)
        fields = dict(change.fields)
        changed = changed_keys(before, fields, SALESFORCE_SYSTEM_FIELDS)
        if not snapshot and before is not None and old_key != new_key:
            return ev.AccountIdentifierChanged(
                **self.stamp(stream),
                salesforce_id=change.salesforce_id,
                fields=fields,
                system_modstamp=change.system_modstamp,
                is_person_account=change.is_person_account,
                changed=changed,
                source=change.source,
                identifier_field=self.state.config.identifier.name,
                old_value=old_key,
                new_value=new_key,
            )
        cls: type[ev.AccountFact] = (
            ev.AccountObserved
            if snapshot
            else ev.AccountCreated
            if before is None
            else ev.AccountUpdated
        )
        return cls(
            **self.stamp(stream),
            salesforce_id=change.salesforce_id,
            fields=fields,
            system_modstamp=change.system_modstamp,
            is_person_account=change.is_person_account,
            changed=changed,
            source=change.source,
        )

    def _sync_account(
        self,
        sid: str,
        linked_key: str | None,
        old_key: str | None,
        new_key: str | None,
        trigger: str,
        cause: str,
    ) -> None:
        """Follow the account to its key (ending the mapping of a key it left) and sync it."""
        st = self.state
        if linked_key is not None and linked_key != new_key:
            self.unmap_pair(st.links[linked_key], "key changed", cause)
            self._reevaluate(linked_key, cause, take_over=True)
        elif old_key is not None and old_key != new_key:
            self._reevaluate(old_key, cause, take_over=False)
        if new_key is None:
            self._not_synced(
                ev.SALESFORCE,
                sid,
                f"the account has no value in the identifier field {st.config.identifier.name}",
                key=None,
                cause=cause,
            )
            return
        self._match_account(sid, new_key, trigger, cause)

    def account_removal(self, removal: AccountRemoval) -> None:
        """Record a Salesforce account deletion: the mapping goes, the company stays."""
        st = self.state
        prev = st.accounts.get(removal.salesforce_id)
        if prev is not None and prev.deleted:
            return
        fact = self.emit(
            ev.AccountDeleted(
                **self.stamp(ids.account_stream(removal.salesforce_id)),
                salesforce_id=removal.salesforce_id,
                deleted_at=removal.deleted_at,
                source=removal.source,
            )
        )
        key = st.link_by_account.get(removal.salesforce_id)
        if key is not None:
            self.unmap_pair(st.links[key], "account deleted", fact.ref)
            self._reevaluate(key, fact.ref, take_over=True)
        self._rejudge_record(ev.SALESFORCE, removal.salesforce_id, fact.ref)


def _place_company(
    change: CompanyChange, prev: CompanyRecord | None
) -> tuple[CompanyKind, dict[str, Any] | None] | None:
    """The kind the change is recorded as and the state it is compared with; ``None`` when
    it records nothing (late, older than what is known, or a repeat)."""
    kind = change.kind
    if prev is None:
        return kind, None
    if prev.deleted:
        if change.source == "webhook":
            return None  # a late notification about a company Intercom already deleted
        return kind, None
    if change.updated_at < prev.updated_at:
        return None  # older than what we know: out-of-order delivery
    found = compared_with(
        change.kind == "snapshot",
        change.updated_at,
        dict(change.attributes),
        (prev.updated_at, prev.attributes),
        (prev.trigger_stamp, prev.baseline),
        same_identity=(change.company_id or None) == prev.company_id,
    )
    if change.source == READ_AGAIN:
        # A read standing for notifications the ledger could not place (see
        # companies_in_doubt): compared with the last trigger, every attribute changed if
        # none; a first company.created triggers even when it repeats.
        if prev.created and kind == "created":
            kind = "updated"
        if isinstance(found, Repeat) and kind != "created":
            return None
        return kind, None if prev.baseline is None else dict(prev.baseline)
    if isinstance(found, Reread):
        return "snapshot", dict(prev.attributes)  # recorded as read
    if isinstance(found, Repeat):
        return None  # the same notification again
    return kind, found


def _place_account(
    change: AccountChange, prev: AccountRecord | None
) -> tuple[bool, dict[str, Any] | None] | None:
    """Whether the change is recorded as a read, and the state it is compared with; ``None``
    when it records nothing (older than what is known, or seen already)."""
    snapshot = change.kind == "snapshot"
    if prev is None or prev.deleted:
        return snapshot, None
    if change.system_modstamp < prev.system_modstamp:
        return None  # older than what we know (overlapping poll windows)
    found = compared_with(
        snapshot,
        change.system_modstamp,
        dict(change.fields),
        (prev.system_modstamp, prev.fields),
        (prev.trigger_stamp, prev.baseline),
        same_identity=change.is_person_account == prev.is_person_account,
    )
    if isinstance(found, Reread):
        return True, dict(prev.fields)  # recorded as read: no trigger
    if isinstance(found, Repeat):
        return None  # seen already
    return snapshot, found
