"""One sync cycle: deliver both systems' changes to the ledger, then apply its planned writes.

The order is the ledger's contract (see :class:`ledger.application.LedgerApp`):

1. take the Intercom notifications waiting in the ledger's inbox (kept there by the webhook
   intake, :meth:`LedgerApp.receive`), and Salesforce's changes since the ledger's poll
   watermark;
2. ask each system about keys the ledger has never seen on it (``lookup_needs``) and ingest the
   answers ahead of the changes, in one transaction;
3. if Salesforce's delete log no longer reaches back to the last poll (``ResyncNeeded``), read
   every account the ledger knows as live again, so no deletion is missed;
4. the writer: read every destination record of a pending write (read before write, so "the
   destination already has a value" is judged on fresh data), ingest those snapshots, then send
   the still-pending writes, batched by the system (Salesforce: 200 records a request), and
   record every outcome, with the value just read as ``before``;
5. record Salesforce's API usage (``ApiUsageObserved``).

The Salesforce API budget (:mod:`ledger.budget`) gates the cycle: at 80 % of the allocation the
cycle does nothing but ask, with one call, whether usage has fallen; at 40 % a pending resync
waits (bulk work) while event sync goes on.

The two systems are reached through the ports :class:`~adapters.sync.ports.AccountSystem` and
:class:`~adapters.sync.ports.CompanySystem`; the real adapters and the in-memory fakes
(:mod:`adapters.sync.fakes`) satisfy them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from adapters.sync.ports import AccountSystem, CompanySystem, RecordResult, WriteRefused
from ledger import events as ev
from ledger.application import LedgerApp, Recorded
from ledger.budget import Tier, budget_tier, daily_budget
from ledger.config import COMPANY_ID
from ledger.decisions import settle
from ledger.facts import (
    AccountChange,
    ApiUsage,
    CompanyChange,
    Fact,
    WriteOutcome,
)
from ledger.state import PendingWrite
from ledger.values import is_empty, same_value
from ledger.writes import ApiCall, RejectedWrite

#: A write that failed this many times (retryably) is given up.
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Overwrite:
    """An applied write that replaced a different, non-empty destination value."""

    system: str
    record_id: str
    company_id: str
    field: str
    before: Any
    after: Any
    mapping: str
    config_version: int
    trigger: str


@dataclass
class CycleReport:
    """What one cycle (or any run of ledger events, see :meth:`tally`) did."""

    facts_ingested: int = 0
    lookups: int = 0
    records_read: int = 0
    #: the Salesforce API budget tier the cycle ended in (see :mod:`ledger.budget`)
    tier: Tier = "normal"
    #: why the cycle did nothing (empty when it ran)
    paused: str = ""
    #: companies read again because notifications of one second came out of order
    reread: int = 0
    #: accounts read again because deletions may have been missed
    resynced: int = 0
    #: a resync is needed but waits for the budget to fall below the bulk tier
    resync_deferred: bool = False
    mappings_made: int = 0
    mappings_ended: int = 0
    writes_planned: int = 0
    writes_applied: int = 0
    writes_failed: int = 0
    echoes: int = 0
    unmapped_by_reason: Counter[str] = field(default_factory=Counter)
    applied_by_system: Counter[str] = field(default_factory=Counter)
    skipped_by_rule: Counter[str] = field(default_factory=Counter)
    echoes_by_system: Counter[str] = field(default_factory=Counter)
    #: records recorded as never synced (person accounts, companies without company_id)
    ignored: set[tuple[str, str]] = field(default_factory=set)
    #: values a destination cannot take (the destination: the other system than the source's)
    rejected: list[RejectedWrite] = field(default_factory=list)
    failures: list[ev.WriteFailed] = field(default_factory=list)
    overwrites: list[Overwrite] = field(default_factory=list)

    @property
    def writes_skipped(self) -> int:
        return sum(self.skipped_by_rule.values())

    def tally(self, events: Iterable[ev.LedgerEvent]) -> CycleReport:
        """Count the decisions and outcomes among ``events`` into this report; returns it."""
        for e in events:
            if isinstance(e, ev.IdentityMapped):
                self.mappings_made += 1
            elif isinstance(e, ev.IdentityUnmapped):
                self.mappings_ended += 1
                self.unmapped_by_reason[e.reason] += 1
            elif isinstance(e, ev.SyncPlanned):
                self.writes_planned += len(e.planned)
                self.skipped_by_rule.update(s.rule for s in e.skips)
                self.rejected += e.rejections
            elif isinstance(e, ev.WriteSkipped):
                self.skipped_by_rule[e.rule] += 1
            elif isinstance(e, ev.WriteApplied):
                self.writes_applied += 1
                self.applied_by_system[e.system] += 1
                self._overwrite(e)
            elif isinstance(e, ev.WriteFailed):
                self.writes_failed += 1
                self.failures.append(e)
            elif isinstance(e, ev.RecordIgnored):
                self.ignored.add((e.system, e.record_id))
            elif isinstance(e, ev.EchoRecognised):
                self.echoes += 1
                self.echoes_by_system[e.system] += 1
        return self

    def _overwrite(self, e: ev.WriteApplied) -> None:
        w = e.planned_write
        if is_empty(e.before) or same_value(w.value, e.before, w.type):
            return
        self.overwrites.append(
            Overwrite(
                system=e.system,
                record_id=e.record_id,
                company_id=w.company_id,
                field=w.field,
                before=e.before,
                after=w.value,
                mapping=w.mapping.label,
                config_version=w.config_version,
                trigger=w.trigger,
            )
        )


def run_cycle(
    app: LedgerApp,
    salesforce: AccountSystem,
    intercom: CompanySystem,
    *,
    max_attempts: int = MAX_ATTEMPTS,
    poll_salesforce: bool = True,
) -> CycleReport:
    """Run one sync cycle (see the module docstring) and report what it recorded.

    ``poll_salesforce=False`` skips the Salesforce poll (a cycle woken by webhooks, between
    the poll interval's cycles): it decides the inbox and writes, spending no poll calls.
    """
    report = CycleReport()
    recorded: list[Recorded] = []
    app.catch_up()
    report.tier = _tier(app, salesforce)
    if report.tier == "pause_sync":
        # Salesforce counts calls over a rolling day: ask (one call) whether usage fell.
        recorded += _record_usage(app, salesforce.refresh_api_usage())
        report.tier = _tier(app, salesforce)
    if report.tier == "pause_sync":
        report.paused = _paused(app, salesforce)
        _tally(report, recorded)
        return report
    # A cycle that fails before its ingest leaves the notifications in the inbox for the next.
    inbox = app.inbox()
    changes: list[Fact] = [fact for _, fact in inbox]
    if poll_salesforce:
        changes += salesforce.changes_since(app.state.poll_watermark)
    changes, report.reread = _settle_same_second(app, changes, intercom)
    answers = _answer_lookups(app, changes, salesforce, intercom)
    if changes or answers:
        recorded.append(
            app.ingest(
                [*answers, *changes],
                summary="sync cycle: changes",
                taken=[notification_id for notification_id, _ in inbox],
            )
        )
    report.facts_ingested, report.lookups = len(changes), len(answers)
    if app.state.resync_needed(ev.SALESFORCE) is not None:
        if _tier(app, salesforce) == "normal":
            ids = app.live_record_ids(ev.SALESFORCE)
            recorded.append(app.resync(ev.SALESFORCE, salesforce.read(ids)))
            report.resynced = len(ids)
        else:
            report.resync_deferred = True
    report.tier = _tier(app, salesforce)
    if report.tier == "pause_sync":
        report.paused = _paused(app, salesforce)
    else:
        recorded += _write(app, salesforce, intercom, report, max_attempts)
    recorded += _record_usage(app, salesforce.api_usage())
    report.tier = _tier(app, salesforce)
    _tally(report, recorded)
    return report


def _tally(report: CycleReport, recorded: Iterable[Recorded]) -> None:
    for r in recorded:
        report.tally(r.events)


def _tier(app: LedgerApp, salesforce: AccountSystem) -> Tier:
    """The budget tier from the usage Salesforce last reported to this process, else from the
    ledger's last record of it (a restarted service keeps pausing)."""
    usage = salesforce.api_usage()
    if usage is not None:
        return budget_tier(usage.used, usage.limit, usage.allocation)
    known = app.state.api_usage(ev.SALESFORCE)
    return "normal" if known is None else known.tier


def _record_usage(app: LedgerApp, usage: ApiUsage | None) -> list[Recorded]:
    if usage is None:
        return []
    return [app.ingest([usage], summary="API usage")]


def _paused(app: LedgerApp, salesforce: AccountSystem) -> str:
    known = salesforce.api_usage() or app.state.api_usage(ev.SALESFORCE)
    used = None if known is None else known.used
    budget = None if known is None else daily_budget(known.limit, known.allocation)
    return (
        f"event sync paused: Salesforce API usage {used} of {budget} calls allowed today is "
        "at or above 80 %; it resumes when usage falls"
    )


def _settle_same_second(
    app: LedgerApp, changes: list[Fact], intercom: CompanySystem
) -> tuple[list[Fact], int]:
    """Read again each company whose notifications cannot be ordered (two changes within one
    of Intercom's whole-second stamps, delivered out of order) and decide them on what the
    read shows now; see :func:`ledger.decisions.companies_in_doubt`. Returns the changes and
    how many companies were read."""
    doubt = app.companies_in_doubt(changes)
    if not doubt:
        return changes, 0
    return settle(changes, intercom.read(doubt)), len(doubt)


def _answer_lookups(
    app: LedgerApp, facts: Sequence[Fact], salesforce: AccountSystem, intercom: CompanySystem
) -> list[Fact]:
    """Ask each system about the keys the ledger needs, as Intercom's own app queries
    Salesforce when a company changes: the answers are ingested first, so every trigger in the
    batch is decided knowing what each system holds now.

    One call is saved: Intercom is not asked about a key a company change in ``facts``
    carries, because companies are decided before the Salesforce poll's accounts, so an account
    trigger already knows that company. Salesforce is asked even when the poll carries an
    account with the key: the company's trigger comes first and must find that account.
    """
    needs = app.lookup_needs(facts)
    in_batch_companies = {f.company_id for f in facts if isinstance(f, CompanyChange)}
    sf_keys = tuple(needs.salesforce_keys)
    ic_keys = tuple(k for k in needs.intercom_keys if k not in in_batch_companies)
    answers: list[Fact] = []
    if sf_keys:
        found = salesforce.lookup(needs.salesforce_field, sf_keys)
        answers.append(app.lookup_answer(ev.SALESFORCE, needs.salesforce_field, sf_keys, found))
    if ic_keys:
        companies = intercom.lookup(ic_keys)
        answers.append(app.lookup_answer(ev.INTERCOM, COMPANY_ID, ic_keys, companies))
    return answers


def _write(
    app: LedgerApp,
    salesforce: AccountSystem,
    intercom: CompanySystem,
    report: CycleReport,
    max_attempts: int,
) -> list[Recorded]:
    recorded: list[Recorded] = []
    exhausted = [p.write_id for p in app.pending_writes() if p.attempts >= max_attempts]
    if exhausted:
        detail = f"failed {max_attempts} times; not sent again"
        recorded.append(app.give_up(exhausted, "retries_exhausted", detail))
    pending = app.pending_writes()
    if not pending:
        return recorded
    targets: dict[str, list[str]] = {ev.SALESFORCE: [], ev.INTERCOM: []}
    for p in pending:
        if p.record_id not in targets[p.system]:
            targets[p.system].append(p.record_id)
    snapshots: list[Fact] = []
    if targets[ev.SALESFORCE]:
        snapshots += salesforce.read(targets[ev.SALESFORCE])
    if targets[ev.INTERCOM]:
        snapshots += intercom.read(targets[ev.INTERCOM])
    report.records_read = len(snapshots)
    recorded.append(app.ingest(snapshots, summary="sync cycle: read before write"))
    current = _values_read(snapshots)

    by_system: dict[str, dict[str, list[PendingWrite]]] = {ev.SALESFORCE: {}, ev.INTERCOM: {}}
    for p in app.pending_writes():
        by_system[p.system].setdefault(p.record_id, []).append(p)
    outcomes: list[WriteOutcome] = []
    for system, batches in by_system.items():
        if batches:
            target: AccountSystem | CompanySystem = (
                salesforce if system == ev.SALESFORCE else intercom
            )
            outcomes += _send(target, system, batches, current, report)
    if outcomes:
        recorded.append(app.record_outcomes(outcomes))
    return recorded


def _send(
    target: AccountSystem | CompanySystem,
    system: str,
    batches: Mapping[str, list[PendingWrite]],
    current: Mapping[tuple[str, str], Mapping[str, Any]],
    report: CycleReport,
) -> list[WriteOutcome]:
    """Send every record's pending writes (the system batches them); when the system names a
    record's refused fields, record those as failed and send that record's others again."""
    outcomes: list[WriteOutcome] = []
    remaining = {record_id: list(writes) for record_id, writes in batches.items()}
    while remaining:
        updates = [(rid, {p.field: p.value for p in ws}) for rid, ws in remaining.items()]
        try:
            results: Sequence[RecordResult] = target.write(updates)
        except WriteRefused as refusal:
            failed = RecordResult("", False, refusal.message, refusal.code, (), refusal.retryable)
            results = [replace(failed, record_id=rid) for rid, _ in updates]
        again: dict[str, list[PendingWrite]] = {}
        for (record_id, values), result in zip(updates, results, strict=True):
            writes = remaining[record_id]
            call = ApiCall(system, "update", record_id, tuple(sorted(values)), result.api_call)
            if result.ok:
                before = current.get((system, record_id), {})
                outcomes += [
                    WriteOutcome(p.write_id, ok=True, before=before.get(p.field), api_call=call)
                    for p in writes
                ]
                continue
            refused = [p for p in writes if p.field in result.fields] or writes
            outcomes += [
                WriteOutcome(
                    p.write_id,
                    ok=False,
                    error=result.message,
                    code=result.code,
                    retryable=result.retryable,
                    api_call=call,
                )
                for p in refused
            ]
            if rest := [p for p in writes if p not in refused]:
                again[record_id] = rest
        remaining = again
    return outcomes


def _values_read(snapshots: Iterable[Fact]) -> dict[tuple[str, str], Mapping[str, Any]]:
    values: dict[tuple[str, str], Mapping[str, Any]] = {}
    for s in snapshots:
        if isinstance(s, AccountChange):
            values[(ev.SALESFORCE, s.salesforce_id)] = s.fields
        elif isinstance(s, CompanyChange):
            values[(ev.INTERCOM, s.intercom_id)] = s.attributes
    return values
