"""The one composition root: settings → store → ledger → systems → service.

Everything that opens a ledger (or its log, its chain, its read models) or talks to the outside
world is made here, so the CLI and the HTTP app stay thin layers and tests can build the same
objects against the simulators. Nothing is created at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eventsourcing.persistence import InfrastructureFactory, PersistenceError
from sqlalchemy.engine import make_url

from adapters.intercom.client import IntercomCompanies
from adapters.intercom.system import IntercomSystem
from adapters.salesforce.client import SalesforceAccounts
from adapters.salesforce.login import (
    ClientCredentialsLogin,
    Credentials,
    JwtBearerLogin,
    PasswordLogin,
    SalesforceConnector,
)
from adapters.salesforce.system import SalesforceSystem
from adapters.service.errors import ServiceError
from adapters.service.intake import WebhookIntake
from adapters.service.lease import (
    Lease,
    PostgresLease,
    ProcessLease,
    ProcessLock,
    sqlite_process_lock,
)
from adapters.service.worker import SyncWorker
from adapters.settings import ApiKeys, Settings, SettingsError
from adapters.store.chain import ChainedRecorder
from adapters.store.database import LedgerNotFound, StoreUnavailable, ledger_env, safe_url
from adapters.store.recorders import open_chained_recorder
from adapters.sync.reconcile import reconcile_intercom
from ledger.application import LedgerApp
from ledger.catalog import FieldCatalog, IntercomAttribute
from ledger.config import ActiveConfig
from projections.projector import EventLog, LedgerLog, Projector
from projections.queries import Audit

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


def store_env(database_url: str, *, create: bool = True) -> dict[str, str]:
    """The event store's environment for ``database_url``; unless ``create``, the ledger must
    exist already (:class:`LedgerNotFound`). An unusable URL raises ``DatabaseUrlError``."""
    env = ledger_env(database_url, create_tables=create)
    if not create and env.get("PERSISTENCE_MODULE") == "eventsourcing.sqlite":
        path = env["SQLITE_DBNAME"]
        if not path.startswith("file:") and not Path(path).exists():
            raise LedgerNotFound(f"no ledger at {safe_url(database_url)}: {path} does not exist")
    return env


def open_ledger(database_url: str, *, create: bool = True) -> LedgerApp:
    """The ledger stored at ``database_url`` (unless ``create``, it must exist already)."""
    env = store_env(database_url, create=create)
    try:
        return LedgerApp(env=env)
    except PersistenceError as exc:
        raise StoreUnavailable(database_url, exc) from None


def open_log(database_url: str) -> LedgerLog:
    """The ledger's notification log alone (no ledger state folded in memory); it must exist."""
    env = store_env(database_url, create=False)
    try:
        return LedgerLog(env=env)
    except PersistenceError as exc:
        raise StoreUnavailable(database_url, exc) from None


def open_chain(database_url: str) -> tuple[InfrastructureFactory[Any], ChainedRecorder]:
    """The ledger's hash-chained recorder, for verifying it; the ledger must exist."""
    env = store_env(database_url, create=False)
    try:
        return open_chained_recorder(env, LedgerApp.name)
    except PersistenceError as exc:
        raise StoreUnavailable(database_url, exc) from None


def open_projector(ledger: EventLog, database_url: str) -> Projector:
    """The read models of ``ledger``, in its database."""
    return Projector.open(ledger, database_url)


def salesforce_accounts(
    settings: Settings, config: ActiveConfig | None = None
) -> SalesforceAccounts:
    """The Salesforce adapter, logged in the configured way (reading what ``config`` needs).

    A session id is used as given; the password, JWT bearer and client credentials logins log
    in now and again whenever Salesforce refuses the session (see ``SalesforceAccounts``).
    """
    mode = settings.salesforce_auth()
    common: dict[str, Any] = {
        "fields": salesforce_fields(config) if config else ALWAYS_READ,
        "identifier_field": config.identifier.name if config else "AccountNumber",
        "daily_allocation": settings.salesforce_daily_api_allocation,
        "write_batch_size": settings.write_batch_size,
    }
    if mode == "session":
        assert settings.salesforce_instance_url and settings.salesforce_session_id
        return SalesforceAccounts(
            settings.salesforce_instance_url,
            settings.salesforce_session_id.get_secret_value(),
            **common,
        )
    credentials: Credentials
    if mode == "password":
        assert settings.salesforce_username and settings.salesforce_password
        token = settings.salesforce_security_token
        credentials = PasswordLogin(
            settings.salesforce_username,
            settings.salesforce_password.get_secret_value(),
            token.get_secret_value() if token else "",
        )
    elif mode == "jwt":
        assert settings.salesforce_consumer_key and settings.salesforce_username
        credentials = JwtBearerLogin(
            settings.salesforce_consumer_key,
            settings.salesforce_username,
            settings.salesforce_private_key().get_secret_value(),
        )
    elif mode == "client_credentials":
        assert settings.salesforce_consumer_key and settings.salesforce_consumer_secret
        credentials = ClientCredentialsLogin(
            settings.salesforce_consumer_key,
            settings.salesforce_consumer_secret.get_secret_value(),
        )
    else:
        raise SettingsError(
            "SYNCLEDGER_SALESFORCE_INSTANCE_URL: not set (give it and "
            "SYNCLEDGER_SALESFORCE_SESSION_ID, or SYNCLEDGER_SALESFORCE_USERNAME/_PASSWORD/"
            "_SECURITY_TOKEN, or SYNCLEDGER_SALESFORCE_CONSUMER_KEY with _PRIVATE_KEY_FILE and "
            "_USERNAME or with _CONSUMER_SECRET)"
        )
    login = SalesforceConnector(
        credentials, domain=settings.salesforce_domain, login_url=settings.salesforce_login_url
    )
    try:
        return SalesforceAccounts(login=login, **common)
    except BaseException:
        login.close()
        raise


