"""The compliance review pages: server-rendered HTML for a browser (not in the OpenAPI schema).

* ``GET /review`` — overwrites over a period, filtered by field, rule and record;
* ``GET /review/timeline/{account|company}/{id}`` — a record's whole timeline;
* ``GET /review/export.csv`` — what the review page shows (same filters), every page, as CSV;
* ``GET``/``POST /review/login``, ``POST /review/logout`` — the sign-in form.

A reviewer signs in with a key granting ``audit:read``; that opens a session on the server
(:mod:`adapters.http.sessions`) whose id only is kept in an HttpOnly, SameSite=Strict cookie
(:data:`adapters.http.auth.COOKIE`), and a browser without a live session is sent to the login
form. Both forms carry a CSRF token: the sign-in form's is also in a cookie (double submit),
the sign-out form's is the session's; a post with a key (sign-in) or from a live session
(sign-out) but without the right token is refused 403. Signing out ends the session on the
server, so its cookie no longer works anywhere. The filters are read leniently from the form:
a bad one is shown on the page (400), never a 422.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path as PathLib
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from adapters.http.auth import AUDIT_READ, COOKIE, Public, Scope, scopes_of
from adapters.http.deps import ApiKeysDep, AuditDep, LedgerDep, SessionsDep
from adapters.http.export import csv_response
from adapters.http.params import TEXT, instant
from adapters.http.sessions import LOGIN_COOKIE, fingerprint, new_token, same_token
from projections.views import WriteEntry

__all__ = ["REVIEW_PAGE", "router"]


def _csrf(request: Request) -> dict[str, Any]:
    """Every page's sign-out form carries the session's CSRF token."""
    session = getattr(request.state, "review_session", None)
    return {"csrf": session.csrf if session is not None else ""}


_TEMPLATES = Jinja2Templates(
    directory=PathLib(__file__).with_name("templates"), context_processors=[_csrf]
)
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


router = APIRouter(tags=["review"], include_in_schema=False)
_READ = Scope(AUDIT_READ, browser=True)


@router.get("/review", dependencies=[_READ], response_class=HTMLResponse)
def review(request: Request, audit: AuditDep, ledger: LedgerDep) -> Response:
    """Overwrites over a period, filterable by field, rule and record."""
    filters = _Filters(request.query_params)
    rows: list[WriteEntry] = []
    next_after: int | None = None
    if not filters.problems:
        found = audit.writes(**filters.query(), after=filters.after, limit=REVIEW_PAGE + 1)
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


@router.get("/review/export.csv", dependencies=[_READ])
def review_export(request: Request, audit: AuditDep) -> Response:
    """The overwrites the review page shows (same filters), every page, as CSV."""
    filters = _Filters(request.query_params)
    if filters.problems:
        return PlainTextResponse("; ".join(filters.problems), status_code=400)
    return csv_response(
        lambda start, size: audit.writes(**filters.query(), after=start, limit=size),
        "syncledger-overwrites.csv",
    )


@router.get(
    "/review/timeline/{kind}/{record_id}", dependencies=[_READ], response_class=HTMLResponse
)
def review_timeline(
    request: Request,
    audit: AuditDep,
    kind: Literal["account", "company"],
    record_id: Annotated[str, Path(max_length=255, pattern=TEXT)],
) -> Response:
    """A record's whole timeline, oldest first."""
    history = (
        audit.history_account(record_id) if kind == "account" else audit.history_company(record_id)
    )
    return _TEMPLATES.TemplateResponse(
        request,
        "timeline.html",
        {"history": history, "kind": kind, "shown": _shown},
        status_code=200 if history.known else 404,
    )


@router.get(
    "/review/login",
    dependencies=[Public("the form where a reviewer enters a key")],
    response_class=HTMLResponse,
)
def login_form(request: Request, next: str = "/review") -> Response:
    """The sign-in form."""
    return _login_page(request, _safe_next(next), "", 200)


@router.post(
    "/review/login",
    dependencies=[Public("checks the key it is given")],
    response_class=HTMLResponse,
)
async def login(request: Request, keys: ApiKeysDep, sessions: SessionsDep) -> Response:
    """Check the key and the form's CSRF token; open a session, keep its id in an HttpOnly
    cookie and go on to the page asked for."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0].strip()
    target = _safe_next((form.get("next") or ["/review"])[0])
    if key and not same_token(_field(form, "csrf"), request.cookies.get(LOGIN_COOKIE)):
        return _login_page(request, target, "The sign-in form had expired; sign in again.", 403)
    granted = scopes_of(keys, key) if key else frozenset()
    if AUDIT_READ not in granted:
        message = "That key does not grant audit:read." if granted else "That key is not valid."
        return _login_page(request, target, message, 401 if not granted else 403)
    answer = RedirectResponse(target, status_code=303)
    answer.set_cookie(
        COOKIE,
        sessions.open(fingerprint(key), granted),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/review",
    )
    answer.delete_cookie(LOGIN_COOKIE, path="/review/login")
    return answer


@router.post("/review/logout", dependencies=[Public("it only ends the caller's own session")])
async def logout(request: Request, sessions: SessionsDep) -> Response:
    """End the session (its cookie no longer works) and forget the cookie."""
    session_id = request.cookies.get(COOKIE)
    session = sessions.get(session_id)
    if session is not None:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        if not same_token(_field(form, "csrf"), session.csrf):
            return PlainTextResponse(
                "The sign-out form had expired: reload the page and sign out again.", 403
            )
        sessions.close(session_id)
    answer = RedirectResponse("/review/login", status_code=303)
    answer.delete_cookie(COOKIE, path="/review")
    return answer


def _field(form: Mapping[str, list[str]], name: str) -> str:
    return (form.get(name) or [""])[0]


def _login_page(request: Request, target: str, message: str, status: int) -> Response:
    """The sign-in form, with a fresh CSRF token in the form and in its cookie."""
    token = new_token()
    page = _TEMPLATES.TemplateResponse(
        request,
        "login.html",
        {"next": target, "message": message, "login_csrf": token},
        status_code=status,
    )
    page.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/review/login",
    )
    return page


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
