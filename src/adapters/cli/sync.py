"""``syncledger serve`` (the sync service) and ``syncledger sync --once`` (one cycle).

``register(app)`` adds both to the ``syncledger`` app. Settings come from ``SYNCLEDGER_*``
environment variables; the ledger and both systems are opened through
:mod:`adapters.bootstrap`.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from adapters.bootstrap import Connections, build_service, service_lease
from adapters.cli.common import (
    connected,
    console,
    fail,
    read_config,
    read_settings,
    refuse,
    render_report,
    sending_writes,
    store_errors,
)
from adapters.intercom.client import IntercomError
from adapters.logs import UVICORN_LOG_CONFIG, configure_logging
from adapters.salesforce.errors import SalesforceError
from adapters.service.errors import ServiceError
from adapters.service.lease import Lease
from adapters.settings import Settings
from adapters.store.database import safe_url
from adapters.sync.cycle import run_cycle
from ledger.config import ConfigError


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``sync`` to ``app``."""
    app.command()(serve)
    app.command()(sync)


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
    settings = read_settings()
    configure_logging(settings.log_format, settings.log_level)
    try:
        with store_errors():
            lease, lock = service_lease(settings)
    except ServiceError as exc:
        fail(str(exc), 1)
    out = console()
    config = config or settings.config_file
    try:
        _serve(settings, config, lease, host, port, out)
    finally:
        if lock is not None:
            lock.close()


def _serve(
    settings: Settings,
    config: Path | None,
    lease: Lease,
    host: str | None,
    port: int | None,
    out: Console,
) -> None:
    # Imported here, not at the top: uvicorn and the HTTP app (FastAPI) load only for `serve`.
    import uvicorn

    from adapters.http.app import create_app

    with connected(settings) as conn:
        if config is not None:
            _apply_live(conn, config, out)
        api = create_app(build_service(settings, conn, lease))
        bind_host = host or settings.host
        bind_port = port or settings.port
        out.print(
            f"syncledger serving on http://{bind_host}:{bind_port} — webhooks at "
            f"/webhooks/intercom, health at /health; ledger "
            f"{escape(safe_url(settings.database_url))}, "
            f"polling Salesforce every {settings.poll_interval_seconds:g} s"
        )
        stopped_by: list[int] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            # uvicorn shuts down gracefully, then re-raises the signal it caught: note it here
            # instead of dying by it, so a requested stop exits 0.
            signal.signal(signum, lambda n, _frame: stopped_by.append(n))
        uvicorn.run(
            api,
            host=bind_host,
            port=bind_port,
            log_config=UVICORN_LOG_CONFIG,
            log_level=settings.log_level.lower(),
            access_log=False,  # the app logs every request once, with its request id
        )
    if stopped_by:
        out.print(f"stopped on {signal.Signals(stopped_by[0]).name}; nothing is lost")


def _apply_live(conn: Connections, file: Path, out: Console) -> None:
    """Validate ``file`` against the live catalogs; apply it unless it is already in force."""
    config = read_config(file)
    catalog = conn.catalog()
    if conn.app.config.version and conn.app.config.as_sync_config() == config:
        out.print(f"configuration version {conn.app.config.version} is already in force")
        return
    try:
        active = conn.app.apply_config(config, catalog)
    except ConfigError as exc:
        refuse(file, exc.problems)
    out.print(f"[green]configuration version {active.version} in force[/]")


def sync(
    once: Annotated[bool, typer.Option("--once", help="Run one full cycle and exit.")] = False,
) -> None:
    """Run one full sync cycle: poll Salesforce, take waiting Intercom work, apply writes.

    Exit code 0 when every write was applied or skipped by a rule; 1 when a write failed for
    good (the report names it); 2 for unusable settings.
    """
    if not once:
        fail("only `syncledger sync --once` exists; use `syncledger serve` to keep syncing", 2)
    settings = read_settings()
    out = console()
    with sending_writes(settings, "sync --once"), connected(settings) as conn:
        conn.follow_config()
        try:
            report = run_cycle(conn.app, conn.salesforce, conn.intercom)
        except (SalesforceError, IntercomError) as exc:
            fail(f"the cycle stopped: {exc}; nothing is lost, run it again later", 1)
        render_report(report, out)
    if any(not f.retryable for f in report.failures):
        raise typer.Exit(1)