@contextmanager
def connections(settings: Settings) -> Iterator[Connections]:
    """Open the ledger and both systems for the duration of the block."""
    settings.require_intercom()
    with ExitStack() as stack:
        app = open_ledger(settings.database_url)
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
            salesforce=SalesforceSystem(accounts, batch_size=settings.write_batch_size),
            intercom=IntercomSystem(companies),
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


def service_lease(settings: Settings) -> tuple[Lease, ProcessLock | None]:
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


@contextmanager
def writer_lease(settings: Settings, *, what: str) -> Iterator[None]:
    """Hold the lease ``serve`` holds to send writes, for a command that sends writes too
    (``sync --once``, ``backfill``, ``replay``): while another process holds it (a running
    ``serve`` or another such command), refuse with :class:`ServiceError`, so no planned
    write is ever sent by two processes."""
    lease, lock = service_lease(settings)
    try:
        if not lease.acquire():
            raise ServiceError(
                f"another syncledger process is sending writes for the ledger at "
                f"{safe_url(settings.database_url)} (a running serve, or another sync, backfill "
                f"or replay): {what} would send writes beside it; stop it first, or let it sync"
            )
        try:
            yield
        finally:
            lease.release()
    finally:
        if lock is not None:
            lock.close()


@dataclass
class Service:
    """What ``syncledger serve`` runs and the HTTP app serves (``adapters.http.app.create_app``).

    ``intake`` keeps webhooks; ``worker`` runs the sync cycles (``None``: an API-only app, as in
    tests). ``api_keys`` (``SYNCLEDGER_API_KEYS``) open the audit API and ``/metrics``; without
    them every route that needs a scope answers 401. ``audit`` answers from the read models;
    without it the routes that need them answer 503. ``replay_settings`` adds ``/replays``;
    ``intercom_attributes`` is the live Intercom catalog proposed configurations are checked
    against. ``on_shutdown`` runs after the intake and the worker have stopped.
    """

    ledger: LedgerApp
    intake: WebhookIntake
    worker: SyncWorker | None = None
    api_keys: ApiKeys | None = None
    audit: Audit | None = None
    replay_settings: Settings | None = None
    intercom_attributes: Callable[[], Sequence[IntercomAttribute]] | None = None
    on_shutdown: Callable[[], None] = lambda: None


def build_service(settings: Settings, conn: Connections, lease: Lease) -> Service:
    """The service over open connections: the worker (holding ``lease`` to run cycles), the
    webhook intake that wakes it, and the read models it keeps current after each cycle."""
    # The read models follow the ledger: the worker's projector after each cycle, the audit
    # API's before each query (two projectors never apply a page twice).
    follower = open_projector(conn.app, settings.database_url)
    reader = open_projector(conn.app, settings.database_url)
    worker = SyncWorker(
        conn.app,
        conn.salesforce,
        conn.intercom,
        poll_interval=settings.poll_interval_seconds,
        lease=lease,
        before_cycle=conn.follow_config,
        on_report=lambda _report: _follow(follower),
        reconcile=lambda: reconcile_intercom(conn.app, conn.intercom),
        reconcile_interval=settings.intercom_reconcile_seconds,
    )
    intake = WebhookIntake(conn.app, conn.client_secret, on_kept=worker.wake)

    def closed() -> None:
        follower.close()
        reader.close()

    return Service(
        ledger=conn.app,
        intake=intake,
        worker=worker,
        api_keys=settings.api_keys,
        audit=Audit(reader),
        replay_settings=settings,
        intercom_attributes=conn.intercom.companies.catalog,
        on_shutdown=closed,
    )


def _follow(projector: Projector) -> None:
    """Bring the read models up to the ledger; a failure is logged, never stops the sync."""
    try:
        projector.catch_up()
    except Exception as exc:  # the audit API catches up again before its next query
        logging.getLogger("syncledger").warning("read models could not catch up: %s", exc)
