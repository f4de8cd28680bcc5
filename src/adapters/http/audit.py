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

and the compliance review pages for browsers (:func:`review_router`, not in the OpenAPI schema):
``/review`` (overwrites, filtered), ``/review/timeline/{account|company}/{id}``,
``/review/export.csv``, ``/review/login``. Every route declares its scope
(:mod:`adapters.http.auth`);
bad parameters are answered 422 with a message, never 500. Times are ISO-8601; one without a
zone is taken as UTC.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path as PathLib
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, BeforeValidator, Field

from adapters.http.auth import (
    AUDIT_READ,
    COOKIE,
    KEY_RESPONSES,
    SYNC_OPERATE,
    Authorizer,
    Problem,
)
from ledger.application import LedgerApp
from projections.queries import MAX_LIMIT, Audit
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
    "audit_router",
    "csv_rows",
    "instant",
    "review_router",
]

#: The most events one ``/events`` page returns.
MAX_PAGE = 1000
_MAX_POSITION = 2**63 - 1
_ENVELOPE = frozenset({"originator_id", "originator_version", "timestamp"})
#: Text parameters: no control characters (PostgreSQL refuses NUL), at most 255 characters.
TEXT = r"^[^\x00-\x1f\x7f]+$"
RuleName = Literal["skip_if_source_empty", "skip_if_destination_has_value", "none"]
#: CSV columns of the write log, in order.
WRITE_COLUMNS = (
    "at",
    "position",
    "system",
    "record_id",
    "company_id",
    "field",
    "before",
    "value",
    "overwrite",
    "rules",
    "config_version",
    "trigger",
    "cause",
    "source_system",
    "source_record_id",
    "source_field",
    "source_value",
    "write_id",
    "api_call",
)


def _iso(value: Any) -> Any:
    """Only ISO-8601 text is a time here (pydantic would also take Unix seconds)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise ValueError("not an ISO-8601 date and time, e.g. 2026-01-31T09:00:00Z") from None
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso)]
Since = Annotated[
    IsoTime | None, Query(description="From this instant (inclusive), ISO-8601; UTC if no zone.")
]
Until = Annotated[
    IsoTime | None, Query(description="Up to this instant (exclusive), ISO-8601; UTC if no zone.")
]


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


def invalid(parameter: str, message: str) -> RequestValidationError:
    """A 422 answer in FastAPI's validation-error shape, naming the query ``parameter``."""
    return RequestValidationError(
        [{"loc": ("query", parameter), "msg": message, "type": "value_error"}]
    )


def instant(value: datetime | None, name: str) -> datetime | None:
    """``value`` as a UTC datetime (naive taken as UTC). An instant beyond what a datetime can
    hold in UTC (``9999-12-31T23:59:59-14:00``) is clamped to the first or last one."""
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    try:
        return aware.astimezone(UTC)
    except OverflowError:
        return (datetime.max if aware.year > 1 else datetime.min).replace(tzinfo=UTC)


