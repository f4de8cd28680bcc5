"""Replay into a sandbox org, over real HTTP to the simulators (real simple-salesforce/httpx).

A *production* Salesforce org and Intercom workspace are synced into a SQLite ledger by real
cycles; a *sandbox* org is a copy of production taken before the sync (its record Ids differ).
The replay re-derives the ledger's history and writes what the sandbox needs.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from adapters.cli.main import app as cli
from adapters.demo.story import demo_config
from adapters.intercom.client import IntercomCompanies
from adapters.intercom.system import IntercomSystem
from adapters.salesforce.client import SalesforceAccounts
from adapters.salesforce.sandbox import target_accounts
from adapters.salesforce.system import SalesforceSystem
from adapters.simulators.intercom import IntercomState, create_intercom_app
from adapters.simulators.salesforce import SalesforceState, create_salesforce_app
from adapters.simulators.server import serving
from adapters.store.database import ledger_env
from adapters.sync.cycle import run_cycle
from adapters.sync.replay import ReplayRefused, ReplayRequest, check_target, run_replay
from ledger import events as ev
from ledger.application import LedgerApp
from ledger.catalog import FieldCatalog
from tests.support import Inbox, webhook_receiver

SECRET = "replay-secret"
PROD_ORG = "00D000000000001EAA"
SANDBOX_ORG = "00D000000000002EAA"
SF_FIELDS = ("Name", "AccountNumber", "Site", "Plan__c", "Industry", "NumberOfEmployees",
             "Website", "AnnualRevenue")  # fmt: skip
INDUSTRIES = ("Banking", "Technology", "Retail", "Energy", "Media")
I2S_FIELDS = ("Industry", "NumberOfEmployees", "Website")


@dataclass
class World:
    """Production (Salesforce + Intercom + ledger) and a sandbox copy, all served."""

    prod: SalesforceState
    intercom: IntercomState
    sandbox: SalesforceState
    prod_url: str
    intercom_url: str
    sandbox_url: str
    database_url: str
    app: LedgerApp
    salesforce_system: SalesforceSystem
    intercom_system: IntercomSystem
    #: where Intercom's webhooks arrive; :attr:`sync` keeps them in the ledger's inbox
    inbox: Inbox
    sync: Callable[[], None]

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "SYNCLEDGER_DATABASE_URL": self.database_url,
            "SYNCLEDGER_SALESFORCE_INSTANCE_URL": self.prod_url,
            "SYNCLEDGER_SALESFORCE_SESSION_ID": "sim-token",
            "SYNCLEDGER_INTERCOM_BASE_URL": self.intercom_url,
            "SYNCLEDGER_INTERCOM_TOKEN": "sim-token",
            "SYNCLEDGER_INTERCOM_CLIENT_SECRET": SECRET,
            "SYNCLEDGER_REPLAY_ALLOWED_ORGS": SANDBOX_ORG,
            **extra,
        }


def build_world(
    stack: ExitStack,
    tmp_path: Path,
    count: int,
    *,
    sandbox_options: dict[str, Any] | None = None,
    site: Callable[[int], str | None] = lambda i: f"S-{i:04d}",
    sync_first: bool = True,
) -> World:
    """``count`` account/company pairs keyed ``K-0000``…; the sandbox is copied before the
    sync, in reverse order (so its Ids differ); then production is synced until quiet."""
    rng = random.Random(2026)
    prod, sandbox, ic = SalesforceState(), SalesforceState(), IntercomState(seed=7)
    ic.define_attribute("plan", "string")
    rows = []
    for i in range(count):
        rows.append(
            {
                "Name": f"Account {i}",
                "AccountNumber": f"K-{i:04d}",
                "Site": site(i),
                "Plan__c": rng.choice(["Free", "Pro", None]),
                "Industry": rng.choice(INDUSTRIES),
                "NumberOfEmployees": rng.randint(1, 500),
                "Website": rng.choice([None, f"https://sf{i}.example"]),
            }
        )
    for row in rows:
        prod.create_account(row)
    for row in reversed(rows):
        sandbox.create_account(row)
    inbox = Inbox(SECRET)
    receiver = stack.enter_context(serving(webhook_receiver(inbox)))
    prod_server = stack.enter_context(serving(create_salesforce_app(prod, org_id=PROD_ORG)))
    options = {"sandbox": True, "org_id": SANDBOX_ORG, **(sandbox_options or {})}
    sandbox_server = stack.enter_context(serving(create_salesforce_app(sandbox, **options)))
    ic_server = stack.enter_context(
        serving(create_intercom_app(ic, webhook_url=f"{receiver.url}/hook", client_secret=SECRET))
    )
    accounts = SalesforceAccounts(
        prod_server.url, "sim-token", fields=SF_FIELDS, identifier_field="AccountNumber"
    )
    stack.callback(accounts.close)
    companies = IntercomCompanies(ic_server.url, "sim-token")
    stack.callback(companies.close)
    salesforce, intercom = SalesforceSystem(accounts), IntercomSystem(companies)
    database_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    app = LedgerApp(env=ledger_env(database_url))
    stack.callback(app.close)
    app.apply_config(demo_config(), FieldCatalog.of(accounts.describe(), companies.catalog()))

    def sync() -> None:
        quiet = 0
        for _ in range(30):
            assert ic.flush_webhooks(10.0)
            inbox.deliver(app)
            report = run_cycle(app, salesforce, intercom)
            busy = report.writes_planned or report.writes_applied or report.mappings_made
            quiet = 0 if busy or app.pending_writes() else quiet + 1
            if quiet == 2:
                return
        raise AssertionError("production did not converge")

    for i in range(count):
        ic.create_company(
            f"K-{i:04d}",
            name=f"Company {i}",
            industry=rng.choice(INDUSTRIES),
            size=rng.randint(1, 900),
            website=f"https://ic{i}.example",
            monthly_spend=1000 + i,
        )
    if sync_first:
        sync()
    return World(prod, ic, sandbox, prod_server.url, ic_server.url, sandbox_server.url,
                 database_url, app, salesforce, intercom, inbox, sync)  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with ExitStack() as stack:
        yield build_world(stack, tmp_path, 40)


def replay_args(w: World, *extra: str) -> list[str]:
    return ["replay", "--target-instance-url", w.sandbox_url, "--target-session-id",
            "sim-token", "--database-url", w.database_url, *extra]  # fmt: skip


def invoke(w: World, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    for name, value in w.env().items():
        monkeypatch.setenv(name, value)
    return CliRunner().invoke(cli, list(args))


def written(state: SalesforceState) -> Counter[tuple[str, str, str]]:
    """Every (Id, field, value) the simulator's updates set, counted."""
    return Counter(
        (rid, name, json.dumps(value)) for rid, values in state.update_log
        for name, value in values.items()
    )  # fmt: skip


