"""The OAuth 2.0 token endpoint of the Salesforce simulator (``POST /services/oauth2/token``).

Two grants, as simple-salesforce sends them (a form-encoded body):

- ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` with ``assertion``: a JWT signed
  RS256 whose signature is checked against the certificate given for the connected app
  (``--jwt-certificate``), and whose claims are checked as Salesforce does: ``iss`` is the
  consumer key (``--consumer-key``), ``aud`` the login URL (``https://login.salesforce.com``,
  ``https://test.salesforce.com`` for a sandbox, a My Domain ``https://*.my.salesforce.com``, or
  the simulator's own URL), ``exp`` not passed and at most 3 minutes ahead, ``sub`` the known
  username (``--username``, case-insensitive);
- ``grant_type=client_credentials`` with the consumer key and secret (``--consumer-secret``) in
  an ``Authorization: Basic`` header or as ``client_id`` / ``client_secret``.

A granted token answers 200 ``{"access_token", "signature", "scope", "instance_url", "id",
"token_type": "Bearer", "issued_at"}`` (``instance_url`` is ``https://<Host of the request>``,
like the SOAP login's ``serverUrl``; the access token is a session of :mod:`.salesforce_sessions`).
A refusal answers 400 with Salesforce's body, e.g. ``{"error": "invalid_grant",
"error_description": "audience is invalid"}``. Logins are not API calls: they count as ``login``
/ ``login_failed`` events in ``/_sim/counters``, as SOAP logins do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import jwt
from fastapi import Request
from starlette.responses import Response

from adapters.simulators.salesforce_calls import SimulatorSettings, json_response
from adapters.simulators.salesforce_sessions import Sessions
from adapters.simulators.salesforce_state import SalesforceState
from adapters.simulators.salesforce_values import make_id

__all__ = ["JWT_BEARER", "OAuthError", "oauth_token"]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 180  # seconds: Salesforce takes an exp at most 3 minutes ahead
CLOCK_SKEW = 10  # seconds of leeway for the caller's clock and exp rounded to whole seconds
_JWS = jwt.PyJWS()


class OAuthError(Exception):
    """A refused token request: Salesforce's ``error`` and ``error_description``."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


def _form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {}
    return dict(parse_qsl(text, keep_blank_values=True))


def _same(given: str, expected: str | None) -> bool:
    return expected is not None and secrets.compare_digest(given.encode(), expected.encode())


def _claims(assertion: str) -> dict[str, Any]:
    """The assertion's claims, unverified; ``invalid assertion`` when it is not a JWT."""
    try:
        unverified = _JWS.decode_complete(assertion, options={"verify_signature": False})
        claims = json.loads(unverified["payload"])
    except (jwt.PyJWTError, ValueError):
        raise OAuthError("invalid_grant", "invalid assertion") from None
    if not isinstance(claims, dict):
        raise OAuthError("invalid_grant", "invalid assertion")
    return claims


def _audiences(settings: SimulatorSettings, host: str) -> set[str]:
    login = "https://test.salesforce.com" if settings.sandbox else "https://login.salesforce.com"
    return {login, f"https://{host}", f"http://{host}"}


def _audience_ok(aud: Any, settings: SimulatorSettings, host: str) -> bool:
    values = aud if isinstance(aud, list) else [aud]
    for value in values:
        if not isinstance(value, str):
            continue
        url = value.rstrip("/")
        my_domain = url.startswith("https://") and url.endswith(".my.salesforce.com")
        if url in _audiences(settings, host) or my_domain:
            return True
    return False


def _expiry(exp: Any) -> float:
    """``exp`` as seconds (simple-salesforce sends a string of digits)."""
    if isinstance(exp, bool):
        raise OAuthError("invalid_grant", "invalid assertion")
    if isinstance(exp, int | float):
        return float(exp)
    if isinstance(exp, str) and exp.strip().isdigit():
        return float(exp.strip())
    raise OAuthError("invalid_grant", "invalid assertion")


def check_jwt_bearer(
    form: Mapping[str, str], settings: SimulatorSettings, host: str, now: float
) -> str:
    """The username a JWT bearer assertion is granted for, or :class:`OAuthError`."""
    claims = _claims(form.get("assertion", ""))
    issuer = claims.get("iss")
    public_key = settings.jwt_public_key
    if not isinstance(issuer, str) or not _same(issuer, settings.consumer_key):
        raise OAuthError("invalid_client_id", "client identifier invalid")
    if public_key is None:
        raise OAuthError("invalid_grant", "invalid assertion")
    try:
        _JWS.decode(form["assertion"], public_key, algorithms=["RS256"])
    except jwt.PyJWTError:
        raise OAuthError("invalid_grant", "invalid assertion") from None
    if not _audience_ok(claims.get("aud"), settings, host):
        raise OAuthError("invalid_grant", "audience is invalid")
    expires = _expiry(claims.get("exp"))
    if expires <= now:
        raise OAuthError("invalid_grant", "expired authorization code")
    if expires > now + ASSERTION_LIFETIME + CLOCK_SKEW:
        raise OAuthError("invalid_grant", "invalid assertion")
    subject = claims.get("sub")
    known = settings.username
    if not isinstance(subject, str) or known is None:
        raise OAuthError("invalid_grant", "invalid assertion")
    if not _same(subject.strip().casefold(), known.casefold()):
        raise OAuthError("invalid_grant", "invalid assertion")
    return known


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        key, sep, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (key, secret) if sep else None


def check_client_credentials(
    form: Mapping[str, str], settings: SimulatorSettings, basic: tuple[str, str] | None
) -> str:
    """The user a client credentials grant runs as, or :class:`OAuthError`."""
    key, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
    if not _same(key, settings.consumer_key):
        raise OAuthError("invalid_client_id", "client identifier invalid")
    if settings.consumer_secret is None:
        raise OAuthError("invalid_grant", "no client credentials user enabled")
    if not _same(secret, settings.consumer_secret):
        raise OAuthError("invalid_client", "invalid client credentials")
    return settings.username or "integration@simulated.example"


def _granted(settings: SimulatorSettings, host: str, access_token: str, now: float) -> Response:
    issued_at = str(int(now * 1000))
    identity = f"https://{host}/id/{settings.org_id}/{make_id('005', 1)}"
    key = (settings.consumer_secret or settings.consumer_key or "").encode()
    digest = hmac.new(key, (identity + issued_at).encode(), hashlib.sha256).digest()
    return json_response(
        200,
        {
            "access_token": access_token,
            "signature": base64.b64encode(digest).decode(),
            "scope": "api",
            "instance_url": f"https://{host}",
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
        },
    )


async def oauth_token(request: Request) -> Response:
    """``POST /services/oauth2/token``: the JWT bearer and client credentials grants."""
    state: SalesforceState = request.app.state.salesforce
    settings: SimulatorSettings = request.app.state.settings
    sessions: Sessions = request.app.state.sessions
    now = sessions.now()
    form = _form(await request.body())
    host = request.url.netloc
    grant = form.get("grant_type", "")
    try:
        if grant == JWT_BEARER:
            check_jwt_bearer(form, settings, host, now)
        elif grant == "client_credentials":
            check_client_credentials(form, settings, _basic(request))
        else:
            raise OAuthError("unsupported_grant_type", "grant type not supported")
    except OAuthError as exc:
        state.meter.note("login_failed")
        return json_response(400, {"error": exc.error, "error_description": exc.description})
    state.meter.note("login")
    return _granted(settings, host, sessions.issue(), now)
