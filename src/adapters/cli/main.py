"""The ``syncledger`` command line.

Commands that open a ledger take ``--database-url``, else ``SYNCLEDGER_DATABASE_URL``, else
``sqlite:///syncledger.db`` in the working directory (the demo has its own default file).
Every error a user can cause is one red line, never a traceback. Exit codes: 0 done; 1 the input
was read and refused (an invalid configuration, a ledger the demo may not use); 2 the command
names something unusable (a bad database URL, a missing file, a ledger that cannot be opened).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from eventsourcing.persistence import PersistenceError
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from adapters.bootstrap import Connections
from adapters.demo.story import DemoError, reset_demo_database, run_demo
from adapters.intercom.client import IntercomAuthError, IntercomError
from adapters.salesforce.client import SalesforceAuthError, SalesforceError
from adapters.settings import Settings, SettingsError, load_settings
from adapters.store.database import DatabaseUrlError, ledger_env
from adapters.sync.cycle import CycleReport
from adapters.sync.fakes import catalog
from ledger import events as ev
from ledger.application import LedgerApp
from ledger.catalog import FieldCatalog
from ledger.config import ConfigError, ConfigProblem, SyncConfig, parse_config
from ledger.validation import validate_config

if TYPE_CHECKING:
    pass

DATABASE_URL_ENV = "SYNCLEDGER_DATABASE_URL"
DEFAULT_DATABASE_URL = "sqlite:///syncledger.db"
DEMO_DATABASE_URL = "sqlite:///syncledger-demo.db"

app = typer.Typer(
    name="syncledger",
    help="Keep Salesforce Accounts and Intercom Companies in sync, with every change and "
    "decision recorded in an event-sourced ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Validate, apply and show sync configurations.", no_args_is_help=True)
app.add_typer(config_app, name="config")

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help=f"Ledger database URL [default: ${DATABASE_URL_ENV}, else {DEFAULT_DATABASE_URL}]",
        show_default=False,
    ),
]
ConfigFile = Annotated[
    Path, typer.Argument(help="A configuration file (TOML).", show_default=False)
]


def _out() -> Console:
    return Console(highlight=False)


def _fail(message: str, code: int) -> NoReturn:
    err = Console(stderr=True, highlight=False)
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def _database_url(option: str | None) -> str:
    return option or os.environ.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL


def _ledger_env(database_url: str, *, create: bool = False) -> dict[str, str]:
    """The store's environment for ``database_url``; unless ``create``, it must exist."""
    try:
        env = ledger_env(database_url, create_tables=create)
    except DatabaseUrlError as exc:
        _fail(str(exc), 2)
    if not create and env.get("PERSISTENCE_MODULE") == "eventsourcing.sqlite":
        path = env["SQLITE_DBNAME"]
        if not path.startswith("file:") and not Path(path).exists():
            _fail(f"no ledger at {database_url}: {path} does not exist", 2)
    return env


@contextmanager
def _ledger(database_url: str, *, create: bool) -> Iterator[LedgerApp]:
    """Open the ledger; unless ``create``, it must exist already."""
    env = _ledger_env(database_url, create=create)
    try:
        ledger = LedgerApp(env=env)
    except PersistenceError as exc:
        _fail(f"cannot open the ledger at {database_url}: {exc}", 2)
    try:
        yield ledger
    finally:
        ledger.close()


def _read_config(file: Path) -> SyncConfig:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        _fail(f"{file}: no such file", 2)
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"{file}: cannot read it ({exc})", 2)
    try:
        return parse_config(text)
    except ConfigError as exc:
        _refuse(file, exc.problems)


def _field_catalog() -> FieldCatalog:
    """The live catalogs when Salesforce and Intercom are configured, else the sample catalog
    of the simulators (said on stderr)."""
    from adapters.bootstrap import live_catalog

    settings = _settings()
    try:
        live = live_catalog(settings)
    except SettingsError as exc:
        _fail(str(exc), 2)
    except (SalesforceError, IntercomError) as exc:
        _fail(f"cannot read the field catalogs: {exc}", 2)
    if live is not None:
        return live
    Console(stderr=True, highlight=False).print(
        "[dim]no SYNCLEDGER_SALESFORCE_*/SYNCLEDGER_INTERCOM_* settings: checking against the "
        "simulators' sample catalog[/]"
    )
    return catalog()


