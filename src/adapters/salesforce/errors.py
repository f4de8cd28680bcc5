"""What the Salesforce adapter raises (see the tree in :mod:`ledger.errors`)."""

from __future__ import annotations

from ledger.errors import SyncLedgerError


class SalesforceError(SyncLedgerError):
    """Base of every error this adapter raises. ``code`` is Salesforce's errorCode, if any."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class SalesforceAuthError(SalesforceError):
    """Salesforce refused the session (401 INVALID_SESSION_ID, with no way or no luck renewing
    it) or a login (INVALID_LOGIN, or an OAuth error such as ``invalid_grant``)."""


class SalesforceLimitExceeded(SalesforceError):
    """The org's daily API request limit is used up (403 REQUEST_LIMIT_EXCEEDED)."""


class SalesforceUnavailable(SalesforceError):
    """Salesforce answered 5xx or lock contention, or was unreachable, after the retries."""


class SalesforceRejected(SalesforceError):
    """Salesforce refused the request itself (4xx); sending it again will not help."""
