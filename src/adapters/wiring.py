"""Wiring: the ledger, the two systems and the service, built from :class:`Settings`.

Everything a command needs to talk to the outside world is made here, so the CLI stays a thin
layer and tests can build the same objects against the simulators.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy.engine import make_url

from adapters.intercom import IntercomCompanies
from adapters.salesforce import SalesforceAccounts
from adapters.salesforce_http import connect_with_password
from adapters.service import Lease, PostgresLease, ProcessLease, sqlite_process_lock
from adapters.settings import Settings, SettingsError
from adapters.store import ledger_env
from adapters.systems import IntercomSystem, SalesforceSystem
from ledger.application import LedgerApp
from ledger.catalog import FieldCatalog
from ledger.config import ActiveConfig

#: Account fields every poll reads besides the configuration's (for people reading the ledger).
ALWAYS_READ = ("Name",)


def salesforce_fields(config: ActiveConfig) -> tuple[str, ...]:
    """The Account fields the sync reads under ``config``."""
    mapped = [rm.mapping.salesforce for rm in config.mappings]
    return tuple(dict.fromkeys([*ALWAYS_READ, config.identifier.name, *mapped]))


@dataclass
class Connections:
    """The ledger and both systems, open; :meth:`close` closes them all."""

    app: LedgerApp
    salesforce: SalesforceSystem
    intercom: IntercomSystem
    client_secret: str
    _stack: ExitStack = field(default_factory=ExitStack, repr=False)

    def catalog(self) -> FieldCatalog:
        """Both systems' live field catalogs (Account describe, company data attributes)."""
        return FieldCatalog.of(
            self.salesforce.accounts.describe(), self.intercom.companies.catalog()
        )

    def follow_config(self) -> None:
        """Read the fields the configuration in force needs (it may change while running)."""
        config = self.app.config
        accounts = self.salesforce.accounts
        accounts.fields = tuple(f for f in salesforce_fields(config) if f != "Id")
        accounts.identifier_field = config.identifier.name

    def close(self) -> None:
        self._stack.close()


def open_ledger(settings: Settings) -> LedgerApp:
    """The ledger at ``SYNCLEDGER_DATABASE_URL``."""
    return LedgerApp(env=ledger_env(settings.database_url))


def salesforce_accounts(
    settings: Settings, config: ActiveConfig | None = None
) -> SalesforceAccounts:
    """The Salesforce adapter, logged in the configured way (reading what ``config`` needs)."""
    mode = settings.salesforce_auth()
    common: dict[str, Any] = {
        "fields": salesforce_fields(config) if config else ALWAYS_READ,
        "identifier_field": config.identifier.name if config else "AccountNumber",
        "daily_allocation": settings.salesforce_daily_api_allocation,
    }
    if mode == "session":
        assert settings.salesforce_instance_url and settings.salesforce_session_id
        return SalesforceAccounts(
            settings.salesforce_instance_url,
            settings.salesforce_session_id.get_secret_value(),
            **common,
        )
    if mode == "password":
        assert settings.salesforce_username and settings.salesforce_password
        token = settings.salesforce_security_token
        client = connect_with_password(
            settings.salesforce_username,
            settings.salesforce_password.get_secret_value(),
            token.get_secret_value() if token else "",
            domain=settings.salesforce_domain,
            login_url=settings.salesforce_login_url,
        )
        return SalesforceAccounts(client=client, **common)
    raise SettingsError(
        "SYNCLEDGER_SALESFORCE_INSTANCE_URL: not set (give it and "
        "SYNCLEDGER_SALESFORCE_SESSION_ID, or SYNCLEDGER_SALESFORCE_USERNAME/_PASSWORD/"
        "_SECURITY_TOKEN)"
    )


@contextmanager
def connections(settings: Settings) -> Iterator[Connections]:
    """Open the ledger and both systems for the duration of the block."""
    settings.require_intercom()
    with ExitStack() as stack:
        app = open_ledger(settings)
        stack.callback(app.close)
        accounts = salesforce_accounts(settings, app.config)
        stack.callback(_close_salesforce, accounts)
        assert settings.intercom_token and settings.intercom_client_secret
        companies = IntercomCompanies(
            settings.intercom_base_url, settings.intercom_token.get_secret_value()
        )
        stack.callback(companies.close)
        secret = settings.intercom_client_secret.get_secret_value()
        conn = Connections(
            app=app,
            salesforce=SalesforceSystem(accounts),
            intercom=IntercomSystem(companies, secret),
            client_secret=secret,
        )
        yield conn


def live_catalog(settings: Settings) -> FieldCatalog | None:
    """Both systems' field catalogs, read live; ``None`` when neither system is configured."""
    if settings.salesforce_auth() is None and settings.intercom_token is None:
        return None
    settings.require_intercom()
    with ExitStack() as stack:
        accounts = salesforce_accounts(settings)
        stack.callback(_close_salesforce, accounts)
        assert settings.intercom_token is not None
        companies = IntercomCompanies(
            settings.intercom_base_url, settings.intercom_token.get_secret_value()
        )
        stack.callback(companies.close)
        return FieldCatalog.of(accounts.describe(), companies.catalog())


def _close_salesforce(accounts: SalesforceAccounts) -> None:
    accounts.close()
    session = getattr(getattr(accounts, "_sf", None), "session", None)
    if session is not None:
        session.close()


def service_lease(settings: Settings) -> tuple[Lease, IO[str] | None]:
    """Who may run cycles: PostgreSQL's advisory lock, or this process alone on SQLite (a second
    ``serve`` on the same SQLite ledger is refused here, with :class:`ServiceError`)."""
    url = make_url(settings.database_url) if "://" in settings.database_url else None
    if url is not None and url.drivername.startswith("postgresql"):
        schema = str(url.query.get("schema") or "public")
        plain = url.set(drivername="postgresql").difference_update_query(["schema"])
        conninfo = plain.render_as_string(hide_password=False)
        return PostgresLease(conninfo, f"{url.database}/{schema}"), None
    env = ledger_env(settings.database_url, create_tables=False)
    path = env.get("SQLITE_DBNAME")
    if path and not path.startswith("file:") and path != ":memory:":
        return ProcessLease(), sqlite_process_lock(path)
    return ProcessLease(), None
