"""The audit read API over the projections: mappings as of any instant, record timelines, the
write log with overwrites, explanations, ignored records, rejected values and API usage.

Used by the HTTP API and the CLI. Every query first catches the projections up with the ledger
(unless built with ``fresh=False``), so answers reflect every event committed before the call.

Signatures are a contract with the HTTP API; a change is announced here first.
"""

from __future__ import annotations

from datetime import datetime

from projections.projector import Projector
from projections.views import (
    ApiUsagePoint,
    Explanation,
    IgnoredRecord,
    MappingTable,
    MappingView,
    RecordHistory,
    RejectedValue,
    WriteEntry,
)

#: Rows returned when no ``limit`` is given.
DEFAULT_LIMIT = 1000
#: The most rows one call returns.
MAX_LIMIT = 10_000


class AuditQueryError(ValueError):
    """A query's arguments cannot be answered (the message says which and why); the HTTP API
    answers 422, the CLI prints one line."""


class Audit:
    """Read-only questions about the sync history, answered from the projections.

    Naive datetimes are taken as UTC. ``since`` is inclusive, ``until`` exclusive.
    """

    def __init__(self, projector: Projector, *, fresh: bool = True) -> None:
        self.projector = projector
        self.fresh = fresh

    def mappings_as_of(
        self,
        instant: datetime | None = None,
        *,
        position: int | None = None,
        after: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> MappingTable:
        """The mapping table as it was at ``instant`` (right after the last transaction at or
        before it), or right after ledger ``position``, or now when neither is given; ordered by
        ``company_id``, starting after the cursor ``after``. Both given: AuditQueryError."""
        raise NotImplementedError

    def mapping_history(self, company_id: str) -> list[MappingView]:
        """Every mapping ever made for the identifier value ``company_id``, oldest first."""
        raise NotImplementedError

    def history_company(
        self,
        intercom_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> RecordHistory:
        """The timeline of the Intercom company ``intercom_id`` (its Intercom id)."""
        raise NotImplementedError

    def history_account(
        self,
        salesforce_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> RecordHistory:
        """The timeline of the Salesforce account ``salesforce_id``."""
        raise NotImplementedError

    def writes(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        field: str | None = None,
        overwrites_only: bool = False,
        rule: str | None = None,
        *,
        record_id: str | None = None,
        company_id: str | None = None,
        after: int = 0,
        limit: int = DEFAULT_LIMIT,
    ) -> list[WriteEntry]:
        """Applied writes in ledger order, filtered: by time, destination ``field``, overwrites
        only, ``rule`` (a mapping flag that was set — ``skip_if_source_empty`` or
        ``skip_if_destination_has_value`` — or ``none`` for unconditional mappings), destination
        ``record_id``, ``company_id``; keyset-paged by ``after`` (the last position seen)."""
        raise NotImplementedError

    def explain(
        self,
        *,
        company_id: str | None = None,
        intercom_id: str | None = None,
        account_id: str | None = None,
    ) -> Explanation:
        """Why is (or isn't) this synced? Give exactly one of: ``company_id`` (the Intercom
        company_id, i.e. the identifier value), ``intercom_id`` (the Intercom company's id) or
        ``account_id`` (the Salesforce Account Id)."""
        raise NotImplementedError

    def ignored(self, system: str | None = None) -> list[IgnoredRecord]:
        """Records the ledger never syncs, with the latest reason recorded for each."""
        raise NotImplementedError

    def rejected(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        field: str | None = None,
        *,
        limit: int = DEFAULT_LIMIT,
    ) -> list[RejectedValue]:
        """Values the destination could not take, in ledger order."""
        raise NotImplementedError

    def api_usage(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        system: str = "salesforce",
        *,
        limit: int = DEFAULT_LIMIT,
    ) -> list[ApiUsagePoint]:
        """A system's recorded API usage over time (each ``ApiUsageObserved``), oldest first."""
        raise NotImplementedError

    @property
    def position(self) -> int:
        """The ledger position the answers reflect."""
        return self.projector.position
