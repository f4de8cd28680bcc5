"""Decisions: pure functions of the ledger's state, one fact, and the configuration in force.

A :class:`Decider` turns each fact into events. Every event it emits is applied to the state at
once (inside the state's journalled transaction), so later decisions in the same batch see
earlier ones, and the caller stores the events or rolls the state back. Nothing here performs
I/O or reads a clock: the timestamp is given.

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

Where several live business accounts share a key, the most recently updated one (greatest
``SystemModstamp``, ties by smallest Id) holds the mapping; a switch is recorded as
"superseded by a more recently updated duplicate".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from ledger import events as ev
from ledger import ids
from ledger.budget import budget_tier, daily_budget
from ledger.config import ActiveConfig, Direction, ResolvedMapping
from ledger.facts import (
    AccountChange,
    AccountRemoval,
    ApiUsage,
    CompanyChange,
    CompanyRemoval,
    DeletionsMissed,
    LookupAnswer,
    WriteOutcome,
    fact_to_dict,
)
from ledger.state import AccountRecord, CompanyRecord, IdentityLink, LedgerState, PendingWrite
from ledger.values import Rejected, convert, is_empty, key_of, same_value
from ledger.writes import AttributeDecision, PlannedWrite, RejectedWrite, SkippedWrite

E = TypeVar("E", bound=ev.LedgerEvent)

#: Salesforce fields that change on every save and say nothing about the account's data.
SALESFORCE_SYSTEM_FIELDS = frozenset(
    {
        "Id",
        "attributes",
        "IsDeleted",
        "SystemModstamp",
        "LastModifiedDate",
        "LastModifiedById",
        "LastViewedDate",
        "LastReferencedDate",
        "LastActivityDate",
    }
)
#: Intercom attributes that change by themselves (activity counters, timestamps).
INTERCOM_VOLATILE_ATTRIBUTES = frozenset(
    {"updated_at", "last_request_at", "session_count", "user_count", "last_seen", "id", "type"}
)


def _differs(a: Any, b: Any) -> bool:
    if is_empty(a) and is_empty(b):
        return False
    return bool(a != b)


def changed_keys(
    before: dict[str, Any] | None, after: dict[str, Any], ignore: frozenset[str]
) -> list[str]:
    """Keys whose value differs between two snapshots (all non-empty keys if none before)."""
    if before is None:
        return sorted(k for k, v in after.items() if k not in ignore and not is_empty(v))
    keys = (set(before) | set(after)) - ignore
    return sorted(k for k in keys if _differs(before.get(k), after.get(k)))


class Decider:
    """Takes the decisions for one ledger transaction; ``events`` holds what it emitted."""

    def __init__(self, state: LedgerState, now: datetime) -> None:
        self.state = state
        self.now = now
        self.events: list[ev.LedgerEvent] = []

    # --- emitting ------------------------------------------------------------------------

    def stamp(self, stream: UUID) -> ev.Stamp:
        """Where and when the next event of ``stream`` goes: build it on this, then
        :meth:`emit` it (``self.emit(ev.NotSynced(**self.stamp(stream), ...))``)."""
        return {
            "originator_id": stream,
            "originator_version": self.state.versions.get(stream, 0) + 1,
            "timestamp": self.now,
        }

    def emit(self, event: E) -> E:
        """Apply ``event`` (built on :meth:`stamp`) to the state and keep it."""
        self.state.apply(event)
        self.events.append(event)
        return event

    # --- configuration -------------------------------------------------------------------

    def configure(self, config: ActiveConfig) -> ev.ConfigurationApplied:
        """Put ``config`` in force; a new identifier field unmatches every mapping."""
        previous = self.state.config
        fact = self.emit(
            ev.ConfigurationApplied(
                **self.stamp(ids.CONFIG_STREAM),
                version=config.version,
                config=config.to_dict(),
                previous_identifier_field=previous.identifier_field,
            )
        )
        if config.identifier != previous.identifier:
            for link in sorted(self.state.links.values(), key=lambda lk: lk.company_id):
                self.unmap_pair(link, "identifier field changed", fact.ref)
        self._rejudge(self.state.pending_writes(), fact.ref)
        return fact

    # --- Intercom ------------------------------------------------------------------------

    def company_change(self, change: CompanyChange) -> None:
        """Record an Intercom company change and decide what follows from it."""
        st = self.state
        prev = st.companies.get(change.intercom_id)
        attrs = dict(change.attributes)
        kind = change.kind
        before: dict[str, Any] | None = None
        if prev is not None:
            if prev.deleted and change.source == "webhook":
                return  # a late notification about a company Intercom already deleted
            if not prev.deleted:
                if change.updated_at < prev.updated_at:
                    return  # older than what we know: out-of-order delivery
                found = _before(
                    change.kind == "snapshot",
                    change.updated_at,
                    attrs,
                    (prev.updated_at, prev.attributes),
                    (prev.trigger_stamp, prev.baseline),
                    same_identity=(change.company_id or None) == prev.company_id,
                )
                if change.source == READ_AGAIN:
                    # A read standing for notifications the ledger could not place (see
                    # companies_in_doubt): compared with the last trigger, every attribute
                    # changed if none; a first company.created triggers even when it repeats.
                    if prev.created and kind == "created":
                        kind = "updated"
                    if isinstance(found, _Repeat) and kind != "created":
                        return
                    found = None if prev.baseline is None else dict(prev.baseline)
                elif isinstance(found, _Reread):
                    kind, found = "snapshot", dict(prev.attributes)  # recorded as read
                elif isinstance(found, _Repeat):
                    return  # the same notification again
                before = found
        changed = changed_keys(before, attrs, INTERCOM_VOLATILE_ATTRIBUTES)
        cls: type[ev.CompanyFact] = {
            "created": ev.CompanyCreated,
            "updated": ev.CompanyUpdated,
            "snapshot": ev.CompanyObserved,
        }[kind]
        fact = self.emit(
            cls(
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
            and _is_echo(prev.expected, attrs, changed)
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
        key = change.company_id
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
        only = None if kind == "created" else set(changed)
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
        fields = dict(change.fields)
        snapshot = change.kind == "snapshot"
        before: dict[str, Any] | None = None
        if prev is not None and not prev.deleted:
            if change.system_modstamp < prev.system_modstamp:
                return  # older than what we know (overlapping poll windows)
            found = _before(
                snapshot,
                change.system_modstamp,
                fields,
                (prev.system_modstamp, prev.fields),
                (prev.trigger_stamp, prev.baseline),
                same_identity=change.is_person_account == prev.is_person_account,
            )
            if isinstance(found, _Reread):
                snapshot, found = True, dict(prev.fields)  # recorded as read: no trigger
            elif isinstance(found, _Repeat):
                return  # seen already
            before = found
        ident = st.config.identifier
        old_key = None if before is None else key_of(before.get(ident.name), ident.type)
        new_key = key_of(fields.get(ident.name), ident.type)
        changed = changed_keys(before, fields, SALESFORCE_SYSTEM_FIELDS)
        stream = ids.account_stream(sid)
        fact: ev.AccountFact
        if not snapshot and before is not None and old_key != new_key:
            fact = ev.AccountIdentifierChanged(
                **self.stamp(stream),
                salesforce_id=sid,
                fields=fields,
                system_modstamp=change.system_modstamp,
                is_person_account=change.is_person_account,
                changed=changed,
                source=change.source,
                identifier_field=ident.name,
                old_value=old_key,
                new_value=new_key,
            )
        else:
            cls: type[ev.AccountFact] = (
                ev.AccountObserved
                if snapshot
                else ev.AccountCreated
                if before is None
                else ev.AccountUpdated
            )
            fact = cls(
                **self.stamp(stream),
                salesforce_id=sid,
                fields=fields,
                system_modstamp=change.system_modstamp,
                is_person_account=change.is_person_account,
                changed=changed,
                source=change.source,
            )
        self.emit(fact)
        cause = fact.ref
        self._rejudge_record(ev.SALESFORCE, sid, cause)
        linked_key = st.link_by_account.get(sid)
        if change.is_person_account:
            self.emit(
                ev.RecordIgnored(
                    **self.stamp(stream),
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
            and _is_echo(prev.expected, fields, changed)
        ):
            self.emit(
                ev.EchoRecognised(
                    **self.stamp(stream),
                    system=ev.SALESFORCE,
                    record_id=sid,
                    fields=changed,
                    cause=cause,
                )
            )
            return
        trigger = {
            ev.AccountCreated: "account_created",
            ev.AccountUpdated: "account_updated",
            ev.AccountIdentifierChanged: "account_identifier_changed",
        }[type(fact)]
        if linked_key is not None and linked_key != new_key:
            self.unmap_pair(st.links[linked_key], "key changed", cause)
            self._reevaluate(linked_key, cause, take_over=True)
        elif old_key is not None and old_key != new_key:
            self._reevaluate(old_key, cause, take_over=False)
        if new_key is None:
            self._not_synced(
                ev.SALESFORCE,
                sid,
                f"the account has no value in the identifier field {ident.name}",
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

    # --- lookups and outcomes ------------------------------------------------------------

    def lookup_answer(self, answer: LookupAnswer) -> None:
        """Record which records carry each key asked about, and each record found."""
        for record in answer.records:
            if isinstance(record, AccountChange):
                self.account_change(record)
            else:
                self.company_change(record)
        for key in sorted(set(answer.keys)):
            found = sorted(
                r.salesforce_id if isinstance(r, AccountChange) else r.intercom_id
                for r in answer.records
                if _record_key(r, answer.field, self.state) == key
            )
            if self.state.looked_up.get((answer.system, answer.field, key)) == tuple(found):
                continue  # the same answer again
            self.emit(
                ev.LookupAnswered(
                    **self.stamp(ids.lookup_stream(answer.system, answer.field, key)),
                    system=answer.system,
                    field=answer.field,
                    key=key,
                    found=found,
                )
            )

    def write_outcome(self, outcome: WriteOutcome) -> None:
        """Record what happened to a write the writer sent."""
        pw = self.state.pending.get(outcome.write_id)
        if pw is None:
            return  # already closed: a repeated outcome changes nothing
        stream = ids.record_stream(pw.system, pw.record_id)
        if outcome.ok:
            self.emit(
                ev.WriteApplied(
                    **self.stamp(stream),
                    system=pw.system,
                    record_id=pw.record_id,
                    write=pw.write.stored(),
                    before=outcome.before,
                    api_call={} if outcome.api_call is None else outcome.api_call.stored(),
                )
            )
        else:
            self.emit(
                ev.WriteFailed(
                    **self.stamp(stream),
                    system=pw.system,
                    record_id=pw.record_id,
                    write=pw.write.stored(),
                    error=outcome.error,
                    code=outcome.code,
                    retryable=outcome.retryable,
                    attempt=pw.attempts + 1,
                )
            )

    # --- the webhook inbox -------------------------------------------------------------------

    def receive(self, notification_id: str, fact: CompanyChange | CompanyRemoval) -> bool:
        """Keep a webhook's fact in the inbox, unless its id was received before."""
        if notification_id in self.state.notifications_seen:
            return False
        self.emit(
            ev.NotificationReceived(
                **self.stamp(ids.INBOX_STREAM),
                notification_id=notification_id,
                fact=fact_to_dict(fact),
            )
        )
        return True

    def take(self, notification_ids: Iterable[str]) -> None:
        """Close inbox notifications whose facts this transaction decides on."""
        taken = [n for n in dict.fromkeys(notification_ids) if n in self.state.inbox]
        if taken:
            self.emit(ev.NotificationsTaken(**self.stamp(ids.INBOX_STREAM), notification_ids=taken))

    # --- the systems -----------------------------------------------------------------------

    def api_usage(self, usage: ApiUsage) -> None:
        """Record a system's API usage and the budget tier it means, when it moved by 1 % of
        the budget or more, fell (a new day), or changed the tier or the limits; so a quiet
        sync does not grow the ledger, while the usage curve keeps a 1 % resolution."""
        tier = budget_tier(usage.used, usage.limit, usage.allocation)
        last = self.state.api_usage(usage.system)
        if last is not None and (last.limit, last.allocation, last.tier) == (
            usage.limit,
            usage.allocation,
            tier,
        ):
            step = max(1, daily_budget(usage.limit, usage.allocation) // 100)
            if 0 <= usage.used - last.used < step:
                return
        self.emit(
            ev.ApiUsageObserved(
                **self.stamp(ids.system_stream(usage.system)),
                system=usage.system,
                used=usage.used,
                limit=usage.limit,
                allocation=usage.allocation,
                tier=tier,
            )
        )

    def deletions_missed(self, fact: DeletionsMissed) -> None:
        """Note that every known record of the system must be read again."""
        if self.state.resync_needed(fact.system) is None:
            self.emit(
                ev.ResyncNeeded(
                    **self.stamp(ids.system_stream(fact.system)),
                    system=fact.system,
                    reason=fact.reason,
                )
            )

    def resync_completed(self, system: str, records_read: int, removed: int) -> None:
        """Close a resync: the records of ``system`` were read again (and ingested before)."""
        self.emit(
            ev.ResyncCompleted(
                **self.stamp(ids.system_stream(system)),
                system=system,
                records_read=records_read,
                removed=removed,
            )
        )

    def give_up(self, write_id: str, rule: str, detail: str) -> None:
        """Close a pending write without sending it (e.g. retries exhausted)."""
        pw = self.state.pending.get(write_id)
        if pw is not None:
            self._skip(pw, rule, detail, cause="")

    # --- identity ------------------------------------------------------------------------

    def map_pair(
        self, key: str, intercom_id: str, salesforce_id: str, trigger: str, cause: str
    ) -> IdentityLink:
        """Record the mapping ``key``: company ``intercom_id`` ↔ account ``salesforce_id``."""
        st = self.state
        self.emit(
            ev.IdentityMapped(
                **self.stamp(ids.identity_stream(key)),
                company_id=key,
                intercom_id=intercom_id,
                salesforce_id=salesforce_id,
                identifier_field=st.config.identifier_field,
                config_version=st.config.version,
                trigger=trigger,
                cause=cause,
            )
        )
        return st.links[key]

    def unmap_pair(self, link: IdentityLink, reason: str, cause: str) -> None:
        """End the mapping ``link`` and close the pending writes it no longer allows."""
        self.emit(
            ev.IdentityUnmapped(
                **self.stamp(ids.identity_stream(link.company_id)),
                company_id=link.company_id,
                intercom_id=link.intercom_id,
                salesforce_id=link.salesforce_id,
                identifier_field=link.identifier_field,
                reason=reason,
                cause=cause,
            )
        )
        self._rejudge_record(ev.SALESFORCE, link.salesforce_id, cause)
        self._rejudge_record(ev.INTERCOM, link.intercom_id, cause)

    def _match_account(self, sid: str, key: str, trigger: str, cause: str) -> None:
        st = self.state
        winner = st.candidates(key)[0]
        if winner.salesforce_id != sid:
            self._not_synced(
                ev.SALESFORCE,
                sid,
                f"account {winner.salesforce_id} also has {st.config.identifier_field} = "
                f"{key!r} and was updated more recently; it holds the mapping",
                key=key,
                cause=cause,
            )
            return
        company = st.live_company(key)
        if company is None:
            self._not_synced(
                ev.SALESFORCE,
                sid,
                f"no Intercom company has company_id {key!r} yet; the account waits for one",
                key=key,
                cause=cause,
            )
            return
        link = st.links.get(key)
        if link is not None and link.salesforce_id != sid:
            self.unmap_pair(link, "superseded by a more recently updated duplicate", cause)
            link = None
        if link is not None and link.intercom_id != company.intercom_id:
            self.unmap_pair(link, "company replaced", cause)
            link = None
        if link is None:
            link = self.map_pair(key, company.intercom_id, sid, trigger, cause)
        self.plan_sync(Direction.SALESFORCE_TO_INTERCOM, link, None, trigger, cause)

    def _reevaluate(self, key: str, cause: str, *, take_over: bool) -> None:
        """Make the best live candidate hold ``key``'s mapping.

        With ``take_over`` an unmapped key is mapped to the best remaining duplicate (after the
        holder left the key); without it only an existing mapping may switch holder.
        """
        st = self.state
        winner = next(iter(st.candidates(key)), None)
        company = st.live_company(key)
        link = st.links.get(key)
        if link is not None:
            if winner is None or company is None or winner.salesforce_id == link.salesforce_id:
                return
            self.unmap_pair(link, "superseded by a more recently updated duplicate", cause)
            trigger = "duplicate_superseded"
        elif take_over and winner is not None and company is not None:
            trigger = "duplicate_took_over"
        else:
            return
        assert winner is not None and company is not None
        new_link = self.map_pair(key, company.intercom_id, winner.salesforce_id, trigger, cause)
        self.plan_sync(Direction.SALESFORCE_TO_INTERCOM, new_link, None, trigger, cause)

    # --- attribute writes ----------------------------------------------------------------

    def plan_sync(
        self,
        direction: Direction,
        link: IdentityLink,
        only: set[str] | None,
        trigger: str,
        cause: str,
    ) -> None:
        """Plan the writes of ``direction`` for the mapped pair ``link`` under the rules:
        every mapped attribute, or only those whose source field is in ``only``. A newer plan
        supersedes a write to the same field still pending."""
        st = self.state
        account = st.accounts[link.salesforce_id]
        company = st.companies[link.intercom_id]
        if direction is Direction.INTERCOM_TO_SALESFORCE:
            src_system, src_id, src_values = ev.INTERCOM, company.intercom_id, company.attributes
            dst_system, dst_id, dst_values = ev.SALESFORCE, account.salesforce_id, account.fields
        else:
            src_system, src_id, src_values = ev.SALESFORCE, account.salesforce_id, account.fields
            dst_system, dst_id, dst_values = ev.INTERCOM, company.intercom_id, company.attributes
        planned: list[PlannedWrite] = []
        skipped: list[SkippedWrite] = []
        rejected: list[RejectedWrite] = []
        for rm in st.config.mappings:
            m = rm.mapping
            if m.direction is not direction or (only is not None and m.source not in only):
                continue
            source_value = src_values.get(m.source)
            before = dst_values.get(m.destination)
            decision = AttributeDecision(
                field=m.destination,
                type=_destination_type(rm),
                source_system=src_system,
                source_record_id=src_id,
                source_field=m.source,
                source_value=source_value,
                before=before,
                mapping=m,
                skip_if_source_empty=m.skip_if_source_empty,
                skip_if_destination_has_value=m.skip_if_destination_has_value,
                config_version=st.config.version,
                company_id=link.company_id,
                trigger=trigger,
                cause=cause,
            )
            old = st.pending_by_target.get((dst_system, dst_id, m.destination))
            if old is not None:
                self._skip(
                    st.pending[old],
                    "superseded",
                    "a newer change of the source decided this field again",
                    cause,
                )
            if m.skip_if_source_empty and is_empty(source_value):
                skipped.append(decision.skipped("source_empty", None))
                continue
            conversion = convert(source_value, rm.salesforce, rm.intercom, direction)
            if isinstance(conversion, Rejected):
                rejected.append(decision.rejected(conversion.reason))
                continue
            value = conversion.value
            if same_value(value, before, decision.type):
                skipped.append(decision.skipped("already_equal", value))
            elif m.skip_if_destination_has_value and not is_empty(before):
                skipped.append(decision.skipped("destination_has_value", value))
            else:
                write_id = ids.write_id(cause, dst_system, dst_id, m.destination)
                planned.append(decision.planned(write_id, value))
        if planned or skipped or rejected:
            self.emit(
                ev.SyncPlanned(
                    **self.stamp(ids.record_stream(dst_system, dst_id)),
                    system=dst_system,
                    record_id=dst_id,
                    company_id=link.company_id,
                    trigger=trigger,
                    cause=cause,
                    config_version=st.config.version,
                    planned=[w.stored() for w in planned],
                    skipped=[w.stored() for w in skipped],
                    rejected=[w.stored() for w in rejected],
                )
            )

    def _not_synced(
        self, system: str, record_id: str, reason: str, *, key: str | None, cause: str
    ) -> None:
        """Record why a change could not sync (no counterpart yet, lost a tie, no key)."""
        self.emit(
            ev.NotSynced(
                **self.stamp(ids.record_stream(system, record_id)),
                system=system,
                record_id=record_id,
                reason=reason,
                key=key,
                cause=cause,
            )
        )

    def _skip(self, pw: PendingWrite, rule: str, detail: str, cause: str) -> None:
        self.emit(
            ev.WriteSkipped(
                **self.stamp(ids.record_stream(pw.system, pw.record_id)),
                system=pw.system,
                record_id=pw.record_id,
                write=pw.write.stored(),
                rule=rule,
                detail=detail,
                cause=cause,
            )
        )

    def _rejudge_record(self, system: str, record_id: str, cause: str) -> None:
        """Close pending writes to or from one record that the state no longer allows."""
        self._rejudge(self.state.pending_involving(system, record_id), cause)

    def _rejudge(self, writes: list[PendingWrite], cause: str) -> None:
        for pw in writes:
            if pw.write_id not in self.state.pending:
                continue
            verdict = self._verdict(pw)
            if verdict is not None:
                self._skip(pw, verdict[0], verdict[1], cause)

    def _verdict(self, pw: PendingWrite) -> tuple[str, str] | None:
        st = self.state
        w = pw.write
        link = st.links.get(w.company_id)
        ids_now = None if link is None else {link.salesforce_id, link.intercom_id}
        if ids_now is None or {pw.record_id, w.source_record_id} != ids_now:
            return "no_mapping", "the mapping between the two records no longer exists"
        if not any(rm.mapping == w.mapping for rm in st.config.mappings):
            return "configuration_changed", "the attribute mapping is no longer configured"
        dst = _values_of(st, pw.system, pw.record_id)
        before = dst.get(pw.field)
        if same_value(pw.value, before, w.type):
            return "already_equal", "the destination already holds the value"
        if w.skip_if_destination_has_value and not is_empty(before):
            return "destination_has_value", f"the destination now has a value ({before!r})"
        return None

    # --- batches ---------------------------------------------------------------------------

    def ingest(self, facts: Iterable[object]) -> None:
        """Decide a batch of facts in order."""
        for fact in facts:
            if isinstance(fact, LookupAnswer):
                self.lookup_answer(fact)
            elif isinstance(fact, CompanyChange):
                self.company_change(fact)
            elif isinstance(fact, CompanyRemoval):
                self.company_removal(fact)
            elif isinstance(fact, AccountChange):
                self.account_change(fact)
            elif isinstance(fact, AccountRemoval):
                self.account_removal(fact)
            elif isinstance(fact, WriteOutcome):
                self.write_outcome(fact)
            elif isinstance(fact, ApiUsage):
                self.api_usage(fact)
            elif isinstance(fact, DeletionsMissed):
                self.deletions_missed(fact)
            else:
                raise TypeError(f"not a ledger fact: {fact!r}")


class _Repeat:
    """Marks a fact that repeats what the ledger already holds."""


S = TypeVar("S", int, str)


def _before(
    is_read: bool,
    stamp: S,
    values: dict[str, Any],
    latest: tuple[S, Mapping[str, Any]],
    last_change: tuple[S, Mapping[str, Any] | None],
    *,
    same_identity: bool,
) -> dict[str, Any] | _Repeat | None:
    """The state a new fact is compared with, or :class:`_Repeat` if it says nothing new.

    A read is compared with the latest state known. A change (webhook, poll) is compared with
    the state of the last change that triggered: reads taken since then (a lookup, the read
    before a write) may already show a user's edit, and that edit must still trigger when its
    change arrives, even at a later stamp that also carries our own write. Only a record known
    through reads alone is compared with the latest read; one with no state known has no
    "before" (``None``).

    At an unchanged stamp, fields seen for the first time (the configuration now reads more
    fields) or no longer read are no change: such a fact is a :class:`_Reread` when it agrees
    on every field both know.
    """
    if is_read or stamp > latest[0]:
        if stamp == latest[0] and same_identity:
            repeat = _repeats(latest[1], values)
            if repeat is not None:
                return repeat
        if not is_read and last_change[1] is not None:
            return dict(last_change[1])
        return dict(latest[1])
    change_stamp, change_values = last_change
    if change_values is None:
        return None
    if stamp == change_stamp and same_identity:
        repeat = _repeats(change_values, values)
        if (
            isinstance(repeat, _Reread)
            and stamp == latest[0]
            and type(_repeats(latest[1], values)) is _Repeat
        ):
            return _Repeat()  # that re-read is recorded already
        if repeat is not None:
            return repeat
    return dict(change_values)


class _Reread(_Repeat):
    """Marks a fact that repeats what the ledger holds, with fields it did not read before."""


def _repeats(known: Mapping[str, Any], values: dict[str, Any]) -> _Repeat | None:
    if not _agree(known, values):
        return None
    return _Reread() if values.keys() - known.keys() else _Repeat()


#: The ``source`` of a notification whose values were read again before it was decided.
READ_AGAIN = "webhook+read"


def companies_in_doubt(st: LedgerState, facts: Iterable[object]) -> list[str]:
    """Intercom companies whose notifications in ``facts`` the ledger cannot place in order.

    Intercom delivers webhooks out of order when it retries one, and stamps ``updated_at`` in
    whole seconds. A notification is placed when it is newer than anything known of the company,
    or when it shows what the ledger knows at its stamp: the last trigger's state (a repeat) or
    the latest read, our own writes aside (a change the read saw first; it triggers now). One
    older than the last trigger is dropped (what it changed was decided then), except a first
    ``company.created``, whose trigger syncs every attribute. Any other is in doubt:

    * same ``updated_at`` as a known state, other values: two changes within one second,
      and the stamp cannot say which is current;
    * between the last trigger and a later read: a change no trigger decided yet, whose values
      the read has already replaced;
    * from a company other than the one mapped for its ``company_id``: the mapped one may be
      gone, or this one (a late notification of a company since deleted and replaced).

    A company in doubt is read again and its notifications are decided on what the read shows
    (:func:`settle`). Notifications earlier in ``facts`` count as known.
    """
    known: dict[str, _Known] = {}
    doubt: list[str] = []
    for fact in facts:
        if isinstance(fact, CompanyRemoval):
            known[fact.intercom_id] = _Known(deleted=True)
            continue
        if not isinstance(fact, CompanyChange) or fact.kind == "snapshot":
            continue
        iid, stamp, values = fact.intercom_id, fact.updated_at, fact.attributes
        if iid in doubt:
            continue
        k = known.get(iid)
        if k is None:
            k = known[iid] = _Known.of(st.companies.get(iid))
        if k.deleted:
            continue  # the decider drops notifications of a deleted company
        link = st.links.get(fact.company_id) if fact.company_id else None
        if link is not None and link.intercom_id != iid:
            doubt.append(iid)
        elif k.latest is None or stamp > k.latest[0]:
            k.latest = k.trigger = (stamp, values)
            k.created |= fact.kind == "created"
        elif stamp < k.trigger[0] and (fact.kind != "created" or k.created):
            continue  # older than the last trigger: dropped
        elif (
            stamp == k.trigger[0]
            and k.trigger[1] is not None
            and _agree(k.trigger[1], values, INTERCOM_VOLATILE_ATTRIBUTES)
        ):
            continue  # a repeat
        elif stamp == k.latest[0] and _agree(
            k.latest[1], values, INTERCOM_VOLATILE_ATTRIBUTES | k.expected.keys()
        ):
            k.trigger = (stamp, values)  # the read saw it first
        else:
            doubt.append(iid)
    return doubt


@dataclass
class _Known:
    """What :func:`companies_in_doubt` knows of one company while it walks the facts."""

    latest: tuple[int, Mapping[str, Any]] | None = None
    trigger: tuple[int, Mapping[str, Any] | None] = (-1, None)
    expected: Mapping[str, Any] = field(default_factory=dict)
    created: bool = False
    deleted: bool = False

    @classmethod
    def of(cls, record: CompanyRecord | None) -> _Known:
        if record is None:
            return cls()
        return cls(
            latest=(record.updated_at, record.attributes),
            trigger=(record.trigger_stamp, record.baseline),
            expected=record.expected,
            created=record.created,
            deleted=record.deleted,
        )


def _agree(
    known: Mapping[str, Any], values: Mapping[str, Any], ignore: Set[str] = frozenset()
) -> bool:
    """Whether two states of a record agree on every field both hold, ``ignore`` aside."""
    common = (known.keys() & values.keys()) - ignore
    return not any(_differs(known[k], values[k]) for k in common)


F = TypeVar("F")


def settle(
    facts: Iterable[F], fresh: Iterable[CompanyChange | CompanyRemoval]
) -> list[F | CompanyChange | CompanyRemoval]:
    """``facts`` with every notification of a company read again (``fresh``, see
    :func:`companies_in_doubt`) carrying what the read shows: the company's values and stamp
    now (source :data:`READ_AGAIN`, the notification's own trigger kept), or its removal.

    Notifications that become the same fact are kept once (a ``company.created`` and a
    ``company.updated`` stay two: the created trigger syncs every attribute).
    """
    now = {f.intercom_id: f for f in fresh}
    settled: list[F | CompanyChange | CompanyRemoval] = []
    decided: list[CompanyChange | CompanyRemoval] = []
    for fact in facts:
        read = now.get(fact.intercom_id) if isinstance(fact, CompanyChange) else None
        if (
            read is None
            or not isinstance(fact, CompanyChange)
            or fact.kind == "snapshot"
            or (isinstance(read, CompanyChange) and read.updated_at < fact.updated_at)
        ):
            settled.append(fact)  # (a read older than the notification does not replace it)
            continue
        if isinstance(read, CompanyRemoval):
            replaced: CompanyChange | CompanyRemoval = replace(
                read, company_id=read.company_id or fact.company_id
            )
        else:
            replaced = replace(
                fact,
                company_id=read.company_id,
                attributes=read.attributes,
                updated_at=read.updated_at,
                source=READ_AGAIN,
            )
        if replaced not in decided:  # several notifications, one read: decided once
            decided.append(replaced)
            settled.append(replaced)
    return settled


_NONE: frozenset[str] = frozenset()


def _destination_type(rm: ResolvedMapping) -> str:
    if rm.direction is Direction.INTERCOM_TO_SALESFORCE:
        return rm.salesforce.type
    return rm.intercom.data_type


def _values_of(st: LedgerState, system: str, record_id: str) -> dict[str, Any]:
    if system == ev.SALESFORCE:
        acc: AccountRecord | None = st.accounts.get(record_id)
        return dict(acc.fields) if acc is not None else {}
    com: CompanyRecord | None = st.companies.get(record_id)
    return dict(com.attributes) if com is not None else {}


def _is_echo(expected: Any, values: dict[str, Any], changed: list[str]) -> bool:
    """A change is an echo when every changed field now shows a value we wrote or are writing."""
    if not expected:
        return False
    matched = {f for f, v in expected.items() if not _differs(values.get(f), v)}
    return bool(matched) and set(changed) <= matched


def _record_key(record: AccountChange | CompanyChange, field: str, st: LedgerState) -> str | None:
    if isinstance(record, CompanyChange):
        return record.company_id
    ident = st.config.identifier
    return key_of(record.fields.get(field), ident.type if ident.name == field else "string")
