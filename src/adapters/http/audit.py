"""The audit API: the ledger's raw feed and its read models over HTTP (scope ``audit:read``).

* ``GET /events?after=&limit=`` — the ledger's events in order, paged by position;
* ``GET /mappings?as_of=`` — the mapping table now, as of an instant, or after a position;
* ``GET /history/company/{intercom_id}``, ``GET /history/account/{salesforce_id}`` — a record's
  timeline;
* ``GET /writes?since=&until=&field=&overwrites_only=&rule=&format=json|csv`` — the write log;
* ``GET /explain?company_id=…`` (or ``intercom_id=``, ``account_id=``) — why a record is (or is
  not) synced;
* ``GET /ignored``, ``GET /rejected``, ``GET /api-usage`` — the other read models;
* ``GET /config`` (scope ``sync:operate``) — the configuration in force.

The compliance review pages for browsers are in :mod:`adapters.http.review`. Every route
declares its scope (:mod:`adapters.http.auth`); without read models the routes that need them
answer 503 (:data:`adapters.http.deps.AuditDep`). Bad parameters are answered 422 with a
message, never 500. Times are ISO-8601; one without a zone is taken as UTC
(:mod:`adapters.http.params`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from adapters.http.auth import AUDIT_READ, KEY_RESPONSES, SYNC_OPERATE, Problem, Scope
from adapters.http.deps import AuditDep, LedgerDep
from adapters.http.export import WRITE_COLUMNS, csv_response
from adapters.http.params import (
    MAX_POSITION,
    TEXT,
    IsoTime,
    RuleName,
    Since,
    Until,
    instant,
    invalid,
)
from projections.queries import MAX_LIMIT
from projections.views import (
    ApiUsagePoint,
    Explanation,
    IgnoredRecord,
    MappingTable,
    RecordHistory,
    RejectedValue,
    WriteEntry,
)

__all__ = [
    "MAX_PAGE",
    "ConfigOut",
    "EventPage",
    "LedgerEventOut",
    "WritePage",
    "router",
]

#: The most events one ``/events`` page returns.
MAX_PAGE = 1000
_ENVELOPE = frozenset({"originator_id", "originator_version", "timestamp"})


class LedgerEventOut(BaseModel):
    """One stored ledger event."""

    position: int = Field(description="Notification id: the event's place in the ledger.")
    type: str = Field(description="Event class, e.g. WriteApplied.", examples=["WriteApplied"])
    stream: str = Field(description="The stream (originator id) the event belongs to.")
    version: int = Field(description="The event's version within its stream.")
    timestamp: datetime = Field(description="When the ledger recorded it (UTC).")
    data: dict[str, Any] = Field(description="The event's own fields (JSON values).")


class EventPage(BaseModel):
    """A page of the ledger feed; continue with ``after=next_after`` while ``more``."""

    events: list[LedgerEventOut]
    next_after: int = Field(description="Pass as `after` to read the next page.")
    more: bool = Field(description="Whether events after this page existed when it was read.")


class WritePage(BaseModel):
    """A page of the write log; continue with ``after=next_after`` unless it is null."""

    writes: list[WriteEntry]
    next_after: int | None = Field(description="Pass as `after` for the next page; null: done.")


class ConfigOut(BaseModel):
    """The configuration in force: its version, identifier field and file text (TOML)."""

    version: int
    identifier_field: str
    toml: str


router = APIRouter(
    tags=["audit"],
    responses={
        **KEY_RESPONSES,
        503: {"model": Problem, "description": "The read models are unavailable."},
    },
)
_READ = Scope(AUDIT_READ)


@router.get("/events", dependencies=[_READ], response_model=EventPage)
def events(
    ledger: LedgerDep,
    after: Annotated[
        int, Query(ge=0, le=MAX_POSITION, description="Read events after this position.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="At most this many events.")] = 100,
) -> EventPage:
    """The raw ledger feed for downstream tools, in ledger order. Scope: `audit:read`."""
    page = [
        _event_out(position, event)
        for position, event in ledger.read_events(after=after, limit=limit + 1)
    ]
    more = len(page) > limit
    page = page[:limit]
    return EventPage(events=page, next_after=page[-1].position if page else after, more=more)


@router.get("/mappings", dependencies=[_READ], response_model=MappingTable)
def mappings(
    audit: AuditDep,
    as_of: Annotated[
        IsoTime | None,
        Query(description="The table as it was at this instant (ISO-8601); now if absent."),
    ] = None,
    position: Annotated[
        int | None,
        Query(ge=0, le=MAX_POSITION, description="…or right after this ledger position."),
    ] = None,
    after: Annotated[
        str | None,
        Query(max_length=255, pattern=TEXT, description="Page cursor (`next_after`)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 1000,
) -> MappingTable:
    """The mapping table (company ↔ account) now, as of an instant, or after a ledger
    position, by company_id. Scope: `audit:read`."""
    if as_of is not None and position is not None:
        raise invalid("as_of", "give as_of or position, not both")
    return audit.mappings_as_of(
        instant(as_of, "as_of"), position=position, after=after, limit=limit
    )


@router.get("/history/company/{intercom_id}", dependencies=[_READ], response_model=RecordHistory)
def history_company(
    audit: AuditDep,
    intercom_id: Annotated[str, Path(max_length=255, pattern=TEXT)],
    since: Since = None,
    until: Until = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT)] = None,
) -> RecordHistory:
    """An Intercom company's timeline, oldest first (`known` is false for a company the
    ledger has never seen). Scope: `audit:read`."""
    return audit.history_company(
        intercom_id, since=instant(since, "since"), until=instant(until, "until"), limit=limit
    )


@router.get("/history/account/{salesforce_id}", dependencies=[_READ], response_model=RecordHistory)
def history_account(
    audit: AuditDep,
    salesforce_id: Annotated[str, Path(max_length=255, pattern=TEXT)],
    since: Since = None,
    until: Until = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT)] = None,
) -> RecordHistory:
    """A Salesforce account's timeline, oldest first. Scope: `audit:read`."""
    return audit.history_account(
        salesforce_id, since=instant(since, "since"), until=instant(until, "until"), limit=limit
    )


