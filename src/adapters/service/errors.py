"""The service's own error."""

from __future__ import annotations

from ledger.errors import SyncLedgerError


class ServiceError(SyncLedgerError):
    """The service cannot start or go on; the message says why and what to do."""
