"""Random interleavings of both systems' changes, writes and configuration changes.

A small model of "the truth" in Salesforce and Intercom is changed by rules; every change is
delivered to the ledger the way the adapters deliver it (lookups answered first). After every
step the ledger's invariants must hold and its state must equal a rebuild from stored events.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from adapters.sync.fakes import INDUSTRIES
from ledger import events as ev
from ledger.config import AttributeMapping, Direction, SyncConfig
from ledger.facts import (
    AccountChange,
    AccountRemoval,
    CompanyChange,
    CompanyRemoval,
    Fact,
    WriteOutcome,
)
from ledger.values import is_empty, key_of, same_value
from tests.support import CATALOG, new_ledger

ACCOUNTS = ["001A", "001B", "001C", "001D", "001E"]
COMPANIES = ["c0", "c1", "c2", "c3"]
KEYS = ["k0", "k1"]
PAIRS = [
    ("name", "Name"),
    ("industry", "Industry"),
    ("size", "NumberOfEmployees"),
    ("website", "Website"),
    ("custom_attributes.plan", "Plan__c"),
]
SF_OF = dict(PAIRS)

maybe_key = st.sampled_from([*KEYS, *KEYS, None])
names = st.sampled_from(["Acme", "Beta", "", None])
industries = st.sampled_from([*INDUSTRIES[:3], "Space Mining", None])
sizes = st.sampled_from([None, 1, 10, 250])
sites = st.sampled_from(["", "https://a.io", "https://b.io", None])
plans = st.sampled_from([None, "Pro", "Free"])


def stamp(n: int) -> str:
    return f"2026-01-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}.000+0000"


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.app = new_ledger()
        self.tick = 0
        self.accounts: dict[str, dict[str, Any]] = {}
        self.companies: dict[str, dict[str, Any]] = {}
        self.undelivered: list[tuple[str, str]] = []
        self.last: list[Fact] = []

    # --- delivery, as the adapters do it --------------------------------------------------

    def next_tick(self) -> int:
        self.tick += 1
        return self.tick

    def account_fact(self, sid: str, kind: str = "change", source: str = "poll") -> Fact:
        a = self.accounts[sid]
        if a["deleted"]:
            return AccountRemoval(sid, source=source)
        return AccountChange(
            sid,
            dict(a["fields"]),
            stamp(a["stamp"]),
            a["person"],
            kind=kind,
            source=source,  # type: ignore[arg-type]
        )

    def company_fact(self, iid: str, kind: str, source: str = "webhook") -> Fact:
        c = self.companies[iid]
        if c["deleted"]:
            return CompanyRemoval(iid, c["cid"], source=source)
        return CompanyChange(iid, c["cid"], dict(c["attrs"]), c["updated_at"], kind, source)  # type: ignore[arg-type]

    def deliver(self, facts: list[Fact]) -> None:
        needs = self.app.lookup_needs(facts)
        answers: list[Fact] = []
        if needs.salesforce_keys:
            ident = self.app.config.identifier
            found = [
                self.account_fact(sid, "snapshot", "lookup")
                for sid, a in sorted(self.accounts.items())
                if not a["deleted"]
                and key_of(a["fields"].get(needs.salesforce_field), ident.type)
                in needs.salesforce_keys
            ]
            answers.append(
                self.app.lookup_answer(
                    ev.SALESFORCE, needs.salesforce_field, needs.salesforce_keys, found
                )
            )
        if needs.intercom_keys:
            found = [
                self.company_fact(iid, "snapshot", "lookup")
                for iid, c in sorted(self.companies.items())
                if not c["deleted"] and c["cid"] in needs.intercom_keys
            ]
            answers.append(
                self.app.lookup_answer(ev.INTERCOM, "company_id", needs.intercom_keys, found)
            )
        self.last = [*answers, *facts]
        self.app.ingest(self.last)

    # --- Salesforce users -------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        assert self.app.config.version == 1

    @rule(
        sid=st.sampled_from(ACCOUNTS),
        key=maybe_key,
        site=maybe_key,
        name=names,
        industry=industries,
        size=sizes,
        website=sites,
        plan=plans,
        person=st.sampled_from([False] * 7 + [True]),
    )
    def salesforce_user_saves_an_account(
        self,
        sid: str,
        key: Any,
        site: Any,
        name: Any,
        industry: Any,
        size: Any,
        website: Any,
        plan: Any,
        person: bool,
    ) -> None:
        existing = self.accounts.get(sid)
        if existing is not None and not existing["deleted"]:
            person = existing["person"]
        if industry == "Space Mining":
            industry = None  # Salesforce refuses it for a restricted picklist
        self.accounts[sid] = {
            "fields": {
                "AccountNumber": key,
                "Site": site,
                "Name": name,
                "Industry": industry,
                "NumberOfEmployees": size,
                "Website": website,
                "Plan__c": plan,
            },
            "stamp": self.next_tick(),
            "person": person,
            "deleted": False,
        }
        self.deliver([self.account_fact(sid)])

    @precondition(lambda self: any(not a["deleted"] for a in self.accounts.values()))
    @rule(data=st.data())
    def salesforce_user_deletes_an_account(self, data: st.DataObject) -> None:
        sid = data.draw(
            st.sampled_from(sorted(s for s, a in self.accounts.items() if not a["deleted"]))
        )
        self.accounts[sid]["deleted"] = True
        self.deliver([self.account_fact(sid)])

    # --- Intercom users ---------------------------------------------------------------------

    @rule(
        iid=st.sampled_from(COMPANIES), key=maybe_key, name=names, industry=industries, size=sizes
    )
    def intercom_user_creates_a_company(
        self, iid: str, key: Any, name: Any, industry: Any, size: Any
    ) -> None:
        if iid in self.companies:
            return  # Intercom ids are never reused
        if key is not None and any(
            c["cid"] == key and not c["deleted"] for c in self.companies.values()
        ):
            return  # company_id is unique among live companies
        self.companies[iid] = {
            "cid": key,
            "attrs": {
                "name": name,
                "industry": industry,
                "size": size,
                "website": None,
                "custom_attributes.plan": None,
            },
            "updated_at": self.next_tick(),
            "deleted": False,
        }
        self.deliver([self.company_fact(iid, "created")])

    @precondition(lambda self: any(not c["deleted"] for c in self.companies.values()))
    @rule(data=st.data(), attr=st.sampled_from([p[0] for p in PAIRS]), value=st.data())
    def intercom_user_updates_a_company(
        self, data: st.DataObject, attr: str, value: st.DataObject
    ) -> None:
        iid = data.draw(
            st.sampled_from(sorted(i for i, c in self.companies.items() if not c["deleted"]))
        )
        strategy = {
            "name": names,
            "industry": industries,
            "size": sizes,
            "website": sites,
            "custom_attributes.plan": plans,
        }[attr]
        c = self.companies[iid]
        c["attrs"][attr] = value.draw(strategy)
        c["updated_at"] = self.next_tick()
        self.deliver([self.company_fact(iid, "updated")])

    @precondition(lambda self: any(not c["deleted"] for c in self.companies.values()))
    @rule(data=st.data())
    def intercom_user_deletes_a_company(self, data: st.DataObject) -> None:
        iid = data.draw(
            st.sampled_from(sorted(i for i, c in self.companies.items() if not c["deleted"]))
        )
        self.companies[iid]["deleted"] = True
        self.deliver([self.company_fact(iid, "updated")])

    @rule(
        sid=st.sampled_from(ACCOUNTS),
        iid=st.sampled_from(COMPANIES),
        key=st.sampled_from(KEYS),
        name=names,
        industry=industries,
        size=sizes,
    )
    def both_sides_create_a_matching_pair(
        self, sid: str, iid: str, key: str, name: Any, industry: Any, size: Any
    ) -> None:
        field = self.app.config.identifier_field
        other = "Site" if field == "AccountNumber" else "AccountNumber"
        self.salesforce_user_saves_an_account(
            sid,
            **{field.replace("AccountNumber", "key").lower(): key},
            **{other.replace("AccountNumber", "key").lower(): None},
            name=name,
            industry=None,
            size=None,
            website=None,
            plan="Pro",
            person=False,
        )
        self.intercom_user_creates_a_company(iid, key, name, industry, size)

    # --- the admin ----------------------------------------------------------------------------

    @rule(
        identifier=st.sampled_from(["AccountNumber", "Site"]),
        choices=st.lists(
            st.tuples(st.sampled_from(Direction), st.booleans(), st.booleans()) | st.none(),
            min_size=len(PAIRS),
            max_size=len(PAIRS),
        ),
    )
    def admin_changes_the_configuration(self, identifier: str, choices: list[Any]) -> None:
        mappings = tuple(
            AttributeMapping(ic, sf, direction, empty, has_value)
            for (ic, sf), choice in zip(PAIRS, choices, strict=True)
            if choice is not None
            for direction, empty, has_value in [choice]
        )
        self.app.apply_config(SyncConfig(identifier, mappings), CATALOG)

    # --- the writer ---------------------------------------------------------------------------

    @precondition(lambda self: bool(self.app.state.pending))
    @rule(outcomes=st.lists(st.sampled_from(["ok", "ok", "retry", "fail"]), min_size=1, max_size=8))
    def writer_reads_then_sends_pending_writes(self, outcomes: list[str]) -> None:
        pending = self.app.pending_writes()
        reads: list[Fact] = []
        for target in sorted({(p.system, p.record_id) for p in pending}):
            if target[0] == ev.SALESFORCE:
                reads.append(self.account_fact(target[1], "snapshot", "read"))
            else:
                reads.append(self.company_fact(target[1], "snapshot", "read"))
        self.app.ingest(reads)
        results: list[WriteOutcome] = []
        for pw, outcome in zip(self.app.pending_writes(), outcomes, strict=False):
            if outcome != "ok":
                results.append(
                    WriteOutcome(pw.write_id, False, error="refused", retryable=outcome == "retry")
                )
                continue
            if pw.system == ev.SALESFORCE:
                a = self.accounts[pw.record_id]
                before = a["fields"].get(pw.field)
                a["fields"][pw.field] = pw.value
                a["stamp"] = self.next_tick()
            else:
                c = self.companies[pw.record_id]
                before = c["attrs"].get(pw.field)
                c["attrs"][pw.field] = pw.value
                c["updated_at"] = self.next_tick()
            self.undelivered.append((pw.system, pw.record_id))
            results.append(WriteOutcome(pw.write_id, True, before=before))
        self.app.record_outcomes(results)

    @precondition(lambda self: bool(self.undelivered))
    @rule()
    def our_write_comes_back(self) -> None:
        system, rid = self.undelivered.pop(0)
        if system == ev.SALESFORCE:
            self.deliver([self.account_fact(rid)])
        else:
            self.deliver([self.company_fact(rid, "updated")])

    @precondition(lambda self: bool(self.last))
    @rule()
    def the_last_delivery_arrives_again(self) -> None:
        assert self.app.ingest(self.last).count == 0

    # --- invariants ---------------------------------------------------------------------------

    def teardown(self) -> None:
        # Coverage of the interesting paths, shown by --hypothesis-show-statistics.
        seen = {type(e).__name__ for _, e in self.app.read_events()}
        for name in (
            "IdentityMapped",
            "IdentityUnmapped",
            "WriteApplied",
            "WriteSkipped",
            "EchoRecognised",
            "RecordIgnored",
            "AccountIdentifierChanged",
        ):
            event(f"reached {name}: {name in seen}")

    @invariant()
    def mappings_are_one_to_one(self) -> None:
        links = list(self.app.state.links.values())
        assert len({lk.salesforce_id for lk in links}) == len(links)
        assert len({lk.intercom_id for lk in links}) == len(links)
        assert all(
            self.app.state.link_by_account[lk.salesforce_id] == lk.company_id for lk in links
        )
        assert len(self.app.state.link_by_account) == len(links)

    @invariant()
    def mappings_join_live_matching_records_only(self) -> None:
        st_ = self.app.state
        for key, link in st_.links.items():
            company = st_.companies[link.intercom_id]
            account = st_.accounts[link.salesforce_id]
            assert not company.deleted and company.company_id == key
            assert not account.deleted and not account.is_person_account
            assert st_.account_key(account) == key
            assert link.identifier_field == st_.config.identifier_field
            assert st_.candidates(key)[0].salesforce_id == link.salesforce_id

    @invariant()
    def pending_writes_respect_direction_rules_and_values(self) -> None:
        st_ = self.app.state
        for pw in st_.pending_writes():
            w = pw.write
            mapping = w.mapping
            assert mapping in [rm.mapping for rm in st_.config.mappings]
            link = st_.links[w.company_id]
            if mapping.direction is Direction.INTERCOM_TO_SALESFORCE:
                assert (pw.system, pw.record_id) == (ev.SALESFORCE, link.salesforce_id)
                assert w.source_record_id == link.intercom_id
                dst = st_.accounts[pw.record_id].fields
            else:
                assert (pw.system, pw.record_id) == (ev.INTERCOM, link.intercom_id)
                assert w.source_record_id == link.salesforce_id
                dst = st_.companies[pw.record_id].attributes
            assert pw.field == mapping.destination
            if mapping.skip_if_source_empty:
                assert not is_empty(w.source_value)
            if mapping.skip_if_destination_has_value:
                assert is_empty(dst.get(pw.field))
            assert not same_value(pw.value, dst.get(pw.field), w.type)

    @invariant()
    def rebuilding_from_stored_events_gives_the_same_state(self) -> None:
        rebuilt = self.app.rebuild()
        assert rebuilt.snapshot() == self.app.state.snapshot()
        assert rebuilt.pending_writes() == self.app.state.pending_writes()


LedgerMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("SYNCLEDGER_PROPERTY_EXAMPLES", "300")),
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestLedgerMachine = LedgerMachine.TestCase
