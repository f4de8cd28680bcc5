"""``IntercomCompanies``: the Intercom REST adapter (companies and data attributes) on raw httpx.

Every call sends ``Authorization: Bearer``, ``Accept: application/json`` and an explicit
``Intercom-Version`` (reference B9: omitting it silently uses the app's configured version).
Answers are turned into ledger facts (:class:`~ledger.facts.CompanyChange`,
:class:`~ledger.facts.CompanyRemoval`) and catalog entries
(:class:`~ledger.catalog.IntercomAttribute`).

Retries: a 429 waits for ``Retry-After`` (else until ``X-RateLimit-Reset``), capped; a 5xx or a
connection/timeout error waits with exponential backoff and full jitter. All calls are safe to
repeat: reads are reads, and ``POST /companies`` is an upsert keyed by ``company_id``. The retry
is a small loop rather than ``tenacity`` because the wait depends on the *response* (Retry-After
vs backoff) and the last response decides which error is raised; a loop says that in a dozen
typed lines and takes the injected ``sleep`` directly.

Errors are translated here; no httpx exception escapes::

    IntercomError
    ├── IntercomAuthError      401: the access token was refused
    ├── IntercomRateLimited    429 still answered after the retries
    ├── IntercomUnavailable    5xx, timeout or connection failure after the retries
    └── IntercomRejected       any other 4xx (e.g. 400 undefined custom attribute); permanent
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx

from adapters.intercom.companies import CUSTOM_PREFIX, STANDARD_ATTRIBUTES, company_to_change
from adapters.intercom.errors import (
    IntercomAuthError,
    IntercomError,
    IntercomRateLimited,
    IntercomRejected,
    IntercomUnavailable,
)
from ledger.catalog import IntercomAttribute
from ledger.facts import CompanyChange, CompanyRemoval

__all__ = [
    "STANDARD_ATTRIBUTES",
    "IntercomAuthError",
    "IntercomCompanies",
    "IntercomError",
    "IntercomRateLimited",
    "IntercomRejected",
    "IntercomUnavailable",
    "RateLimit",
    "company_to_change",
]

JSON = dict[str, Any]

MAX_RATE_LIMIT_WAIT = 60.0
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0

log = logging.getLogger("syncledger.intercom")


@dataclass(frozen=True)
class RateLimit:
    """The ``X-RateLimit-*`` headers of the latest response (``reset`` in Unix seconds)."""

    limit: int | None = None
    remaining: int | None = None
    reset: int | None = None


def _header_int(headers: httpx.Headers, name: str) -> int | None:
    try:
        return int(float(headers[name]))
    except (KeyError, ValueError):
        return None


def _first_error(response: httpx.Response) -> tuple[str, str, str | None]:
    """``(code, message, request_id)`` from an ``error.list`` body, tolerating anything."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:200], None
    if not isinstance(body, dict):
        return "", str(body)[:200], None
    request_id = body.get("request_id")
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        return str(first.get("code", "")), str(first.get("message", "")), request_id
    return "", str(body)[:200], request_id


