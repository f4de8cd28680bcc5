"""The audit read models on scripted ledgers: each model, as-of reads, explanations, exactly-once
across a crash, and rebuild == incremental (also over random histories)."""

from __future__ import annotations

import json
import math
import os
import random
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine

from adapters.sync.fakes import FakeIntercom, FakeSalesforce
from ledger import events as ev
from ledger.application import LedgerApp
from ledger.config import SyncConfig
from ledger.facts import CompanyChange
from projections import models as m
from projections.decoding import fast_decode
from projections.projector import Projector, projection_engine
from projections.queries import Audit, AuditQueryError
from tests.support import CATALOG, STANDARD_CONFIG, new_ledger, sync_cycle
from tests.unit.test_cycle import account_values, company_values


@dataclass
class Story:
    """A ledger with a realistic history, its fakes, and the ids it made."""

    app: LedgerApp
    sf: FakeSalesforce
    ic: FakeIntercom
    accounts: dict[str, str]
    companies: dict[str, str]


def story(pairs: int = 12, seed: int = 3) -> Story:
    """Accounts first (they wait), then their companies (mapped, written both ways), an
    ignored company and person account, a refused value, an update wave, a deletion."""
    rng = random.Random(seed)
    app, sf, ic = new_ledger(), FakeSalesforce(), FakeIntercom()
    keys = [f"k{i}" for i in range(pairs)]
    accounts = {k: sf.create(account_values(rng, k)) for k in keys}
    accounts["person"] = sf.create({"AccountNumber": "person", "Name": "Pat"}, person=True)
    sync_cycle(app, sf, ic)
    companies = {k: ic.create(k, company_values(rng, k)) for k in keys}
    companies["anonymous"] = ic.create(None, {"name": "Lead Co"})
    sync_cycle(app, sf, ic)
    for k in keys[:4]:
        sf.update(accounts[k], Name=f"Renamed {k}", Industry="Banking")
    sync_cycle(app, sf, ic)
    sf.delete(accounts[keys[-1]])
    sync_cycle(app, sf, ic)
    return Story(app, sf, ic, accounts, companies)


def projector_for(app: LedgerApp, page_size: int = 1000) -> Projector:
    return Projector(app, projection_engine("memory://"), page_size=page_size)


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every read model and the tracking table, in primary-key order."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in (*m.READ_MODELS, m.tracking):
            order = list(table.primary_key.columns)
            rows = conn.execute(select(table).order_by(*order)).all()
            found[table.name] = [tuple(json.dumps(v, sort_keys=True) for v in row) for row in rows]
    return found


def links_at(app: LedgerApp, position: int) -> set[tuple[str, str, str, int]]:
    return {
        (link.company_id, link.intercom_id, link.salesforce_id, link.config_version)
        for link in app.state_at(position).links.values()
    }


def table_links(audit: Audit, position: int) -> set[tuple[str, str, str, int]]:
    table = audit.mappings_as_of(position=position)
    return {
        (v.company_id, v.intercom_id, v.salesforce_id, v.config_version) for v in table.mappings
    }


# --- the identity map ---------------------------------------------------------------------------


