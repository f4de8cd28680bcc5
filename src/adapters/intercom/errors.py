"""What the Intercom adapter raises (see the tree in :mod:`ledger.errors`)."""

from __future__ import annotations

from ledger.errors import SyncLedgerError


class IntercomError(SyncLedgerError):
    """Base of every error this adapter raises. ``code`` is Intercom's error code, if any."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class IntercomAuthError(IntercomError):
    """Intercom refused the access token (401)."""


class IntercomRateLimited(IntercomError):
    """Intercom still answered 429 after the allowed retries."""


class IntercomUnavailable(IntercomError):
    """Intercom answered 5xx, or could not be reached, after the allowed retries."""


class IntercomRejected(IntercomError):
    """Intercom refused the request itself (4xx); sending it again will not help."""
