"""A replay run as its stream records it: the plan, each batch's outcome, the end.

:func:`run_status` folds the events of one run's stream (:func:`replay_stream`) into a
:class:`RunStatus`, which says which batches are still to send (so a resumed run sends nothing
twice) and what the run did (for ``GET /replays/{id}`` and the CLI).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from ledger import events as ev
from ledger import ids
from ledger.replay_batches import ReplayWrite


def replay_stream(run_id: str) -> UUID:
    """The stream of one replay run."""
    return ids.stream_id("replay", run_id)


@dataclass
class RunStatus:
    """One replay run: its start, planned batches, outcomes so far, and end (if any)."""

    started: ev.ReplayStarted
    planned: dict[int, list[ReplayWrite]] = field(default_factory=dict)
    #: batch → the latest outcome recorded for it
    applied: dict[int, ev.ReplayBatchApplied] = field(default_factory=dict)
    #: record ids the target accepted, or found already holding the values, per batch
    done_records: dict[int, set[str]] = field(default_factory=dict)
    pauses: list[str] = field(default_factory=list)
    #: whether the latest event of the run is a pause
    paused: bool = False
    finished: ev.ReplayFinished | None = None

    @property
    def run_id(self) -> str:
        return self.started.run_id

    def is_done(self, batch: int) -> bool:
        """Whether ``batch`` needs nothing more: an outcome recorded and no write in it failed
        in a way that may succeed later."""
        outcome = self.applied.get(batch)
        return outcome is not None and not any(a.may_succeed_later for a in outcome.answers)

    def remaining(self) -> list[int]:
        return [b for b in sorted(self.planned) if not self.is_done(b)]

    @property
    def state(self) -> str:
        if self.finished is not None:
            return self.finished.outcome
        return "paused" if self.paused else "running"

    def counts(self) -> dict[str, int]:
        writes = sum(len(w) for w in self.planned.values())
        records = sum(len({w.record_id for w in ws}) for ws in self.planned.values())
        failed = sum(1 for a in self.applied.values() for r in a.answers if not r.ok)
        return {
            "batches": len(self.planned),
            "batches_done": sum(1 for b in self.planned if self.is_done(b)),
            "records": records,
            "writes": writes,
            "records_applied": sum(len(v) for v in self.done_records.values()),
            "records_failed": failed,
            "api_calls": sum(a.api_calls for a in self.applied.values()),
        }

    def to_dict(self) -> dict[str, Any]:
        s = self.started
        config = s.active_config
        return {
            "id": s.run_id,
            "state": self.state,
            "requested_by": s.requested_by,
            "started_at": s.timestamp.isoformat(),
            "finished_at": self.finished.timestamp.isoformat() if self.finished else None,
            "target_org_id": s.target_org_id,
            "target_instance_url": s.target_instance_url,
            "window": {"from": s.window_from, "until": s.window_until},
            "until_position": s.until_position,
            "config_source": s.config_source,
            "config_version": config.version,
            "identifier_field": config.identifier_field,
            "dry_run": s.dry_run,
            "plan": s.summary,
            "progress": self.counts(),
            "pauses": list(self.pauses),
            "outcome": None
            if self.finished is None
            else {
                "outcome": self.finished.outcome,
                "applied": self.finished.applied,
                "failed": self.finished.failed,
                "detail": self.finished.detail,
            },
        }


def run_status(events: Iterable[ev.LedgerEvent]) -> RunStatus | None:
    """Fold a run's stream; ``None`` when it holds no :class:`~ledger.events.ReplayStarted`."""
    status: RunStatus | None = None
    for e in events:
        if isinstance(e, ev.ReplayStarted):
            status = RunStatus(e)
            continue
        if status is None:
            continue
        status.paused = isinstance(e, ev.ReplayPaused)
        if isinstance(e, ev.ReplayBatchPlanned):
            status.planned[e.batch] = e.replay_writes
        elif isinstance(e, ev.ReplayBatchApplied):
            status.applied[e.batch] = e
            done = status.done_records.setdefault(e.batch, set())
            done.update(r.record_id for r in e.answers if r.ok)
            done.update(e.already)
        elif isinstance(e, ev.ReplayPaused):
            status.pauses.append(e.reason)
        elif isinstance(e, ev.ReplayFinished):
            status.finished = e
    return status
