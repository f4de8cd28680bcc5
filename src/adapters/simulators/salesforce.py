"""A faithful in-memory Salesforce REST API (Account + Organization) for demos, tests, benchmarks.

Serve :func:`create_salesforce_app` with uvicorn (``adapters.simulators.server.serving``) and reach
it from simple-salesforce through ``adapters.salesforce.login.connect(url, token)``. Everything
under ``/services/data/vNN.N/`` (any version) needs ``Authorization: Bearer <token>``, counts one
API call against a daily limit and answers with ``Sforce-Limit-Info: api-usage=U/T``:

- ``GET query?q=``, ``queryAll?q=`` (SOQL subset, see :mod:`.soql`), ``query/{locator}-{offset}``
  (batches of 2000, or ``Sforce-Query-Options: batchSize=N`` with 200 <= N <= 2000);
- ``GET sobjects``, ``sobjects/{Account|Organization}[/describe]``, ``GET|PATCH|DELETE
  sobjects/Account/{id}``, ``POST sobjects/Account``, ``GET|PATCH sobjects/Account/{ExtId}/{v}``;
- ``GET sobjects/Account/updated/?start=&end=`` and ``deleted/?start=&end=``;
- ``POST|PATCH|DELETE composite/sobjects``, ``GET|POST composite/sobjects/Account``;
- ``GET limits``.

``POST /services/Soap/u/NN.N`` is the partner SOAP ``login`` (see :mod:`.salesforce_login`):
with ``username``/``password``/``security_token`` configured it answers a session id to
``password + security_token``, otherwise INVALID_LOGIN. ``POST /services/oauth2/token`` is the
OAuth 2.0 token endpoint (see :mod:`.salesforce_oauth`): the JWT bearer flow (``consumer_key``
+ ``jwt_certificate``) and the client credentials flow (``consumer_key`` +
``consumer_secret``). Logins need no auth and are not counted (``login`` / ``login_failed``
events in the counters). Sessions (see :mod:`.salesforce_sessions`): without
``session_timeout`` every login answers ``token`` and it never expires; with it, every login is
a new session and one idle longer than the timeout answers 401 INVALID_SESSION_ID.

``/_sim/counters`` (GET), ``/_sim/reset_counters`` and ``/_sim/faults`` (POST ``{"rate": F}``)
need no auth and are not counted. Counter kinds: query, query_all, query_more, describe,
describe_global, sobject_info, sobject_get, sobject_create, sobject_patch, sobject_delete,
sobject_upsert, updated, deleted, composite, composite_get, limits, resources, not_found.

Known, deliberate differences from Salesforce:

- The daily limit resets at UTC midnight (not a rolling 24 hours); refused calls do not count.
- Only Account is writable; Organization is one read-only row. SOQL is a subset (no
  relationships, date literals like TODAY, INCLUDES/EXCLUDES, GROUP BY or semi-joins).
- getUpdated/getDeleted cover ``[start, min(end, now))`` with both ends cut to the minute, and
  ``earliestDateAvailable`` starts 15 days before the state was created.
- Query results are snapshots taken by the first call; at most 10 cursors stay open.
- Collections fail as a whole (400) for deserialisation errors (unknown field, wrong JSON type),
  per record otherwise; an injected lock fault on a collection write is per record (200).
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from starlette.responses import Response

from adapters.simulators.salesforce_login import soap_login
from adapters.simulators.salesforce_oauth import oauth_token
from adapters.simulators.salesforce_resources import (
    ROUTES,
    Call,
    Route,
    SimulatorSettings,
    error_response,
    json_response,
)
from adapters.simulators.salesforce_sessions import Sessions
from adapters.simulators.salesforce_state import SalesforceState, load_data
from adapters.simulators.salesforce_values import ApiError, normalize_id

__all__ = ["ApiError", "SalesforceState", "SimulatorSettings", "create_salesforce_app", "load_data"]

_PREFIX = re.compile(r"/services/data/v(\d+\.\d+)(?:/(.*))?")


# -- dispatch ------------------------------------------------------------------------------------


def _resolve(method: str, rest: str) -> tuple[Route | None, tuple[str, ...], list[str]]:
    allowed: list[str] = []
    for route in ROUTES:
        m = route.pattern.fullmatch(rest)
        if m is None:
            continue
        if route.method == method:
            return route, tuple(unquote(g) for g in m.groups()), []
        allowed.append(route.method)
    return None, (), allowed


def _fault(settings: SimulatorSettings, route: Route, body: bytes) -> Response | None:
    """A transient failure for a ``fault_rate`` share of calls; nothing is changed by it."""
    if settings.fault_rate <= 0 or settings.rng.random() >= settings.fault_rate:
        return None
    if not (route.write and settings.rng.random() < 0.5):
        return error_response(503, "SERVER_UNAVAILABLE", "Service Unavailable")
    lock = "unable to obtain exclusive access to this record or 1 records"
    if route.kind == "composite" and route.method != "DELETE":
        try:
            count = len(json.loads(body)["records"])
        except (ValueError, KeyError, TypeError):
            count = 1
        error = {"statusCode": "UNABLE_TO_LOCK_ROW", "message": lock, "fields": []}
        return json_response(200, [{"success": False, "errors": [error]}] * count)
    return json_response(400, [{"message": lock, "errorCode": "UNABLE_TO_LOCK_ROW", "fields": []}])


def _authorized(request: Request, sessions: Sessions) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    ok_scheme = scheme.lower() in ("bearer", "oauth")  # Salesforce accepts both
    return ok_scheme and sessions.use(token.strip())


async def _services_data(request: Request) -> Response:
    """Everything under /services/data: auth, daily limit, routing, faults, Sforce-Limit-Info."""
    state: SalesforceState = request.app.state.salesforce
    settings: SimulatorSettings = request.app.state.settings
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    if path.rstrip("/") == "/services/data":
        versions = [f"{v}.0" for v in range(31, int(float(settings.api_version)) + 1)]
        return json_response(
            200,
            [{"label": "Simulated", "url": f"/services/data/v{v}", "version": v} for v in versions],
        )
    m = _PREFIX.fullmatch(path)
    if m is None:
        return error_response(404, "NOT_FOUND", "The requested resource does not exist")
    version, rest = m.group(1), (m.group(2) or "").strip("/")
    if not _authorized(request, request.app.state.sessions):
        response = error_response(401, "INVALID_SESSION_ID", "Session expired or invalid")
        response.headers["Sforce-Limit-Info"] = (
            f"api-usage={state.meter.usage()}/{settings.daily_limit}"
        )
        return response
    route, args, allowed = _resolve(request.method, rest)
    used = state.meter.record_call(route.kind if route else "not_found", settings.daily_limit)
    if used is None:
        response = error_response(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        used = settings.daily_limit
    elif route is None and allowed:
        msg = f"HTTP Method '{request.method}' not allowed. Allowed are {','.join(allowed)}"
        response = error_response(405, "METHOD_NOT_ALLOWED", msg)
    elif route is None:
        response = error_response(404, "NOT_FOUND", "The requested resource does not exist")
    else:
        body = await request.body()
        fault = _fault(settings, route, body)
        if fault is not None:
            state.meter.note("faults")
            response = fault
        else:
            try:
                response = route.handler(Call(request, version, args, body, state, settings))
            except ApiError as exc:
                response = json_response(exc.status, exc.body())
    response.headers["Sforce-Limit-Info"] = f"api-usage={used}/{settings.daily_limit}"
    return response


def create_salesforce_app(
    state: SalesforceState | None = None,
    *,
    token: str = "sim-token",
    api_version: str = "62.0",
    sandbox: bool = False,
    org_id: str = "00D000000000001EAA",
    daily_limit: int = 100_000,
    fault_rate: float = 0.0,
    seed: int | None = None,
    username: str | None = None,
    password: str | None = None,
    security_token: str = "",
    consumer_key: str | None = None,
    consumer_secret: str | None = None,
    jwt_certificate: bytes | str | None = None,
    session_timeout: float | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """An ASGI app simulating one Salesforce org over ``state`` (a fresh one if None).

    ``fault_rate`` of authenticated calls fail transiently (503 SERVER_UNAVAILABLE, or for writes
    UNABLE_TO_LOCK_ROW), drawn from a ``seed``-ed generator; ``daily_limit`` caps API calls/day.
    With ``username`` and ``password`` set, the SOAP login accepts ``username`` with
    ``password + security_token``; without, it refuses all. ``consumer_key`` names the connected
    app of the OAuth token endpoint: with ``jwt_certificate`` (PEM) it grants JWT bearer
    assertions for ``username`` signed by that certificate's key (``username`` then needs no
    password), with ``consumer_secret`` client credentials. ``session_timeout`` seconds idle end
    a session, measured on ``clock`` (seconds since the epoch; also the clock JWT ``exp`` is
    checked on).
    """
    org = normalize_id(org_id, "00D")
    if org is None:
        raise ValueError(f"org_id must be a 15- or 18-character id starting 00D, not {org_id!r}")
    if username is not None and not password and jwt_certificate is None:
        raise ValueError("a simulator username needs a password (or a JWT certificate)")
    if (consumer_secret is not None or jwt_certificate is not None) and not consumer_key:
        raise ValueError("a consumer secret or a JWT certificate needs a consumer key")
    if jwt_certificate is not None and username is None:
        raise ValueError("a JWT certificate needs a username (the assertions' subject)")
    app = FastAPI(title="Simulated Salesforce", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.salesforce = state if state is not None else SalesforceState()
    app.state.settings = SimulatorSettings(
        token,
        api_version,
        sandbox,
        org,
        daily_limit,
        fault_rate,
        random.Random(seed),
        username=username,
        password=password or "",
        security_token=security_token,
        consumer_key=consumer_key,
        consumer_secret=consumer_secret,
        jwt_public_key=None if jwt_certificate is None else certificate_key(jwt_certificate),
        session_timeout=session_timeout,
    )
    app.state.sessions = Sessions(app.state.settings, clock)

    _add_sim_routes(app)
    app.add_route(
        "/services/Soap/u/{version}", soap_login, methods=["POST"], include_in_schema=False
    )
    app.add_route("/services/oauth2/token", oauth_token, methods=["POST"], include_in_schema=False)
    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
    app.add_route(
        "/services/data{rest:path}", _services_data, methods=methods, include_in_schema=False
    )
    return app


def _add_sim_routes(app: FastAPI) -> None:
    """The test hooks under ``/_sim/``: counters, resetting them, the fault rate."""

    @app.get("/_sim/counters")
    def counters() -> dict[str, int]:
        counts: dict[str, int] = app.state.salesforce.counters
        return counts

    @app.post("/_sim/reset_counters")
    def reset_counters() -> dict[str, int]:
        app.state.salesforce.reset_counters()
        counts: dict[str, int] = app.state.salesforce.counters
        return counts

    @app.post("/_sim/faults")
    def set_faults(body: dict[str, float]) -> dict[str, float]:
        app.state.settings.fault_rate = float(body.get("rate", 0.0))
        return {"rate": app.state.settings.fault_rate}


def read_bytes(path: str) -> bytes:
    """The contents of ``path``; ``OSError`` naming the file if it cannot be read."""
    with open(path, "rb") as file:
        return file.read()


def certificate_key(pem: bytes | str) -> Any:
    """The RSA public key of a PEM certificate; ``ValueError`` (one line) if it is none."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = x509.load_pem_x509_certificate(data).public_key()
    except ValueError:
        raise ValueError("the JWT certificate is not a PEM X.509 certificate") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the JWT certificate's key is not RSA (the JWT bearer flow uses RS256)")
    return key