def audit_router(ledger: LedgerApp, auth: Authorizer, audit: Audit | None) -> APIRouter:
    """The audit routes over ``ledger`` and its read models (``audit``; without them the
    routes that need them answer 503)."""
    router = APIRouter(
        tags=["audit"],
        responses={
            **KEY_RESPONSES,
            503: {"model": Problem, "description": "The read models are unavailable."},
        },
    )
    read = auth.requires(AUDIT_READ)

    def models() -> Audit:
        if audit is None:
            raise HTTPException(503, "the read models are not configured on this server")
        return audit

    @router.get("/events", dependencies=[read], response_model=EventPage)
    def events(
        after: Annotated[
            int, Query(ge=0, le=_MAX_POSITION, description="Read events after this position.")
        ] = 0,
        limit: Annotated[
            int, Query(ge=1, le=MAX_PAGE, description="At most this many events.")
        ] = 100,
    ) -> EventPage:
        """The raw ledger feed for downstream tools, in ledger order. Scope: `audit:read`."""
        page = [
            _event_out(position, event)
            for position, event in ledger.read_events(after=after, limit=limit + 1)
        ]
        more = len(page) > limit
        page = page[:limit]
        return EventPage(events=page, next_after=page[-1].position if page else after, more=more)

    @router.get("/mappings", dependencies=[read], response_model=MappingTable)
    def mappings(
        as_of: Annotated[
            IsoTime | None,
            Query(description="The table as it was at this instant (ISO-8601); now if absent."),
        ] = None,
        position: Annotated[
            int | None,
            Query(ge=0, le=_MAX_POSITION, description="…or right after this ledger position."),
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
        return models().mappings_as_of(
            instant(as_of, "as_of"), position=position, after=after, limit=limit
        )

    @router.get("/history/company/{intercom_id}", dependencies=[read], response_model=RecordHistory)
    def history_company(
        intercom_id: Annotated[str, Path(max_length=255, pattern=TEXT)],
        since: Since = None,
        until: Until = None,
        limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT)] = None,
    ) -> RecordHistory:
        """An Intercom company's timeline, oldest first (`known` is false for a company the
        ledger has never seen). Scope: `audit:read`."""
        return models().history_company(
            intercom_id, since=instant(since, "since"), until=instant(until, "until"), limit=limit
        )

    @router.get(
        "/history/account/{salesforce_id}", dependencies=[read], response_model=RecordHistory
    )
    def history_account(
        salesforce_id: Annotated[str, Path(max_length=255, pattern=TEXT)],
        since: Since = None,
        until: Until = None,
        limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT)] = None,
    ) -> RecordHistory:
        """A Salesforce account's timeline, oldest first. Scope: `audit:read`."""
        return models().history_account(
            salesforce_id,
            since=instant(since, "since"),
            until=instant(until, "until"),
            limit=limit,
        )

    @router.get(
        "/writes",
        dependencies=[read],
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
        after: Annotated[int, Query(ge=0, le=_MAX_POSITION, description="Page cursor.")] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 1000,
        format: Annotated[
            Literal["json", "csv"], Query(description="`csv`: every match, for export.")
        ] = "json",
    ) -> Any:
        """The write log: every applied write with the value before it, the value written,
        the rules and configuration version that allowed it, its cause and API call;
        `overwrite` marks a replaced value. Scope: `audit:read`."""
        source = models()
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
                lambda start, size: source.writes(**query, after=start, limit=size),
                "syncledger-writes.csv",
                start=after,
            )
        # One row more than asked tells whether another page follows (at the cap, a full page
        # is taken to mean one may).
        found = source.writes(**query, after=after, limit=min(limit + 1, MAX_LIMIT))
        page = found[:limit]
        more = len(found) > limit or (limit == MAX_LIMIT and len(page) == limit)
        return WritePage(writes=page, next_after=page[-1].position if more else None)

    @router.get("/explain", dependencies=[read], response_model=Explanation)
    def explain(
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
        return models().explain(
            company_id=company_id, intercom_id=intercom_id, account_id=account_id
        )

    @router.get("/ignored", dependencies=[read], response_model=list[IgnoredRecord])
    def ignored(
        system: Annotated[Literal["salesforce", "intercom"] | None, Query()] = None,
    ) -> list[IgnoredRecord]:
        """Records never synced (person accounts, companies without company_id), and why.
        Scope: `audit:read`."""
        return models().ignored(system)

    @router.get("/rejected", dependencies=[read], response_model=list[RejectedValue])
    def rejected(
        since: Since = None,
        until: Until = None,
        field: Annotated[str | None, Query(max_length=255, pattern=TEXT)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 1000,
    ) -> list[RejectedValue]:
        """Values a destination could not take (e.g. outside a restricted picklist).
        Scope: `audit:read`."""
        return models().rejected(
            instant(since, "since"), instant(until, "until"), field, limit=limit
        )

    @router.get("/api-usage", dependencies=[read], response_model=list[ApiUsagePoint])
    def api_usage(
        since: Since = None,
        until: Until = None,
        system: Annotated[Literal["salesforce", "intercom"], Query()] = "salesforce",
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 1000,
    ) -> list[ApiUsagePoint]:
        """A system's recorded API usage over time and the budget tier it meant.
        Scope: `audit:read`."""
        return models().api_usage(
            instant(since, "since"), instant(until, "until"), system, limit=limit
        )

    @router.get(
        "/config",
        dependencies=[auth.requires(SYNC_OPERATE)],
        response_model=ConfigOut,
        tags=["operations"],
        responses=KEY_RESPONSES,
    )
    def config() -> ConfigOut:
        """The configuration in force, with its version. Scope: `sync:operate`."""
        ledger.catch_up()
        active = ledger.config
        return ConfigOut(
            version=active.version,
            identifier_field=active.identifier_field,
            toml=active.as_sync_config().to_toml(),
        )

    return router


def csv_rows(pages: Callable[[int, int], list[WriteEntry]], start: int = 0) -> Iterator[str]:
    """The CSV text of every write ``pages(after, limit)`` yields, header first, page by page
    (constant memory). Text that a spreadsheet would run as a formula is quoted with ``'``."""
    buffer = io.StringIO()
    out = csv.writer(buffer)
    out.writerow(WRITE_COLUMNS)
    after = start
    while True:
        page = pages(after, 1000)
        for entry in page:
            out.writerow([_cell(getattr(entry, column)) for column in WRITE_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(page) < 1000:
            return
        after = page[-1].position


def csv_response(
    pages: Callable[[int, int], list[WriteEntry]], filename: str, start: int = 0
) -> StreamingResponse:
    """A streamed CSV download of :func:`csv_rows`."""
    return StreamingResponse(
        csv_rows(pages, start),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    text = str(value)
    if isinstance(value, str) and text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text  # a spreadsheet would evaluate it (CSV injection)
    return text


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


# --- the compliance review pages -------------------------------------------------------------

_TEMPLATES = Jinja2Templates(directory=PathLib(__file__).with_name("templates"))
_RULES: dict[str, str] = {
    "skip_if_source_empty": "skip if source empty",
    "skip_if_destination_has_value": "skip if destination has a value",
    "none": "unconditional",
}
#: Overwrites per review page.
REVIEW_PAGE = 100


class _Filters:
    """The review page's filters, read leniently from a browser's form (empty means unset)."""

    def __init__(self, params: Mapping[str, str]) -> None:
        self.problems: list[str] = []
        self.text = {
            name: (params.get(name) or "").strip()
            for name in ("since", "until", "field", "rule", "record", "company")
        }
        self.since = self._time("since")
        self.until = self._time("until")
        self.field = self._word("field")
        self.rule = self.text["rule"] or None
        if self.rule is not None and self.rule not in _RULES:
            self.problems.append(f"rule: choose one of {', '.join(_RULES)}")
            self.rule = None
        self.record = self._word("record")
        self.company = self._word("company")
        after = (params.get("after") or "0").strip()
        self.after = int(after) if after.isdigit() and len(after) < 19 else 0

    def _time(self, name: str) -> datetime | None:
        text = self.text[name]
        if not text:
            return None
        try:
            return instant(datetime.fromisoformat(text), name)
        except ValueError:
            self.problems.append(
                f"{name}: {text!r} is not a date and time such as 2026-01-31T09:00"
            )
            return None

    def _word(self, name: str) -> str | None:
        text = self.text[name]
        if text and (len(text) > 255 or any(ord(c) < 32 or ord(c) == 127 for c in text)):
            self.problems.append(f"{name}: at most 255 characters, no control characters")
            return None
        return text or None

    def query(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "field": self.field,
            "overwrites_only": True,
            "rule": self.rule,
            "record_id": self.record,
            "company_id": self.company,
        }

    def link(self, **extra: Any) -> str:
        kept = {k: v for k, v in self.text.items() if v}
        return urlencode({**kept, **{k: v for k, v in extra.items() if v}})


def review_router(ledger: LedgerApp, auth: Authorizer, audit: Audit | None) -> APIRouter:
    """The compliance review pages: server-rendered HTML for a browser, signed in by the login
    form (the key is kept in an HttpOnly, SameSite=Strict cookie)."""
    router = APIRouter(tags=["review"], include_in_schema=False)
    read = auth.requires(AUDIT_READ, browser=True)

    def models() -> Audit:
        if audit is None:
            raise HTTPException(503, "the read models are not configured on this server")
        return audit

    @router.get("/review", dependencies=[read], response_class=HTMLResponse)
    def review(request: Request) -> Response:
        """Overwrites over a period, filterable by field, rule and record."""
        filters = _Filters(request.query_params)
        rows: list[WriteEntry] = []
        next_after: int | None = None
        if not filters.problems:
            found = models().writes(**filters.query(), after=filters.after, limit=REVIEW_PAGE + 1)
            rows = found[:REVIEW_PAGE]
            next_after = rows[-1].position if len(found) > REVIEW_PAGE else None
        ledger.catch_up()
        fields = sorted(
            {m.mapping.salesforce for m in ledger.config.mappings}
            | {m.mapping.intercom for m in ledger.config.mappings}
        )
        return _TEMPLATES.TemplateResponse(
            request,
            "review.html",
            {
                "filters": filters,
                "rows": rows,
                "rules": _RULES,
                "fields": fields,
                "export": "/review/export.csv?" + filters.link(),
                "next": "/review?" + filters.link(after=next_after) if next_after else None,
                "first": filters.after > 0,
                "first_link": "/review?" + filters.link(),
                "shown": _shown,
            },
            status_code=400 if filters.problems else 200,
        )

    @router.get("/review/export.csv", dependencies=[read])
    def review_export(request: Request) -> Response:
        """The overwrites the review page shows (same filters), every page, as CSV."""
        filters = _Filters(request.query_params)
        if filters.problems:
            return PlainTextResponse("; ".join(filters.problems), status_code=400)
        source = models()
        return csv_response(
            lambda start, size: source.writes(**filters.query(), after=start, limit=size),
            "syncledger-overwrites.csv",
        )

    @router.get(
        "/review/timeline/{kind}/{record_id}", dependencies=[read], response_class=HTMLResponse
    )
    def review_timeline(
        request: Request,
        kind: Literal["account", "company"],
        record_id: Annotated[str, Path(max_length=255, pattern=TEXT)],
    ) -> Response:
        """A record's whole timeline, oldest first."""
        source = models()
        history = (
            source.history_account(record_id)
            if kind == "account"
            else source.history_company(record_id)
        )
        return _TEMPLATES.TemplateResponse(
            request,
            "timeline.html",
            {"history": history, "kind": kind, "shown": _shown},
            status_code=200 if history.known else 404,
        )

    @router.get(
        "/review/login",
        dependencies=[auth.public("the form where a reviewer enters a key")],
        response_class=HTMLResponse,
    )
    def login_form(request: Request, next: str = "/review") -> Response:
        """The sign-in form."""
        return _login_page(request, _safe_next(next), "", 200)

    @router.post(
        "/review/login",
        dependencies=[auth.public("checks the key it is given")],
        response_class=HTMLResponse,
    )
    async def login(request: Request) -> Response:
        """Check the key; keep it in an HttpOnly cookie and go on to the page asked for."""
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        key = (form.get("key") or [""])[0].strip()
        target = _safe_next((form.get("next") or ["/review"])[0])
        granted = auth.scopes_of(key) if key else frozenset()
        if AUDIT_READ not in granted:
            message = "That key does not grant audit:read." if granted else "That key is not valid."
            return _login_page(request, target, message, 401 if not granted else 403)
        answer = RedirectResponse(target, status_code=303)
        answer.set_cookie(
            COOKIE,
            key,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/review",
            max_age=8 * 3600,
        )
        return answer

    @router.post("/review/logout", dependencies=[auth.public("it only forgets the cookie")])
    def logout() -> Response:
        """Forget the key."""
        answer = RedirectResponse("/review/login", status_code=303)
        answer.delete_cookie(COOKIE, path="/review")
        return answer

    return router


def _login_page(request: Request, target: str, message: str, status: int) -> Response:
    return _TEMPLATES.TemplateResponse(
        request, "login.html", {"next": target, "message": message}, status_code=status
    )


def _safe_next(target: str) -> str:
    """Only a review page of this server (no open redirect)."""
    ok = target.startswith("/review") and not target.startswith("/review/login")
    return target if ok and "\\" not in target and "//" not in target else "/review"


def _shown(value: Any) -> str:
    """A value as the review pages show it (``∅`` for empty)."""
    if value is None or value == "":
        return "∅"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)
