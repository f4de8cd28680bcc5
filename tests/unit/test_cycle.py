"""Sync cycles against the in-memory fakes: convergence, echoes, deletions, refusals."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hyp

from adapters.sync.cycle import CycleReport
from adapters.sync.fakes import INDUSTRIES, FakeIntercom, FakeSalesforce, catalog
from adapters.sync.ports import RecordResult, WriteRefused
from ledger import events as ev
from ledger.application import LedgerApp
from ledger.config import Direction
from ledger.decisions import READ_AGAIN
from ledger.facts import CompanyChange, CompanyRemoval
from ledger.state import RecordedUsage
from ledger.values import Rejected, convert, is_empty, same_value
from tests.support import STANDARD_CONFIG, FakeClock, sync_cycle


def new_app() -> LedgerApp:
    app = LedgerApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=FakeClock())
    app.apply_config(STANDARD_CONFIG, catalog())
    return app


Notification = tuple[str, CompanyChange | CompanyRemoval]


def again(notification: Notification) -> Notification:
    """``notification`` delivered again as a new notification, so the ledger decides on its fact
    again (a repeat of its id is dropped by the inbox before any decision)."""
    notification_id, fact = notification
    return f"{notification_id}-again", fact


def recorded_since(app: LedgerApp, position: int) -> list[ev.LedgerEvent]:
    """The events recorded after ``position``, but the inbox's own (a notification received,
    notifications taken) and the transaction heads."""
    inbox = (ev.NotificationReceived, ev.NotificationsTaken, ev.LedgerAdvanced)
    return [e for p, e in app.read_events() if p > position and not isinstance(e, inbox)]


def cycles(app: LedgerApp, sf: FakeSalesforce, ic: FakeIntercom, n: int) -> list[CycleReport]:
    return [sync_cycle(app, sf, ic) for _ in range(n)]


def assert_directed_values_hold(app: LedgerApp, sf: FakeSalesforce, ic: FakeIntercom) -> int:
    """Every mapped pair holds each mapping's source value at its destination, unless a rule
    (source empty, destination has a value, value rejected) kept the destination. Returns how
    many values were checked."""
    checked = 0
    for link in app.mappings():
        account, company = sf.get(link.salesforce_id), ic.get(link.intercom_id)
        assert account is not None and company is not None
        for rm in app.config.mappings:
            m = rm.mapping
            if m.direction is Direction.SALESFORCE_TO_INTERCOM:
                source, dest, dest_type = account[m.salesforce], company[m.intercom], "intercom"
            else:
                source, dest, dest_type = company[m.intercom], account[m.salesforce], "salesforce"
            if m.skip_if_source_empty and is_empty(source):
                continue
            converted = convert(source, rm.salesforce, rm.intercom, m.direction)
            if isinstance(converted, Rejected):
                continue
            kind = rm.intercom.data_type if dest_type == "intercom" else rm.salesforce.type
            if same_value(converted.value, dest, kind):
                checked += 1
                continue
            assert m.skip_if_destination_has_value and not is_empty(dest), (
                f"{link.company_id}: {m.destination} is {dest!r}, expected {converted.value!r}"
            )
    return checked


def account_values(rng: random.Random, key: str) -> dict[str, Any]:
    return {
        "AccountNumber": key,
        "Name": rng.choice([f"Account {key}", f"Acct {key}"]),
        "Plan__c": rng.choice(["Pro", "Free", None]),
        "Renewal_Date__c": rng.choice(["2026-06-30", None]),
        "Industry": rng.choice([*INDUSTRIES, None]),
        "NumberOfEmployees": rng.choice([None, 10, 200]),
        "Website": rng.choice([None, f"https://{key}.example"]),
    }


def company_values(rng: random.Random, key: str) -> dict[str, Any]:
    return {
        "name": rng.choice([f"Company {key}", None]),
        "industry": rng.choice([*INDUSTRIES, "Space Mining", None]),
        "size": rng.choice([None, 10, 75]),
        "website": rng.choice([None, f"https://www.{key}.example"]),
        "custom_attributes.plan": rng.choice(["Enterprise", None]),
    }


def populated(seed: int = 7, pairs: int = 25) -> tuple[LedgerApp, FakeSalesforce, FakeIntercom]:
    """Accounts first (they wait), then their companies appear, then every account is saved:
    both directions have had a trigger since the mapping exists."""
    rng = random.Random(seed)
    app, sf, ic = new_app(), FakeSalesforce(), FakeIntercom()
    keys = [f"k{i}" for i in range(pairs)]
    ids = {k: sf.create(account_values(rng, k)) for k in keys}
    sync_cycle(app, sf, ic)
    for k in keys:
        ic.create(k, company_values(rng, k))
    sync_cycle(app, sf, ic)
    for k in keys:
        sf.update(ids[k], Description="reviewed")
    sync_cycle(app, sf, ic)
    return app, sf, ic


def test_cycles_converge_mapped_pairs_to_the_directed_values() -> None:
    app, sf, ic = populated()
    assert len(app.mappings()) == 25
    assert assert_directed_values_hold(app, sf, ic) > 100
    totals = CycleReport().tally(e for _, e in app.read_events())
    assert totals.writes_applied > 0 and totals.writes_failed == 0
    assert totals.skipped_by_rule["source_empty"] > 0
    assert any(r.field == "Industry" for r in totals.rejected)  # "Space Mining"


def test_echoes_of_our_writes_cause_no_more_writes() -> None:
    app, sf, ic = populated()
    echo = sync_cycle(app, sf, ic)
    assert echo.facts_ingested > 0 and echo.echoes > 0
    assert echo.writes_planned == 0 and echo.writes_applied == 0
    position = app.state.position
    quiet = sync_cycle(app, sf, ic)
    assert (quiet.facts_ingested, quiet.writes_planned) == (0, 0)
    assert app.state.position == position  # nothing recorded at all


def test_a_first_cycle_maps_and_writes_with_the_value_read_as_before() -> None:
    app, sf, ic = new_app(), FakeSalesforce(), FakeIntercom()
    sid = sf.create(AccountNumber="k1", Name="Acme", Plan__c="Pro", Website="https://keep.io")
    iid = ic.create("k1", {"name": "Old", "website": "https://new.io"}, notify=False)
    report = sync_cycle(app, sf, ic)
    assert (report.facts_ingested, report.lookups, report.mappings_made) == (1, 1, 1)
    assert ic.get(iid) == {**(ic.get(iid) or {}), "name": "Acme", "custom_attributes.plan": "Pro"}
    [overwrite] = report.overwrites
    assert (overwrite.field, overwrite.before, overwrite.after) == ("name", "Old", "Acme")
    assert (overwrite.mapping, overwrite.config_version) == ("name ← Name", 1)
    assert (sf.get(sid) or {})["Website"] == "https://keep.io"


def test_a_pair_new_on_both_sides_in_one_cycle_is_mapped_and_synced_both_ways() -> None:
    """The company's trigger is decided first and finds the account by a lookup (one call),
    although the poll in the same cycle carries the account too; the account's trigger then
    syncs its own direction."""
    app, sf, ic = new_app(), FakeSalesforce(), FakeIntercom()
    sid = sf.create(AccountNumber="k1", Name="Acme")
    ic.create("k1", {"name": "Old", "industry": "Banking"})
    report = sync_cycle(app, sf, ic)
    assert report.lookups == 1
    assert [m.company_id for m in app.mappings()] == ["k1"]
    assert report.writes_applied == 2
    assert (ic.get(ic.by_company_id("k1") or "") or {})["name"] == "Acme"
    assert (sf.get(sid) or {})["Industry"] == "Banking"


def test_an_edit_seen_first_by_the_read_before_a_write_still_syncs() -> None:
    """A user renames the account just before a cycle reads it to write Industry: the read
    shows the new name, then our write raises the stamp. The poll that follows sees the rename
    and our write at one stamp; the rename is no echo and reaches Intercom."""
    app, sf, ic = new_app(), FakeSalesforce(), FakeIntercom()
    sid = sf.create(AccountNumber="k1", Name="Acme")
    iid = ic.create("k1", {"industry": "Banking"})
    sync_cycle(app, sf, ic)
    sync_cycle(app, sf, ic)  # the echo of the first cycle's writes
    ic.update(iid, industry="Retail")
    sf.update(sid, Name="Acme Renamed")
    # A cycle that takes the webhook but not the poll: its read before the write sees the rename.
    first = sync_cycle(app, sf, ic, poll_salesforce=False)
    assert first.writes_applied == 1 and (sf.get(sid) or {})["Industry"] == "Retail"
    sync_cycle(app, sf, ic)
    sync_cycle(app, sf, ic)
    assert (ic.get(iid) or {})["name"] == "Acme Renamed"
    echoes = [e for _, e in app.read_events() if isinstance(e, ev.EchoRecognised)]
    assert all(e.record_id != sid or "Name" not in e.fields for e in echoes)


# -- Intercom's whole-second stamps ------------------------------------------------------------


def mapped_pair() -> tuple[LedgerApp, FakeSalesforce, FakeIntercom, str, str]:
    app, sf, ic = new_app(), FakeSalesforce(), FakeIntercom()
    sid = sf.create(AccountNumber="k1", Name="Acme")
    iid = ic.create("k1", {"industry": "Banking"})
    for _ in range(2):
        sync_cycle(app, sf, ic)  # mapped and synced, then the echo
    return app, sf, ic, sid, iid


def one_second_of_changes() -> tuple[LedgerApp, FakeSalesforce, FakeIntercom, str, str]:
    """A mapped pair whose company changes twice within one second: Retail, then Technology
    (both notifications queued)."""
    app, sf, ic, sid, iid = mapped_pair()
    with ic.within_one_second():
        ic.update(iid, industry="Retail")
        ic.update(iid, industry="Technology")
    return app, sf, ic, sid, iid


def test_changes_within_one_second_delivered_out_of_order_sync_the_current_value() -> None:
    """Two edits within one second carry one ``updated_at``; Intercom retried the first one's
    webhook, so it arrives last. The company is read again and the current value wins."""
    app, sf, ic, sid, _ = one_second_of_changes()
    app.receive(ic.webhooks()[::-1])
    report = sync_cycle(app, sf, ic)
    assert report.reread == 1
    assert (sf.get(sid) or {})["Industry"] == "Technology"
    assert report.writes_applied == 1  # the stale value was never planned
    [changed] = [
        e for _, e in app.read_events()
        if isinstance(e, ev.CompanyUpdated) and e.source == READ_AGAIN
    ]  # fmt: skip
    assert changed.attributes["industry"] == "Technology"


def test_a_stale_notification_of_the_same_second_in_a_later_cycle_changes_nothing() -> None:
    app, sf, ic, sid, _ = one_second_of_changes()
    stale, current = ic.webhooks()
    app.receive([current])
    assert sync_cycle(app, sf, ic).reread == 0
    assert (sf.get(sid) or {})["Industry"] == "Technology"
    sync_cycle(app, sf, ic)  # the poll sees our write: an echo
    position = app.state.position
    app.receive([stale])
    report = sync_cycle(app, sf, ic)
    assert report.reread == 1 and report.writes_planned == 0
    assert (sf.get(sid) or {})["Industry"] == "Technology"
    # the read repeats what the ledger holds: nothing is recorded but the notification's own
    # passage through the inbox
    assert recorded_since(app, position) == []


def test_the_earlier_change_of_a_second_arriving_first_is_synced_then_replaced() -> None:
    app, sf, ic, sid, _ = one_second_of_changes()
    first, second = ic.webhooks()
    app.receive([first])
    sync_cycle(app, sf, ic)
    app.receive([second])
    assert sync_cycle(app, sf, ic).reread == 1
    assert (sf.get(sid) or {})["Industry"] == "Technology"


def test_a_company_deleted_before_its_doubtful_notification_is_read_is_unmapped() -> None:
    app, sf, ic, sid, iid = one_second_of_changes()
    notifications = ic.webhooks()
    ic.delete(iid)
    ic.webhooks()  # its webhook is still on the way
    app.receive(notifications[::-1])
    report = sync_cycle(app, sf, ic)
    assert report.reread == 1 and report.unmapped_by_reason == {"company deleted": 1}
    assert (sf.get(sid) or {})["Industry"] == "Banking"


def test_a_late_company_created_syncs_every_attribute_after_reads_got_ahead() -> None:
    """The account is mapped through a lookup while the company's webhooks are still on the
    way (Intercom retries them); the reads before our writes see the user's later edits first.
    When the notifications arrive, older than those reads, the company is read again and its
    created trigger syncs every attribute."""
    app, sf, ic = new_app(), FakeSalesforce(), FakeIntercom()
    iid = ic.create("k1", {"industry": "Agriculture", "size": 75})
    sid = sf.create(AccountNumber="k1", Name="Acme")
    held = ic.webhooks()
    sync_cycle(app, sf, ic)  # the lookup finds the company; the name goes to Intercom
    ic.update(iid, industry="Banking")
    ic.update(iid, industry="Technology")
    held += ic.webhooks()
    sf.update(sid, Name="Acme Renamed")
    sync_cycle(app, sf, ic)  # its read before writing the name sees "Technology"
    assert (sf.get(sid) or {})["Industry"] is None
    ic.webhooks()  # the echo of our write: delivered, nothing new
    app.receive(held)
    report = sync_cycle(app, sf, ic)
    assert report.reread == 1
    assert (sf.get(sid) or {})["Industry"] == "Technology"
    assert (sf.get(sid) or {})["NumberOfEmployees"] == 75


def test_a_company_created_arriving_after_its_update_still_syncs_every_attribute() -> None:
    app, sf, ic = new_app(), FakeSalesforce(), FakeIntercom()
    iid = ic.create("k1", {"industry": "Agriculture", "size": 75})
    sid = sf.create(AccountNumber="k1", Name="Acme")
    [created] = ic.webhooks()
    sync_cycle(app, sf, ic)
    ic.webhooks()  # the echo of our name
    ic.update(iid, industry="Banking")
    sync_cycle(app, sf, ic)  # the update syncs what it changed
    assert (sf.get(sid) or {})["NumberOfEmployees"] is None
    app.receive([created])
    assert sync_cycle(app, sf, ic).reread == 1
    assert (sf.get(sid) or {})["NumberOfEmployees"] == 75
    assert (sf.get(sid) or {})["Industry"] == "Banking"


def test_a_late_notification_of_a_deleted_and_replaced_company_changes_nothing() -> None:
    """Company X is updated, then deleted, and a new company takes its company_id; X's two
    webhooks arrive late, in separate cycles. Reading X again finds it gone."""
    app, sf, ic, sid, old = mapped_pair()
    ic.update(old, industry="Retail")
    late_update = ic.webhooks()
    ic.delete(old)
    late_deletion = ic.webhooks()
    new = ic.create("k1", {"industry": "Technology", "size": 75})
    sync_cycle(app, sf, ic)
    app.receive(late_update)
    assert sync_cycle(app, sf, ic).reread == 1
    app.receive(late_deletion)
    for _ in range(2):
        sync_cycle(app, sf, ic)
    assert [(m.company_id, m.intercom_id) for m in app.mappings()] == [("k1", new)]
    assert (sf.get(sid) or {})["Industry"] == "Technology"
    sf.update(sid, Name="Acme Renamed")
    sync_cycle(app, sf, ic)
    assert (ic.get(new) or {})["name"] == "Acme Renamed"


def test_a_company_created_delivered_again_after_later_changes_syncs_nothing_again() -> None:
    """A Salesforce edit of an Intercom-owned field stays: the second delivery of company.created
    is no new trigger to sync every attribute."""
    app, sf, ic = new_app(), FakeSalesforce(), FakeIntercom()
    sid = sf.create(AccountNumber="k1", Name="Acme")
    iid = ic.create("k1", {"industry": "Agriculture", "size": 75})
    [created] = ic.webhooks()
    app.receive([created])
    for _ in range(2):
        sync_cycle(app, sf, ic)
    ic.update(iid, industry="Banking")
    for _ in range(2):
        sync_cycle(app, sf, ic)
    sf.update(sid, NumberOfEmployees=500)
    sync_cycle(app, sf, ic)
    app.receive([again(created)])
    report = sync_cycle(app, sf, ic)
    assert report.writes_applied == 0
    assert (sf.get(sid) or {})["NumberOfEmployees"] == 500


def test_in_order_notifications_around_our_own_writes_need_no_read() -> None:
    """A user edits the company just before a cycle reads it to write the name; the edit's
    webhook and then our write's echo arrive in order: both are placed without a read."""
    app, sf, ic, sid, iid = mapped_pair()
    ic.update(iid, industry="Retail")
    edit = ic.webhooks()
    sf.update(sid, Name="Acme 2")
    sync_cycle(app, sf, ic)  # its read before writing the name sees "Retail"
    app.receive(edit)  # ahead of our write's echo
    report = sync_cycle(app, sf, ic)
    assert report.reread == 0
    assert (sf.get(sid) or {})["Industry"] == "Retail"


