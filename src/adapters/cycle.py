"""One sync cycle: deliver both systems' changes to the ledger, then apply its planned writes.

The order is the ledger's contract (see :class:`ledger.application.LedgerApp`):

1. take Intercom's queued notifications and Salesforce's changes since the ledger's poll
   watermark;
2. ask each system about keys the ledger has never seen on it (``lookup_needs``) and ingest the
   answers ahead of the changes, in one transaction;
3. the writer: read every destination record of a pending write (read before write, so "the
   destination already has a value" is judged on fresh data), ingest those snapshots, then send
   each record's still-pending writes in one call and record every outcome, with the value just
   read as ``before``.

The two systems are reached through the ports :class:`AccountSystem` and :class:`CompanySystem`;
the in-memory fakes (:mod:`adapters.fakes`) satisfy them and real adapters will.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ledger import events as ev
from ledger.application import LedgerApp, Recorded
from ledger.config import COMPANY_ID
from ledger.facts import (
    AccountChange,
    AccountRemoval,
    CompanyChange,
    CompanyRemoval,
    Fact,
    WriteOutcome,
)
from ledger.state import PendingWrite
from ledger.values import is_empty, key_of, same_value

#: A write that failed this many times (retryably) is given up.
MAX_ATTEMPTS = 5


class WriteRefused(Exception):
    """A system refused a write (or a user action) and said why.

    ``fields`` names the refused fields (empty: the whole call); ``retryable`` says whether the
    same call may succeed later (rate limit, outage) or never will (a refused value).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "refused",
        fields: Sequence[str] = (),
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.fields = tuple(fields)
        self.retryable = retryable


class AccountSystem(Protocol):
    """Salesforce Accounts, as the sync needs them."""

    def changes_since(self, watermark: str | None) -> Sequence[AccountChange | AccountRemoval]:
        """Accounts saved after ``watermark`` (a ``SystemModstamp``; all when ``None``), oldest
        first, then accounts deleted after it."""
        ...

    def lookup(self, field: str, keys: Sequence[str]) -> Sequence[AccountChange]:
        """Snapshots (``kind="snapshot"``, ``source="lookup"``) of every account whose
        ``field`` carries one of ``keys``."""
        ...

    def read(self, ids: Sequence[str]) -> Sequence[AccountChange | AccountRemoval]:
        """Snapshots (``source="read"``) of the accounts ``ids``; a removal for one gone."""
        ...

    def write(self, record_id: str, values: Mapping[str, Any]) -> None:
        """Set ``values`` on one account in one call; raise :class:`WriteRefused` if refused."""
        ...


class CompanySystem(Protocol):
    """Intercom Companies, as the sync needs them."""

    def drain_notifications(self) -> Sequence[CompanyChange | CompanyRemoval]:
        """Webhook notifications received since the last call, oldest first."""
        ...

    def requeue(self, facts: Sequence[CompanyChange | CompanyRemoval]) -> None:
        """Put drained notifications back, ahead of newer ones (the cycle could not record
        them)."""
        ...

    def lookup(self, keys: Sequence[str]) -> Sequence[CompanyChange]:
        """Snapshots (``source="lookup"``) of every company whose ``company_id`` is in ``keys``."""
        ...

    def read(self, ids: Sequence[str]) -> Sequence[CompanyChange | CompanyRemoval]:
        """Snapshots (``source="read"``) of the companies ``ids``; a removal for one gone."""
        ...

    def write(self, intercom_id: str, values: Mapping[str, Any]) -> None:
        """Set ``values`` (by full attribute name) on one company; raise :class:`WriteRefused`
        if refused."""
        ...


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
    rejected: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
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
                self.skipped_by_rule.update(str(s["rule"]) for s in e.skipped)
                self.rejected += [
                    {"system": e.system, "record_id": e.record_id, **r} for r in e.rejected
                ]
            elif isinstance(e, ev.WriteSkipped):
                self.skipped_by_rule[e.rule] += 1
            elif isinstance(e, ev.WriteApplied):
                self.writes_applied += 1
                self.applied_by_system[e.system] += 1
                self._overwrite(e)
            elif isinstance(e, ev.WriteFailed):
                self.writes_failed += 1
                self.failures.append(
                    {"system": e.system, "record_id": e.record_id,
                     "company_id": e.write["company_id"], "field": e.write["field"],
                     "value": e.write["value"], "error": e.error, "code": e.code,
                     "retryable": e.retryable}
                )  # fmt: skip
            elif isinstance(e, ev.RecordIgnored):
                self.ignored.add((e.system, e.record_id))
            elif isinstance(e, ev.EchoRecognised):
                self.echoes += 1
                self.echoes_by_system[e.system] += 1
        return self

    def _overwrite(self, e: ev.WriteApplied) -> None:
        w = e.write
        if is_empty(e.before) or same_value(w["value"], e.before, str(w["type"])):
            return
        m = w["mapping"]
        arrow = "←" if m["direction"] == "salesforce_to_intercom" else "→"
        self.overwrites.append(
            Overwrite(
                system=e.system,
                record_id=e.record_id,
                company_id=str(w["company_id"]),
                field=str(w["field"]),
                before=e.before,
                after=w["value"],
                mapping=f"{m['intercom']} {arrow} {m['salesforce']}",
                config_version=int(w["config_version"]),
                trigger=str(w["trigger"]),
            )
        )


