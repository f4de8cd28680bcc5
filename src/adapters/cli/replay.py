"""``syncledger replay``: replay recorded history into a Salesforce sandbox org
(:mod:`adapters.sync.replay`), dry run first. ``register(app)`` adds the command to the
``syncledger`` app.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from adapters.cli.common import (
    SHOWN,
    console,
    fail,
    ledger_at,
    ledger_url,
    read_settings,
    requested_by,
    sending_writes,
    task_bars,
)
from adapters.intercom.client import IntercomCompanies
from adapters.salesforce.errors import SalesforceError
from adapters.salesforce.sandbox import target_accounts
from adapters.settings import Settings
from adapters.sync.fakes import catalog
from adapters.sync.replay import (
    Planned,
    ReplayError,
    ReplayRequest,
    ReplayStopped,
    check_target,
    run_replay,
)
from ledger.application import LedgerApp
from ledger.catalog import IntercomAttribute
from ledger.replay_runs import RunStatus


def register(app: typer.Typer) -> None:
    """Add ``replay`` to ``app``."""
    app.command()(replay)


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option}: not an ISO date or date-time: {value!r} (e.g. 2026-01-31T09:00Z)", 2)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def replay(
    target_instance_url: Annotated[
        str, typer.Option(help="The sandbox org's instance URL (http(s)://host[:port]).")
    ],
    target_session_id: Annotated[
        str | None, typer.Option(help="A session id or access token for the sandbox org.")
    ] = None,
    target_username: Annotated[str | None, typer.Option(help="Or log in as this user.")] = None,
    target_password: Annotated[str | None, typer.Option(help="That user's password.")] = None,
    target_security_token: Annotated[
        str, typer.Option(help="That user's security token (if the org asks for one).")
    ] = "",
    from_: Annotated[
        str | None,
        typer.Option("--from", help="Replay facts recorded at or after this ISO time."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Replay facts recorded before this ISO time.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="A proposed configuration (TOML); default: the one in force."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan and report; write nothing to the target.")
    ] = False,
    report: Annotated[
        Path | None, typer.Option(help="Also write the plan to this .json or .csv file.")
    ] = None,
    resume: Annotated[
        str | None, typer.Option(help="Resume this run (see `syncledger events`).")
    ] = None,
    target_daily_allocation: Annotated[
        int | None,
        typer.Option(min=1, help="This replay's share of the sandbox's daily API calls."),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="The production ledger.")
    ] = None,
) -> None:
    """Replay recorded history into a Salesforce sandbox org, under the configuration in force
    or a proposed one.

    Before anything it checks that the target is a sandbox on SYNCLEDGER_REPLAY_ALLOWED_ORGS.
    Interrupted, run the same command again (or --resume RUN_ID): it continues where it
    stopped and never writes a value twice. Salesforce → Intercom values are reported only.
    """
    if report is not None and report.suffix.lower() not in (".json", ".csv"):
        fail(f"--report {report}: give a .json or .csv file", 2)
    config_text = None
    if config is not None:
        try:
            config_text = config.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"{config}: cannot read it ({exc})", 2)
    request = ReplayRequest(
        target_instance_url=target_instance_url,
        target_session_id=target_session_id,
        target_username=target_username,
        target_password=target_password,
        target_security_token=target_security_token,
        window_from=_when(from_, "--from"),
        window_until=_when(until, "--until"),
        config_text=config_text,
        config_source=str(config) if config is not None else "current",
        dry_run=dry_run,
        requested_by=requested_by(),
        target_daily_allocation=target_daily_allocation,
    )
    settings = read_settings()
    out = console()
    try:
        _replay(request, settings, database_url, report, resume, out)
    except ReplayStopped as exc:
        fail(str(exc), 3)
    except ReplayError as exc:
        fail(str(exc), 1)


def _replay(
    request: ReplayRequest,
    settings: Settings,
    database_url: str | None,
    report: Path | None,
    resume: str | None,
    out: Console,
) -> None:
    with (
        sending_writes(settings, "replay", dry_run=request.dry_run),
        target_accounts(request) as accounts,
    ):
        org = check_target(accounts, settings.replay_allowed_orgs, request.target_instance_url)
        out.print(f"[green]target org {org.org_id} is a sandbox on the allowlist[/]")
        with ledger_at(ledger_url(database_url), create=False) as ledger, task_bars(out) as bar:
            task = bar.add_task("replay", total=None, visible=False)

            def planned(p: Planned | None, status: RunStatus) -> None:
                if p is not None:
                    _render_plan(p, status, out)
                else:
                    out.print(f"resuming replay {status.run_id}")
                if report is not None and p is not None:
                    _write_report(report, p, status)
                    out.print(f"report written to {escape(str(report))}")
                if not status.started.dry_run:
                    bar.update(task, total=status.counts()["records"], visible=True)

            try:
                result = run_replay(
                    ledger,
                    accounts,
                    request,
                    org,
                    _intercom_attributes(settings, ledger),
                    resume=resume,
                    on_planned=planned,
                    progress=lambda n: bar.advance(task, n),
                )
            except SalesforceError as exc:
                raise ReplayError(f"the target org: {exc.message}") from None
    status = result.status
    if status.started.dry_run:
        out.print(f"dry run {status.run_id}: nothing was written to the target")
        return
    counts = status.counts()
    out.print(
        f"replay {status.run_id} {status.state}: {counts['records_applied']} record(s) hold "
        f"the planned values, {counts['records_failed']} refused, "
        f"{counts['api_calls']} API call(s)"
    )
    if counts["records_failed"]:
        raise typer.Exit(1)


def _intercom_attributes(settings: Settings, ledger: LedgerApp) -> list[IntercomAttribute]:
    """Intercom's attribute catalog: live when Intercom is configured; else the sample
    catalog plus every attribute the configuration in force maps."""
    if settings.intercom_token is not None:
        with IntercomCompanies(
            settings.intercom_base_url, settings.intercom_token.get_secret_value()
        ) as companies:
            return list(companies.catalog())
    known = {a.name: a for a in catalog().intercom.values()}
    known.update({rm.intercom.name: rm.intercom for rm in ledger.config.mappings})
    return list(known.values())


def _render_plan(p: Planned, status: RunStatus, out: Console) -> None:
    plan = p.plan
    s = status.started
    out.print(
        f"replay {s.run_id}: {p.facts_replayed} recorded fact(s) re-derived under "
        f"{escape(s.config_source)} configuration (identifier {p.config.identifier.name}), "
        f"{p.facts_before} before the window built the starting state"
    )
    for warning in p.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="plan by field, outcome and rule")
    for name in ("system", "field", "outcome", "rule"):
        table.add_column(name)
    table.add_column("count", justify="right")
    for system, field_name, outcome, rule, n in plan.counts():
        table.add_row(system, field_name, outcome, rule or "-", str(n))
    out.print(table)
    summary = plan.summary()
    out.print(
        f"{summary['writes']} write(s) to {summary['records']} target record(s); "
        f"{summary['overwrites']} overwrite(s); mappings gained {summary['mappings_gained']}, "
        f"lost {summary['mappings_lost']} (vs production now); {summary['ties']} tied key(s) "
        "in the target"
    )
    for row in plan.overwrites[:SHOWN]:
        out.print(
            f"  overwrite {row.record_id} {row.field} (key {escape(row.key)}): "
            f"{escape(repr(row.before))} → {escape(repr(row.value))}"
        )
    if len(plan.overwrites) > SHOWN:
        out.print(f"  … and {len(plan.overwrites) - SHOWN} more (see --report)")


def _write_report(path: Path, p: Planned, status: RunStatus) -> None:
    plan = p.plan
    if path.suffix.lower() == ".json":
        body = {
            "run": status.to_dict(),
            "summary": plan.summary(),
            "counts": [
                {"system": s, "field": f, "outcome": o, "rule": r, "count": n}
                for s, f, o, r, n in plan.counts()
            ],
            "mappings_gained": [m.to_dict() for m in plan.gained],
            "mappings_lost": [m.to_dict() for m in plan.lost],
            "ties": plan.ties,
            "overwrites": [r.to_dict() for r in plan.overwrites],
            "rows": [r.to_dict() for r in plan.rows],
            "warnings": p.warnings,
        }
        path.write_text(json.dumps(body, indent=2, default=str) + "\n", encoding="utf-8")
        return
    columns = ["kind", "system", "key", "field", "mapping", "outcome", "rule", "record_id",
               "before", "after", "overwrite"]  # fmt: skip
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for r in plan.rows:
            writer.writerow(
                [
                    "value",
                    r.system,
                    r.key,
                    r.field,
                    r.mapping,
                    r.outcome,
                    r.rule,
                    r.record_id,
                    _cell(r.before),
                    _cell(r.value),
                    "yes" if r.is_overwrite else "",
                ]
            )
        for kind, rows in (("mapping gained", plan.gained), ("mapping lost", plan.lost)):
            for m in rows:
                writer.writerow(
                    [
                        kind,
                        "",
                        m.key,
                        "",
                        "",
                        "",
                        "",
                        m.salesforce_id,
                        "",
                        m.intercom_id,
                        "",
                    ]
                )


def _cell(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else json.dumps(value)