def main(argv: list[str] | None = None) -> None:
    """Serve a simulated org: ``python -m adapters.simulators.salesforce --data seed.json``."""
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8999)
    parser.add_argument("--data", help='JSON file shaped {"accounts": [{field: value}]}')
    parser.add_argument("--token", default="sim-token")
    parser.add_argument("--daily-limit", type=int, default=100_000)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--sandbox", action="store_true")
    parser.add_argument("--username", help="accept SOAP logins (simple-salesforce password auth)")
    parser.add_argument("--password", help="the password for --username")
    parser.add_argument(
        "--security-token", default="", help="appended to --password by the client at login"
    )
    parser.add_argument("--consumer-key", help="the connected app of the OAuth token endpoint")
    parser.add_argument("--consumer-secret", help="accept client credentials logins")
    parser.add_argument(
        "--jwt-certificate", help="PEM certificate: accept JWT bearer logins for --username"
    )
    parser.add_argument(
        "--session-timeout", type=float, help="seconds idle after which a session expires"
    )
    args = parser.parse_args(argv)
    if args.username is not None and not args.password and args.jwt_certificate is None:
        parser.error("--username needs --password")
    state = load_data(args.data) if args.data else SalesforceState()
    try:
        certificate = None if args.jwt_certificate is None else read_bytes(args.jwt_certificate)
        app = create_salesforce_app(
            state,
            token=args.token,
            sandbox=args.sandbox,
            daily_limit=args.daily_limit,
            fault_rate=args.fault_rate,
            seed=args.seed,
            username=args.username,
            password=args.password,
            security_token=args.security_token,
            consumer_key=args.consumer_key,
            consumer_secret=args.consumer_secret,
            jwt_certificate=certificate,
            session_timeout=args.session_timeout,
        )
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    print(f"Simulated Salesforce on http://{args.host}:{args.port} (token {args.token!r})")
    if args.username is not None:
        print(f"SOAP login enabled for {args.username!r} (password + security token)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
