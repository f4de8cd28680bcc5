"""The ports the sync is written against, and the records that cross them.

:class:`AccountSystem` (Salesforce Accounts) and :class:`CompanySystem` (Intercom Companies) are
what :mod:`adapters.sync.cycle` and :mod:`adapters.sync.backfill` need of the two systems; the
real adapters (:mod:`adapters.salesforce.system`, :mod:`adapters.intercom.system`) and the
in-memory fakes (:mod:`adapters.sync.fakes`) satisfy them. :class:`SandboxOrg` is what
:mod:`adapters.sync.replay` needs of its target org (:mod:`adapters.salesforce.sandbox`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from ledger.budget import Tier, budget_tier
from ledger.catalog import SalesforceField
from ledger.errors import SyncLedgerError
from ledger.facts import (
    AccountChange,
    AccountRemoval,
    ApiUsage,
    CompanyChange,
    CompanyRemoval,
    DeletionsMissed,
)


class WriteRefused(SyncLedgerError):
    """A system refused a write (or a user action) and said why.

    ``fields`` names the refused fields (empty: the whole call); ``retryable`` says whether the
    same call may succeed later (rate limit, outage) or never will (a refused value).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "refused",
        fields: Sequence[str] = (),
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.fields = tuple(fields)
        self.retryable = retryable


@dataclass(frozen=True)
class RecordResult:
    """What a system answered for one record of a (batched) write.

    ``fields`` names the refused fields when the system said which (empty: the whole record);
    ``retryable`` says whether the same write may succeed later. ``api_call`` describes the
    request that carried it (method, path, records in the request, attempts).
    """

    record_id: str
    ok: bool = True
    message: str = ""
    code: str = ""
    fields: tuple[str, ...] = ()
    retryable: bool = False
    api_call: Mapping[str, Any] = field(default_factory=dict)


Updates = Sequence[tuple[str, Mapping[str, Any]]]


def write_each(
    updates: Updates,
    write_one: Callable[[str, Mapping[str, Any]], Any],
    *,
    concurrency: int = 1,
) -> list[RecordResult]:
    """For a system without a batch API: one call per record, up to ``concurrency`` at once
    (results in the order of ``updates``); a :class:`WriteRefused` becomes that record's failed
    result, anything else propagates. A call that waits (a rate limit's ``Retry-After``, a
    backoff) holds up only its own record."""

    def one(update: tuple[str, Mapping[str, Any]]) -> RecordResult:
        record_id, values = update
        try:
            write_one(record_id, values)
        except WriteRefused as refusal:
            return RecordResult(
                record_id,
                False,
                refusal.message,
                refusal.code,
                refusal.fields,
                refusal.retryable,
            )
        return RecordResult(record_id)

    if concurrency <= 1 or len(updates) <= 1:
        return [one(update) for update in updates]
    with ThreadPoolExecutor(min(concurrency, len(updates)), thread_name_prefix="write") as pool:
        return list(pool.map(one, updates))


def usage_tier(usage: ApiUsage | None) -> Tier:
    """The budget tier (:mod:`ledger.budget`) of a system's reported API usage; ``normal`` while
    none was reported."""
    return "normal" if usage is None else budget_tier(usage.used, usage.limit, usage.allocation)


class AccountSystem(Protocol):
    """Salesforce Accounts, as the sync needs them."""

    def changes_since(
        self, watermark: str | None
    ) -> Sequence[AccountChange | AccountRemoval | DeletionsMissed]:
        """Accounts saved after ``watermark`` (a ``SystemModstamp``; all when ``None``), oldest
        first, then accounts deleted after it; and :class:`~ledger.facts.DeletionsMissed` when
        the system can no longer list every deletion since ``watermark``."""
        ...

    def lookup(self, field: str, keys: Sequence[str]) -> Sequence[AccountChange]:
        """Snapshots (``kind="snapshot"``, ``source="lookup"``) of every account whose
        ``field`` carries one of ``keys``."""
        ...

    def every_account(self) -> Sequence[AccountChange]:
        """Every account as it is now, least recently saved first (the backfill's read)."""
        ...

    def read(self, ids: Sequence[str]) -> Sequence[AccountChange | AccountRemoval]:
        """Snapshots (``source="read"``) of the accounts ``ids``; a removal for one gone."""
        ...

    def write(self, updates: Updates) -> Sequence[RecordResult]:
        """Set ``values`` on each ``(Id, values)``, up to 200 records a call; one result per
        update, in order. Raise :class:`WriteRefused` only when no record could be sent."""
        ...

    def api_usage(self) -> ApiUsage | None:
        """The API usage the latest answer reported (no call), with our allocation."""
        ...

    def refresh_api_usage(self) -> ApiUsage | None:
        """Ask the system for its API usage now (one inexpensive call)."""
        ...


class CompanySystem(Protocol):
    """Intercom Companies, as the sync needs them.

    Intercom's webhooks do not come through this port: the service's intake keeps them in the
    ledger's inbox (:meth:`ledger.application.LedgerApp.receive`), where the cycle takes them.
    """

    def lookup(self, keys: Sequence[str]) -> Sequence[CompanyChange]:
        """Snapshots (``source="lookup"``) of every company whose ``company_id`` is in ``keys``."""
        ...

    def every_company(self) -> Iterable[CompanyChange]:
        """Snapshots of every company, as the system pages through them (the backfill's read)."""
        ...

    def read(self, ids: Sequence[str]) -> Sequence[CompanyChange | CompanyRemoval]:
        """Snapshots (``source="read"``) of the companies ``ids``; a removal for one gone."""
        ...

    def write(self, updates: Updates) -> Sequence[RecordResult]:
        """Set ``values`` (by full attribute name) on each ``(intercom_id, values)``; one result
        per update, in order."""
        ...


#: What the replay's guard asks the target org before anything else.
ORGANIZATION_QUERY = "SELECT Id, IsSandbox FROM Organization"


@dataclass(frozen=True)
class Organization:
    """One row of :data:`ORGANIZATION_QUERY`, as answered (the guard judges the values)."""

    id: object
    is_sandbox: object


class SandboxOrg(Protocol):
    """The Salesforce org a replay writes to, as :mod:`adapters.sync.replay` needs it. Its guard
    confirms the org is an allowed sandbox (:meth:`organization`) before anything else."""

    #: the Account fields each lookup and read returns (the replay sets them)
    fields: tuple[str, ...]
    #: the field the identifier values are looked up in
    identifier_field: str

    def organization(self) -> Sequence[Organization]:
        """The rows :data:`ORGANIZATION_QUERY` answers."""
        ...

    def describe(self) -> Sequence[SalesforceField]:
        """Every Account field."""
        ...

    def lookup(self, field: str, keys: Sequence[str]) -> Sequence[AccountChange]:
        """Snapshots of every account whose ``field`` carries one of ``keys``."""
        ...

    def read(self, ids: Sequence[str]) -> Sequence[AccountChange | AccountRemoval]:
        """Snapshots of the accounts ``ids``; a removal for one gone."""
        ...

    def write(self, updates: Updates) -> Sequence[RecordResult]:
        """As :meth:`AccountSystem.write`: one result per update, in order."""
        ...

    def api_usage(self) -> ApiUsage | None:
        """The API usage the latest answer reported (no call), with the allocation."""
        ...

    def refresh_api_usage(self) -> ApiUsage | None:
        """Ask the org for its API usage now (one call)."""
        ...

    def error_message(self, error: BaseException) -> str | None:
        """What ``error`` says when it is the org's own (it refused, or could not be reached);
        ``None`` for any other exception."""
        ...
