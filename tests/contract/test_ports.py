"""One behavioural suite per port (``AccountSystem``, ``CompanySystem``), run against the
in-memory fakes and against the real adapters over HTTP on the simulators.

Each implementation comes with a small "world" that performs user actions (create, edit, delete)
the way people in that system would, so the assertions never depend on which one runs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pytest

from adapters.intercom.client import IntercomCompanies
from adapters.intercom.system import IntercomSystem
from adapters.salesforce.client import SalesforceAccounts
from adapters.salesforce.system import SalesforceSystem
from adapters.service.intake import Verdict, WebhookIntake
from adapters.simulators.intercom import IntercomState, create_intercom_app
from adapters.simulators.salesforce import SalesforceState, create_salesforce_app
from adapters.simulators.server import serving
from adapters.sync.cycle import run_cycle
from adapters.sync.fakes import FakeIntercom, FakeSalesforce
from adapters.sync.ports import AccountSystem, CompanySystem
from ledger.facts import (
    AccountChange,
    AccountRemoval,
    CompanyChange,
    CompanyRemoval,
    DeletionsMissed,
)
from tests.support import Inbox, StoppedClock, new_ledger, webhook_receiver

SECRET = "contract-secret"
FIELDS = ("Name", "AccountNumber", "Industry", "Plan__c")

# -- accounts ------------------------------------------------------------------------------------


class AccountWorld(Protocol):
    system: AccountSystem

    def user_creates(self, **fields: Any) -> str: ...
    def user_updates(self, record_id: str, **fields: Any) -> None: ...
    def user_deletes(self, record_id: str) -> None: ...
    def recycle_bin_emptied(self) -> None: ...
    def time_passes(self, seconds: float) -> None: ...


class FakeAccountWorld:
    def __init__(self) -> None:
        self.fake = FakeSalesforce()
        self.system: AccountSystem = self.fake

    def user_creates(self, **fields: Any) -> str:
        return self.fake.create(fields)

    def user_updates(self, record_id: str, **fields: Any) -> None:
        self.fake.update(record_id, fields)

    def user_deletes(self, record_id: str) -> None:
        self.fake.delete(record_id)

    def recycle_bin_emptied(self) -> None:
        self.fake.purge_delete_log()

    def time_passes(self, seconds: float) -> None:
        pass  # the fake's stamps are a counter


class SimAccountWorld:
    def __init__(self, stack: ExitStack) -> None:
        self.clock = StoppedClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
        self.state = SalesforceState(now=self.clock)
        server = stack.enter_context(serving(create_salesforce_app(self.state)))
        accounts = SalesforceAccounts(
            server.url,
            "sim-token",
            fields=FIELDS,
            identifier_field="AccountNumber",
            now=self.clock,
            sleep=lambda _: None,
            rng=random.Random(1),
        )
        stack.callback(accounts.close)
        self.system: AccountSystem = SalesforceSystem(accounts)

    def _tick(self, seconds: float = 1) -> None:
        self.clock.now += timedelta(seconds=seconds)

    def user_creates(self, **fields: Any) -> str:
        self._tick()
        return self.state.create_account(fields)

    def user_updates(self, record_id: str, **fields: Any) -> None:
        self._tick()
        self.state.update_account(record_id, fields)

    def user_deletes(self, record_id: str) -> None:
        self._tick()
        self.state.delete_account(record_id)
        self._tick(120)  # past the minute getDeleted rounds down to

    def time_passes(self, seconds: float) -> None:
        self._tick(seconds)

    def recycle_bin_emptied(self) -> None:
        self._tick(60)
        self.state.purge_delete_log(self.clock.now)
        self._tick(120)


@pytest.fixture(params=["fake", "simulator"])
def accounts(request: pytest.FixtureRequest) -> Iterator[AccountWorld]:
    with ExitStack() as stack:
        yield FakeAccountWorld() if request.param == "fake" else SimAccountWorld(stack)


def _ids(facts: Sequence[Any]) -> set[str]:
    return {f.salesforce_id for f in facts}


def _latest(facts: Sequence[Any]) -> str:
    return max(f.system_modstamp for f in facts if isinstance(f, AccountChange))


def test_changes_since_none_returns_every_live_account(accounts: AccountWorld) -> None:
    ids = {accounts.user_creates(Name=f"A{i}", AccountNumber=f"K-{i}") for i in range(3)}
    gone = accounts.user_creates(Name="Gone", AccountNumber="K-9")
    accounts.user_deletes(gone)

    changes = accounts.system.changes_since(None)

    assert all(isinstance(c, AccountChange) and c.source == "poll" for c in changes)
    assert _ids(changes) == ids


def test_every_account_is_each_live_account_as_it_is_now(accounts: AccountWorld) -> None:
    a = accounts.user_creates(Name="A", AccountNumber="K-1")
    b = accounts.user_creates(Name="B", AccountNumber="K-2")
    gone = accounts.user_creates(Name="Gone", AccountNumber="K-9")
    accounts.user_deletes(gone)
    accounts.user_updates(a, Name="A edited")

    every = accounts.system.every_account()

    assert [f.salesforce_id for f in every] == [b, a]  # least recently saved first
    assert [f.fields["Name"] for f in every] == ["B", "A edited"]


def test_changes_since_watermark_includes_an_edited_account(accounts: AccountWorld) -> None:
    a = accounts.user_creates(Name="A", AccountNumber="K-1")
    accounts.user_creates(Name="B", AccountNumber="K-2")
    watermark = _latest(accounts.system.changes_since(None))

    accounts.user_updates(a, Name="A edited")
    changes = accounts.system.changes_since(watermark)

    edited = [c for c in changes if isinstance(c, AccountChange) and c.salesforce_id == a]
    assert edited and edited[-1].fields["Name"] == "A edited"
    assert edited[-1].system_modstamp > watermark


def test_a_quiet_org_is_not_read_again_once_the_ledger_holds_its_changes(
    accounts: AccountWorld,
) -> None:
    for i in range(3):
        accounts.user_creates(Name=f"A{i}", AccountNumber=f"K-{i}")
    watermark = _latest(accounts.system.changes_since(None))  # the ledger records these
    accounts.time_passes(600)
    accounts.system.changes_since(watermark)  # may re-read the overlap: nothing new
    accounts.time_passes(600)

    quiet = accounts.system.changes_since(watermark)

    assert [c for c in quiet if isinstance(c, AccountChange)] == []


def test_deletion_comes_back_as_a_removal(accounts: AccountWorld) -> None:
    a = accounts.user_creates(Name="A", AccountNumber="K-1")
    watermark = _latest(accounts.system.changes_since(None))

    accounts.user_deletes(a)
    changes = accounts.system.changes_since(watermark)

    removals = [c for c in changes if isinstance(c, AccountRemoval)]
    assert [r.salesforce_id for r in removals] == [a]
    assert not any(isinstance(c, AccountChange) and c.salesforce_id == a for c in changes)


def test_lookup_finds_exactly_the_accounts_with_those_keys(accounts: AccountWorld) -> None:
    a = accounts.user_creates(Name="A", AccountNumber="K-1")
    b = accounts.user_creates(Name="B", AccountNumber="K-2")
    b2 = accounts.user_creates(Name="B twin", AccountNumber="K-2")
    accounts.user_creates(Name="C", AccountNumber="K-3")

    found = accounts.system.lookup("AccountNumber", ["K-1", "K-2"])

    assert sorted(f.salesforce_id for f in found) == sorted([a, b, b2])
    assert all((f.kind, f.source) == ("snapshot", "lookup") for f in found)
    assert list(accounts.system.lookup("AccountNumber", ["K-404"])) == []


def test_read_returns_snapshots_and_a_removal_for_a_deleted_id(accounts: AccountWorld) -> None:
    a = accounts.user_creates(Name="A", AccountNumber="K-1")
    gone = accounts.user_creates(Name="Gone", AccountNumber="K-2")
    accounts.user_deletes(gone)

    snapshot, removal = accounts.system.read([a, gone])

    assert isinstance(snapshot, AccountChange)
    assert (snapshot.salesforce_id, snapshot.kind, snapshot.source) == (a, "snapshot", "read")
    assert snapshot.fields["Name"] == "A"
    assert isinstance(removal, AccountRemoval) and removal.salesforce_id == gone


def test_write_sets_values_and_a_restricted_picklist_value_is_refused(
    accounts: AccountWorld,
) -> None:
    a = accounts.user_creates(Name="A", AccountNumber="K-1")

    [ok] = accounts.system.write([(a, {"Plan__c": "Pro", "Industry": "Banking"})])
    assert (ok.record_id, ok.ok) == (a, True)
    [after] = accounts.system.read([a])
    assert isinstance(after, AccountChange)
    assert (after.fields["Plan__c"], after.fields["Industry"]) == ("Pro", "Banking")

    [refused] = accounts.system.write([(a, {"Industry": "Spaceflight"})])
    assert refused.ok is False and refused.code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert refused.fields == ("Industry",) and refused.retryable is False
    [unchanged] = accounts.system.read([a])
    assert isinstance(unchanged, AccountChange) and unchanged.fields["Industry"] == "Banking"


def test_a_batch_write_answers_each_record_on_its_own(accounts: AccountWorld) -> None:
    ids = [accounts.user_creates(Name=f"A{i}", AccountNumber=f"K-{i}") for i in range(250)]
    gone = ids[7]
    accounts.user_deletes(gone)
    updates = [(rid, {"Plan__c": f"plan {i}"}) for i, rid in enumerate(ids)]
    updates[3] = (ids[3], {"Industry": "Spaceflight"})

    results = accounts.system.write(updates)

    assert [r.record_id for r in results] == ids
    assert [i for i, r in enumerate(results) if not r.ok] == [3, 7]
    assert results[3].fields == ("Industry",)
    now = {f.salesforce_id: f for f in accounts.system.read(ids) if isinstance(f, AccountChange)}
    assert now[ids[249]].fields["Plan__c"] == "plan 249"
    assert now[ids[3]].fields["Plan__c"] is None


def test_api_usage_is_known_after_a_call_and_can_be_refreshed(accounts: AccountWorld) -> None:
    accounts.user_creates(Name="A", AccountNumber="K-1")
    assert accounts.system.api_usage() is None

    accounts.system.changes_since(None)
    seen = accounts.system.api_usage()
    assert seen is not None and seen.system == "salesforce" and 0 < seen.used <= seen.limit

    fresh = accounts.system.refresh_api_usage()
    assert fresh is not None and fresh.used >= seen.used and fresh.limit == seen.limit


def test_an_emptied_recycle_bin_says_deletions_may_have_been_missed(
    accounts: AccountWorld,
) -> None:
    a = accounts.user_creates(Name="A", AccountNumber="K-1")
    b = accounts.user_creates(Name="B", AccountNumber="K-2")
    watermark = _latest(accounts.system.changes_since(None))
    assert not any(isinstance(c, DeletionsMissed) for c in accounts.system.changes_since(watermark))

    accounts.user_deletes(b)
    accounts.recycle_bin_emptied()
    changes = accounts.system.changes_since(watermark)

    missed = [c for c in changes if isinstance(c, DeletionsMissed)]
    assert len(missed) == 1 and missed[0].system == "salesforce" and missed[0].reason
    assert not any(isinstance(c, AccountRemoval) and c.salesforce_id == b for c in changes)
    snapshot, removal = accounts.system.read([a, b])
    assert isinstance(snapshot, AccountChange) and isinstance(removal, AccountRemoval)


def test_the_salesforce_system_sends_its_batch_size_records_a_request() -> None:
    with ExitStack() as stack:
        world = SimAccountWorld(stack)
        ids = [world.user_creates(Name=f"A{i}", AccountNumber=f"K-{i}") for i in range(120)]
        assert isinstance(world.system, SalesforceSystem) and world.system.batch_size == 200
        system = SalesforceSystem(world.system.accounts, batch_size=50)

        results = system.write([(rid, {"Plan__c": "Pro"}) for rid in ids])

        assert all(r.ok for r in results)
        assert [r.api_call["records"] for r in results] == [50] * 100 + [20] * 20
    for size in (0, 201):
        with pytest.raises(ValueError, match="batch_size must be from 1 to 200"):
            SalesforceSystem(world.system.accounts, batch_size=size)


# -- companies -----------------------------------------------------------------------------------


class CompanyWorld(Protocol):
    system: CompanySystem

    def user_creates(self, company_id: str, name: str, plan: str | None = None) -> str: ...
    def user_updates(self, intercom_id: str, name: str) -> None: ...
    def user_deletes(self, intercom_id: str) -> None: ...
    def webhooks(self) -> Sequence[tuple[str, CompanyChange | CompanyRemoval]]: ...


class FakeCompanyWorld:
    def __init__(self) -> None:
        self.fake = FakeIntercom()
        self.system: CompanySystem = self.fake

    def user_creates(self, company_id: str, name: str, plan: str | None = None) -> str:
        return self.fake.create(company_id, {"name": name, "custom_attributes.plan": plan})

    def user_updates(self, intercom_id: str, name: str) -> None:
        self.fake.update(intercom_id, name=name)

    def user_deletes(self, intercom_id: str) -> None:
        self.fake.delete(intercom_id)

    def webhooks(self) -> Sequence[tuple[str, CompanyChange | CompanyRemoval]]:
        return self.fake.webhooks()


class SimCompanyWorld:
    def __init__(self, stack: ExitStack) -> None:
        self.state = IntercomState(seed=7)
        self.state.define_attribute("plan", "string")
        self.inbox = Inbox(SECRET)
        receiver = stack.enter_context(serving(webhook_receiver(self.inbox)))
        app = create_intercom_app(
            self.state, webhook_url=f"{receiver.url}/hook", client_secret=SECRET, seed=7
        )
        server = stack.enter_context(serving(app))
        companies = IntercomCompanies(server.url, "sim-token", timeout=5, sleep=lambda _: None)
        stack.callback(companies.close)
        self.system: CompanySystem = IntercomSystem(companies)

    def user_creates(self, company_id: str, name: str, plan: str | None = None) -> str:
        custom = {"plan": plan} if plan is not None else {}
        return self.state.create_company(company_id, name=name, custom_attributes=custom)

    def user_updates(self, intercom_id: str, name: str) -> None:
        self.state.update_company(intercom_id, name=name)

    def user_deletes(self, intercom_id: str) -> None:
        self.state.delete_company(intercom_id)

    def webhooks(self) -> Sequence[tuple[str, CompanyChange | CompanyRemoval]]:
        assert self.state.flush_webhooks(5.0)
        return [(n.id, n.fact) for n in self.inbox.take() if n.fact is not None]


@pytest.fixture(params=["fake", "simulator"])
def companies(request: pytest.FixtureRequest) -> Iterator[CompanyWorld]:
    with ExitStack() as stack:
        yield FakeCompanyWorld() if request.param == "fake" else SimCompanyWorld(stack)


def test_company_lookup_by_company_id(companies: CompanyWorld) -> None:
    a = companies.user_creates("c-1", "Acme")
    companies.user_creates("c-2", "Globex")

    found = companies.system.lookup(["c-1", "c-404"])

    assert [(f.intercom_id, f.company_id) for f in found] == [(a, "c-1")]
    assert (found[0].kind, found[0].source) == ("snapshot", "lookup")
    assert found[0].attributes["name"] == "Acme"
    assert list(companies.system.lookup(["c-404"])) == []


def test_every_company_is_a_snapshot_of_each_live_company(companies: CompanyWorld) -> None:
    a = companies.user_creates("c-1", "Acme", plan="Pro")
    b = companies.user_creates("c-2", "Globex")
    companies.user_deletes(companies.user_creates("c-3", "Gone"))

    every = list(companies.system.every_company())

    assert sorted((f.intercom_id, f.company_id) for f in every) == sorted([(a, "c-1"), (b, "c-2")])
    assert all(f.kind == "snapshot" for f in every)
    plans = {f.company_id: f.attributes.get("custom_attributes.plan") for f in every}
    assert plans == {"c-1": "Pro", "c-2": None}


def test_company_read_returns_snapshots_and_a_removal(companies: CompanyWorld) -> None:
    kept = companies.user_creates("c-1", "Kept", plan="Free")
    gone = companies.user_creates("c-2", "Gone")
    companies.user_deletes(gone)

    snapshot, removal = companies.system.read([kept, gone])

    assert isinstance(snapshot, CompanyChange)
    assert (snapshot.intercom_id, snapshot.kind, snapshot.source) == (kept, "snapshot", "read")
    assert snapshot.attributes["custom_attributes.plan"] == "Free"
    assert isinstance(removal, CompanyRemoval) and removal.intercom_id == gone


def test_company_write_standard_and_custom_attributes(companies: CompanyWorld) -> None:
    iid = companies.user_creates("c-1", "Old", plan="Free")

    [result] = companies.system.write([(iid, {"name": "New", "custom_attributes.plan": "Pro"})])

    assert (result.record_id, result.ok) == (iid, True)
    [after] = companies.system.read([iid])
    assert isinstance(after, CompanyChange)
    assert after.attributes["name"] == "New"
    assert after.attributes["custom_attributes.plan"] == "Pro"


def test_company_write_of_an_undefined_custom_attribute_is_refused(
    companies: CompanyWorld,
) -> None:
    iid = companies.user_creates("c-1", "Acme")

    [refused] = companies.system.write([(iid, {"custom_attributes.nope": "x"})])

    assert refused.ok is False and refused.code == "parameter_invalid"
    assert refused.retryable is False and refused.fields == ("custom_attributes.nope",)


def test_a_write_to_a_deleted_company_is_refused_and_does_not_recreate_it(
    companies: CompanyWorld,
) -> None:
    kept = companies.user_creates("c-1", "Kept")
    gone = companies.user_creates("c-2", "Gone")
    companies.system.read([kept, gone])  # the sync has seen both
    companies.user_deletes(gone)
    companies.system.read([gone])  # ... and read that one again before writing

    ok, refused = companies.system.write([(kept, {"name": "K2"}), (gone, {"name": "Back"})])

    assert ok.ok and not refused.ok and refused.retryable is False
    assert companies.system.lookup(["c-2"]) == []


def test_a_user_change_arrives_as_a_notification(companies: CompanyWorld) -> None:
    iid = companies.user_creates("c-1", "Acme")
    seeded = companies.webhooks()

    companies.user_updates(iid, "Acme Renamed")
    companies.user_deletes(companies.user_creates("c-2", "Short lived"))
    sent = companies.webhooks()
    arrived = [fact for _, fact in sent]

    changes = [n for n in arrived if isinstance(n, CompanyChange) and n.intercom_id == iid]
    assert [c.attributes["name"] for c in changes] == ["Acme Renamed"]
    assert (changes[0].kind, changes[0].source) == ("updated", "webhook")
    assert [type(n).__name__ for n in arrived][-1] == "CompanyRemoval"
    assert companies.webhooks() == []
    # each under an id of its own (the ledger's inbox drops an id it has seen), kept as sent
    ids = [notification_id for notification_id, _ in [*seeded, *sent]]
    assert all(ids) and len(set(ids)) == len(ids)
    ledger = new_ledger()
    ledger.receive(sent)
    assert ledger.inbox() == list(sent)


# -- the webhook inbox (the service's intake and the ledger's inbox) -----------------------------


def _signed(body: bytes) -> str:
    return "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()


def _envelope(notification_id: str, name: str) -> bytes:
    item = {"type": "company", "id": "ic-1", "company_id": "c-1", "name": name, "updated_at": 5}
    return json.dumps(
        {"type": "notification_event", "id": notification_id, "topic": "company.updated",
         "created_at": 5, "data": {"item": item}}
    ).encode()  # fmt: skip


@pytest.fixture
def intake() -> Iterator[WebhookIntake]:
    intake = WebhookIntake(new_ledger(), SECRET)
    intake.start()
    try:
        yield intake
    finally:
        intake.stop()


def test_intake_verifies_before_parsing_and_the_inbox_drops_duplicates(
    intake: WebhookIntake,
) -> None:
    def receive(body: bytes, signature: str | None) -> str:
        checked = intake.check(body, signature)
        if isinstance(checked, Verdict):
            return f"rejected: {checked.detail}" if checked.status >= 400 else checked.detail
        return intake.keep(checked).result(timeout=10)

    first, second = _envelope("n-1", "One"), _envelope("n-2", "Two")
    bad_signature = "rejected: missing or invalid X-Hub-Signature"

    assert receive(b"not json", None).startswith("rejected: ")
    assert receive(b"not json", "sha1=" + "0" * 40) == bad_signature  # not parsed first
    assert receive(first, "sha1=" + "0" * 40) == bad_signature
    assert receive(b"not json", _signed(b"not json")) == "rejected: body is not valid JSON"
    assert receive(first, _signed(first)) == "accepted"
    assert receive(first, _signed(first)) == "duplicate"
    assert receive(second, _signed(second)) == "accepted"

    app = intake.app
    kept = [fact for _, fact in app.inbox()]
    assert [n.attributes["name"] for n in kept if isinstance(n, CompanyChange)] == ["One", "Two"]
    run_cycle(app, FakeSalesforce(), FakeIntercom())  # decides them, once
    assert app.inbox() == []