def _refuse(file: Path, problems: tuple[ConfigProblem, ...] | list[ConfigProblem]) -> NoReturn:
    err = Console(stderr=True, highlight=False)
    err.print(
        f"[bold red]{escape(str(file))}: configuration refused[/] ({len(problems)} problem(s))"
    )
    for p in problems:
        err.print(f"  [red]✗[/] {escape(p.where)}: [bold]{escape(p.field)}[/]: {escape(p.reason)}")
    raise typer.Exit(1)


# --- demo ------------------------------------------------------------------------------------


@app.command()
def demo(
    database_url: Annotated[
        str, typer.Option("--database-url", help="Where the demo ledger is stored.")
    ] = DEMO_DATABASE_URL,
    keep_running: Annotated[
        bool,
        typer.Option(
            "--keep-running",
            help="Leave the simulators and the service up afterwards (until Ctrl-C) and print "
            "their URLs.",
        ),
    ] = False,
) -> None:
    """Run the sync service between simulated Salesforce and Intercom, tell it a story, and
    show what the ledger recorded.

    Starts both simulators (seeded with a few hundred records) and `syncledger serve` as child
    processes on free loopback ports; users on both sides change records through the
    simulators' REST APIs, the admin changes the configuration, and the service syncs.
    """
    out = _out()
    try:
        removed = reset_demo_database(database_url)
        if removed:
            out.print(f"Removed the previous demo ledger {escape(removed)}; starting afresh.")
        run_demo(database_url, out, keep_running=keep_running)
    except DatabaseUrlError as exc:
        _fail(str(exc), 2)
    except PersistenceError as exc:
        _fail(f"cannot use the ledger at {database_url}: {exc}", 2)
    except DemoError as exc:
        _fail(str(exc), 1)
    except KeyboardInterrupt:
        _fail("interrupted; everything the demo started is stopped", 130)
    out.print("Stopped: no simulator or service left running.")


# --- config ----------------------------------------------------------------------------------


@config_app.command("validate")
def config_validate(file: ConfigFile) -> None:
    """Check a configuration file against the field catalogs; print every problem."""
    config = _read_config(file)
    problems = validate_config(config, _field_catalog())
    if problems:
        _refuse(file, problems)
    _out().print(
        f"[green]{escape(str(file))}: valid[/] (identifier {config.identifier_field}, "
        f"{len(config.attributes)} attribute mapping(s))"
    )


@config_app.command("apply")
def config_apply(file: ConfigFile, database_url: DatabaseUrl = None) -> None:
    """Validate a configuration file and put it in force as the next version."""
    config = _read_config(file)
    url = _database_url(database_url)
    with _ledger(url, create=True) as ledger:
        before = len(ledger.mappings())
        try:
            active = ledger.apply_config(config, _field_catalog())
        except ConfigError as exc:
            _refuse(file, exc.problems)
        ended = before - len(ledger.mappings())
    out = _out()
    out.print(
        f"[green]configuration version {active.version} in force[/] "
        f"(identifier {active.identifier_field}, {len(active.mappings)} attribute mapping(s))"
    )
    if ended:
        out.print(f"{ended} mapping(s) ended: the identifier field changed")


@config_app.command("show")
def config_show(database_url: DatabaseUrl = None) -> None:
    """Print the configuration in force, in the file format, with its version."""
    with _ledger(_database_url(database_url), create=False) as ledger:
        active = ledger.config
    if active.version == 0:
        typer.echo("# version 0: no configuration applied yet (the default: nothing syncs)")
    else:
        typer.echo(f"# version {active.version}")
    typer.echo(active.as_sync_config().to_toml(), nl=False)


# --- the service ---------------------------------------------------------------------------


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        _fail(str(exc), 2)


