"""Sending one Salesforce API request for :class:`~adapters.salesforce.client.SalesforceAccounts`:
retries with backoff, one session renewal on 401 INVALID_SESSION_ID, errors translated into
the adapter's own (:mod:`adapters.salesforce.errors`), and the API usage each answer reports."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

import requests
from simple_salesforce import exceptions as sf_exceptions

from adapters.salesforce.errors import (
    SalesforceAuthError,
    SalesforceError,
    SalesforceLimitExceeded,
    SalesforceRejected,
    SalesforceUnavailable,
)
from adapters.salesforce.login import SalesforceConnector
from adapters.salesforce.records import JSON, Usage, error_detail

TRANSIENT_STATUS = frozenset({500, 502, 503, 504})
RETRYABLE_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_RUNNING_TOO_LONG"}
)
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0


class SalesforceCalls:
    """The request machinery the adapter is built on (its attributes are the adapter's)."""

    max_retries: int
    usage: Usage | None
    _sf: Any
    _login: SalesforceConnector | None
    _sleep: Callable[[float], None]
    _rng: random.Random

    def _call(self, method: str, path: str, calls: list[JSON], send: Callable[[], Any]) -> Any:
        """Run ``send`` (one API request) with retries; record it in ``calls``.

        A refused session is renewed once (when there is a login) and ``send`` runs again at
        once; that is not a retry and does not count against ``max_retries``.
        """
        attempt = 0
        renewed = False
        while True:
            try:
                answer = send()
            except requests.RequestException as exc:
                if attempt >= self.max_retries:
                    calls.append({"method": method, "path": path, "attempts": attempt + 1})
                    raise SalesforceUnavailable(
                        f"{method} {path}: Salesforce could not be reached ({type(exc).__name__}) "
                        f"after {attempt + 1} attempts; check the instance URL and the network"
                    ) from None
            except sf_exceptions.SalesforceError as exc:
                status = int(exc.status)
                code, message = error_detail(exc.content)
                expired = status == 401 and code == "INVALID_SESSION_ID"
                if expired and self._login is not None and not renewed:
                    self._renew(method, path)
                    renewed = True
                    continue
                transient = status in TRANSIENT_STATUS or code in RETRYABLE_CODES
                if not transient or attempt >= self.max_retries:
                    calls.append(
                        {"method": method, "path": path, "attempts": attempt + 1, "status": status}
                    )
                    raise self._translate(
                        method, path, status, code, message, attempt + 1
                    ) from None
            except ValueError as exc:  # an answer that is not JSON
                raise SalesforceError(f"{method} {path}: unreadable answer ({exc})") from None
            else:
                self._note_usage(self._sf)
                calls.append({"method": method, "path": path, "attempts": attempt + 1})
                return answer
            self._sleep(self._backoff(attempt))
            attempt += 1

    def _translate(
        self, method: str, path: str, status: int, code: str, message: str, attempts: int
    ) -> SalesforceError:
        where = f"{method} {path}"
        detail = f"{code}: {message}" if code else message
        if status == 401 and self._login is not None:
            renewed = code == "INVALID_SESSION_ID"  # _call renewed it once before this answer
            after = f" right after a new {self._login.flow} login" if renewed else ""
            return SalesforceAuthError(
                f"{where}: Salesforce refused the session ({detail}){after}; check the "
                "integration user's access",
                status=status,
                code=code,
            )
        if status == 401:
            return SalesforceAuthError(
                "Salesforce refused the session; check SYNCLEDGER_SALESFORCE_SESSION_ID",
                status=status,
                code=code,
            )
        if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
            return SalesforceLimitExceeded(
                f"{where}: the org's daily API request limit is used up ({detail}); "
                "wait for it to reset or ask for a higher limit",
                status=status,
                code=code,
            )
        if status in TRANSIENT_STATUS or code in RETRYABLE_CODES:
            return SalesforceUnavailable(
                f"{where}: Salesforce answered {status} {detail} after {attempts} attempts; "
                "try again later",
                status=status,
                code=code,
            )
        return SalesforceRejected(
            f"{where}: Salesforce rejected the request with {status} {detail}",
            status=status,
            code=code,
        )

    def _renew(self, method: str, path: str) -> None:
        """Log in again with the configured flow (a new client on the same requests session)."""
        assert self._login is not None
        self._sf = self._login.connect()
        logging.getLogger("syncledger").info(
            "Salesforce session renewed: %s %s was refused (401 INVALID_SESSION_ID); logged in "
            "again with the %s flow",
            method,
            path,
            self._login.flow,
        )

    def _note_usage(self, source: Any) -> None:
        usage = (getattr(source, "api_usage", None) or {}).get("api-usage")
        if usage is not None:
            self.usage = Usage(used=int(usage.used), total=int(usage.total))

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return self._rng.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))