def test_the_mapping_table_as_of_any_position_is_the_ledgers() -> None:
    s = story()
    audit = Audit(projector_for(s.app, page_size=37))
    last = s.app.state.position
    assert audit.position == last
    for position in [0, 1, *range(5, last + 1, max(1, last // 40)), last]:
        assert table_links(audit, position) == links_at(s.app, position), position
    assert len(audit.mappings_as_of().mappings) == 11  # 12 pairs, one account deleted


def test_as_of_an_instant_is_right_after_the_last_transaction_before_it() -> None:
    s = story()
    audit = Audit(projector_for(s.app))
    mapped = min(v.mapped_position for v in audit.mappings_as_of().mappings)
    at = next(e.timestamp for p, e in s.app.read_events() if p == mapped)
    before = audit.mappings_as_of(at - timedelta(microseconds=1))
    assert before.mappings == [] and before.position < mapped
    after = audit.mappings_as_of(at)
    assert after.position >= mapped and after.mappings
    assert table_links(audit, after.position) == links_at(s.app, after.position)
    with pytest.raises(AuditQueryError, match="not both"):
        audit.mappings_as_of(at, position=3)


def test_the_mapping_table_pages_by_company_id() -> None:
    s = story()
    audit = Audit(projector_for(s.app))
    first = audit.mappings_as_of(limit=5)
    assert [v.company_id for v in first.mappings] == ["k0", "k1", "k10", "k2", "k3"]
    second = audit.mappings_as_of(after=first.next_after, limit=100)
    assert second.next_after is None
    assert len(first.mappings) + len(second.mappings) == 11


def test_mapping_history_shows_when_and_why_a_mapping_ended() -> None:
    s = story()
    audit = Audit(projector_for(s.app))
    [span] = audit.mapping_history("k11")
    assert span.salesforce_id == s.accounts["k11"] and span.unmap_reason == "account deleted"
    assert span.unmapped_position is not None and span.unmapped_position > span.mapped_position
    # as of a position inside the span it is shown in force, not ended
    inside = audit.mappings_as_of(position=span.mapped_position)
    [seen] = [v for v in inside.mappings if v.company_id == "k11"]
    assert seen.unmapped_position is None


# --- timelines -----------------------------------------------------------------------------------


def test_an_account_timeline_tells_its_story_in_order() -> None:
    s = story()
    history = Audit(projector_for(s.app)).history_account(s.accounts["k0"])
    assert history.known and history.company_id == "k0" and not history.deleted
    categories = [e.category for e in history.entries]
    assert categories[:3] == ["observation", "not_synced", "mapping"]
    assert "write_applied" in categories and "write_planned" in categories
    positions = [(e.position, e.seq) for e in history.entries]
    assert positions == sorted(positions)
    assert all(e.config_version == 1 for e in history.entries)
    mapping = history.entries[2]
    assert mapping.cause is not None and "by AccountNumber = 'k0'" in mapping.summary


def test_a_company_timeline_has_the_writes_to_it_and_its_mapping() -> None:
    s = story()
    audit = Audit(projector_for(s.app))
    history = audit.history_company(s.companies["k1"])
    assert history.company_id == "k1"
    applied = [e for e in history.entries if e.category == "write_applied"]
    assert applied and all(e.details["source_system"] == ev.SALESFORCE for e in applied)
    assert any(e.category == "mapping" for e in history.entries)
    unknown = audit.history_company("nobody")
    assert not unknown.known and unknown.entries == []


def test_a_timeline_names_the_position_and_summary_of_each_cause() -> None:
    s = story()
    by_position = dict(s.app.read_events())
    history = Audit(projector_for(s.app)).history_account(s.accounts["k0"])
    caused = [e for e in history.entries if e.cause]
    resolved = [e for e in caused if e.cause_position is not None]
    assert resolved and len(resolved) == len(caused)  # every cause here left an entry
    for e in resolved:
        assert by_position[e.cause_position].ref == e.cause
        assert e.cause_summary and e.cause_position <= e.position
    mapping = next(e for e in history.entries if e.category == "mapping")
    # the account waited; the company's creation (on the other record's timeline) mapped it
    assert mapping.cause_summary and mapping.cause_summary.startswith("created in Intercom")


def test_history_filters_by_time() -> None:
    s = story()
    audit = Audit(projector_for(s.app))
    entries = audit.history_account(s.accounts["k0"]).entries
    middle = entries[len(entries) // 2].at
    later = audit.history_account(s.accounts["k0"], since=middle).entries
    earlier = audit.history_account(s.accounts["k0"], until=middle).entries
    assert later and earlier and len(later) + len(earlier) == len(entries)
    assert all(e.at >= middle for e in later) and all(e.at < middle for e in earlier)


# --- the write log -------------------------------------------------------------------------------


def test_every_applied_write_is_logged_with_before_value_rule_and_cause() -> None:
    s = story()
    audit = Audit(projector_for(s.app))
    applied = [(p, e) for p, e in s.app.read_events() if isinstance(e, ev.WriteApplied)]
    log = audit.writes(limit=10_000)
    assert [w.position for w in log] == [p for p, _ in applied]
    for w, (_, e) in zip(log, applied, strict=True):
        assert (w.write_id, w.before, w.value) == (e.write["write_id"], e.before, e.write["value"])
        assert w.cause == e.write["cause"] and w.config_version == 1
        assert w.api_call == e.api_call and w.planned_position is not None
        assert w.overwrite == (w.before not in (None, "") and w.before != w.value)
    overwrites = audit.writes(overwrites_only=True)
    assert overwrites and all(w.overwrite for w in overwrites)
    industry = audit.writes(field="Industry")
    assert industry and {w.field for w in industry} == {"Industry"}


def test_writes_filter_by_rule_record_and_page() -> None:
    s = story()
    audit = Audit(projector_for(s.app))
    everything = audit.writes()
    guarded = audit.writes(rule="skip_if_destination_has_value")
    plain = audit.writes(rule="none")
    assert all("skip_if_destination_has_value" in w.rules for w in guarded)
    assert all(w.rules == [] for w in plain)
    assert {w.field for w in guarded} <= {"Website"}
    first = audit.writes(limit=3)
    rest = audit.writes(after=first[-1].position)
    assert first + rest == everything
    mine = audit.writes(record_id=s.accounts["k0"])
    assert mine and {w.record_id for w in mine} == {s.accounts["k0"]}
    with pytest.raises(AuditQueryError, match="unknown rule"):
        audit.writes(rule="sometimes")
    with pytest.raises(AuditQueryError, match="limit"):
        audit.writes(limit=0)


# --- ignored, rejected, API usage ----------------------------------------------------------------


def test_ignored_records_and_rejected_values() -> None:
    s = story()
    audit = Audit(projector_for(s.app))
    ignored = {(i.system, i.record_id): i.reason for i in audit.ignored()}
    assert set(ignored) == {
        (ev.SALESFORCE, s.accounts["person"]),
        (ev.INTERCOM, s.companies["anonymous"]),
    }
    assert "person account" in ignored[(ev.SALESFORCE, s.accounts["person"])]
    rejected = [
        (p, e) for p, e in s.app.read_events() if isinstance(e, ev.SyncPlanned) and e.rejected
    ]
    found = audit.rejected()
    assert len(found) == sum(len(e.rejected) for _, e in rejected) > 0
    assert all(r.reason and r.field == "Industry" for r in found)


def test_api_usage_over_time() -> None:
    s = story()
    s.sf.api_calls = 5_000  # the org got busy: the next reading moves more than 1 %
    sync_cycle(s.app, s.sf, s.ic)
    usage = Audit(projector_for(s.app)).api_usage()
    recorded = [e for _, e in s.app.read_events() if isinstance(e, ev.ApiUsageObserved)]
    assert [(u.used, u.limit, u.tier) for u in usage] == [
        (e.used, e.limit, e.tier) for e in recorded
    ]
    assert len(usage) >= 2 and usage[-1].used >= 5_000


# --- explain --------------------------------------------------------------------------------------


def test_explain_a_synced_company_names_key_time_and_configuration() -> None:
    s = story()
    audit = Audit(projector_for(s.app))
    answer = audit.explain(company_id="k2")
    assert answer.status == "synced" and answer.synced
    assert answer.record_id == s.companies["k2"] and answer.counterpart_id == s.accounts["k2"]
    assert answer.mapping is not None and answer.mapping.config_version == 1
    assert "AccountNumber = 'k2'" in answer.summary and "configuration v1" in answer.summary
    assert answer.chain[0].category == "observation"  # the cause of the mapping
    assert audit.explain(account_id=s.accounts["k2"]).counterpart_id == s.companies["k2"]


def test_explain_why_records_are_not_synced() -> None:
    s = story()
    lonely = s.sf.create(AccountNumber="alone", Name="Solo")
    sync_cycle(s.app, s.sf, s.ic)
    audit = Audit(projector_for(s.app))
    person = audit.explain(account_id=s.accounts["person"])
    assert person.status == "ignored" and "person account" in person.summary
    anonymous = audit.explain(intercom_id=s.companies["anonymous"])
    assert anonymous.status == "ignored" and "no company_id" in anonymous.summary
    waiting = audit.explain(account_id=lonely)
    assert waiting.status == "not_synced" and "no Intercom company" in waiting.summary
    assert [e.category for e in waiting.chain] == ["observation", "not_synced"]
    deleted = audit.explain(account_id=s.accounts["k11"])
    assert deleted.status == "deleted" and "account deleted" in deleted.summary
    orphan = audit.explain(intercom_id=s.companies["k11"])
    assert orphan.status == "not_synced" and "account deleted" in orphan.summary
    by_key = audit.explain(company_id="alone")
    assert by_key.status == "unknown" and lonely in by_key.summary
    assert audit.explain(account_id="001nope").status == "unknown"
    with pytest.raises(AuditQueryError, match="exactly one"):
        audit.explain(company_id="k1", account_id=s.accounts["k1"])


def test_explain_lists_pending_and_failed_writes() -> None:
    s = story()
    s.sf.set_picklist_values("Industry", ["Banking"])  # the org refuses what the ledger allows
    s.ic.update(s.companies["k0"], industry="Retail")
    sync_cycle(s.app, s.sf, s.ic)
    # a change decided, its writes not sent yet
    company = s.ic.companies[s.companies["k1"]]
    s.app.ingest(
        [CompanyChange(s.companies["k1"], "k1", {**company["attributes"], "size": 999}, 10**10)]
    )
    audit = Audit(projector_for(s.app))
    failed = audit.explain(company_id="k0")
    assert failed.synced and [w.field for w in failed.failed_writes] == ["Industry"]
    assert failed.failed_writes[0].status == "failed" and failed.failed_writes[0].error
    pending = audit.explain(account_id=s.accounts["k1"])
    assert [(w.field, w.value, w.status) for w in pending.pending_writes] == [
        ("NumberOfEmployees", 999, "planned")
    ]
    assert "1 write(s) pending" in pending.summary


# --- exactly once, rebuild ---------------------------------------------------------------


class Crash(Exception):
    """The process dies just before the page's commit."""


def test_a_crash_before_commit_leaves_nothing_and_the_page_is_applied_once_later() -> None:
    s = story()
    engine = projection_engine("memory://")
    projector = Projector(s.app, engine, page_size=50)
    armed = {"commits": 2}

    @event.listens_for(engine, "commit")
    def die(_conn: Any) -> None:
        armed["commits"] -= 1
        if armed["commits"] == 0:
            raise Crash

    with pytest.raises(Crash):
        projector.catch_up()
    assert projector.position == 50  # the first page only
    with engine.connect() as conn:
        newest = conn.execute(select(func.max(m.timeline.c.position))).scalar_one()
    assert newest <= 50  # nothing of the second page
    restarted = Projector(s.app, engine, page_size=50)
    assert restarted.catch_up() == s.app.state.position - 50
    reference = projector_for(s.app)
    reference.catch_up()
    assert snapshot(engine) == snapshot(reference.engine)


def test_rebuild_equals_incremental_whatever_the_page_boundaries() -> None:
    s = story(pairs=5)
    live = projector_for(s.app, page_size=7)
    live.catch_up()
    for k in ("k0", "k1"):  # more history after the first catch-up
        s.sf.update(s.accounts[k], Name=f"Again {k}")
        s.ic.update(s.companies[k], size=12)
        sync_cycle(s.app, s.sf, s.ic)
        live.catch_up()
    incremental = snapshot(live.engine)
    assert live.rebuild() == s.app.state.position
    assert snapshot(live.engine) == incremental
    other = projector_for(s.app, page_size=1)
    other.catch_up()
    assert snapshot(other.engine) == incremental


def test_an_identifier_change_unmaps_everything_and_the_projection_follows() -> None:
    s = story(pairs=4)
    projector = projector_for(s.app, page_size=10)
    audit = Audit(projector)
    assert len(audit.mappings_as_of().mappings) == 3
    before = s.app.state.position
    s.app.apply_config(SyncConfig("Site", STANDARD_CONFIG.attributes), CATALOG)
    table = audit.mappings_as_of()
    assert table.mappings == [] and table.position > before
    assert {v.unmap_reason for v in audit.mapping_history("k0")} == {"identifier field changed"}
    assert audit.mappings_as_of(position=before).mappings  # the past is kept


# --- random histories -----------------------------------------------------------------------------

ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(
            ["account", "company", "edit_account", "edit_company", "rekey", "delete", "cycle"]
        ),
        st.integers(0, 5),
        st.integers(0, 1_000),
    ),
    min_size=3,
    max_size=25,
)
EXAMPLES = int(os.environ.get("SYNCLEDGER_PROPERTY_EXAMPLES", "300")) // 6 or 1


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(actions=ACTIONS, page_size=st.integers(1, 9))
def test_random_histories_rebuild_equals_incremental_and_as_of_equals_the_ledger(
    actions: list[tuple[str, int, int]], page_size: int
) -> None:
    app, sf, ic = new_ledger(), FakeSalesforce(), FakeIntercom()
    rng = random.Random(0)
    live = projector_for(app, page_size=page_size)
    accounts: dict[int, str] = {}
    companies: dict[int, str] = {}
    for action, n, salt in actions:
        key = f"k{n % 3}"  # few keys: duplicates, ties and takeovers happen
        if action == "account" and n not in accounts:
            accounts[n] = sf.create(account_values(rng, key), person=salt % 11 == 0)
        elif action == "company" and n not in companies and ic.by_company_id(key) is None:
            companies[n] = ic.create(key if salt % 7 else None, company_values(rng, key))
        elif action == "edit_account" and n in accounts and sf.get(accounts[n]) is not None:
            sf.update(accounts[n], Name=f"name {salt}", NumberOfEmployees=salt)
        elif action == "edit_company" and n in companies and ic.get(companies[n]) is not None:
            ic.update(companies[n], industry=rng.choice(["Banking", "Retail", None]), size=salt)
        elif action == "rekey" and n in accounts and sf.get(accounts[n]) is not None:
            sf.update(accounts[n], AccountNumber=f"k{salt % 3}")
        elif action == "delete" and n in accounts and sf.get(accounts[n]) is not None:
            sf.delete(accounts[n])
        sync_cycle(app, sf, ic)
        if salt % 2:
            live.catch_up()
    live.catch_up()
    incremental = snapshot(live.engine)
    rebuilt = projector_for(app, page_size=1000)
    rebuilt.catch_up()
    assert snapshot(rebuilt.engine) == incremental
    audit = Audit(live, fresh=False)
    last = app.state.position
    for position in {
        0,
        last // 3,
        last // 2,
        last,
        *random.Random(last).sample(range(last + 1), 3),
    }:
        assert table_links(audit, position) == links_at(app, position)


# --- speed without shortcuts ------------------------------------------------------------------


def test_the_fast_decoder_builds_the_events_the_mapper_builds() -> None:
    s = story(pairs=4)
    projector = projector_for(s.app)
    notifications = s.app.recorder.select_notifications(start=0, limit=10_000)
    assert len(notifications) == s.app.state.position
    for n in notifications:
        fast = fast_decode(n)
        assert fast is not None, n.topic
        reference = s.app.mapper.to_domain_event(n)
        assert type(fast) is type(reference) and fast.__dict__ == reference.__dict__
    assert [e for _, e in projector.events_after(0)] == [
        s.app.mapper.to_domain_event(n) for n in notifications
    ]


def test_values_the_fast_decoder_refuses_go_through_the_mapper() -> None:
    s = story(pairs=1)
    n = s.app.recorder.select_notifications(start=0, limit=1)[0]
    odd = replace(n, state=n.state.replace(b'"timestamp"', b'"x":NaN,"timestamp"', 1))
    decoded = projector_for(s.app)._decode(odd)  # orjson refuses NaN: the mapper decodes it
    assert math.isnan(decoded.x)  # type: ignore[attr-defined]
    typed = replace(n, state=n.state.replace(b"{", b'{"y":{"_type_":"uuid_hex","_data_":"00"},', 1))
    assert fast_decode(typed) is None


def test_a_rebuild_puts_back_every_index_and_open_repairs_a_cut_short_one() -> None:
    s = story(pairs=3)
    engine = projection_engine("memory://")
    projector = Projector(s.app, engine, page_size=5)
    expected = {ix.name for t in m.READ_MODELS for ix in t.indexes}
    assert projector.rebuild() == s.app.state.position
    assert _indexes(engine) >= expected
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_proj_timeline_record")  # as a killed rebuild leaves it
    assert "ix_proj_timeline_record" not in _indexes(engine)
    Projector(s.app, engine)
    assert _indexes(engine) >= expected


def _indexes(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")
        return {r[0] for r in rows}