def run_cycle(
    app: LedgerApp,
    salesforce: AccountSystem,
    intercom: CompanySystem,
    *,
    max_attempts: int = MAX_ATTEMPTS,
) -> CycleReport:
    """Run one sync cycle (see the module docstring) and report what it recorded."""
    report = CycleReport()
    recorded: list[Recorded] = []
    app.catch_up()
    notifications = list(intercom.drain_notifications())
    try:
        changes: list[Fact] = [
            *notifications,
            *salesforce.changes_since(app.state.poll_watermark),
        ]
        answers = _answer_lookups(app, changes, salesforce, intercom)
        if changes or answers:
            recorded.append(app.ingest([*answers, *changes], summary="sync cycle: changes"))
    except BaseException:
        # Nothing of this cycle was recorded: keep the notifications for the next one.
        intercom.requeue(notifications)
        raise
    report.facts_ingested, report.lookups = len(changes), len(answers)
    recorded += _write(app, salesforce, intercom, report, max_attempts)
    for r in recorded:
        report.tally(r.events)
    return report


def _answer_lookups(
    app: LedgerApp, facts: Sequence[Fact], salesforce: AccountSystem, intercom: CompanySystem
) -> list[Fact]:
    """Ask each system about the keys the ledger needs, except keys a change in ``facts``
    carries on that system: that change tells the ledger of the record itself, so the call
    would be spent for nothing. Nothing is missed by not asking: Intercom's ``company_id`` is
    unique, and every other account carrying the key was either polled before or is in this
    poll.
    """
    needs = app.lookup_needs(facts)
    ident = app.config.identifier
    in_batch_accounts = {
        key_of(f.fields.get(ident.name), ident.type) for f in facts if isinstance(f, AccountChange)
    }
    in_batch_companies = {f.company_id for f in facts if isinstance(f, CompanyChange)}
    sf_keys = tuple(k for k in needs.salesforce_keys if k not in in_batch_accounts)
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

    batches: dict[tuple[str, str], list[PendingWrite]] = {}
    for p in app.pending_writes():
        batches.setdefault((p.system, p.record_id), []).append(p)
    outcomes: list[WriteOutcome] = []
    for (system, record_id), writes in batches.items():
        target: AccountSystem | CompanySystem = salesforce if system == ev.SALESFORCE else intercom
        values = current.get((system, record_id), {})
        outcomes += _send(target, system, record_id, writes, values)
    if outcomes:
        recorded.append(app.record_outcomes(outcomes))
    return recorded


def _send(
    target: AccountSystem | CompanySystem,
    system: str,
    record_id: str,
    writes: list[PendingWrite],
    before: Mapping[str, Any],
) -> list[WriteOutcome]:
    """Send one record's writes in one call; when the system names refused fields, record those
    as failed and send the rest again."""
    outcomes: list[WriteOutcome] = []
    remaining = list(writes)
    while remaining:
        values = {p.field: p.value for p in remaining}
        call = {"system": system, "operation": "update", "record_id": record_id,
                "fields": sorted(values)}  # fmt: skip
        try:
            target.write(record_id, values)
        except WriteRefused as refusal:
            refused = [p for p in remaining if p.field in refusal.fields] or remaining
            outcomes += [
                WriteOutcome(
                    p.write_id,
                    ok=False,
                    error=refusal.message,
                    code=refusal.code,
                    retryable=refusal.retryable,
                    api_call=call,
                )
                for p in refused
            ]
            remaining = [p for p in remaining if p not in refused]
            continue
        outcomes += [
            WriteOutcome(p.write_id, ok=True, before=before.get(p.field), api_call=call)
            for p in remaining
        ]
        break
    return outcomes


def _values_read(snapshots: Iterable[Fact]) -> dict[tuple[str, str], Mapping[str, Any]]:
    values: dict[tuple[str, str], Mapping[str, Any]] = {}
    for s in snapshots:
        if isinstance(s, AccountChange):
            values[(ev.SALESFORCE, s.salesforce_id)] = s.fields
        elif isinstance(s, CompanyChange):
            values[(ev.INTERCOM, s.intercom_id)] = s.attributes
    return values