# --- dry run == apply ----------------------------------------------------------------------


def test_dry_run_plan_is_what_apply_then_does(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    report = tmp_path / "plan.json"
    dry = invoke(world, monkeypatch, *replay_args(world, "--dry-run", "--report", str(report)))
    assert dry.exit_code == 0, dry.output
    assert "nothing was written" in dry.output and world.sandbox.update_log == []
    plan = json.loads(report.read_text())
    writes = [r for r in plan["rows"] if r["outcome"] == "write"]
    assert writes and plan["summary"]["writes"] == len(writes)
    assert {r["system"] for r in plan["rows"] if r["outcome"] == "reported only"} == {"intercom"}
    assert plan["mappings_gained"] == [] and plan["mappings_lost"] == []  # same configuration
    # every write goes to the sandbox account carrying the key, not to production's Id
    sandbox_by_key = {a["AccountNumber"]: a["Id"] for a in world.sandbox.all_accounts()}
    assert all(r["record_id"] == sandbox_by_key[r["key"]] for r in writes)
    assert {r["field"] for r in writes} <= set(I2S_FIELDS)

    applied = invoke(world, monkeypatch, *replay_args(world))
    assert applied.exit_code == 0, applied.output
    expected = Counter((r["record_id"], r["field"], json.dumps(r["value"])) for r in writes)
    assert written(world.sandbox) == expected
    # the sandbox now holds production's synced values for every Intercom → Salesforce field
    prod_by_key = {a["AccountNumber"]: a for a in world.prod.all_accounts()}
    for account in world.sandbox.all_accounts():
        twin = prod_by_key[account["AccountNumber"]]
        assert all(account[f] == twin[f] for f in I2S_FIELDS), account["AccountNumber"]
    # recorded in the ledger's own stream: one dry run, one completed run
    world.app.catch_up()
    runs = world.app.events_of_type(ev.ReplayStarted)
    assert [r.dry_run for r in runs] == [True, False]
    assert all(r.target_org_id == SANDBOX_ORG for r in runs)
    finished = world.app.events_of_type(ev.ReplayFinished)
    assert [f.outcome for f in finished] == ["dry run", "completed"]

    again = invoke(world, monkeypatch, *replay_args(world, "--dry-run"))
    assert again.exit_code == 0 and "0 write(s)" in again.output  # nothing left to do


def test_proposed_mapping_is_derived_and_reported_as_csv(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    proposed = tmp_path / "proposed.toml"
    base = demo_config().to_toml()
    proposed.write_text(
        base + '\n[[attribute]]\nintercom = "monthly_spend"\nsalesforce = "AnnualRevenue"\n'
        'direction = "intercom_to_salesforce"\n'
    )
    report = tmp_path / "plan.csv"
    args = replay_args(world, "--config", str(proposed), "--dry-run", "--report", str(report))
    result = invoke(world, monkeypatch, *args)
    assert result.exit_code == 0, result.output
    lines = report.read_text().splitlines()
    revenue = [line for line in lines if ",AnnualRevenue," in line and ",write," in line]
    assert len(revenue) == 40  # every company's monthly spend, which production never synced
    applied = invoke(world, monkeypatch, *replay_args(world, "--config", str(proposed)))
    assert applied.exit_code == 0, applied.output
    spend = {a["AccountNumber"]: a["AnnualRevenue"] for a in world.sandbox.all_accounts()}
    assert spend == {f"K-{i:04d}": 1000 + i for i in range(40)}
    assert all(a["AnnualRevenue"] is None for a in world.prod.all_accounts())


# --- the guard -----------------------------------------------------------------------------


def test_guard_refuses_a_production_org_and_an_org_not_on_the_allowlist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ExitStack() as stack:
        w = build_world(stack, tmp_path, 5, sandbox_options={"sandbox": False})
        result = invoke(w, monkeypatch, *replay_args(w))
        assert result.exit_code == 1
        assert "is not a sandbox (Organization.IsSandbox = false)" in result.output
        result = invoke(w, monkeypatch, *replay_args(w, "--dry-run"))
        assert result.exit_code == 1 and "not a sandbox" in result.output
        assert w.sandbox.update_log == []
        # nothing was recorded: the guard runs before anything
        assert w.app.events_of_type(ev.ReplayStarted) == []

    (tmp_path / "b").mkdir()
    with ExitStack() as stack:
        w = build_world(stack, tmp_path / "b", 5, sync_first=False)
        request = ReplayRequest(target_instance_url=w.sandbox_url, target_session_id="sim-token")
        with target_accounts(request) as accounts:
            org = check_target(accounts, [SANDBOX_ORG[:15]], w.sandbox_url)  # 15-char form
            assert org.org_id == SANDBOX_ORG
            with pytest.raises(ReplayRefused, match="not on SYNCLEDGER_REPLAY_ALLOWED_ORGS"):
                check_target(accounts, ["00D000000000009EAA"], w.sandbox_url)
            with pytest.raises(ReplayRefused, match=r"ALLOWED_ORGS \(empty\)"):
                check_target(accounts, [], w.sandbox_url)
        result = invoke(
            w, monkeypatch, *replay_args(w), "--target-session-id", "wrong-token"
        )  # the guard query itself fails: refused
        assert result.exit_code == 1 and "could not confirm the target org" in result.output
        monkeypatch.setenv("SYNCLEDGER_REPLAY_ALLOWED_ORGS", PROD_ORG)
        result = CliRunner().invoke(cli, replay_args(w))
        assert result.exit_code == 1 and "not on SYNCLEDGER_REPLAY_ALLOWED_ORGS" in result.output
        assert w.sandbox.update_log == []


# --- killed midway, resumed -----------------------------------------------------------------


class KillAfterWrites:
    """ASGI middleware on the sandbox: once ``after`` collection writes have been applied,
    SIGKILL the replay process before it hears the answer (the worst moment)."""

    def __init__(self, app: Any, after: int) -> None:
        self.app, self.after, self.seen = app, after, 0
        self.pid: int | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        is_write = (
            scope["type"] == "http"
            and scope["method"] == "PATCH"
            and scope["path"].endswith("/composite/sobjects")
        )
        if not is_write or self.pid is None:
            await self.app(scope, receive, send)
            return
        self.seen += 1
        if self.seen < self.after:
            await self.app(scope, receive, send)
            return

        async def swallow(message: Any) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                assert self.pid is not None
                os.kill(self.pid, signal.SIGKILL)  # the write is applied; its answer is lost
            await send(message)

        await self.app(scope, receive, swallow)


def test_a_replay_killed_midway_and_resumed_writes_everything_exactly_once(
    tmp_path: Path,
) -> None:
    with ExitStack() as stack:
        w = build_world(stack, tmp_path, 700)  # 700 sandbox records: 4 batches
        sandbox_app = create_salesforce_app(w.sandbox, sandbox=True, org_id=SANDBOX_ORG)
        killer = KillAfterWrites(sandbox_app, after=2)
        target = stack.enter_context(serving(killer))
        args = ["replay", "--target-instance-url", target.url, "--target-session-id",
                "sim-token", "--database-url", w.database_url]  # fmt: skip
        command = [str(Path(sys.executable).parent / "syncledger"), *args]
        env = {**os.environ, **w.env()}
        first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        killer.pid = first.pid
        first.wait(timeout=120)
        assert first.returncode == -signal.SIGKILL
        w.app.catch_up()
        [started] = w.app.events_of_type(ev.ReplayStarted)
        assert started.batches == 4
        applied_before = w.app.events_of_type(ev.ReplayBatchApplied)
        assert [a.batch for a in applied_before] == [1]  # batch 2 was sent, its answer lost
        assert w.app.events_of_type(ev.ReplayFinished) == []

        killer.pid = None
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        assert f"resuming replay {started.run_id}" in second.stdout
        w.app.catch_up()
        planned = [x for p in w.app.events_of_type(ev.ReplayBatchPlanned) for x in p.writes]
        expected = Counter((x["record_id"], x["field"], json.dumps(x["value"])) for x in planned)
        assert written(w.sandbox) == expected  # every write exactly once
        assert max(written(w.sandbox).values()) == 1
        applied = w.app.events_of_type(ev.ReplayBatchApplied)
        assert sorted(a.batch for a in applied) == [1, 2, 3, 4]
        [batch2] = [a for a in applied if a.batch == 2]
        assert len(batch2.already) == 200 and batch2.results == []  # found applied, not resent
        [finished] = w.app.events_of_type(ev.ReplayFinished)
        assert finished.outcome == "completed" and finished.applied == 700


class OrgSwitchAfterWrites:
    """ASGI middleware on the sandbox: after ``after`` collection writes, the session lands in
    another org (its Organization query answers production's row), as a re-pointed session or
    a login that now lands elsewhere would."""

    def __init__(self, sandbox: Any, other: Any, after: int) -> None:
        self.sandbox, self.other, self.after, self.writes = sandbox, other, after, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/composite/sobjects"):
            self.writes += scope["method"] == "PATCH"
        asks_org = b"Organization" in scope.get("query_string", b"").replace(b"%20", b" ")
        target = self.other if asks_org and self.writes >= self.after else self.sandbox
        await target(scope, receive, send)


def test_the_guard_is_checked_again_on_the_writing_connection_before_every_batch(
    tmp_path: Path,
) -> None:
    """Found by an attacker: the guard checked the org on one connection and the writes went
    on another (the HTTP route even opened a fresh one after the check)."""
    with ExitStack() as stack:
        w = build_world(stack, tmp_path, 700)  # 4 batches
        sandbox_app = create_salesforce_app(w.sandbox, sandbox=True, org_id=SANDBOX_ORG)
        production = create_salesforce_app(SalesforceState(), sandbox=False, org_id=PROD_ORG)
        target = stack.enter_context(
            serving(OrgSwitchAfterWrites(sandbox_app, production, after=2))
        )
        request = ReplayRequest(target_instance_url=target.url, target_session_id="sim-token")
        with target_accounts(request) as accounts:
            org = check_target(accounts, [SANDBOX_ORG], target.url)
            with pytest.raises(ReplayRefused, match=f"now writes to org {PROD_ORG}"):
                run_replay(w.app, accounts, request, org, [])
        w.app.catch_up()
        applied = w.app.events_of_type(ev.ReplayBatchApplied)
        assert [a.batch for a in applied] == [1, 2]  # nothing sent once the org changed
        planned = w.app.events_of_type(ev.ReplayBatchPlanned)
        sent = [x for p in planned if p.batch in (1, 2) for x in p.writes]
        assert sum(written(w.sandbox).values()) == len(sent)


def test_replay_pauses_at_the_bulk_tier_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ExitStack() as stack:
        w = build_world(stack, tmp_path, 450)  # 3 batches
        args = replay_args(w, "--target-daily-allocation", "10")
        result = invoke(w, monkeypatch, *args)
        # describe-free plan: 1 lookup; batch 1: 1 write = 2 calls, batch 2 … at 40 % of 10
        assert result.exit_code == 3, result.output
        assert "paused" in result.output and "40 %" in result.output
        w.app.catch_up()
        done = {a.batch for a in w.app.events_of_type(ev.ReplayBatchApplied)}
        assert done and done != {1, 2, 3}
        result = invoke(w, monkeypatch, *replay_args(w))  # a larger allocation: resumes
        assert result.exit_code == 0, result.output
        assert max(written(w.sandbox).values()) == 1
        [finished] = w.app.events_of_type(ev.ReplayFinished)
        assert finished.outcome == "completed" and finished.applied == 450


# --- over HTTP -----------------------------------------------------------------------------


def test_replays_over_http_need_the_scope_and_report_from_the_ledger(world: World) -> None:
    import time

    import httpx

    from adapters.bootstrap import Service
    from adapters.http.app import create_app
    from adapters.service.intake import WebhookIntake
    from adapters.settings import ApiKeys, load_settings

    keys = ApiKeys({"k-replay": ["replay:execute"], "k-audit": ["audit:read"]})
    settings = load_settings(world.env())
    intake = WebhookIntake(world.app, "client-secret")
    api = create_app(Service(world.app, intake, api_keys=keys, replay_settings=settings))
    body = {"target_instance_url": world.sandbox_url, "target_session_id": "sim-token"}
    with serving(api) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/replays", json=body).status_code == 401
        denied = client.post("/replays", json=body, headers={"Authorization": "Bearer k-audit"})
        assert denied.status_code == 403
        ok = {"Authorization": "Bearer k-replay"}
        refused = client.post(
            "/replays", json={**body, "target_instance_url": world.prod_url}, headers=ok
        )
        assert refused.status_code == 422 and "not a sandbox" in refused.json()["detail"]
        started = client.post("/replays", json={**body, "dry_run": True}, headers=ok)
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        for _ in range(200):
            shown = client.get(f"/replays/{run_id}", headers=ok).json()
            if shown["state"] not in ("planning", "running"):
                break
            time.sleep(0.05)
        assert shown["state"] == "dry run" and shown["dry_run"] is True
        assert shown["plan"]["writes"] > 0 and shown["target_org_id"] == SANDBOX_ORG
        assert world.sandbox.update_log == []
        assert client.get("/replays/nope", headers=ok).status_code == 404
