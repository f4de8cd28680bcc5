"""The LedgerApp's public API: configuration, write outcomes, point-in-time reads."""

from __future__ import annotations

import pytest

from ledger import events as ev
from ledger.config import AttributeMapping, ConfigError, SyncConfig
from ledger.facts import AccountChange, CompanyChange, WriteOutcome
from tests.support import CATALOG, I2S, FakeClock, new_ledger


def pair(app_size: int = 10) -> list[object]:
    return [
        AccountChange(
            "001A", {"AccountNumber": "k1", "Name": "Acme"}, "2026-01-01T00:01:00.000+0000"
        ),
        CompanyChange("c1", "k1", {"name": "Acme", "size": app_size}, 100, "created"),
    ]


def test_an_invalid_configuration_is_refused_whole_and_changes_nothing() -> None:
    app = new_ledger()
    app.ingest(pair())  # type: ignore[arg-type]
    before = app.state.snapshot()
    bad = SyncConfig(
        "Description",
        (
            AttributeMapping("size", "Tier__c", I2S),
            AttributeMapping("last_request_at", "Renewal_Date__c", I2S),
        ),
    )
    with pytest.raises(ConfigError) as refused:
        app.apply_config(bad, CATALOG)
    fields = {p.field for p in refused.value.problems}
    assert {"Description", "Tier__c", "last_request_at"} <= fields
    assert app.state.snapshot() == before
    assert app.rebuild().snapshot() == before


def test_a_retryable_failure_keeps_the_write_pending_and_counts_attempts() -> None:
    app = new_ledger()
    app.ingest(pair())  # type: ignore[arg-type]
    (write,) = app.pending_writes()
    app.record_outcomes([WriteOutcome(write.write_id, False, error="lock", retryable=True)])
    app.record_outcomes([WriteOutcome(write.write_id, False, error="lock", retryable=True)])
    (still,) = app.pending_writes()
    assert still.attempts == 2
    app.record_outcomes([WriteOutcome(write.write_id, False, error="bad value", code="X")])
    assert app.pending_writes() == []
    failed = [e for _, e in app.read_events() if isinstance(e, ev.WriteFailed)]
    assert [(f.retryable, f.attempt) for f in failed] == [(True, 1), (True, 2), (False, 3)]


def test_a_repeated_outcome_records_nothing() -> None:
    app = new_ledger()
    app.ingest(pair())  # type: ignore[arg-type]
    (write,) = app.pending_writes()
    assert app.record_outcomes([WriteOutcome(write.write_id, True, before=None)]).count == 2
    assert app.record_outcomes([WriteOutcome(write.write_id, True, before=None)]).count == 0


def test_giving_up_closes_a_write_with_the_rule() -> None:
    app = new_ledger()
    app.ingest(pair())  # type: ignore[arg-type]
    (write,) = app.pending_writes()
    app.give_up([write.write_id], "retries_exhausted", "5 attempts")
    skipped = [e for _, e in app.read_events() if isinstance(e, ev.WriteSkipped)]
    assert [s.rule for s in skipped] == ["retries_exhausted"]
    assert app.pending_writes() == []


def test_removing_an_attribute_mapping_cancels_its_pending_writes() -> None:
    app = new_ledger()
    app.ingest(pair())  # type: ignore[arg-type]
    assert app.pending_writes()
    app.apply_config(SyncConfig("AccountNumber", ()), CATALOG)
    assert app.pending_writes() == []
    skipped = [e for _, e in app.read_events() if isinstance(e, ev.WriteSkipped)]
    assert [s.rule for s in skipped] == ["configuration_changed"]
    assert len(app.mappings()) == 1  # same identifier field: the mapping stays


def test_the_state_at_a_past_position_is_the_state_then() -> None:
    app = new_ledger(FakeClock())
    first = app.ingest(pair(10))  # type: ignore[arg-type]
    app.ingest([CompanyChange("c1", "k1", {"name": "Acme", "size": 99}, 200, "updated")])
    then = app.state_at(first.position)
    assert then.companies["c1"].attributes["size"] == 10
    assert app.state.companies["c1"].attributes["size"] == 99
    assert then.position == first.position


def test_every_event_carries_the_injected_time() -> None:
    clock = FakeClock()
    app = new_ledger(clock)
    recorded = app.ingest(pair())  # type: ignore[arg-type]
    assert {e.timestamp for e in recorded.events} == {clock.now}