@app.command()
def serve(
    config: Annotated[
        Path | None,
        typer.Option(
            help="Validate this configuration against the live catalogs and apply it "
            "at start (if it differs from the one in force)."
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            help="Listen address [default: $SYNCLEDGER_HOST, else 127.0.0.1].", show_default=False
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Listen port [default: $SYNCLEDGER_PORT, else 8000].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the sync service: webhook intake, the Salesforce poller and the writer.

    Settings come from SYNCLEDGER_* environment variables (see the README). Stops cleanly on
    SIGTERM or Ctrl-C, finishing the cycle under way.
    """  # fmt: skip
    import uvicorn

    from adapters.bootstrap import build_service, service_lease
    from adapters.http.app import create_app
    from adapters.service.errors import ServiceError

    settings = _settings()
    try:
        lease, lock = service_lease(settings)
    except ServiceError as exc:
        _fail(str(exc), 1)
    except DatabaseUrlError as exc:
        _fail(str(exc), 2)
    out = _out()
    with _connected(settings) as conn:
        if config is not None:
            _apply_live(conn, config, out)
        api = create_app(build_service(settings, conn, lease))
        bind_host = host or settings.host
        bind_port = port or settings.port
        out.print(
            f"syncledger serving on http://{bind_host}:{bind_port} — webhooks at "
            f"/webhooks/intercom, health at /health; ledger {escape(settings.database_url)}, "
            f"polling Salesforce every {settings.poll_interval_seconds:g} s"
        )
        stopped_by: list[int] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            # uvicorn shuts down gracefully, then re-raises the signal it caught: note it here
            # instead of dying by it, so a requested stop exits 0.
            signal.signal(signum, lambda n, _frame: stopped_by.append(n))
        uvicorn.run(api, host=bind_host, port=bind_port, log_level="info")
    if lock is not None:
        lock.close()
    if stopped_by:
        out.print(f"stopped on {signal.Signals(stopped_by[0]).name}; nothing is lost")


@app.command()
def sync(
    once: Annotated[bool, typer.Option("--once", help="Run one full cycle and exit.")] = False,
) -> None:
    """Run one full sync cycle: poll Salesforce, take waiting Intercom work, apply writes.

    Exit code 0 when every write was applied or skipped by a rule; 1 when a write failed for
    good (the report names it); 2 for unusable settings.
    """
    from adapters.sync.cycle import run_cycle

    if not once:
        _fail("only `syncledger sync --once` exists; use `syncledger serve` to keep syncing", 2)
    settings = _settings()
    out = _out()
    with _connected(settings) as conn:
        conn.follow_config()
        try:
            report = run_cycle(conn.app, conn.salesforce, conn.intercom)
        except (SalesforceError, IntercomError) as exc:
            _fail(f"the cycle stopped: {exc}; nothing is lost, run it again later", 1)
        render_report(report, out)
    if any(not f.retryable for f in report.failures):
        raise typer.Exit(1)


@contextmanager
def _connected(settings: Settings) -> Iterator[Connections]:
    from adapters.bootstrap import connections

    try:
        with connections(settings) as conn:
            yield conn
    except SettingsError as exc:
        _fail(str(exc), 2)
    except DatabaseUrlError as exc:
        _fail(str(exc), 2)
    except (SalesforceAuthError, IntercomAuthError) as exc:
        _fail(str(exc), 2)


def _apply_live(conn: Connections, file: Path, out: Console) -> None:
    """Validate ``file`` against the live catalogs; apply it unless it is already in force."""
    config = _read_config(file)
    catalog = conn.catalog()
    if conn.app.config.version and conn.app.config.as_sync_config() == config:
        out.print(f"configuration version {conn.app.config.version} is already in force")
        return
    try:
        active = conn.app.apply_config(config, catalog)
    except ConfigError as exc:
        _refuse(file, exc.problems)
    out.print(f"[green]configuration version {active.version} in force[/]")


def render_report(report: CycleReport, out: Console) -> None:
    """One cycle's report, as a short table."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="sync cycle")
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [
        ("changes recorded", report.facts_ingested),
        ("lookups", report.lookups),
        *(
            (("companies read again (same-second changes)", report.reread),)
            if report.reread
            else ()
        ),
        ("mappings made", report.mappings_made),
        ("mappings ended", report.mappings_ended),
        ("writes planned", report.writes_planned),
        ("writes applied", report.writes_applied),
        ("writes failed", report.writes_failed),
        ("echoes of our writes", report.echoes),
        *((f"skipped: {rule}", n) for rule, n in sorted(report.skipped_by_rule.items())),
    ]
    for name, count in rows:
        table.add_row(name, str(count))
    out.print(table)
    if report.paused:
        out.print(f"[yellow]{escape(report.paused)}[/]")
    if report.resync_deferred:
        out.print("[yellow]a resync of Salesforce accounts waits for the API budget[/]")
    for f in report.failures:
        again = "will retry" if f.retryable else "failed for good"
        out.print(
            f"[red]✗[/] {f.system} {f.record_id} {f.planned_write.field}: {escape(f.error)} "
            f"({again})"
        )
    for o in report.overwrites:
        out.print(f"overwrite {o.system} {o.record_id} {o.field}: {o.before!r} → {o.after!r}")


# --- events ----------------------------------------------------------------------------------


@app.command()
def events(
    database_url: DatabaseUrl = None,
    after: Annotated[int, typer.Option(min=0, help="Show events after this position.")] = 0,
    limit: Annotated[int | None, typer.Option(min=1, help="Show at most this many.")] = None,
) -> None:
    """List the ledger's events in order, with their positions and key fields."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("position", justify="right", no_wrap=True)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("event", no_wrap=True)
    table.add_column("details")
    last = after
    with _ledger(_database_url(database_url), create=False) as ledger:
        for position, event in ledger.read_events(after=after, limit=limit):
            time = event.timestamp.strftime("%Y-%m-%d %H:%M:%S")
            table.add_row(str(position), time, type(event).__name__, escape(describe(event)))
            last = position
    out = _out()
    if not table.row_count:
        out.print(f"no events after position {after}")
        return
    out.print(table)
    out.print(f"{table.row_count} event(s); continue with --after {last}")


def describe(e: ev.LedgerEvent) -> str:
    """The key fields of one ledger event, on one line."""
    if isinstance(e, ev.ConfigurationApplied):
        c = e.config
        return f"v{e.version}: identifier {c['identifier']['name']}, {len(c['mappings'])} mappings"
    if isinstance(e, ev.AccountIdentifierChanged):
        return f"{e.salesforce_id} {e.identifier_field}: {e.old_value} → {e.new_value}"
    if isinstance(e, ev.CompanyFact):
        return f"{e.intercom_id} company_id={e.company_id} changed={_names(e.changed)} ({e.source})"
    if isinstance(e, ev.AccountFact):
        return f"{e.salesforce_id} changed={_names(e.changed)} ({e.source})"
    if isinstance(e, ev.CompanyDeleted):
        return f"{e.intercom_id} company_id={e.company_id} ({e.source})"
    if isinstance(e, ev.AccountDeleted):
        return f"{e.salesforce_id} ({e.source})"
    if isinstance(e, ev.LookupAnswered):
        return f"{e.system} {e.field} = {e.key!r}: found {', '.join(e.found) or 'nothing'}"
    if isinstance(e, ev.RecordIgnored | ev.NotSynced):
        return f"{e.system} {e.record_id}: {e.reason}"
    if isinstance(e, ev.EchoRecognised):
        return f"{e.system} {e.record_id}: {_names(e.fields)}"
    if isinstance(e, ev.IdentityMapped):
        link = f"{e.company_id}: {e.intercom_id} ↔ {e.salesforce_id}"
        return f"{link} ({e.trigger}, v{e.config_version})"
    if isinstance(e, ev.IdentityUnmapped):
        return f"{e.company_id}: {e.intercom_id} ↔ {e.salesforce_id}: {e.reason}"
    if isinstance(e, ev.SyncPlanned):
        counts = f"{len(e.planned)} planned, {len(e.skipped)} skipped, {len(e.rejected)} rejected"
        return f"{e.system} {e.record_id}: {counts} ({e.trigger}, v{e.config_version})"
    if isinstance(e, ev.WriteSkipped):
        return f"{e.system} {e.record_id}.{e.planned_write.field}: {e.rule}"
    if isinstance(e, ev.WriteApplied):
        w = e.planned_write
        return f"{e.system} {e.record_id}.{w.field}: {e.before!r} → {w.value!r}"
    if isinstance(e, ev.WriteFailed):
        again = "will retry" if e.retryable else "final"
        return f"{e.system} {e.record_id}.{e.planned_write.field}: {e.code} {e.error} ({again})"
    if isinstance(e, ev.LedgerAdvanced):
        return f"{e.summary} ({e.events} events)"
    return ""


def _names(names: list[str], most: int = 4) -> str:
    shown = ", ".join(names[:most])
    return shown + (f", +{len(names) - most}" if len(names) > most else "")


# --- simulate --------------------------------------------------------------------------------

simulate_app = typer.Typer(help="Run local simulators of the two APIs.", no_args_is_help=True)
app.add_typer(simulate_app, name="simulate")


@simulate_app.command("intercom")
def simulate_intercom(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")],
    token: Annotated[str, typer.Option(help="The bearer token clients must send.")] = "sim-token",
    webhook_url: Annotated[
        str | None, typer.Option(help="Post signed company notifications here.")
    ] = None,
    client_secret: Annotated[
        str | None, typer.Option(help="Sign webhooks with this app client secret.")
    ] = None,
    duplicate_webhooks: Annotated[bool, typer.Option(help="Deliver some webhooks twice.")] = False,
    shuffle_webhooks: Annotated[bool, typer.Option(help="Deliver webhooks out of order.")] = False,
    data: Annotated[
        Path | None, typer.Option(help="Seed companies and data attributes from a JSON file.")
    ] = None,
    fault_rate: Annotated[
        float, typer.Option(help="Fraction of API calls that fail with 429 or 503.")
    ] = 0.0,
) -> None:
    """Serve a simulated Intercom REST API (companies, data attributes, signed webhooks)."""
    import uvicorn

    from adapters.simulators.intercom import IntercomState, create_intercom_app

    if client_secret is not None and webhook_url is None:
        _fail("--client-secret signs webhooks: give --webhook-url too", 2)
    state = IntercomState()
    try:
        if data is not None:
            state.load_data(data)
        sim = create_intercom_app(
            state,
            token=token,
            webhook_url=webhook_url,
            client_secret=client_secret,
            duplicate_webhooks=duplicate_webhooks,
            shuffle_webhooks=shuffle_webhooks,
            fault_rate=fault_rate,
        )
    except ValueError as exc:
        _fail(str(exc), 2)
    _out().print(f"Intercom simulator on http://127.0.0.1:{port} (token {escape(token)})")
    uvicorn.run(sim, host="127.0.0.1", port=port, log_level="info")


@simulate_app.command("salesforce")
def simulate_salesforce(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")],
    token: Annotated[str, typer.Option(help="The session id clients must send.")] = "sim-token",
    sandbox: Annotated[bool, typer.Option(help="Report Organization.IsSandbox = true.")] = False,
    org_id: Annotated[str, typer.Option(help="The simulated org's Id.")] = "00D000000000001EAA",
    data: Annotated[Path | None, typer.Option(help="Seed accounts from a JSON file.")] = None,
    fault_rate: Annotated[
        float, typer.Option(help="Fraction of API calls that fail with 503 or UNABLE_TO_LOCK_ROW.")
    ] = 0.0,
    daily_limit: Annotated[int, typer.Option(help="Daily API request allocation.")] = 100_000,
    username: Annotated[
        str | None, typer.Option(help="Accept SOAP password logins for this user.")
    ] = None,
    password: Annotated[str | None, typer.Option(help="The user's password.")] = None,
    security_token: Annotated[
        str, typer.Option(help="Appended to the password at login, as Salesforce expects.")
    ] = "",
) -> None:
    """Serve a simulated Salesforce REST API (Account and Organization, under /services/data/)."""
    import uvicorn

    from adapters.simulators.salesforce import SalesforceState, create_salesforce_app, load_data

    if not 0.0 <= fault_rate <= 1.0:
        _fail("--fault-rate must be between 0 and 1", 2)
    if username is not None and password is None:
        _fail("--username needs --password", 2)
    try:
        state = load_data(data) if data is not None else SalesforceState()
        sim = create_salesforce_app(
            state,
            token=token,
            sandbox=sandbox,
            org_id=org_id,
            daily_limit=daily_limit,
            fault_rate=fault_rate,
            username=username,
            password=password,
            security_token=security_token,
        )
    except (OSError, ValueError, KeyError) as exc:
        _fail(f"cannot load {data}: {exc}", 2)
    _out().print(
        f"Salesforce simulator on http://127.0.0.1:{port} (session id {escape(token)}, "
        f"org {escape(org_id)}{', sandbox' if sandbox else ''})"
    )
    uvicorn.run(sim, host="127.0.0.1", port=port, log_level="info")


def _register_feature_commands() -> None:
    from adapters.cli import audit as cli_audit
    from adapters.cli import chain as cli_chain
    from adapters.cli import replay as cli_replay

    cli_audit.register(app)
    cli_chain.register(app)
    cli_replay.register(app)


_register_feature_commands()


def main() -> None:
    """The ``syncledger`` console script."""
    app()
