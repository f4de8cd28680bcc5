"""simple-salesforce against any instance URL, including a plain-HTTP local simulator, and the
logins that renew a session.

simple-salesforce always builds ``https://{host}:{port}/...`` URLs from ``instance_url`` (its
query_more and every ``sf.Account`` rebuild them), and every login posts to
``https://{domain}.salesforce.com``, so overriding ``base_url`` is not enough.
:class:`HttpRewriteSession` rewrites URL prefixes on the way out instead; it is shared by every
call path of the client (login, SFType, query_more, restful, bulk).

:func:`connect` uses an instance URL and a session id; :func:`connect_with_password` logs in with
username, password and security token (the partner SOAP ``login``; simple-salesforce logs in
again by itself when that session expires). :class:`SalesforceConnector` logs in with one of
:class:`PasswordLogin`, :class:`JwtBearerLogin` (OAuth 2.0 JWT bearer flow) or
:class:`ClientCredentialsLogin` (OAuth 2.0 client credentials flow) through simple-salesforce's
``SalesforceLogin`` and answers a client that does not renew by itself: the adapter renews it
(``SalesforceAccounts(login=...)``), once per refused call, and logs that. A refused login is
the adapter's ``SalesforceAuthError`` naming the variables to check, never a secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import jwt
import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed
from simple_salesforce.login import SalesforceLogin

from adapters.salesforce.errors import SalesforceAuthError, SalesforceUnavailable
from adapters.salesforce.modes import variable


class TimeoutSession(requests.Session):
    """A requests session with a default timeout (simple-salesforce passes none)."""

    def __init__(self, timeout: float | None = None) -> None:
        super().__init__()
        self.timeout = timeout

    def request(
        self, method: str, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send the request, with ``timeout`` unless the caller gave one."""
        if self.timeout is not None and len(args) < 7:  # args[6] would be the timeout
            kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


