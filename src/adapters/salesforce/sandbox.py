"""The target org of a replay: :class:`SalesforceSandbox` is Salesforce's
:class:`~adapters.sync.ports.SandboxOrg`, and :func:`target_accounts` logs in to it as a
:class:`~adapters.sync.replay_request.ReplayRequest` says.

The org's own errors (:class:`~adapters.salesforce.client.SalesforceError`) propagate; the
replay recognises them through :meth:`SalesforceSandbox.error_message`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from adapters.salesforce.client import SalesforceAccounts
from adapters.salesforce.errors import SalesforceError
from adapters.salesforce.login import connect_with_password
from adapters.salesforce.system import SalesforceSystem
from adapters.sync.ports import ORGANIZATION_QUERY, Organization, RecordResult, Updates
from adapters.sync.replay_request import ReplayError, ReplayRequest
from ledger.catalog import SalesforceField
from ledger.facts import AccountChange, AccountRemoval, ApiUsage

__all__ = ["SalesforceSandbox", "target_accounts"]


class SalesforceSandbox:
    """A replay's target org (``ports.SandboxOrg``) over :class:`SalesforceAccounts`; writes go
    through :class:`SalesforceSystem` (sObject Collections, batched)."""

    def __init__(self, accounts: SalesforceAccounts) -> None:
        self.accounts = accounts
        self._system = SalesforceSystem(accounts)

    @property
    def fields(self) -> tuple[str, ...]:
        return self.accounts.fields

    @fields.setter
    def fields(self, fields: tuple[str, ...]) -> None:
        self.accounts.fields = fields

    @property
    def identifier_field(self) -> str:
        return self.accounts.identifier_field

    @identifier_field.setter
    def identifier_field(self, field: str) -> None:
        self.accounts.identifier_field = field

    def organization(self) -> list[Organization]:
        rows = self.accounts.query(ORGANIZATION_QUERY)
        return [Organization(row.get("Id"), row.get("IsSandbox")) for row in rows]

    def describe(self) -> list[SalesforceField]:
        return self.accounts.describe()

    def lookup(self, field: str, keys: Sequence[str]) -> list[AccountChange]:
        return self._system.lookup(field, keys)

    def read(self, ids: Sequence[str]) -> list[AccountChange | AccountRemoval]:
        return self._system.read(ids)

    def write(self, updates: Updates) -> list[RecordResult]:
        return self._system.write(updates)

    def api_usage(self) -> ApiUsage | None:
        return self._system.api_usage()

    def refresh_api_usage(self) -> ApiUsage | None:
        return self._system.refresh_api_usage()

    def error_message(self, error: BaseException) -> str | None:
        return error.message if isinstance(error, SalesforceError) else None


@contextmanager
def target_accounts(request: ReplayRequest) -> Iterator[SalesforceSandbox]:
    """The target org, logged in by session id or by password."""
    url = request.target_instance_url.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ReplayError(f"--target-instance-url must be http(s)://host[:port], not {url!r}")
    common: dict[str, Any] = {
        "fields": ("Name",),
        "identifier_field": "AccountNumber",
        "daily_allocation": request.target_daily_allocation,
    }
    if request.target_session_id:
        accounts = SalesforceAccounts(url, request.target_session_id, **common)
    elif request.target_username and request.target_password:
        host = parts.hostname or ""
        real = host.endswith(".salesforce.com")
        client = connect_with_password(
            request.target_username,
            request.target_password,
            request.target_security_token,
            domain=host.removesuffix(".salesforce.com") if real else "test",
            login_url=None if real else f"{parts.scheme}://{parts.netloc}",
        )
        accounts = SalesforceAccounts(client=client, **common)
    else:
        raise ReplayError(
            "give --target-session-id, or --target-username and --target-password "
            "(and --target-security-token) for the target org"
        )
    try:
        yield SalesforceSandbox(accounts)
    finally:
        accounts.close()
        session = getattr(getattr(accounts, "_sf", None), "session", None)
        if session is not None:
            session.close()
