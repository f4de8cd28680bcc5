"""Who may call which route of the HTTP API: API keys and scopes, denied by default.

Keys come from ``SYNCLEDGER_API_KEYS`` (:class:`adapters.settings.ApiKeys`); a caller presents
one as ``Authorization: Bearer <key>`` and it is compared with every configured key in constant
time. Scopes: ``audit:read`` (reading the ledger and its read models, ``/metrics``),
``sync:operate`` (configuration and sync control), ``replay:execute`` (replays).

Every route of the app declares its access with exactly one marker dependency:

* ``Scope(scope)`` — a key granting ``scope``; ``browser=True`` also accepts the review pages'
  sign-in session (:mod:`adapters.http.sessions`; its id is in an HttpOnly cookie set by the
  login form) and answers a browser without one with a redirect to the login form instead of a
  401; ``public_if=flag`` opens the route to anyone while the app's setting ``flag`` is on
  (``/metrics`` with ``SYNCLEDGER_METRICS_PUBLIC``);
* ``Public(reason)`` — anyone (webhook intake, which checks its own signature; health).

The keys are the service's (:data:`adapters.http.deps.ApiKeysDep`), read per request.
:func:`guard` is an app-wide dependency that refuses (403) any route without a marker, so a
route added without thinking about access is closed, not open. Answers:

* 401 with ``WWW-Authenticate: Bearer`` when no key, or an unknown key, is presented (also
  when no keys are configured at all);
* 403 with ``WWW-Authenticate: Bearer error="insufficient_scope"`` when the key lacks the scope.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, Security, routing
from fastapi.params import Depends as DependsParam
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.routing import BaseRoute

from adapters.http.deps import ApiKeysDep, SessionsDep
from adapters.http.sessions import ReviewSessions, fingerprint
from adapters.settings import API_SCOPES, ApiKeys
from ledger.errors import SyncLedgerError

__all__ = [
    "AUDIT_READ",
    "COOKIE",
    "KEY_RESPONSES",
    "REPLAY_EXECUTE",
    "SYNC_OPERATE",
    "Access",
    "KeyAccess",
    "LoginRequired",
    "Principal",
    "Problem",
    "Public",
    "PublicAccess",
    "Scope",
    "access_of",
    "api_routes",
    "guard",
    "markers",
    "scopes_of",
]

AUDIT_READ: Final = "audit:read"
SYNC_OPERATE: Final = "sync:operate"
REPLAY_EXECUTE: Final = "replay:execute"
assert (AUDIT_READ, SYNC_OPERATE, REPLAY_EXECUTE) == API_SCOPES

#: The review pages' cookie holding the reviewer's session id (HttpOnly, SameSite=Strict).
COOKIE: Final = "syncledger_review_session"

_REALM = 'Bearer realm="syncledger"'
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from SYNCLEDGER_API_KEYS, sent as `Authorization: Bearer <key>`.",
)


class Problem(BaseModel):
    """An error answer: what was wrong and what to do."""

    detail: str


#: The answers of a route that needs a key, for its OpenAPI ``responses``.
KEY_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No API key, or an unknown one (`WWW-Authenticate`)."},
    403: {"model": Problem, "description": "The API key lacks the route's scope."},
}


@dataclass(frozen=True)
class Principal:
    """The caller of a route: the scopes its key grants (empty on a public route) and a name
    that does not reveal the key (:func:`adapters.http.sessions.fingerprint`)."""

    scopes: frozenset[str]
    name: str = ""


class LoginRequired(SyncLedgerError):
    """A browser on a review page without a usable key: send it to the login form."""

    def __init__(self, next_url: str, message: str) -> None:
        super().__init__(message)
        self.next_url = next_url
        self.message = message

    @property
    def location(self) -> str:
        return f"/review/login?next={quote(self.next_url, safe='/')}"


class Access:
    """A route's access marker (see the module docstring)."""

    scope: str | None = None
    reason: str = ""
    browser: bool = False