class HttpRewriteSession(TimeoutSession):
    """A session that sends ``https_prefix...`` URLs to ``http_prefix...`` instead.

    More pairs can follow in ``rewrites``; the first whose prefix matches wins. A prefix matches
    only up to a URL boundary, so ``https://h:80`` does not match ``https://h:8000/...``.
    """

    def __init__(
        self,
        https_prefix: str,
        http_prefix: str,
        *,
        timeout: float | None = None,
        rewrites: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(timeout)
        self._rewrites = ((https_prefix, http_prefix), *rewrites)

    def rewrite(self, url: str) -> str:
        """``url`` with the first matching prefix replaced (unchanged if none matches)."""
        for old, new in self._rewrites:
            if url.startswith(old) and url[len(old) : len(old) + 1] in ("", "/", "?", "#"):
                return new + url[len(old) :]
        return url

    def request(
        self, method: str, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Rewrite ``url`` when it targets a rewritten host, then send it."""
        if isinstance(url, bytes):
            url = url.decode()
        return super().request(method, self.rewrite(url), *args, **kwargs)


def connect(
    instance_url: str, session_id: str, *, version: str = "62.0", timeout: float = 30
) -> Salesforce:
    """A simple-salesforce client using ``session_id`` against ``instance_url``.

    For ``http://host:port`` (a local simulator) the client gets an :class:`HttpRewriteSession`;
    for real orgs (``https://...``) a plain :class:`TimeoutSession`. Every request uses
    ``timeout`` seconds. Close the client's session (``sf.session.close()``) when done.
    """
    parts = urlsplit(instance_url)
    session: TimeoutSession
    if parts.scheme == "http":
        https, http = f"https://{parts.netloc}", f"http://{parts.netloc}"
        session = HttpRewriteSession(https, http, timeout=timeout)
    else:
        session = TimeoutSession(timeout)
    sf: Salesforce = Salesforce(
        instance_url=instance_url, session_id=session_id, version=version, session=session
    )
    return sf


CREDENTIAL_VARIABLES = tuple(map(variable, ("USERNAME", "PASSWORD", "SECURITY_TOKEN")))


def login_session(domain: str, login_url: str | None, timeout: float) -> TimeoutSession:
    """The requests session logins at ``https://{domain}.salesforce.com`` go through.

    Real orgs (``login_url`` None) get a plain :class:`TimeoutSession`. ``login_url``
    (``http(s)://host:port``, e.g. the simulator) takes the place of that login host, and for
    ``http://`` the instance it answers on that host is reached over plain HTTP too.
    """
    if login_url is None:
        return TimeoutSession(timeout)
    parts = urlsplit(login_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ValueError(f"login_url must be http(s)://host[:port], not {login_url!r}")
    target = f"{parts.scheme}://{parts.netloc}"
    rewrites = [(f"https://{parts.netloc}", target)] if parts.scheme == "http" else []
    return HttpRewriteSession(
        f"https://{domain}.salesforce.com", target, timeout=timeout, rewrites=rewrites
    )


def connect_with_password(
    username: str,
    password: str,
    security_token: str,
    *,
    domain: str = "login",
    login_url: str | None = None,
    version: str = "62.0",
    timeout: float = 30,
) -> Salesforce:
    """A simple-salesforce client logged in with username, password and security token.

    Real orgs (``login_url`` None) log in at ``https://{domain}.salesforce.com`` (``login``,
    ``test`` for sandboxes, or a My Domain such as ``acme.my``). ``login_url``
    (``http://host:port``, e.g. the simulator) takes the place of that login host, and for
    ``http://`` the instance it answers on that host is reached over plain HTTP too. Pass
    ``security_token=""`` when the org trusts the caller's IP range. Every request uses
    ``timeout`` seconds; close the client's session (``sf.session.close()``) when done.

    Raises ``adapters.salesforce.client.SalesforceAuthError`` when the login is refused and
    ``SalesforceUnavailable`` when the login host cannot be reached; no simple_salesforce or
    requests exception escapes the login.
    """
    session = login_session(domain, login_url, timeout)
    try:
        sf: Salesforce = Salesforce(
            username=username,
            password=password,
            security_token=security_token,
            domain=domain,
            version=version,
            session=session,
        )
    except (SalesforceAuthenticationFailed, requests.RequestException) as exc:
        session.close()
        raise _login_error(exc, "password", CREDENTIAL_VARIABLES) from None
    return sf


@dataclass(frozen=True)
class PasswordLogin:
    """The partner SOAP ``login``: username, password and (unless the org trusts the caller's
    IP range) the security token."""

    username: str
    password: str = field(repr=False)
    security_token: str = field(default="", repr=False)
    flow: ClassVar[str] = "password"
    variables: ClassVar[tuple[str, ...]] = CREDENTIAL_VARIABLES

    def arguments(self) -> dict[str, Any]:
        """``SalesforceLogin`` keyword arguments."""
        return {
            "username": self.username,
            "password": self.password,
            "security_token": self.security_token,
        }


@dataclass(frozen=True)
class JwtBearerLogin:
    """The OAuth 2.0 JWT bearer flow: the connected app's consumer key, the user it acts as,
    and the PEM private key whose certificate the connected app holds (it signs the RS256
    assertion; ``aud`` is ``https://{domain}.salesforce.com``)."""

    consumer_key: str
    username: str
    private_key: str = field(repr=False)
    flow: ClassVar[str] = "JWT bearer"
    variables: ClassVar[tuple[str, ...]] = tuple(
        map(variable, ("CONSUMER_KEY", "PRIVATE_KEY_FILE", "USERNAME", "DOMAIN"))
    )

    def arguments(self) -> dict[str, Any]:
        """``SalesforceLogin`` keyword arguments."""
        return {
            "username": self.username,
            "consumer_key": self.consumer_key,
            "privatekey": self.private_key,
        }


@dataclass(frozen=True)
class ClientCredentialsLogin:
    """The OAuth 2.0 client credentials flow: the connected app's consumer key and secret (the
    app runs as the user its policy names). Salesforce takes it only at a My Domain."""

    consumer_key: str
    consumer_secret: str = field(repr=False)
    flow: ClassVar[str] = "client credentials"
    variables: ClassVar[tuple[str, ...]] = tuple(
        map(variable, ("CONSUMER_KEY", "CONSUMER_SECRET", "DOMAIN"))
    )

    def arguments(self) -> dict[str, Any]:
        """``SalesforceLogin`` keyword arguments."""
        return {"consumer_key": self.consumer_key, "consumer_secret": self.consumer_secret}


Credentials = PasswordLogin | JwtBearerLogin | ClientCredentialsLogin

# simple-salesforce refuses the client credentials flow at login/test (so does Salesforce); with
# a login URL the domain only names the host the rewriting session replaces, so any My Domain
# shaped name does.
_LOGIN_URL_MY_DOMAIN = "login-url.my"


class SalesforceConnector:
    """Logs in to Salesforce with one flow, at start and again whenever asked.

    Every login and every client it answers share one requests session (:func:`login_session`),
    closed by :meth:`close`. Each :meth:`connect` is a new login through simple-salesforce's
    ``SalesforceLogin``; its client does not log in again by itself, so whoever holds it
    decides when to renew (``SalesforceAccounts`` does on 401 INVALID_SESSION_ID).
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        domain: str = "login",
        login_url: str | None = None,
        version: str = "62.0",
        timeout: float = 30,
    ) -> None:
        my_domain = isinstance(credentials, ClientCredentialsLogin) and login_url is not None
        if my_domain and domain.lower() in ("login", "test"):
            domain = _LOGIN_URL_MY_DOMAIN
        self.credentials = credentials
        self.domain = domain
        self.version = version
        self.session = login_session(domain, login_url, timeout)

    @property
    def flow(self) -> str:
        """The flow's name for messages: ``password``, ``JWT bearer`` or ``client credentials``."""
        return self.credentials.flow

    def connect(self) -> Salesforce:
        """A new login; a simple-salesforce client on its session id.

        Raises ``SalesforceAuthError`` when Salesforce refuses the login (or the private key
        cannot sign the assertion) and ``SalesforceUnavailable`` when the login host cannot be
        reached; no simple_salesforce, requests or jwt exception escapes.
        """
        credentials = self.credentials
        try:
            session_id, instance = SalesforceLogin(
                session=self.session,
                domain=self.domain,
                sf_version=self.version,
                **credentials.arguments(),
            )
        except (SalesforceAuthenticationFailed, requests.RequestException) as exc:
            raise _login_error(exc, credentials.flow, credentials.variables) from None
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            if not isinstance(credentials, JwtBearerLogin):
                raise
            raise SalesforceAuthError(
                f"cannot sign the JWT bearer assertion with the private key "
                f"({type(exc).__name__}); check {variable('PRIVATE_KEY_FILE')} holds the "
                "connected app's RSA key"
            ) from None
        sf: Salesforce = Salesforce(
            instance=instance, session_id=session_id, version=self.version, session=self.session
        )
        return sf

    def close(self) -> None:
        """Close the requests session every login and client used."""
        self.session.close()


def _login_error(
    exc: SalesforceAuthenticationFailed | requests.RequestException,
    flow: str,
    variables: Sequence[str],
) -> Exception:
    """The adapter's error for a failed login, one line, without simple-salesforce's
    traceback."""
    if isinstance(exc, requests.RequestException):
        return SalesforceUnavailable(f"Salesforce login failed: {type(exc).__name__}: {exc}")
    code = exc.code if isinstance(exc.code, str) else ""
    status = exc.code if isinstance(exc.code, int) else None
    reason = f"{code}: {exc.auth_message}" if code else (exc.auth_message or "no reason given")
    reason = " ".join(str(reason).split())[:300]
    refused = "the login" if flow == "password" else f"the {flow} login"
    message = (
        f"Salesforce refused {refused} ({reason}); check "
        f"{', '.join(variables[:-1])} and {variables[-1]}"
    )
    if flow == "JWT bearer" and "expired" in reason:
        message += ", and this machine's clock (the assertion expires 3 minutes after it)"
    return SalesforceAuthError(message, status=status, code=code)
