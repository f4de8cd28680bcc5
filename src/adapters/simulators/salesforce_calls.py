"""What a call to the Salesforce simulator is: the app's settings, the call a resource handler
gets, the route table the handlers register in, and Salesforce's JSON answers.

:mod:`.salesforce_resources` registers one handler per (method, path) with :func:`route`;
:mod:`.salesforce` matches ``ROUTES`` in order after authentication and API accounting.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from starlette.responses import Response

from adapters.simulators.salesforce_state import SalesforceState
from adapters.simulators.salesforce_values import ApiError

__all__ = [
    "ROUTES",
    "Call",
    "Handler",
    "Route",
    "SimulatorSettings",
    "error_response",
    "json_response",
    "route",
]


@dataclass
class SimulatorSettings:
    """Per-app behaviour: credentials, org identity, limits and fault injection.

    ``username`` None refuses every SOAP login; otherwise a login must send ``username`` and
    ``password + security_token`` (see :mod:`.salesforce_login`). ``consumer_key`` names the one
    connected app of the OAuth token endpoint (see :mod:`.salesforce_oauth`): the JWT bearer flow
    needs ``jwt_public_key`` (from its certificate) and ``username`` as the subject, the client
    credentials flow ``consumer_secret``. ``session_timeout`` seconds idle end a session (see
    :mod:`.salesforce_sessions`); None: sessions never end.
    """

    token: str
    api_version: str
    sandbox: bool
    org_id: str
    daily_limit: int
    fault_rate: float
    rng: random.Random = field(default_factory=random.Random)
    username: str | None = None
    password: str = field(default="", repr=False)
    security_token: str = field(default="", repr=False)
    consumer_key: str | None = None
    consumer_secret: str | None = field(default=None, repr=False)
    jwt_public_key: Any = None  # an RSA public key of cryptography
    session_timeout: float | None = None


@dataclass
class Call:
    """One authenticated, counted API call on its way to a handler."""

    request: Request
    version: str
    args: tuple[str, ...]
    body: bytes
    state: SalesforceState
    settings: SimulatorSettings

    def json(self) -> Any:
        """The request body as JSON, or JSON_PARSER_ERROR."""
        try:
            return json.loads(self.body, parse_constant=_reject_constant)
        except ValueError as exc:
            msg = f"Unexpected character in request body: {exc}"
            raise ApiError(400, "JSON_PARSER_ERROR", msg) from None

    def param(self, name: str) -> str | None:
        """A query-string parameter (URL-decoded), or None."""
        return self.request.query_params.get(name)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"unexpected token {name}")


Handler = Callable[[Call], Response]


@dataclass(frozen=True)
class Route:
    """A resource: method, path pattern (after ``vNN.N/``), counter kind, whether it writes."""

    method: str
    pattern: re.Pattern[str]
    kind: str
    write: bool
    handler: Handler


ROUTES: list[Route] = []


def route(
    method: str, pattern: str, kind: str, *, write: bool = False
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(method, re.compile(pattern, re.I), kind, write, handler))
        return handler

    return register


def json_response(status: int, payload: Any) -> Response:
    """``payload`` as compact JSON with Salesforce's content type."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json;charset=UTF-8")


def error_response(status: int, code: str, message: str) -> Response:
    """A single-resource error: the JSON list ``[{"message", "errorCode"}]``."""
    return json_response(status, [{"message": message, "errorCode": code}])
