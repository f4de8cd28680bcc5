"""Replays into a sandbox org and backfills: each run appends to a stream of its own."""

from __future__ import annotations

from typing import Any

from ledger.config import ActiveConfig
from ledger.events.base import LedgerEvent
from ledger.replay_batches import RecordAnswer, ReplayWrite

# --- replays into a sandbox org (one stream per run, see :mod:`ledger.replay`) ---------------


class ReplayStarted(LedgerEvent):
    """A replay of recorded history into a sandbox org began, its plan fixed.

    ``window_from``/``window_until`` are the ISO bounds asked for (``None``: open);
    ``until_position`` is the last ledger position read; ``config`` the configuration
    (ActiveConfig dict) the history was re-derived under, ``config_source`` where it came from;
    ``arguments`` identifies the request, so a restart with the same arguments resumes the run;
    ``summary`` counts the plan (records, writes, skips by rule, mappings gained and lost).
    """

    run_id: str
    requested_by: str
    target_org_id: str
    target_instance_url: str
    window_from: str | None
    window_until: str | None
    until_position: int
    config: dict[str, Any]
    config_source: str
    dry_run: bool
    arguments: str
    batches: int
    summary: dict[str, Any]

    @property
    def active_config(self) -> ActiveConfig:
        """The configuration ``config`` holds."""
        return ActiveConfig.from_dict(self.config)


class ReplayBatchPlanned(LedgerEvent):
    """One batch (at most 200 target records) of a replay's writes, recorded before it is sent.

    ``writes``: one stored :class:`~ledger.replay_batches.ReplayWrite` per field; read them as
    :attr:`replay_writes`.
    """

    run_id: str
    batch: int
    writes: list[dict[str, Any]]

    @property
    def replay_writes(self) -> list[ReplayWrite]:
        return [ReplayWrite.from_stored(d) for d in self.writes]


class ReplayBatchApplied(LedgerEvent):
    """What the target org answered for one batch: ``results``, one stored
    :class:`~ledger.replay_batches.RecordAnswer` per record sent (read them as :attr:`answers`);
    ``already`` lists records found already holding the planned values on resume (not sent
    again)."""

    run_id: str
    batch: int
    results: list[dict[str, Any]]
    already: list[str]
    api_calls: int

    @property
    def answers(self) -> list[RecordAnswer]:
        return [RecordAnswer.from_stored(d) for d in self.results]


class ReplayPaused(LedgerEvent):
    """A replay stopped before its end (API budget tier, an error); it can be resumed."""

    run_id: str
    reason: str


class ReplayFinished(LedgerEvent):
    """A replay ended: ``outcome`` is ``completed``, ``completed with failures`` or ``dry run``."""

    run_id: str
    outcome: str
    applied: int
    failed: int
    detail: str


# --- backfill (one stream per run, see :mod:`ledger.replay_backfill`) -----------------------


class BackfillStarted(LedgerEvent):
    """A backfill began: every account and company is read, mapped and synced."""

    run_id: str
    requested_by: str


class BackfillRead(LedgerEvent):
    """Every account and company was read (and recorded as observed) for a backfill."""

    run_id: str
    accounts: int
    companies: int


class BackfillKeysDecided(LedgerEvent):
    """The backfill decided the identifier values ``keys`` (sorted; the last is ``through``):
    mappings made or kept, and every mapped attribute planned under the rules."""

    run_id: str
    keys: list[str]
    through: str


class BackfillFinished(LedgerEvent):
    """A backfill ended (``outcome``: ``completed`` or ``completed with failures``)."""

    run_id: str
    outcome: str
    detail: str
