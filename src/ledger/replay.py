"""Replay: re-derive recorded history under a configuration, then plan a sandbox org's writes.

A replay never re-implements the rules. It folds the ledger's recorded *facts* (what the
systems told us: ``Company*``/``Account*`` events) in their recorded order through the real
decision code, in a *shadow* ledger kept in memory with the chosen configuration in force from
the start (the configuration in force now, or a proposed one):

* facts recorded before the window's start only build the shadow's state (records, baselines,
  mappings); facts inside ``[start, until)`` are replayed and their decisions collected; later
  facts are not read;
* every attribute decision the shadow takes (``SyncPlanned``: planned writes, and values held
  back only because the destination *production* record already had one) gives the value that
  destination field should take; the latest decision per (destination, key, field) wins;
* the rules that depend on the destination's value (``already_equal``,
  ``destination_has_value``) are judged again on the *target's* current values, because the
  target is not production.

Intercom → Salesforce values become writes to the target org's accounts, matched by the
identifier value (record Ids differ between orgs; several target accounts with one value: the
most recently updated one, ties by smallest Id, as everywhere). Salesforce → Intercom values are
reported, not written: there is no Intercom sandbox, and writing production Intercom from a
replay would defeat its purpose.

Production's own configuration changes are not replayed (the chosen configuration is in force
throughout), and neither are production's writes: the shadow does not send anything, it only
decides. Everything here is pure (the shadow ledger lives in memory).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from ledger import events as ev
from ledger.application import LedgerApp
from ledger.config import ActiveConfig, Direction
from ledger.facts import (
    AccountChange,
    AccountRemoval,
    CompanyChange,
    CompanyKind,
    CompanyRemoval,
    Fact,
)
from ledger.replay_batches import ReplayWrite
from ledger.values import is_empty, key_of, same_value
from ledger.writes import AttributeDecision, PlannedWrite, SkippedWrite

#: Records per target write request (sObject Collections maximum).
BATCH_RECORDS = 200
#: Facts per shadow ledger transaction (decisions do not depend on it).
CHUNK = 500

WRITE = "write"
SKIPPED = "skipped"
REJECTED = "rejected"
REPORTED = "reported only"
UNMATCHED = "unmatched"


def recorded_fact(event: ev.LedgerEvent) -> Fact | None:
    """The fact a recorded ``Company*``/``Account*`` event holds, as the systems told it;
    ``None`` for decisions and everything else."""
    if isinstance(event, ev.CompanyFact):
        kind: CompanyKind = "snapshot"
        if isinstance(event, ev.CompanyCreated):
            kind = "created"
        elif isinstance(event, ev.CompanyUpdated):
            kind = "updated"
        return CompanyChange(
            event.intercom_id,
            event.company_id,
            dict(event.attributes),
            event.updated_at,
            kind,
            event.source,
        )
    if isinstance(event, ev.CompanyDeleted):
        return CompanyRemoval(event.intercom_id, event.company_id, event.source)
    if isinstance(event, ev.AccountFact):
        return AccountChange(
            event.salesforce_id,
            dict(event.fields),
            event.system_modstamp,
            event.is_person_account,
            "snapshot" if isinstance(event, ev.AccountObserved) else "change",
            event.source,
        )
    if isinstance(event, ev.AccountDeleted):
        return AccountRemoval(event.salesforce_id, event.deleted_at, event.source)
    return None


@dataclass(frozen=True)
class Decided:
    """A value the re-derivation decided one destination field should take."""

    system: str
    key: str
    field: str
    value: Any
    type: str
    mapping: str
    skip_if_destination_has_value: bool
    #: the destination record in production and its value there, as the shadow knew it
    record_id: str
    before: Any


@dataclass
class Derivation:
    """What re-deriving the window decided (see the module docstring)."""

    config: ActiveConfig
    facts_before: int = 0
    facts_replayed: int = 0
    decided: dict[tuple[str, str, str], Decided] = field(default_factory=dict)
    #: (system, key, field) → rule, for fields whose every decision was held back by a
    #: source-side rule (``source_empty``) or a value the destination cannot take
    held_back: dict[tuple[str, str, str], tuple[str, str, Any]] = field(default_factory=dict)
    #: key → (intercom_id, salesforce_id) at the window's end
    links: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Account fields the configuration needs that no recorded observation carries
    unobserved: list[str] = field(default_factory=list)


def rederive(
    events: Iterable[ev.LedgerEvent],
    config: ActiveConfig,
    *,
    start: datetime | None,
    until: datetime | None,
    now: datetime,
) -> Derivation:
    """Fold the facts among ``events`` (in ledger order) through a shadow ledger under
    ``config``; see the module docstring for the window."""
    shadow = LedgerApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: now)
    shadow.put_config(config)
    result = Derivation(config)
    seen_fields: set[str] = set()
    before: list[Fact] = []
    inside: list[Fact] = []
    for event in events:
        fact = recorded_fact(event)
        if fact is None:
            continue
        if until is not None and event.timestamp >= until:
            break
        if isinstance(event, ev.AccountFact):
            seen_fields.update(event.fields)
        if start is not None and event.timestamp < start:
            before.append(fact)
        else:
            inside.append(fact)
    for i in range(0, len(before), CHUNK):
        shadow.ingest(before[i : i + CHUNK], summary="replay: state before the window")
    for i in range(0, len(inside), CHUNK):
        recorded = shadow.ingest(inside[i : i + CHUNK], summary="replay: the window")
        for e in recorded.events:
            if isinstance(e, ev.SyncPlanned):
                _collect(result, e)
    result.facts_before, result.facts_replayed = len(before), len(inside)
    for link in shadow.mappings():
        result.links[link.company_id] = (link.intercom_id, link.salesforce_id)
    needed = [config.identifier.name]
    needed += [
        rm.salesforce.name
        for rm in config.mappings
        if rm.direction is Direction.SALESFORCE_TO_INTERCOM
    ]
    result.unobserved = [f for f in dict.fromkeys(needed) if f not in seen_fields]
    shadow.close()
    return result


def _collect(result: Derivation, e: ev.SyncPlanned) -> None:
    skips = e.skips
    decided: list[PlannedWrite | SkippedWrite] = [*e.writes]
    decided += [s for s in skips if s.rule in ("already_equal", "destination_has_value")]
    for chosen in decided:
        at = (e.system, chosen.company_id, chosen.field)
        result.decided[at] = Decided(
            system=e.system,
            key=at[1],
            field=at[2],
            value=chosen.value,
            type=chosen.type,
            mapping=chosen.mapping.label,
            skip_if_destination_has_value=chosen.skip_if_destination_has_value,
            record_id=e.record_id,
            before=chosen.before,
        )
        result.held_back.pop(at, None)
    held: list[tuple[AttributeDecision, str]] = [
        *((s, "source_empty") for s in skips if s.rule == "source_empty"),
        *((r, f"rejected: {r.reason}") for r in e.rejections),
    ]
    for item, rule in held:
        at = (e.system, item.company_id, item.field)
        if at not in result.decided:
            result.held_back[at] = (rule, item.mapping.label, item.source_value)


@dataclass(frozen=True)
class PlanRow:
    """The fate of one decided value in the target: a write, or why not."""

    system: str
    key: str
    field: str
    mapping: str
    outcome: str
    rule: str
    record_id: str
    before: Any
    value: Any
    type: str = ""

    @property
    def is_overwrite(self) -> bool:
        """A write that replaces a different, non-empty value."""
        return (
            self.outcome == WRITE
            and not is_empty(self.before)
            and not same_value(self.value, self.before, self.type)
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MappingChange:
    """A mapping the replayed history makes (gained) or production holds and it does not
    (lost): identifier value ``key``, company ↔ account."""

    key: str
    intercom_id: str
    salesforce_id: str

    def to_dict(self) -> dict[str, str]:
        return {
            "key": self.key,
            "intercom_id": self.intercom_id,
            "salesforce_id": self.salesforce_id,
        }


@dataclass
class ReplayPlan:
    """Every decided value's fate in the target, plus what changed in the mappings."""

    rows: list[PlanRow] = field(default_factory=list)
    #: key → target account Ids sharing it (the first holds the match)
    ties: dict[str, list[str]] = field(default_factory=dict)
    gained: list[MappingChange] = field(default_factory=list)
    lost: list[MappingChange] = field(default_factory=list)
    unobserved: list[str] = field(default_factory=list)

    @property
    def writes(self) -> list[PlanRow]:
        return [r for r in self.rows if r.outcome == WRITE]

    @property
    def overwrites(self) -> list[PlanRow]:
        return [r for r in self.rows if r.is_overwrite]

    def records(self) -> list[str]:
        """Target account Ids with at least one write, in plan order."""
        return list(dict.fromkeys(r.record_id for r in self.writes))

    def batches(self, size: int = BATCH_RECORDS) -> list[list[ReplayWrite]]:
        """The writes, at most ``size`` target records a batch (a record's fields together)."""
        by_record: dict[str, list[ReplayWrite]] = {}
        for r in self.writes:
            by_record.setdefault(r.record_id, []).append(
                ReplayWrite(r.record_id, r.key, r.field, r.before, r.value, r.type, r.mapping)
            )
        records = list(by_record.values())
        return [
            [w for rec in records[i : i + size] for w in rec] for i in range(0, len(records), size)
        ]

    def counts(self) -> list[tuple[str, str, str, str, int]]:
        """``(system, field, outcome, rule, count)`` rows, sorted."""
        tally = Counter((r.system, r.field, r.outcome, r.rule) for r in self.rows)
        return sorted((*k, n) for k, n in tally.items())

    def summary(self) -> dict[str, Any]:
        """Totals, for the run's record and the report's head."""
        outcomes = Counter(r.outcome for r in self.rows)
        return {
            "records": len(self.records()),
            "writes": outcomes[WRITE],
            "skipped": outcomes[SKIPPED],
            "rejected": outcomes[REJECTED],
            "reported_only": outcomes[REPORTED],
            "unmatched": outcomes[UNMATCHED],
            "overwrites": len(self.overwrites),
            "mappings_gained": len(self.gained),
            "mappings_lost": len(self.lost),
            "ties": len(self.ties),
        }


