"""The projections in the ledger's own database, on SQLite and PostgreSQL: exactly once across a
crash and with two projectors at once, rebuild == incremental, and the audit CLI."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, inspect
from typer.testing import CliRunner

from adapters.cli.main import app as cli
from adapters.store.database import ledger_env
from adapters.sync.fakes import FakeIntercom, FakeSalesforce
from ledger.application import LedgerApp
from projections import models as m
from projections.projector import Projector, projection_engine
from projections.queries import Audit
from tests.support import CATALOG, STANDARD_CONFIG, FakeClock, sync_cycle
from tests.unit.test_cycle import account_values, company_values
from tests.unit.test_projections import snapshot


@pytest.fixture
def ledger(database_url: str) -> Iterator[LedgerApp]:
    """A ledger in the test database with a short sync history (8 pairs, an overwrite each)."""
    app = LedgerApp(env=ledger_env(database_url), clock=FakeClock())
    app.apply_config(STANDARD_CONFIG, CATALOG)
    rng = random.Random(5)
    sf, ic = FakeSalesforce(), FakeIntercom()
    keys = [f"k{i}" for i in range(8)]
    accounts = {k: sf.create({**account_values(rng, k), "Industry": "Other"}) for k in keys}
    sync_cycle(app, sf, ic)
    for k in keys:
        ic.create(k, {**company_values(rng, k), "industry": "Banking"})
    sync_cycle(app, sf, ic)
    for k in keys[:3]:
        sf.update(accounts[k], Name=f"Renamed {k}")
    sync_cycle(app, sf, ic)
    app.state.scalars["accounts"] = accounts  # handy for the tests, not part of the ledger
    try:
        yield app
    finally:
        app.close()


def test_rebuild_in_the_ledger_database_equals_incremental(
    ledger: LedgerApp, database_url: str
) -> None:
    projector = Projector.open(ledger, database_url, page_size=16)
    try:
        assert projector.catch_up() == ledger.state.position
        incremental = snapshot(projector.engine)
        assert projector.rebuild() == ledger.state.position
        assert snapshot(projector.engine) == incremental
        inspector = inspect(projector.engine)
        for table in m.READ_MODELS:  # dropped for the rebuild, all back
            found = {ix["name"] for ix in inspector.get_indexes(table.name)}
            assert found == {ix.name for ix in table.indexes}, table.name
        audit = Audit(projector)
        assert len(audit.mappings_as_of().mappings) == 8
        assert {w.field for w in audit.writes(overwrites_only=True)} >= {"Industry"}
    finally:
        projector.close()


class Crash(Exception):
    pass


def test_a_crash_before_commit_then_a_restart_applies_each_event_once(
    ledger: LedgerApp, database_url: str
) -> None:
    engine = projection_engine(database_url)
    first = Projector(ledger, engine, page_size=20)
    commits = {"left": 2}

    @event.listens_for(engine, "commit")
    def die(_conn: Any) -> None:
        commits["left"] -= 1
        if commits["left"] == 0:
            raise Crash  # the process dies as the second page commits

    with pytest.raises(Crash):
        first.catch_up()
    first.close()
    peek = Projector.open(ledger, database_url)
    assert peek.position == 20  # one page
    peek.close()
    again = Projector.open(ledger, database_url, page_size=20)
    assert again.catch_up() == ledger.state.position - 20
    reference = Projector(ledger, projection_engine("memory://"))
    reference.catch_up()
    assert snapshot(again.engine) == snapshot(reference.engine)
    again.close()
    reference.close()


def test_two_projectors_at_once_apply_each_page_once(ledger: LedgerApp, database_url: str) -> None:
    projectors = [Projector.open(ledger, database_url, page_size=5) for _ in range(2)]
    counts: list[int] = []
    start = threading.Barrier(2)

    def run(p: Projector) -> None:
        start.wait()
        counts.append(p.catch_up())

    threads = [threading.Thread(target=run, args=(p,)) for p in projectors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == ledger.state.position
    reference = Projector(ledger, projection_engine("memory://"))
    reference.catch_up()
    assert snapshot(projectors[0].engine) == snapshot(reference.engine)
    reference.close()
    for p in projectors:
        p.close()


def test_the_audit_cli(ledger: LedgerApp, database_url: str) -> None:
    runner = CliRunner()
    env = {"SYNCLEDGER_DATABASE_URL": database_url, "COLUMNS": "200"}
    account = ledger.state.scalars["accounts"]["k0"]
    rebuilt = runner.invoke(cli, ["projections", "rebuild"], env=env)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert f"from {ledger.state.position} event(s)" in rebuilt.output

    history = runner.invoke(cli, ["history", "account", account], env=env)
    assert history.exit_code == 0, history.output
    assert "company_id 'k0'" in history.output and "Industry: 'Other' → 'Banking'" in history.output

    csv_out = runner.invoke(cli, ["overwrites", "--field", "Industry", "--format", "csv"], env=env)
    assert csv_out.exit_code == 0, csv_out.output
    lines = csv_out.output.splitlines()
    assert lines[0].startswith("position,at,system,record_id,company_id,field,before,value")
    assert len(lines) == 9 and all(",Industry,Other,Banking,yes,none,1," in x for x in lines[1:])

    as_json = runner.invoke(cli, ["overwrites", "--format", "json", "--limit", "2"], env=env)
    assert [w["overwrite"] for w in json.loads(as_json.output)] == [True, True]

    table = runner.invoke(
        cli, ["overwrites", "--since", "2026-01-01", "--field", "Industry"], env=env
    )
    assert "8 overwrite(s)" in table.output

    explain = runner.invoke(cli, ["explain", "--company-id", "k0"], env=env)
    assert explain.exit_code == 0, explain.output
    assert "synced: mapped to account" in explain.output and "configuration v1" in explain.output

    unknown = runner.invoke(cli, ["explain", "--company-id", "nobody"], env=env)
    assert unknown.exit_code == 1 and "no Intercom company" in unknown.output

    bad = runner.invoke(cli, ["overwrites", "--since", "last week"], env=env)
    assert bad.exit_code == 2 and "not an ISO-8601" in bad.output
    assert "Traceback" not in bad.output

    neither = runner.invoke(cli, ["explain"], env=env)
    assert neither.exit_code == 2 and "exactly one" in neither.output