def _json(response: httpx.Response) -> JSON:
    """The response's JSON object; anything else is a broken answer, not a crash."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise IntercomError(
            f"{response.request.method} {response.request.url.path}: Intercom answered "
            f"{response.status_code} without a JSON object",
            status=response.status_code,
        )
    return body


class IntercomCompanies:
    """Intercom companies and company data attributes over HTTP.

    ``transport`` replaces the network (``httpx.MockTransport`` in tests); ``sleep``, ``now`` and
    ``rng`` make waiting, the clock and the backoff jitter injectable. Use as a context manager,
    or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        intercom_version: str = "2.14",
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        max_retries: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        rate_limit_reserve: int = 10,
    ) -> None:
        self.max_retries = max_retries
        self.rate_limit = RateLimit()
        #: Calls left in the window at which requests wait for the reset (see ``_pace``).
        self.rate_limit_reserve = rate_limit_reserve
        self._sleep = sleep
        self._now = now
        self._rng = rng or random.Random()
        self._client = httpx.Client(
            base_url=base_url,
            transport=transport,
            timeout=timeout,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "Intercom-Version": intercom_version,
            },
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> IntercomCompanies:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the port ---------------------------------------------------------------------------------

    def lookup(self, company_ids: Sequence[str]) -> list[CompanyChange]:
        """Snapshots of the companies with these ``company_id`` values; unknown ones are omitted."""
        found: list[CompanyChange] = []
        for company_id in company_ids:
            response = self._call(
                "GET", "/companies", params={"company_id": company_id}, missing_ok=True
            )
            if response.status_code == 404:
                continue
            body = _json(response)
            # GET /companies may answer a list (B6); with company_id it is one company.
            items = body.get("data", []) if body.get("type") == "list" else [body]
            found.extend(company_to_change(item, "snapshot", "lookup") for item in items)
        return found

    def read(self, intercom_ids: Sequence[str]) -> list[CompanyChange | CompanyRemoval]:
        """The current state of each company by Intercom id; a removal for each one gone."""
        facts: list[CompanyChange | CompanyRemoval] = []
        for intercom_id in intercom_ids:
            response = self._call(
                "GET", f"/companies/{quote(intercom_id, safe='')}", missing_ok=True
            )
            if response.status_code == 404:
                facts.append(CompanyRemoval(intercom_id=intercom_id, source="read"))
            else:
                facts.append(company_to_change(_json(response), "snapshot", "read"))
        return facts

    def write(self, intercom_id: str, company_id: str, values: Mapping[str, Any]) -> JSON:
        """Create or update the company ``company_id`` with ``values`` keyed by full name.

        ``intercom_id`` identifies the record in the ledger; Intercom's upsert is keyed by
        ``company_id``. Returns the api_call record ``{method, path, status, request_id}``.
        """
        body: JSON = {"company_id": company_id}
        custom: JSON = {}
        for name, value in values.items():
            if name.startswith(CUSTOM_PREFIX):
                custom[name.removeprefix(CUSTOM_PREFIX)] = value
            elif name == "plan.name":  # written as the plan's name (B6 writable fields)
                body["plan"] = value
            else:
                body[name] = value
        if custom:
            body["custom_attributes"] = custom
        response = self._call("POST", "/companies", json=body)
        return {
            "method": "POST",
            "path": "/companies",
            "status": response.status_code,
            "request_id": response.headers.get("X-Request-Id"),
        }

    def catalog(self) -> list[IntercomAttribute]:
        """Every company data attribute, standard and custom."""
        body = _json(self._call("GET", "/data_attributes", params={"model": "company"}))
        return [IntercomAttribute.from_data_attribute(item) for item in body.get("data", [])]

    def scroll_all(self) -> Iterator[CompanyChange]:
        """Every company as a snapshot, through the scroll API (ends at an empty page)."""
        scroll_param: str | None = None
        while True:
            params = {"scroll_param": scroll_param} if scroll_param else None
            body = _json(self._call("GET", "/companies/scroll", params=params))
            data = body.get("data") or []
            if not data:
                return
            for item in data:
                yield company_to_change(item, "snapshot", "scroll")
            scroll_param = body.get("scroll_param")

    # -- HTTP, retries and error translation ------------------------------------------------------

    def _call(
        self,
        method: Literal["GET", "POST"],
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: JSON | None = None,
        missing_ok: bool = False,
    ) -> httpx.Response:
        """Send with retries; return a 2xx response, or with ``missing_ok`` a 404
        ``company_not_found`` (any other 404, such as a wrong path, is still an error)."""
        attempt = 0
        while True:
            self._pace()
            try:
                response = self._client.request(method, path, params=params, json=json)
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise IntercomUnavailable(
                        f"Intercom could not be reached ({type(exc).__name__}: {exc}) after "
                        f"{attempt + 1} attempts; check the Intercom base URL and the network"
                    ) from None
                delay = self._backoff(attempt)
                _retrying(method, path, f"{type(exc).__name__}: {exc}", attempt, delay)
                self._sleep(delay)
                attempt += 1
                continue
            self._note_rate_limit(response.headers)
            status = response.status_code
            if status < 400:
                return response
            code, message, request_id = _first_error(response)
            if missing_ok and status == 404 and code == "company_not_found":
                return response
            retryable = status == 429 or status >= 500
            if retryable and attempt < self.max_retries:
                wait = self._rate_limit_wait(response) if status == 429 else None
                delay = wait if wait is not None else self._backoff(attempt)
                _retrying(method, path, f"{status} {code or 'error'}", attempt, delay)
                self._sleep(delay)
                attempt += 1
                continue
            raise self._translate(method, path, status, code, message, request_id, attempt + 1)

    def _translate(
        self,
        method: str,
        path: str,
        status: int,
        code: str,
        message: str,
        request_id: str | None,
        attempts: int,
    ) -> IntercomError:
        where = f"{method} {path}"
        detail = f"{code}: {message}" if code else message
        if status == 401:
            return IntercomAuthError(
                "Intercom refused the access token; check SYNCLEDGER_INTERCOM_TOKEN",
                status=status,
                code=code,
            )
        if status == 429:
            return IntercomRateLimited(
                f"{where}: Intercom is still rate limiting after {attempts} attempts ({detail}); "
                "try again later or lower the call rate",
                status=status,
                code=code,
            )
        if status >= 500:
            return IntercomUnavailable(
                f"{where}: Intercom answered {status} after {attempts} attempts ({detail}); "
                "try again later",
                status=status,
                code=code,
            )
        suffix = f" (request {request_id})" if request_id else ""
        return IntercomRejected(
            f"{where}: Intercom rejected the request with {status} {detail}{suffix}",
            status=status,
            code=code,
        )

    def _note_rate_limit(self, headers: httpx.Headers) -> None:
        if "X-RateLimit-Limit" in headers or "X-RateLimit-Remaining" in headers:
            self.rate_limit = RateLimit(
                limit=_header_int(headers, "X-RateLimit-Limit"),
                remaining=_header_int(headers, "X-RateLimit-Remaining"),
                reset=_header_int(headers, "X-RateLimit-Reset"),
            )

    def _pace(self) -> None:
        """Near the end of the rate-limit window (``X-RateLimit-Remaining`` at or below
        ``rate_limit_reserve``, a reset ahead), wait for the reset instead of spending the
        calls other writes in flight need: Intercom's limit is per app, shared by all of them."""
        limit = self.rate_limit
        if limit.remaining is None or limit.reset is None:
            return
        if limit.remaining <= self.rate_limit_reserve and limit.reset > self._now():
            delay = min(limit.reset - self._now(), MAX_RATE_LIMIT_WAIT)
            log.warning(
                "Intercom rate limit: %d call(s) left in the window; waiting %.1f s for the reset",
                limit.remaining,
                delay,
                extra={"system": "intercom", "remaining": limit.remaining},
            )
            self._sleep(delay)

    def _rate_limit_wait(self, response: httpx.Response) -> float | None:
        """Seconds to wait after a 429: ``Retry-After``, else until the reset; capped."""
        retry_after = _header_int(response.headers, "Retry-After")
        if retry_after is not None:
            return float(min(max(retry_after, 0), MAX_RATE_LIMIT_WAIT))
        reset = _header_int(response.headers, "X-RateLimit-Reset")
        if reset is not None and reset > self._now():
            return min(reset - self._now(), MAX_RATE_LIMIT_WAIT)
        return None

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return self._rng.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))


def _retrying(method: str, path: str, reason: str, attempt: int, delay: float) -> None:
    """One WARNING per retry, with the reason (never a token: paths and codes only)."""
    log.warning(
        "Intercom %s %s: %s; retry %d in %.1f s",
        method,
        path,
        reason,
        attempt + 1,
        delay,
        extra={"system": "intercom", "retry": attempt + 1, "reason": reason},
    )
