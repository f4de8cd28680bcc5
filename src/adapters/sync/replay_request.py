"""What a replay is asked for, the org it targets, and the guard that confirms that org.

:func:`check_target` runs before anything else: ``SELECT Id, IsSandbox FROM Organization`` in
the target (:meth:`~adapters.sync.ports.SandboxOrg.organization`). A target that is not a
sandbox, whose org Id is not on ``SYNCLEDGER_REPLAY_ALLOWED_ORGS``, or that cannot be asked, is
refused (:class:`ReplayRefused`, naming the failed check). The replay's errors live here too
(:mod:`adapters.sync.replay` exports them).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from adapters.sync.ports import ORGANIZATION_QUERY, SandboxOrg
from ledger.errors import SyncLedgerError

__all__ = [
    "ReplayError",
    "ReplayRefused",
    "ReplayRequest",
    "ReplayStopped",
    "TargetOrg",
    "check_target",
]


class ReplayError(SyncLedgerError):
    """A replay cannot go on; the message says why and what to do."""


class ReplayRefused(ReplayError):
    """The guard refused the target org (or could not confirm it): nothing was done."""


class ReplayStopped(ReplayError):
    """The run stopped before its end (budget tier, an error) and can be resumed."""

    def __init__(self, message: str, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


@dataclass(frozen=True)
class TargetOrg:
    """The org the guard confirmed: a sandbox on the allowlist."""

    org_id: str
    instance_url: str


@dataclass(frozen=True)
class ReplayRequest:
    """Everything a replay is asked for (CLI options, or the ``POST /replays`` body)."""

    target_instance_url: str
    target_session_id: str | None = None
    target_username: str | None = None
    target_password: str | None = None
    target_security_token: str = ""
    window_from: datetime | None = None
    window_until: datetime | None = None
    #: a proposed configuration (TOML text) and where it came from; ``None``: the one in force
    config_text: str | None = None
    config_source: str = "current"
    dry_run: bool = False
    requested_by: str = "unknown"
    target_daily_allocation: int | None = None

    def arguments(self) -> str:
        """What identifies the request: a restart with the same arguments resumes its run."""
        parts = {
            "target": self.target_instance_url.rstrip("/"),
            "from": self.window_from.isoformat() if self.window_from else None,
            "until": self.window_until.isoformat() if self.window_until else None,
            "config": hashlib.sha256(self.config_text.encode()).hexdigest()
            if self.config_text is not None
            else "current",
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


# --- the guard ---------------------------------------------------------------------------------


def check_target(target: SandboxOrg, allowed_orgs: Sequence[str], instance_url: str) -> TargetOrg:
    """The guard: refuse unless the target is a sandbox whose org Id is on the allowlist.

    Any failure to ask (auth, network, an unexpected answer) refuses too: fail closed.
    """
    soql = ORGANIZATION_QUERY
    try:
        rows = target.organization()
    except Exception as exc:  # every failure to confirm the org refuses: fail closed
        said = target.error_message(exc)
        detail = said if said is not None else type(exc).__name__
        raise ReplayRefused(
            f"refused: could not confirm the target org ({soql} failed: {detail}); nothing was done"
        ) from None
    if len(rows) != 1 or not isinstance(rows[0].id, str):
        raise ReplayRefused(
            f"refused: could not confirm the target org ({soql} answered {len(rows)} rows); "
            "nothing was done"
        )
    org_id, sandbox = str(rows[0].id), rows[0].is_sandbox
    failed = []
    if sandbox is not True:
        failed.append(
            f"the target org {org_id} is not a sandbox (Organization.IsSandbox = "
            f"{json.dumps(sandbox)}); a replay only ever writes to a sandbox"
        )
    if not _allowed(org_id, allowed_orgs):
        listed = ", ".join(allowed_orgs) if allowed_orgs else "empty"
        failed.append(
            f"the target org {org_id} is not on SYNCLEDGER_REPLAY_ALLOWED_ORGS ({listed})"
        )
    if failed:
        raise ReplayRefused("refused: " + "; and ".join(failed) + "; nothing was done")
    return TargetOrg(org_id, instance_url.rstrip("/"))


def _allowed(org_id: str, allowed: Sequence[str]) -> bool:
    # An 18-character Id is the 15-character one plus a case-safe suffix.
    return any(org_id == a or (len(a) == 15 and org_id[:15] == a) for a in allowed)
