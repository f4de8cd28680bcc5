"""The Salesforce side of the sync's ports: :class:`SalesforceSystem` wraps
:class:`~adapters.salesforce.client.SalesforceAccounts` as an ``AccountSystem``.

Refusals become :class:`~adapters.sync.ports.WriteRefused`: a refused value (restricted
picklist) is permanent; an outage or rate limit that outlasted the adapter's own retries is
``retryable``, so the ledger sends the write again in a later cycle. Auth errors and an
exhausted daily API limit are not a verdict on one write and propagate.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.salesforce.client import COLLECTION_SIZE, SalesforceAccounts
from adapters.salesforce.errors import (
    SalesforceAuthError,
    SalesforceError,
    SalesforceLimitExceeded,
    SalesforceUnavailable,
)
from adapters.sync.ports import RecordResult, Updates
from ledger.events import SALESFORCE
from ledger.facts import (
    AccountChange,
    AccountRemoval,
    ApiUsage,
    DeletionsMissed,
)

__all__ = ["SalesforceSystem"]


class SalesforceSystem:
    """Salesforce Accounts as the sync needs them (``cycle.AccountSystem``).

    ``batch_size`` is how many records one write request carries (1 to 200, sObject
    Collections' maximum).
    """

    def __init__(self, accounts: SalesforceAccounts, *, batch_size: int = COLLECTION_SIZE) -> None:
        if not 1 <= batch_size <= COLLECTION_SIZE:
            raise ValueError(f"batch_size must be from 1 to {COLLECTION_SIZE}, not {batch_size}")
        self.accounts = accounts
        self.batch_size = batch_size
        #: the last poll: (how far it covered, its latest change's stamp, whether it saw
        #: deletions). The ledger's watermark only moves with a change, so in a quiet org every
        #: poll would re-read the window before the last change; the coverage avoids that.
        self._last: tuple[str | None, str, bool] | None = None

    def changes_since(
        self, watermark: str | None
    ) -> list[AccountChange | AccountRemoval | DeletionsMissed]:
        """The poll's changes (oldest first), then its removals, then
        :class:`~ledger.facts.DeletionsMissed` if the delete log did not reach back.

        Polls from the later of ``watermark`` and what this process's last poll covered.
        """
        last, self._last = self._last, None
        if last is not None and watermark is not None:
            covered, highest, had_removals = last
            # adopt the last poll's coverage only once the ledger holds all it returned
            if covered and not had_removals and highest <= watermark < covered:
                watermark = covered
        result = self.accounts.poll(watermark)
        stamps = [c.system_modstamp for c in result.changes]
        self._last = (result.watermark, max(stamps, default=""), bool(result.removals))
        missed = [DeletionsMissed(SALESFORCE, result.message)] if result.resync_needed else []
        return [*result.changes, *result.removals, *missed]

    def lookup(self, field: str, keys: Sequence[str]) -> list[AccountChange]:
        return self.accounts.lookup(field, keys)

    def every_account(self) -> list[AccountChange]:
        """One SOQL query over every account (2,000 a page)."""
        return self.accounts.poll(None).changes

    def read(self, ids: Sequence[str]) -> list[AccountChange | AccountRemoval]:
        return self.accounts.read(ids)

    def write(self, updates: Updates) -> list[RecordResult]:
        """sObject Collections updates, :attr:`batch_size` records a request; a request that
        fails as a whole fails only its own records (retryable when Salesforce was unavailable)."""
        results: list[RecordResult] = []
        for i in range(0, len(updates), self.batch_size):
            chunk = updates[i : i + self.batch_size]
            try:
                answers = self.accounts.write(chunk)
            except (SalesforceAuthError, SalesforceLimitExceeded):
                raise
            except SalesforceError as exc:
                retryable = isinstance(exc, SalesforceUnavailable)
                code = exc.code or "error"
                results += [
                    RecordResult(rid, False, exc.message, code, retryable=retryable)
                    for rid, _ in chunk
                ]
                continue
            results += [
                RecordResult(
                    a.salesforce_id,
                    a.ok,
                    a.message or ("" if a.ok else f"Salesforce refused {a.salesforce_id}"),
                    a.code or ("" if a.ok else "refused"),
                    a.fields,
                    a.retryable,
                    a.api_call,
                )
                for a in answers
            ]
        return results

    def api_usage(self) -> ApiUsage | None:
        usage = self.accounts.usage
        if usage is None:
            return None
        return ApiUsage(SALESFORCE, usage.used, usage.total, self.accounts.daily_allocation)

    def refresh_api_usage(self) -> ApiUsage | None:
        """One ``GET limits/`` call."""
        self.accounts.refresh_usage()
        return self.api_usage()
