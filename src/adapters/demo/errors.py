"""The demo's one error."""

from __future__ import annotations

from ledger.errors import SyncLedgerError


class DemoError(SyncLedgerError, RuntimeError):
    """The demo cannot run (an unusable ledger, a child process that failed, no progress)."""
