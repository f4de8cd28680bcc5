"""``SalesforceAccounts`` against the Salesforce simulator over real HTTP (real simple-salesforce).

Also measures the API calls the adapter spends, from the simulator's counters (run with ``-s``
to see the figures).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.bootstrap import salesforce_accounts
from adapters.salesforce.client import SalesforceAccounts, escape_soql
from adapters.salesforce.errors import (
    SalesforceAuthError,
    SalesforceLimitExceeded,
    SalesforceRejected,
    SalesforceUnavailable,
)
from adapters.settings import load_settings
from adapters.simulators.salesforce import SalesforceState, create_salesforce_app
from adapters.simulators.server import free_port, serving
from ledger.facts import AccountChange, AccountRemoval
from tests.support import StoppedClock

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FIELDS = ("Name", "AccountNumber", "Industry", "Seats__c", "Plan__c", "Tier__c")
SEEDED = 2500


class Sim:
    """One simulator on loopback; :meth:`adapter` builds adapters that are closed with it."""

    def __init__(self, stack: ExitStack, clock: StoppedClock, **options: Any) -> None:
        self.clock = clock
        self.state = SalesforceState(now=clock)
        self.stack = stack
        self.server = stack.enter_context(serving(create_salesforce_app(self.state, **options)))
        self.sleeps: list[float] = []

    def adapter(self, token: str = "sim-token", **options: Any) -> SalesforceAccounts:
        options.setdefault("fields", FIELDS)
        options.setdefault("identifier_field", "AccountNumber")
        options.setdefault("now", self.clock)
        options.setdefault("sleep", self.sleeps.append)
        options.setdefault("rng", random.Random(3))
        adapter = SalesforceAccounts(self.server.url, token, **options)
        self.stack.callback(adapter.close)
        return adapter

    def seed(self, count: int) -> list[str]:
        """``count`` accounts, one per second (the clock ends one second after the last)."""
        ids = []
        for i in range(count):
            fields = {"Name": f"Acct {i:04d}", "AccountNumber": f"A-{i:04d}", "Seats__c": i % 700}
            ids.append(self.state.create_account(fields))
            self.clock.advance(seconds=1)
        return ids

    def counters(self) -> dict[str, int]:
        return dict(self.state.counters)

    def reset(self) -> None:
        self.state.reset_counters()


@pytest.fixture
def make_sim() -> Iterator[Callable[..., Sim]]:
    with ExitStack() as stack:
        yield lambda **options: Sim(stack, StoppedClock(T0), **options)


@pytest.fixture
def sim(make_sim: Callable[..., Sim]) -> Sim:
    return make_sim()


def per_thousand(calls: int, units: int) -> float:
    return round(calls * 1000 / units, 2)


# -- describe ------------------------------------------------------------------------------------


def test_describe_returns_catalog_fields(sim: Sim) -> None:
    adapter = sim.adapter()
    fields = {f.name: f for f in adapter.describe()}
    assert fields["Tier__c"].calculated is True and fields["Tier__c"].updateable is False
    assert fields["BillingAddress"].type == "address"
    assert fields["BillingCity"].compound_field_name == "BillingAddress"
    assert fields["Industry"].restricted_picklist is True
    assert "Banking" in fields["Industry"].picklist_values
    assert adapter.has_person_accounts is True
    assert sim.counters() == {"describe": 1, "total": 1}


# -- poll ----------------------------------------------------------------------------------------


def test_poll_reads_every_page_then_only_newer_changes(sim: Sim) -> None:
    ids = sim.seed(SEEDED)
    adapter = sim.adapter()
    first = adapter.poll(None)
    assert len(first.changes) == SEEDED
    assert {c.salesforce_id for c in first.changes} == set(ids)
    change = first.changes[0]
    assert change.kind == "change" and change.source == "poll"
    assert change.fields["Name"] == "Acct 0000" and change.fields["Tier__c"] is not None
    assert change.is_person_account is False
    assert first.watermark == first.changes[-1].system_modstamp
    assert first.removals == [] and not first.resync_needed
    counters = sim.counters()
    assert counters["query"] == 1 and counters["query_more"] == 1  # 2,000 + 500
    print(
        f"\n[measure] full poll: {counters['total']} calls for {SEEDED} accounts = "
        f"{per_thousand(counters['total'], SEEDED)} per 1,000 (incl. one describe)"
    )

    sim.clock.advance(minutes=10)
    sim.reset()
    changed = ids[100:1100]  # 1,000 accounts change
    for record_id in changed:
        sim.state.update_account(record_id, {"Plan__c": "pro"})
    sim.clock.advance(seconds=1)
    second = adapter.poll(first.watermark)
    got = {c.salesforce_id for c in second.changes}
    assert set(changed) <= got
    overlap = got - set(changed)
    assert overlap  # the last 300 s before the watermark are read again (ledger ignores them)
    assert len(overlap) <= 300
    assert all(c.fields["Plan__c"] == "pro" for c in second.changes if c.salesforce_id in changed)
    assert second.watermark is not None and second.watermark > (first.watermark or "")
    counters = sim.counters()
    assert counters["query"] == 1 and counters["deleted"] == 1 and "describe" not in counters
    assert len(second.api_calls) == counters["total"]
    print(
        f"[measure] incremental poll: {counters['total']} calls for {len(changed)} changed "
        f"accounts ({len(second.changes)} returned incl. overlap) = "
        f"{per_thousand(counters['total'], len(changed))} per 1,000 changed accounts"
    )

    sim.clock.advance(minutes=1)
    third = adapter.poll(second.watermark)
    assert third.changes == [] or all(c.salesforce_id in got for c in third.changes)


def test_poll_reports_deletions(sim: Sim) -> None:
    ids = sim.seed(20)
    adapter = sim.adapter()
    first = adapter.poll(None)
    sim.clock.advance(minutes=2)
    for record_id in ids[:3]:
        sim.state.delete_account(record_id)
    sim.clock.advance(minutes=2)
    second = adapter.poll(first.watermark)
    assert {r.salesforce_id for r in second.removals} == set(ids[:3])
    removal = second.removals[0]
    assert removal.source == "poll" and removal.deleted_at is not None
    assert removal.deleted_at.startswith("2024-05-01T12:02:20")
    assert not {c.salesforce_id for c in second.changes} & set(ids[:3])
    assert second.deletes_covered_until == "2024-05-01T12:04:00.000+0000"
    assert not second.resync_needed


def test_poll_needs_resync_when_the_delete_log_was_purged(sim: Sim) -> None:
    ids = sim.seed(5)
    adapter = sim.adapter()
    first = adapter.poll(None)
    sim.clock.advance(minutes=30)
    sim.state.delete_account(ids[0])
    sim.state.purge_delete_log(sim.clock.now + timedelta(seconds=1))
    sim.clock.advance(minutes=5)
    second = adapter.poll(first.watermark)
    assert second.resync_needed is True
    assert "re-read every account" in second.message
    assert second.removals == []


def test_poll_from_a_watermark_older_than_15_days_needs_resync(sim: Sim) -> None:
    sim.seed(3)
    adapter = sim.adapter()
    sim.clock.advance(days=20)
    result = adapter.poll("2024-05-01T11:00:00.000+0000")
    assert len(result.changes) == 3
    assert result.resync_needed is True and "15 days" in result.message


# -- lookup and read -----------------------------------------------------------------------------


def test_lookup_escapes_quotes_and_backslashes(sim: Sim) -> None:
    sim.seed(3)
    odd = sim.state.create_account({"Name": "Odd", "AccountNumber": "O'Brien \\ Co"})
    adapter = sim.adapter()
    found = adapter.lookup("AccountNumber", ["A-0001", "O'Brien \\ Co", "nope", "A-0001"])
    assert sorted(c.fields["AccountNumber"] for c in found) == ["A-0001", "O'Brien \\ Co"]
    assert all(c.kind == "snapshot" and c.source == "lookup" for c in found)
    assert odd in {c.salesforce_id for c in found}
    assert escape_soql("a'b\\c") == "a\\'b\\\\c"


def test_lookup_splits_long_key_lists(sim: Sim) -> None:
    sim.seed(1200)
    adapter = sim.adapter()
    sim.reset()
    keys = [f"A-{i:04d}" for i in range(1200)] + [f"missing-{i}" for i in range(600)]
    found = adapter.lookup("AccountNumber", keys)
    assert len(found) == 1200
    counters = sim.counters()
    assert counters["query"] > 1  # several SELECTs, each within the URL budget
    print(f"\n[measure] lookup of {len(keys)} keys: {counters['total']} calls")


def test_read_returns_removals_for_ids_not_found(sim: Sim) -> None:
    ids = sim.seed(450)
    sim.state.delete_account(ids[5])
    adapter = sim.adapter()
    sim.reset()
    facts = adapter.read([ids[0], ids[5], ids[7][:15], *ids[10:]])
    assert len(facts) == 443
    assert isinstance(facts[0], AccountChange) and facts[0].source == "read"
    assert facts[1] == AccountRemoval(salesforce_id=ids[5], source="read")
    assert isinstance(facts[2], AccountChange) and facts[2].salesforce_id == ids[7]
    assert sim.counters()["query"] == 3  # 200 ids per SELECT (+ one describe)


def test_lookup_on_a_field_that_cannot_be_filtered_is_rejected(sim: Sim) -> None:
    adapter = sim.adapter()
    with pytest.raises(SalesforceRejected) as exc:
        adapter.lookup("Description", ["x"])
    assert exc.value.code == "INVALID_FIELD" and exc.value.status == 400


# -- write ---------------------------------------------------------------------------------------


def test_write_uses_collections_of_200_with_per_record_failures(sim: Sim) -> None:
    ids = sim.seed(450)
    adapter = sim.adapter()
    sim.reset()
    updates = [(rid, {"Plan__c": f"plan-{i}", "Seats__c": i}) for i, rid in enumerate(ids)]
    bad = {3, 250, 449}
    for i in bad:
        updates[i] = (ids[i], {"Plan__c": "x", "Industry": "Spaceflight"})
    results = adapter.write(updates)
    assert len(results) == 450
    assert [r.salesforce_id for r in results] == ids
    failed = [i for i, r in enumerate(results) if not r.ok]
    assert set(failed) == bad
    failure = results[3]
    assert failure.code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert failure.fields == ("Industry",) and failure.retryable is False and failure.message
    assert sim.state.read(ids[0])["Plan__c"] == "plan-0"
    assert sim.state.read(ids[3])["Plan__c"] is None  # a failed record is not changed
    counters = sim.counters()
    assert counters == {"composite": 3, "total": 3}
    assert len({id(r.api_call) for r in results}) == 3
    assert results[0].api_call["records"] == 200 and results[449].api_call["records"] == 50
    attributes = sum(len(values) for _, values in updates)
    print(
        f"\n[measure] write: {counters['total']} calls for {len(updates)} records / "
        f"{attributes} attribute writes = {per_thousand(counters['total'], attributes)} per "
        f"1,000 attribute writes ({per_thousand(counters['total'], len(updates))} per 1,000 "
        "records)"
    )


def test_write_batch_size_sets_the_records_per_request(sim: Sim) -> None:
    """SYNCLEDGER_WRITE_BATCH_SIZE reaches the adapter: 120 records at 50 a request = 3 calls."""
    ids = sim.seed(120)
    adapter = sim.adapter(write_batch_size=50)
    sim.reset()
    results = adapter.write([(rid, {"Plan__c": f"plan-{i}"}) for i, rid in enumerate(ids)])
    assert all(r.ok for r in results)
    assert sim.counters() == {"composite": 3, "total": 3}
    assert [results[i].api_call["records"] for i in (0, 50, 119)] == [50, 50, 20]


def test_bootstrap_builds_the_adapter_with_the_configured_batch_size(sim: Sim) -> None:
    settings = load_settings(
        {
            "SYNCLEDGER_SALESFORCE_INSTANCE_URL": sim.server.url,
            "SYNCLEDGER_SALESFORCE_SESSION_ID": "sim-token",
            "SYNCLEDGER_WRITE_BATCH_SIZE": "50",
        }
    )
    with salesforce_accounts(settings) as adapter:
        assert adapter.write_batch_size == 50


@pytest.mark.parametrize("size", [0, 201])
def test_write_batch_size_outside_1_to_200_is_refused(sim: Sim, size: int) -> None:
    with pytest.raises(ValueError, match="write_batch_size must be from 1 to 200"):
        sim.adapter(write_batch_size=size)


# -- usage, faults, errors -----------------------------------------------------------------------


def test_usage_and_budget_tier_follow_sforce_limit_info(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim(daily_limit=10)
    adapter = sim.adapter()
    assert adapter.budget_tier() == "normal" and adapter.usage is None
    adapter.describe()
    assert adapter.usage is not None
    assert (adapter.usage.used, adapter.usage.total) == (1, 10)
    assert adapter.budget_tier() == "normal"
    adapter.lookup("AccountNumber", ["a"])
    adapter.lookup("AccountNumber", ["b"])
    adapter.lookup("AccountNumber", ["c"])
    assert adapter.usage.used == 4 and adapter.budget_tier() == "pause_bulk"
    for key in "defg":
        adapter.lookup("AccountNumber", [key])
    assert adapter.usage.used == 8 and adapter.budget_tier() == "pause_sync"
    generous = sim.adapter(daily_allocation=40)  # more than the org has: the org's limit caps
    generous.usage = adapter.usage
    assert generous.budget_tier() == "pause_sync"
    shared = sim.adapter(daily_allocation=5)  # our share of the org's limit
    shared.usage = replace(adapter.usage, used=3)
    assert shared.budget_tier() == "pause_bulk" and adapter.budget_tier() != "normal"
    adapter.usage = replace(adapter.usage, used=3)
    assert adapter.budget_tier() == "normal"


def test_deleted_call_updates_usage_too(sim: Sim) -> None:
    sim.seed(2)
    adapter = sim.adapter()
    first = adapter.poll(None)
    sim.clock.advance(minutes=1)
    adapter.poll(first.watermark)
    assert adapter.usage is not None and adapter.usage.used == sim.counters()["total"]


def test_transient_faults_are_retried(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim(fault_rate=0.5, seed=11)
    ids = sim.seed(SEEDED)
    adapter = sim.adapter(max_retries=12)
    first = adapter.poll(None)
    assert len(first.changes) == SEEDED
    results = adapter.write([(rid, {"Plan__c": "retry"}) for rid in ids[:450]])
    assert all(r.ok for r in results)
    assert all(sim.state.read(rid)["Plan__c"] == "retry" for rid in ids[:450])
    sim.clock.advance(minutes=1)
    second = adapter.poll(first.watermark)
    assert {c.salesforce_id for c in second.changes} >= set(ids[:450])
    counters = sim.counters()
    assert counters["faults"] > 0
    assert len(sim.sleeps) >= counters["faults"]
    assert all(0 <= s <= 30 for s in sim.sleeps)


def test_wrong_session_is_an_auth_error(sim: Sim) -> None:
    adapter = sim.adapter(token="wrong-token")
    with pytest.raises(SalesforceAuthError) as exc:
        adapter.describe()
    assert "SYNCLEDGER_SALESFORCE_SESSION_ID" in str(exc.value)
    assert exc.value.status == 401 and exc.value.code == "INVALID_SESSION_ID"
    assert sim.sleeps == []


def test_daily_limit_exceeded(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim(daily_limit=2)
    adapter = sim.adapter()
    adapter.describe()
    adapter.lookup("AccountNumber", ["a"])
    with pytest.raises(SalesforceLimitExceeded) as exc:
        adapter.lookup("AccountNumber", ["b"])
    assert exc.value.code == "REQUEST_LIMIT_EXCEEDED" and exc.value.status == 403
    assert sim.sleeps == []


def test_unreachable_salesforce_is_unavailable_after_retries() -> None:
    sleeps: list[float] = []
    adapter = SalesforceAccounts(
        f"http://127.0.0.1:{free_port()}",
        "sim-token",
        fields=FIELDS,
        identifier_field="AccountNumber",
        max_retries=2,
        timeout=2,
        sleep=sleeps.append,
    )
    with adapter, pytest.raises(SalesforceUnavailable) as exc:
        adapter.describe()
    assert "could not be reached" in str(exc.value)
    assert len(sleeps) == 2