def test_a_new_account_first_seen_by_a_lookup_still_syncs_when_polled() -> None:
    """A cycle woken by company.created (no poll) finds the new account by a lookup and writes
    Industry to it; the poll then shows the account with our write. Its first poll is its
    created trigger, not an echo: the name reaches Intercom."""
    app, sf, ic = new_app(), FakeSalesforce(), FakeIntercom()
    sid = sf.create(AccountNumber="k1", Name="Acme")
    iid = ic.create("k1", {"industry": "Banking"})
    sync_cycle(app, sf, ic, poll_salesforce=False)
    assert (sf.get(sid) or {})["Industry"] == "Banking"
    for _ in range(2):
        sync_cycle(app, sf, ic)
    assert (ic.get(iid) or {})["name"] == "Acme"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seconds=hyp.lists(
        hyp.lists(
            hyp.sampled_from(["Banking", "Retail", "Technology", "Agriculture"]),
            min_size=1,
            max_size=3,
        ),
        min_size=1,
        max_size=4,
    ),
    order=hyp.randoms(use_true_random=False),
    batches=hyp.integers(min_value=1, max_value=4),
)
def test_any_delivery_order_of_whole_second_changes_converges_to_the_current_value(
    seconds: list[list[str]], order: random.Random, batches: int
) -> None:
    """Edits, a few within each second, delivered shuffled, some twice, over a few cycles:
    Salesforce ends with Intercom's current value."""
    app, sf, ic, sid, iid = mapped_pair()
    for values in seconds:
        with ic.within_one_second():
            for value in values:
                ic.update(iid, industry=value)
    notifications = ic.webhooks()
    redelivered = order.sample(notifications, k=len(notifications) // 2)
    notifications += [again(n) for n in redelivered]
    order.shuffle(notifications)
    size = -(-len(notifications) // batches)
    for start in range(0, len(notifications), size):
        app.receive(notifications[start : start + size])
        sync_cycle(app, sf, ic)
    for _ in range(2):
        sync_cycle(app, sf, ic)
    assert (sf.get(sid) or {})["Industry"] == (ic.get(iid) or {})["industry"]


def test_deleting_an_account_only_drops_the_mapping() -> None:
    app, sf, ic = populated(pairs=3)
    sync_cycle(app, sf, ic)
    link = app.mappings()[0]
    company_before = ic.get(link.intercom_id)
    sf.delete(link.salesforce_id)
    report = sync_cycle(app, sf, ic)
    assert report.unmapped_by_reason == {"account deleted": 1}
    assert report.writes_planned == 0
    assert ic.get(link.intercom_id) == company_before
    assert link.company_id not in {m.company_id for m in app.mappings()}
    assert sync_cycle(app, sf, ic).writes_planned == 0


def test_deleting_a_company_only_drops_the_mapping() -> None:
    app, sf, ic = populated(pairs=3)
    sync_cycle(app, sf, ic)
    link = app.mappings()[0]
    account_before = sf.get(link.salesforce_id)
    ic.delete(link.intercom_id)
    report = sync_cycle(app, sf, ic)
    assert report.unmapped_by_reason == {"company deleted": 1}
    assert report.writes_planned == 0
    assert sf.get(link.salesforce_id) == account_before


def test_a_refused_value_fails_for_good_and_the_rest_of_the_record_is_written() -> None:
    app, sf, ic = new_app(), FakeSalesforce(), FakeIntercom()
    sid = sf.create(AccountNumber="k1", Name="Acme", Industry="Banking")
    iid = ic.create("k1", {"name": "Acme"}, notify=False)
    sync_cycle(app, sf, ic)
    sf.set_picklist_values("Industry", ["Banking", "Retail"])  # the ledger is not told
    ic.update(iid, {"industry": "Other", "size": 99})
    report = sync_cycle(app, sf, ic)
    assert (report.writes_applied, report.writes_failed) == (1, 1)
    [failure] = report.failures
    assert failure.planned_write.field == "Industry" and not failure.retryable
    assert failure.code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert sf.get(sid) == {**(sf.get(sid) or {}), "Industry": "Banking", "NumberOfEmployees": 99}
    assert app.pending_writes() == []


class BusyIntercom(FakeIntercom):
    """Intercom answering every write with a rate-limit error."""

    def _write_one(self, intercom_id: str, values: Mapping[str, Any]) -> None:
        raise WriteRefused("rate limited", code="rate_limit_exceeded", retryable=True)


def test_a_retryable_failure_stays_pending_until_attempts_run_out() -> None:
    app, sf, ic = new_app(), FakeSalesforce(), BusyIntercom()
    sf.create(AccountNumber="k1", Name="Acme")
    ic.create("k1", {"name": "Old"}, notify=False)
    reports = [sync_cycle(app, sf, ic, max_attempts=3) for _ in range(4)]
    assert [r.writes_failed for r in reports] == [1, 1, 1, 0]
    assert reports[-1].skipped_by_rule == {"retries_exhausted": 1}
    assert app.pending_writes() == []


def test_people_and_unkeyed_companies_are_recorded_as_ignored() -> None:
    app, sf, ic = new_app(), FakeSalesforce(), FakeIntercom()
    sf.create(AccountNumber="k1", Name="Jane Doe", person=True)
    ic.create("k1", {"name": "Acme"})
    ic.create(None, {"name": "a lead"})
    report = sync_cycle(app, sf, ic)
    assert {system for system, _ in report.ignored} == {ev.SALESFORCE, ev.INTERCOM}
    assert app.mappings() == []


def test_notifications_taken_by_a_failed_cycle_are_kept_for_the_next() -> None:
    from adapters.demo.story import demo_config

    app = LedgerApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    app.apply_config(demo_config(), catalog())
    sf, ic = FakeSalesforce(), FakeIntercom()
    sid = sf.create(Name="Acme", AccountNumber="K-1")
    iid = ic.create("K-1", name="Acme Inc")
    for _ in range(3):
        sync_cycle(app, sf, ic)
    ic.update(iid, industry="Banking")  # a webhook is waiting

    class PollOutage:
        """Salesforce whose next poll fails once."""

        def __init__(self, inner: FakeSalesforce) -> None:
            self.inner, self.fail = inner, True

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def changes_since(self, watermark: str | None) -> Any:
            if self.fail:
                self.fail = False
                raise RuntimeError("poll outage")
            return self.inner.changes_since(watermark)

    flaky = PollOutage(sf)
    with pytest.raises(RuntimeError):
        sync_cycle(app, flaky, ic)  # type: ignore[arg-type]
    for _ in range(2):
        sync_cycle(app, flaky, ic)  # type: ignore[arg-type]
    assert sf.get(sid)["Industry"] == "Banking"


# -- batching, the API budget and resyncs ---------------------------------------------------------


class CountingSalesforce(FakeSalesforce):
    """Counts the records of each write request."""

    def __init__(self) -> None:
        super().__init__()
        self.write_requests: list[int] = []

    def write(self, updates: Sequence[tuple[str, Mapping[str, Any]]]) -> list[RecordResult]:
        self.write_requests += [len(updates[i : i + 200]) for i in range(0, len(updates), 200)]
        return super().write(updates)


def test_writes_to_many_accounts_go_200_records_a_request() -> None:
    app, sf, ic = new_app(), CountingSalesforce(), FakeIntercom()
    ids = [sf.create(AccountNumber=f"k{i}", Name=f"A{i}") for i in range(450)]
    sync_cycle(app, sf, ic)
    for i in range(450):
        ic.create(f"k{i}", {"name": f"A{i}", "industry": "Banking"})

    report = sync_cycle(app, sf, ic)

    assert report.mappings_made == 450
    assert report.applied_by_system["salesforce"] == 450
    assert sf.write_requests == [200, 200, 50]
    assert all(sf.get(rid)["Industry"] == "Banking" for rid in ids)  # type: ignore[index]


def company_name(ic: FakeIntercom, company_id: str) -> Any:
    company = ic.get(ic.by_company_id(company_id) or "")
    assert company is not None
    return company["name"]


def test_at_80_percent_of_the_allocation_event_sync_pauses_and_then_resumes() -> None:
    app, sf, ic = new_app(), FakeSalesforce(), FakeIntercom()
    sf.api_allocation = 100
    rid = sf.create(AccountNumber="k1", Name="Acme")
    ic.create("k1", {"name": "Old"}, notify=False)
    sf.api_calls = 70  # usage is the org's: other integrations' calls count too
    first = sync_cycle(app, sf, ic)
    assert (first.tier, first.paused, first.mappings_made) == ("pause_bulk", "", 1)
    assert app.state.api_usage("salesforce") == RecordedUsage(
        used=sf.api_calls, limit=100_000, allocation=100, tier="pause_bulk"
    )
    sf.api_calls = 85

    sf.update(rid, Name="Acme Corp")
    before = sf.api_calls
    paused = sync_cycle(app, sf, ic)
    assert paused.paused.startswith("event sync paused: Salesforce API usage 86 of 100")
    assert paused.facts_ingested == 0
    assert sf.api_calls == before + 1  # only the usage check
    assert company_name(ic, "k1") == "Acme"

    sf.api_calls = 10  # the rolling day moved on
    resumed = sync_cycle(app, sf, ic)
    assert resumed.paused == "" and resumed.tier == "normal"
    assert company_name(ic, "k1") == "Acme Corp"
    tiers = [e.tier for _, e in app.read_events() if isinstance(e, ev.ApiUsageObserved)]
    assert tiers[-2:] == ["pause_sync", "normal"]


def test_missed_deletions_are_found_by_reading_every_known_account_again() -> None:
    app, sf, ic = new_app(), FakeSalesforce(), FakeIntercom()
    kept, gone = sf.create(AccountNumber="k1"), sf.create(AccountNumber="k2")
    ic.create("k1", {"name": "One"}, notify=False)
    ic.create("k2", {"name": "Two"}, notify=False)
    sync_cycle(app, sf, ic)
    assert {link.salesforce_id for link in app.mappings()} == {kept, gone}
    sf.delete(gone)
    sf.purge_delete_log()  # the deletion is no longer listed by the time we poll

    report = sync_cycle(app, sf, ic)

    assert report.resynced == 2 and app.state.resync_needed("salesforce") is None
    assert [link.salesforce_id for link in app.mappings()] == [kept]
    assert report.unmapped_by_reason == {"account deleted": 1}
    kinds = [type(e).__name__ for _, e in app.read_events()]
    assert kinds.index("ResyncNeeded") < kinds.index("ResyncCompleted")


def test_a_resync_waits_while_usage_is_above_the_bulk_tier() -> None:
    app, sf, ic = new_app(), FakeSalesforce(), FakeIntercom()
    sf.api_allocation = 1000
    gone = sf.create(AccountNumber="k2")
    ic.create("k2", {"name": "Two"}, notify=False)
    sync_cycle(app, sf, ic)
    sf.delete(gone)
    sf.purge_delete_log()
    sf.api_calls = 500  # 50 %: bulk work waits, event sync goes on

    deferred = sync_cycle(app, sf, ic)
    assert deferred.resync_deferred and deferred.resynced == 0
    assert app.state.resync_needed("salesforce") is not None and len(app.mappings()) == 1

    sf.api_calls = 0
    done = sync_cycle(app, sf, ic)
    assert done.resynced == 1 and app.mappings() == []
