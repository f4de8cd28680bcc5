"""The ledger on real stores: SQLite files and the PostgreSQL server (each test runs on both)."""

from __future__ import annotations

import pytest

from adapters.store.database import DatabaseUrlError, ledger_env
from ledger import events as ev
from ledger.application import LedgerApp
from ledger.facts import AccountChange, CompanyChange, WriteOutcome
from tests.conftest import Factory
from tests.support import CATALOG, STANDARD_CONFIG, ingest_concurrently


def stamp(n: int) -> str:
    return f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}.000+0000"


def accounts(start: int, count: int, minute: int = 1) -> list[AccountChange]:
    return [
        AccountChange(
            f"001{i:015d}",
            {"AccountNumber": f"k{i}", "Name": f"Account {i}", "Industry": None},
            stamp(minute),
        )
        for i in range(start, start + count)
    ]


def test_events_survive_reopening_and_rebuild_to_the_same_state(open_ledger: Factory) -> None:
    app = open_ledger()
    app.apply_config(STANDARD_CONFIG, CATALOG)
    app.ingest(accounts(0, 50))
    companies = [CompanyChange(f"c{i}", f"k{i}", {"size": i}, 100, "created") for i in range(30)]
    app.ingest(companies)
    app.record_outcomes(WriteOutcome(p.write_id, True) for p in app.pending_writes()[:10])
    reopened = open_ledger()
    assert reopened.state.snapshot() == app.state.snapshot()
    assert len(reopened.mappings()) == 30
    assert len(reopened.pending_writes()) == len(app.pending_writes())


def test_stored_events_decode_to_equal_events(open_ledger: Factory) -> None:
    app = open_ledger()
    recorded = app.ingest(accounts(0, 5))
    stored = [e for _, e in app.read_events()]
    assert stored[-len(recorded.events) :] == list(recorded.events)


def test_mapping_as_of_a_past_position(open_ledger: Factory) -> None:
    app = open_ledger()
    app.apply_config(STANDARD_CONFIG, CATALOG)
    before = app.ingest(accounts(0, 1)).position
    mapped_at = app.ingest([CompanyChange("c0", "k0", {"name": "x"}, 100, "created")]).position
    app.ingest([AccountChange("001" + "0" * 15, {"AccountNumber": "other"}, stamp(9))])
    assert app.mapping_at("k0") is None
    past = app.mapping_at("k0", mapped_at)
    assert past is not None and past.intercom_id == "c0"
    assert app.mapping_at("k0", before) is None


def test_a_second_process_catches_up_before_deciding(open_ledger: Factory) -> None:
    first, second = open_ledger(), open_ledger()
    first.apply_config(STANDARD_CONFIG, CATALOG)
    first.ingest(accounts(0, 3))
    second.ingest([CompanyChange("c1", "k1", {"name": "x", "size": 5}, 100, "created")])
    assert [m.company_id for m in second.mappings()] == ["k1"]
    assert first.mappings() == second.mappings()
    assert first.state.snapshot() == second.state.snapshot()


def test_concurrent_writers_lose_nothing_and_agree(open_ledger: Factory) -> None:
    apps = [open_ledger(), open_ledger()]
    apps[0].apply_config(STANDARD_CONFIG, CATALOG)

    def work(app: LedgerApp, offset: int) -> None:
        for batch in range(15):
            app.ingest(accounts(offset + batch * 10, 10, minute=batch))

    assert ingest_concurrently(apps, work) == []
    for app in apps:
        app.catch_up()
    assert apps[0].state.snapshot() == apps[1].state.snapshot()
    assert len(apps[0].state.accounts) == 300
    heads = [e for _, e in apps[0].read_events() if isinstance(e, ev.LedgerAdvanced)]
    assert [h.originator_version for h in heads] == list(range(1, len(heads) + 1))
    assert apps[0].rebuild().snapshot() == apps[0].state.snapshot()


def test_unusable_database_urls_are_refused_with_a_message() -> None:
    with pytest.raises(DatabaseUrlError, match="not a database URL"):
        ledger_env("no way")
    with pytest.raises(DatabaseUrlError, match="unsupported database"):
        ledger_env("mysql://root@localhost/db")