@router.get(
    "/writes",
    dependencies=[_READ],
    response_model=WritePage,
    responses={
        200: {
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": ",".join(WRITE_COLUMNS) + "\r\n",
                }
            },
            "description": "A page of writes (JSON), or every matching write (CSV).",
        }
    },
)
def writes(
    audit: AuditDep,
    since: Since = None,
    until: Until = None,
    field: Annotated[
        str | None, Query(max_length=255, pattern=TEXT, description="Destination field.")
    ] = None,
    overwrites_only: Annotated[
        bool, Query(description="Only writes that replaced a different non-empty value.")
    ] = False,
    rule: Annotated[
        RuleName | None, Query(description="A mapping rule flag that was set, or `none`.")
    ] = None,
    record_id: Annotated[
        str | None, Query(max_length=255, pattern=TEXT, description="Destination record.")
    ] = None,
    company_id: Annotated[str | None, Query(max_length=255, pattern=TEXT)] = None,
    after: Annotated[int, Query(ge=0, le=MAX_POSITION, description="Page cursor.")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 1000,
    format: Annotated[
        Literal["json", "csv"], Query(description="`csv`: every match, for export.")
    ] = "json",
) -> Any:
    """The write log: every applied write with the value before it, the value written,
    the rules and configuration version that allowed it, its cause and API call;
    `overwrite` marks a replaced value. Scope: `audit:read`."""
    query: dict[str, Any] = {
        "since": instant(since, "since"),
        "until": instant(until, "until"),
        "field": field,
        "overwrites_only": overwrites_only,
        "rule": rule,
        "record_id": record_id,
        "company_id": company_id,
    }
    if format == "csv":
        return csv_response(
            lambda start, size: audit.writes(**query, after=start, limit=size),
            "syncledger-writes.csv",
            start=after,
        )
    # One row more than asked tells whether another page follows (at the cap, a full page
    # is taken to mean one may).
    found = audit.writes(**query, after=after, limit=min(limit + 1, MAX_LIMIT))
    page = found[:limit]
    more = len(found) > limit or (limit == MAX_LIMIT and len(page) == limit)
    return WritePage(writes=page, next_after=page[-1].position if more else None)


@router.get("/explain", dependencies=[_READ], response_model=Explanation)
def explain(
    audit: AuditDep,
    company_id: Annotated[
        str | None,
        Query(max_length=255, pattern=TEXT, description="The Intercom company_id (key)."),
    ] = None,
    intercom_id: Annotated[
        str | None, Query(max_length=255, pattern=TEXT, description="The Intercom id.")
    ] = None,
    account_id: Annotated[
        str | None,
        Query(max_length=255, pattern=TEXT, description="The Salesforce Account Id."),
    ] = None,
) -> Explanation:
    """Why is (or isn't) this record synced? Give exactly one of `company_id`,
    `intercom_id`, `account_id`. Scope: `audit:read`."""
    given = [v for v in (company_id, intercom_id, account_id) if v is not None]
    if len(given) != 1:
        raise invalid("company_id", "give exactly one of company_id, intercom_id, account_id")
    return audit.explain(company_id=company_id, intercom_id=intercom_id, account_id=account_id)


@router.get("/ignored", dependencies=[_READ], response_model=list[IgnoredRecord])
def ignored(
    audit: AuditDep,
    system: Annotated[Literal["salesforce", "intercom"] | None, Query()] = None,
) -> list[IgnoredRecord]:
    """Records never synced (person accounts, companies without company_id), and why.
    Scope: `audit:read`."""
    return audit.ignored(system)


@router.get("/rejected", dependencies=[_READ], response_model=list[RejectedValue])
def rejected(
    audit: AuditDep,
    since: Since = None,
    until: Until = None,
    field: Annotated[str | None, Query(max_length=255, pattern=TEXT)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 1000,
) -> list[RejectedValue]:
    """Values a destination could not take (e.g. outside a restricted picklist).
    Scope: `audit:read`."""
    return audit.rejected(instant(since, "since"), instant(until, "until"), field, limit=limit)


@router.get("/api-usage", dependencies=[_READ], response_model=list[ApiUsagePoint])
def api_usage(
    audit: AuditDep,
    since: Since = None,
    until: Until = None,
    system: Annotated[Literal["salesforce", "intercom"], Query()] = "salesforce",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 1000,
) -> list[ApiUsagePoint]:
    """A system's recorded API usage over time and the budget tier it meant.
    Scope: `audit:read`."""
    return audit.api_usage(instant(since, "since"), instant(until, "until"), system, limit=limit)


@router.get(
    "/config",
    dependencies=[Scope(SYNC_OPERATE)],
    response_model=ConfigOut,
    tags=["operations"],
    responses=KEY_RESPONSES,
)
def config(ledger: LedgerDep) -> ConfigOut:
    """The configuration in force, with its version. Scope: `sync:operate`."""
    ledger.catch_up()
    active = ledger.config
    return ConfigOut(
        version=active.version,
        identifier_field=active.identifier_field,
        toml=active.as_sync_config().to_toml(),
    )


def _event_out(position: int, event: Any) -> LedgerEventOut:
    data = {k: v for k, v in vars(event).items() if k not in _ENVELOPE}
    stamp: datetime = event.timestamp
    return LedgerEventOut(
        position=position,
        type=type(event).__name__,
        stream=str(event.originator_id),
        version=event.originator_version,
        timestamp=stamp.astimezone(UTC),
        data=data,
    )