class PublicAccess(Access):
    """Anyone may call the route; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        if not reason:
            raise ValueError("a public route must say why it is public")
        self.reason = reason

    def __call__(self) -> Principal:
        return Principal(frozenset())


class KeyAccess(Access):
    """A key granting ``scope`` is needed; this dependency checks it against the service's
    keys (or, with ``browser``, the review session in the cookie)."""

    def __init__(self, scope: str, *, browser: bool = False, public_if: str = "") -> None:
        if scope not in API_SCOPES:
            raise ValueError(f"unknown scope {scope!r}")
        self.scope = scope
        self.browser = browser
        self.public_if = public_if

    def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        keys: ApiKeysDep,
        sessions: SessionsDep,
    ) -> Principal:
        if self.public_if and self.public_if in getattr(request.app.state, "public_if", ()):
            return Principal(frozenset())
        presented = credentials.credentials if credentials is not None else None
        if presented is None and self.browser:
            return self._from_session(request, sessions)
        granted = scopes_of(keys, presented)
        if not granted:
            if presented is None:
                message = "an API key is required: send Authorization: Bearer <key>"
                challenge = _REALM
            elif not keys:
                message = "no API keys are configured on this server (SYNCLEDGER_API_KEYS)"
                challenge = f'{_REALM}, error="invalid_token"'
            else:
                message = "the API key is not valid"
                challenge = f'{_REALM}, error="invalid_token"'
            raise HTTPException(401, message, headers={"WWW-Authenticate": challenge})
        if self.scope not in granted:
            message = f"the API key lacks the scope {self.scope}"
            challenge = f'{_REALM}, error="insufficient_scope", scope="{self.scope}"'
            raise HTTPException(403, message, headers={"WWW-Authenticate": challenge})
        assert presented is not None
        return Principal(granted, fingerprint(presented))

    def _from_session(self, request: Request, sessions: ReviewSessions) -> Principal:
        """A browser: its review session, or off to the login form. The session is also put on
        ``request.state.review_session`` (the pages need its sign-out token)."""
        session = sessions.get(request.cookies.get(COOKIE))
        if session is None:
            raise LoginRequired(_path_and_query(request), "sign in to see the review pages")
        if self.scope not in session.scopes:
            message = f"the key signed in with lacks the scope {self.scope}"
            raise LoginRequired(_path_and_query(request), message)
        request.state.review_session = session
        return Principal(session.scopes, session.name)


def scopes_of(keys: ApiKeys | None, presented: str | None) -> frozenset[str]:
    """The scopes ``presented`` grants under ``keys`` (empty for no key or an unknown one)."""
    if presented is None or not keys:
        return frozenset()
    return keys.scopes_for(presented)


def access_of(route: object) -> Access | None:
    """The access marker a route declares, or ``None`` (such a route is refused)."""
    for dependency in getattr(route, "dependencies", None) or ():
        if isinstance(dependency.dependency, Access):
            return dependency.dependency
    return None


def api_routes(routes: Sequence[BaseRoute]) -> Iterator[tuple[str, str, Access | None]]:
    """``(method, path, marker)`` of every API route, including those of included routers.

    Other routes (FastAPI's documentation pages) are not API routes and are not listed.
    """
    contexts: Iterable[Any] = (
        routing.iter_route_contexts(routes) if hasattr(routing, "iter_route_contexts") else routes
    )
    for context in contexts:
        if isinstance(getattr(context, "original_route", context), APIRoute):
            for method in sorted(context.methods or ()):
                yield method, context.path, access_of(context)


def _path_and_query(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def Scope(scope: str, *, browser: bool = False, public_if: str = "") -> DependsParam:
    """The marker of a route that needs a key granting ``scope`` (see the module docstring)."""
    access = KeyAccess(scope, browser=browser, public_if=public_if)
    marker: DependsParam = Security(access, scopes=[scope])
    return marker


def Public(reason: str) -> DependsParam:
    """The marker of a route anyone may call; ``reason`` documents why."""
    marker: DependsParam = Depends(PublicAccess(reason))
    return marker


def guard(request: Request) -> None:
    """App-wide: refuse a route that declares no access marker (deny by default)."""
    route = request.scope.get("route")
    if route is None or access_of(route) is None:
        raise HTTPException(403, "this route declares no access scope; it is closed")


def markers(routes: Sequence[BaseRoute]) -> dict[str, Access | None]:
    """``"METHOD path"`` → the route's marker, for every API route (tests, docs)."""
    return {f"{method} {path}": marker for method, path, marker in api_routes(routes)}
