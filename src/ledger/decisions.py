"""Decisions: pure functions of the ledger's state, one fact, and the configuration in force.

A :class:`Decider` turns each fact into events. Every event it emits is applied to the state at
once (inside the state's journalled transaction), so later decisions in the same batch see
earlier ones, and the caller stores the events or rolls the state back. Nothing here performs
I/O or reads a clock: the timestamp is given.

The decider is built in layers, one module each: :mod:`ledger.planning` (emitting events,
planning attribute writes under the rules), :mod:`ledger.identity` (mapping and unmapping
pairs), :mod:`ledger.triggers` (what each change or removal leads to; the seed's trigger
tables are drawn there); this module adds configuration, lookups, write outcomes, the webhook
inbox and the systems' usage, and takes a batch of facts in order. Comparing states is in
:mod:`ledger.changes`, settling webhooks delivered out of order in :mod:`ledger.settling`
(both re-exported here).
"""

from __future__ import annotations

from collections.abc import Iterable

from ledger import events as ev
from ledger import ids
from ledger.budget import budget_tier, daily_budget
from ledger.changes import (
    INTERCOM_VOLATILE_ATTRIBUTES,
    READ_AGAIN,
    SALESFORCE_SYSTEM_FIELDS,
    changed_keys,
)
from ledger.config import ActiveConfig
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
from ledger.settling import companies_in_doubt, settle
from ledger.state import LedgerState
from ledger.triggers import TriggerDecisions
from ledger.values import key_of

__all__ = [
    "INTERCOM_VOLATILE_ATTRIBUTES",
    "READ_AGAIN",
    "SALESFORCE_SYSTEM_FIELDS",
    "Decider",
    "changed_keys",
    "companies_in_doubt",
    "settle",
]


class Decider(TriggerDecisions):
    """Takes the decisions for one ledger transaction; ``events`` holds what it emitted."""

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


def _record_key(record: AccountChange | CompanyChange, field: str, st: LedgerState) -> str | None:
    if isinstance(record, CompanyChange):
        return record.company_id
    ident = st.config.identifier
    return key_of(record.fields.get(field), ident.type if ident.name == field else "string")