def plan_target(
    derivation: Derivation,
    target: Sequence[AccountChange],
    production_links: Mapping[str, tuple[str, str]],
) -> ReplayPlan:
    """Judge every decided value against the target org's accounts ``target`` (read by the
    identifier values of the decided keys) and list the mappings gained and lost against
    production's mappings now (``key → (intercom_id, salesforce_id)``)."""
    ident = derivation.config.identifier
    by_key: dict[str, list[AccountChange]] = {}
    for account in target:
        key = key_of(account.fields.get(ident.name), ident.type)
        if key is not None and not account.is_person_account:
            by_key.setdefault(key, []).append(account)
    plan = ReplayPlan(unobserved=list(derivation.unobserved))
    best: dict[str, AccountChange] = {}
    for key, accounts in by_key.items():
        accounts.sort(key=lambda a: a.salesforce_id)
        accounts.sort(key=lambda a: a.system_modstamp, reverse=True)
        best[key] = accounts[0]
        if len(accounts) > 1:
            plan.ties[key] = [a.salesforce_id for a in accounts]
    for at in sorted(derivation.decided):
        plan.rows.append(_judge(derivation.decided[at], best.get(at[1])))
    for (system, key, name), (rule, label, value) in sorted(derivation.held_back.items()):
        outcome = REJECTED if rule.startswith("rejected") else SKIPPED
        plan.rows.append(PlanRow(system, key, name, label, outcome, rule, "", None, value))
    for key in sorted(set(production_links) | set(derivation.links)):
        now, then = production_links.get(key), derivation.links.get(key)
        if then is not None and then != now:
            plan.gained.append(MappingChange(key, *then))
        if now is not None and then != now:
            plan.lost.append(MappingChange(key, *now))
    return plan


def _judge(d: Decided, account: AccountChange | None) -> PlanRow:
    if d.system == ev.INTERCOM:
        return PlanRow(
            d.system, d.key, d.field, d.mapping, REPORTED, "no_intercom_sandbox",
            d.record_id, d.before, d.value, d.type,
        )  # fmt: skip
    if account is None:
        return PlanRow(
            d.system, d.key, d.field, d.mapping, UNMATCHED, "no_target_account",
            "", None, d.value, d.type,
        )  # fmt: skip
    before = account.fields.get(d.field)
    rule = ""
    if same_value(d.value, before, d.type):
        rule = "already_equal"
    elif d.skip_if_destination_has_value and not is_empty(before):
        rule = "destination_has_value"
    outcome = SKIPPED if rule else WRITE
    return PlanRow(
        d.system, d.key, d.field, d.mapping, outcome, rule,
        account.salesforce_id, before, d.value, d.type,
    )  # fmt: skip
