"""Planning a replay: the ledger's recorded facts in the window re-derived under the chosen
configuration (:mod:`ledger.replay`), and each decided value judged against the target's
accounts carrying the decided identifier values (read in batched lookups)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from adapters.sync.ports import SandboxOrg
from adapters.sync.replay_request import ReplayError, ReplayRequest
from ledger import events as ev
from ledger.application import LedgerApp
from ledger.catalog import FieldCatalog, IntercomAttribute
from ledger.config import ActiveConfig, ConfigError, Direction, parse_config
from ledger.facts import AccountChange
from ledger.replay import ReplayPlan, plan_target, rederive
from ledger.validation import resolve_config

__all__ = ["Planned", "api_calls", "plan_replay"]


@dataclass
class Planned:
    """A plan and what it was derived from."""

    plan: ReplayPlan
    config: ActiveConfig
    until_position: int
    facts_replayed: int
    facts_before: int
    target_reads: int = 0
    warnings: list[str] = field(default_factory=list)


def plan_replay(
    app: LedgerApp,
    target: SandboxOrg,
    request: ReplayRequest,
    intercom_attributes: Sequence[IntercomAttribute],
    *,
    now: datetime | None = None,
) -> Planned:
    """Re-derive the window under the chosen configuration and judge it against the target."""
    app.catch_up()
    until_position = app.state.position
    config = _chosen_config(app, target, request, intercom_attributes)
    derivation = rederive(
        _upto(app, until_position),
        config,
        start=request.window_from,
        until=request.window_until,
        now=now or datetime.now(UTC),
    )
    ident = config.identifier.name
    to_salesforce = [
        rm.salesforce.name
        for rm in config.mappings
        if rm.direction is Direction.INTERCOM_TO_SALESFORCE
    ]
    target.fields = tuple(dict.fromkeys(["Name", ident, *to_salesforce]))
    target.identifier_field = ident
    keys = sorted({k for (system, k, _) in derivation.decided if system == ev.SALESFORCE})
    before = api_calls(target)
    found: Sequence[AccountChange] = target.lookup(ident, keys) if keys else []
    production = {m.company_id: (m.intercom_id, m.salesforce_id) for m in app.mappings()}
    planned = Planned(
        plan_target(derivation, found, production),
        config,
        until_position,
        derivation.facts_replayed,
        derivation.facts_before,
        target_reads=api_calls(target) - before,
    )
    if derivation.unobserved:
        planned.warnings.append(
            "no recorded observation carries "
            + ", ".join(derivation.unobserved)
            + ": the ledger never read it, so nothing can be derived from it (run `syncledger "
            "whatif identifier FIELD --refresh`, or put a configuration reading it in force "
            "first)"
        )
    return planned


def _upto(app: LedgerApp, position: int) -> Iterator[ev.LedgerEvent]:
    for pos, event in app.read_events():
        if pos > position:
            return
        yield event


def api_calls(target: SandboxOrg) -> int:
    """The API calls the target org reported as used so far today (0 before any answer)."""
    usage = target.api_usage()
    return usage.used if usage is not None else 0


def _chosen_config(
    app: LedgerApp,
    target: SandboxOrg,
    request: ReplayRequest,
    intercom_attributes: Sequence[IntercomAttribute],
) -> ActiveConfig:
    if request.config_text is None:
        if app.config.version == 0:
            raise ReplayError(
                "no configuration is in force in the ledger; give a proposed one with --config"
            )
        return app.config
    try:
        proposed = parse_config(request.config_text)
        catalog = FieldCatalog.of(target.describe(), intercom_attributes)
        return resolve_config(proposed, catalog, version=app.config.version + 1)
    except ConfigError as exc:
        problems = "; ".join(str(p) for p in exc.problems)
        raise ReplayError(f"{request.config_source}: configuration refused: {problems}") from None
