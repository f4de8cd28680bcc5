"""One test per row of the seed's trigger tables, plus the identity rules around them."""

from __future__ import annotations

from typing import Any

from ledger import events as ev
from ledger.application import LedgerApp, Recorded
from ledger.config import AttributeMapping, SyncConfig
from ledger.facts import AccountChange, AccountRemoval, CompanyChange, CompanyRemoval
from tests.support import CATALOG, S2I, STANDARD_CONFIG, new_ledger


def stamp(minute: int) -> str:
    return f"2026-01-01T00:{minute:02d}:00.000+0000"


def account(
    sid: str, key: str | None, minute: int, *, person: bool = False, **fields: Any
) -> AccountChange:
    values: dict[str, Any] = {
        "AccountNumber": key,
        "Name": f"Account {sid}",
        "Plan__c": None,
        "Renewal_Date__c": None,
        "Industry": None,
        "NumberOfEmployees": None,
        "Website": None,
    }
    values.update(fields)
    return AccountChange(sid, values, stamp(minute), is_person_account=person)


def company(
    iid: str, cid: str | None, updated_at: int, kind: str = "updated", **attrs: Any
) -> CompanyChange:
    values: dict[str, Any] = {
        "name": f"Company {iid}",
        "industry": None,
        "size": None,
        "website": None,
        "custom_attributes.plan": None,
        "custom_attributes.renewal_date": None,
    }
    values.update(attrs)
    return CompanyChange(iid, cid, values, updated_at, kind=kind)  # type: ignore[arg-type]


def types(recorded: Recorded) -> list[str]:
    return [type(e).__name__ for e in recorded.events if not isinstance(e, ev.LedgerAdvanced)]


def planned(app: LedgerApp, system: str | None = None) -> dict[tuple[str, str], Any]:
    return {(p.record_id, p.field): p.value for p in app.pending_writes(system)}


def mapped(app: LedgerApp) -> dict[str, tuple[str, str]]:
    return {m.company_id: (m.intercom_id, m.salesforce_id) for m in app.mappings()}


def establish(app: LedgerApp) -> None:
    """A mapped pair k1: company c1 ↔ account 001A, with all pending writes applied."""
    app.ingest([account("001A", "k1", 1, Name="Acme")])
    app.ingest([company("c1", "k1", 100, kind="created", name="Acme", industry="Banking", size=10)])
    apply_all(app)


def apply_all(app: LedgerApp) -> None:
    from ledger.facts import WriteOutcome

    app.record_outcomes(
        WriteOutcome(p.write_id, ok=True, before=p.write.before) for p in app.pending_writes()
    )


# --- Intercom → Salesforce ------------------------------------------------------------------


def test_company_updated_with_mapping_syncs_only_the_updated_attributes() -> None:
    app = new_ledger()
    establish(app)
    rec = app.ingest([company("c1", "k1", 200, name="Acme", industry="Banking", size=25)])
    assert types(rec) == ["CompanyUpdated", "SyncPlanned"]
    assert planned(app) == {("001A", "NumberOfEmployees"): 25}  # industry did not change


def test_company_updated_without_mapping_creates_mapping_and_syncs_updated_attributes() -> None:
    app = new_ledger()
    app.ingest([account("001A", "k1", 1)])
    app.ingest([company("c1", "k1", 100, kind="snapshot", industry="Retail", size=3)])
    rec = app.ingest([company("c1", "k1", 200, industry="Banking", size=3)])
    assert "IdentityMapped" in types(rec)
    assert mapped(app) == {"k1": ("c1", "001A")}
    assert planned(app) == {("001A", "Industry"): "Banking"}  # size was not updated


def test_company_created_without_mapping_creates_mapping_and_syncs_all_mapped_attributes() -> None:
    app = new_ledger()
    app.ingest([account("001A", "k1", 1)])
    rec = app.ingest(
        [company("c1", "k1", 100, kind="created", industry="Banking", size=10, website="a.io")]
    )
    assert types(rec) == ["CompanyCreated", "IdentityMapped", "SyncPlanned"]
    mapped_event = rec.of_type(ev.IdentityMapped)[0]
    assert isinstance(mapped_event, ev.IdentityMapped)
    assert mapped_event.trigger == "company_created"
    assert planned(app) == {
        ("001A", "Industry"): "Banking",
        ("001A", "NumberOfEmployees"): 10,
        ("001A", "Website"): "a.io",
    }


def test_company_deleted_with_mapping_deletes_the_mapping_never_the_account() -> None:
    app = new_ledger()
    establish(app)
    rec = app.ingest([CompanyRemoval("c1", "k1")])
    assert types(rec) == ["CompanyDeleted", "IdentityUnmapped"]
    unmapped = rec.of_type(ev.IdentityUnmapped)[0]
    assert isinstance(unmapped, ev.IdentityUnmapped) and unmapped.reason == "company deleted"
    assert mapped(app) == {}
    assert not app.state.accounts["001A"].deleted
    assert app.pending_writes() == []


# --- Salesforce → Intercom ------------------------------------------------------------------


def test_account_updated_with_mapping_syncs_all_mapped_attributes() -> None:
    app = new_ledger()
    establish(app)
    rec = app.ingest([account("001A", "k1", 5, Name="Acme Corp", Plan__c="Pro")])
    assert types(rec) == ["AccountUpdated", "SyncPlanned"]
    assert planned(app, ev.INTERCOM) == {
        ("c1", "name"): "Acme Corp",
        ("c1", "custom_attributes.plan"): "Pro",
    }


def test_account_updated_without_mapping_creates_mapping_and_syncs_all() -> None:
    app = new_ledger()
    app.ingest([company("c1", "k1", 100, kind="created", name="Old")])
    app.ingest([account("001A", None, 1, Name="Acme")])  # no key yet: nothing to match
    assert mapped(app) == {}
    rec = app.ingest([account("001A", "k1", 2, Name="Acme")])
    assert mapped(app) == {"k1": ("c1", "001A")}
    assert rec.of_type(ev.IdentityMapped)
    assert planned(app, ev.INTERCOM) == {("c1", "name"): "Acme"}


def test_mapping_key_updated_with_mapping_unmaps_maps_anew_and_syncs_all() -> None:
    app = new_ledger()
    establish(app)
    app.ingest([company("c2", "k2", 100, kind="created", name="Other")])
    rec = app.ingest([account("001A", "k2", 5, Name="Acme")])
    assert types(rec)[:2] == ["AccountIdentifierChanged", "IdentityUnmapped"]
    unmapped = rec.of_type(ev.IdentityUnmapped)[0]
    assert isinstance(unmapped, ev.IdentityUnmapped) and unmapped.reason == "key changed"
    assert mapped(app) == {"k2": ("c2", "001A")}
    assert planned(app, ev.INTERCOM) == {("c2", "name"): "Acme"}


def test_mapping_key_updated_without_mapping_creates_mapping_and_syncs_all() -> None:
    app = new_ledger()
    app.ingest([account("001A", "k9", 1, Name="Acme")])
    app.ingest([company("c2", "k2", 100, kind="created", name="Other")])
    rec = app.ingest([account("001A", "k2", 5, Name="Acme")])
    assert types(rec)[:2] == ["AccountIdentifierChanged", "IdentityMapped"]
    assert mapped(app) == {"k2": ("c2", "001A")}
    assert planned(app, ev.INTERCOM) == {("c2", "name"): "Acme"}


def test_account_created_creates_mapping_and_syncs_all_mapped_attributes() -> None:
    app = new_ledger()
    app.ingest([company("c1", "k1", 100, kind="created", name="Old")])
    rec = app.ingest([account("001A", "k1", 1, Name="Acme", Plan__c="Pro")])
    assert types(rec) == ["AccountCreated", "IdentityMapped", "SyncPlanned"]
    assert planned(app, ev.INTERCOM) == {
        ("c1", "name"): "Acme",
        ("c1", "custom_attributes.plan"): "Pro",
    }


def test_account_deleted_with_mapping_deletes_the_mapping_never_the_company() -> None:
    app = new_ledger()
    establish(app)
    rec = app.ingest([AccountRemoval("001A")])
    assert types(rec) == ["AccountDeleted", "IdentityUnmapped"]
    assert mapped(app) == {}
    assert not app.state.companies["c1"].deleted


# --- identity rules ---------------------------------------------------------------------------


def test_duplicate_keys_match_the_most_recently_updated_account() -> None:
    app = new_ledger()
    app.ingest([account("001A", "k1", 1), account("001B", "k1", 3), account("001C", "k1", 2)])
    app.ingest([company("c1", "k1", 100, kind="created")])
    assert mapped(app) == {"k1": ("c1", "001B")}


def test_duplicate_tie_is_broken_by_smallest_id() -> None:
    app = new_ledger()
    app.ingest([account("001B", "k1", 1), account("001A", "k1", 1)])
    app.ingest([company("c1", "k1", 100, kind="created")])
    assert mapped(app) == {"k1": ("c1", "001A")}


def test_more_recently_updated_duplicate_supersedes_the_mapping() -> None:
    app = new_ledger()
    establish(app)
    rec = app.ingest([account("001B", "k1", 9, Name="Acme Two")])
    reasons = [e.reason for e in rec.of_type(ev.IdentityUnmapped)]  # type: ignore[attr-defined]
    assert reasons == ["superseded by a more recently updated duplicate"]
    assert mapped(app) == {"k1": ("c1", "001B")}


def test_deleting_the_holder_hands_the_key_to_the_remaining_duplicate() -> None:
    app = new_ledger()
    app.ingest([account("001A", "k1", 1), account("001B", "k1", 2)])
    app.ingest([company("c1", "k1", 100, kind="created")])
    assert mapped(app) == {"k1": ("c1", "001B")}
    app.ingest([AccountRemoval("001B")])
    assert mapped(app) == {"k1": ("c1", "001A")}


def test_person_accounts_are_never_synced_and_recorded_as_ignored() -> None:
    app = new_ledger()
    app.ingest([company("c1", "k1", 100, kind="created")])
    rec = app.ingest([account("001P", "k1", 1, person=True, Name="Jane Doe")])
    assert types(rec) == ["AccountCreated", "RecordIgnored"]
    assert mapped(app) == {}
    assert app.pending_writes() == []


def test_companies_without_company_id_are_never_synced_and_recorded_as_ignored() -> None:
    app = new_ledger()
    app.ingest([account("001A", "k1", 1)])
    rec = app.ingest([company("c9", None, 100, kind="created", industry="Banking")])
    assert types(rec) == ["CompanyCreated", "RecordIgnored"]
    assert mapped(app) == {}
    assert app.pending_writes() == []


def test_changing_the_identifier_field_unmatches_every_mapping() -> None:
    app = new_ledger()
    establish(app)
    app.ingest([account("001B", "k2", 2, Site="k1")])
    app.ingest([company("c2", "k2", 100, kind="created")])
    assert len(mapped(app)) == 2
    new = SyncConfig("Site", (AttributeMapping("name", "Name", S2I),))
    active = app.apply_config(new, CATALOG)
    assert active.version == 2
    assert mapped(app) == {}
    reasons = {e.reason for _, e in app.read_events() if isinstance(e, ev.IdentityUnmapped)}
    assert reasons == {"identifier field changed"}
    # New mappings are made going forward, by the new field.
    app.ingest([account("001B", "k2", 3, Site="k1", Name="Beta")])
    assert mapped(app) == {"k1": ("c1", "001B")}


def test_a_re_read_that_first_shows_the_new_identifier_field_is_no_change() -> None:
    """After the identifier field changes, polls read accounts again with the new field set.
    An account at an unchanged SystemModstamp has not changed: it is recorded as observed and
    matched only when it changes."""
    app = new_ledger()
    app.ingest([account("001A", "k9", 1)])  # read without Site
    app.ingest([company("c1", "s1", 100, kind="created")])
    app.apply_config(SyncConfig("Site", (AttributeMapping("name", "Name", S2I),)), CATALOG)
    # the poll now reads Site, and no longer AccountNumber
    fields = {k: v for k, v in account("001A", "k9", 1, Site="s1").fields.items()}
    del fields["AccountNumber"]
    reread = AccountChange("001A", fields, stamp(1))
    assert types(app.ingest([reread])) == ["AccountObserved"]
    assert mapped(app) == {} and app.pending_writes() == []
    assert app.state.accounts["001A"].fields["Site"] == "s1"
    assert app.ingest([reread]).count == 0  # the next poll's overlap: recorded already
    changed = app.ingest([account("001A", "k9", 2, Site="s1", Name="Renamed")])
    assert "IdentityMapped" in types(changed)
    assert mapped(app) == {"s1": ("c1", "001A")}


def test_a_company_waits_for_its_account_and_is_matched_when_it_appears() -> None:
    app = new_ledger()
    rec = app.ingest([company("c1", "k1", 100, kind="created", industry="Banking")])
    assert types(rec) == ["CompanyCreated", "NotSynced"]
    app.ingest([account("001A", "k1", 1)])
    assert mapped(app) == {"k1": ("c1", "001A")}


# --- attribute rules ------------------------------------------------------------------------


def test_skip_if_source_empty_records_the_skip() -> None:
    app = new_ledger()
    establish(app)
    rec = app.ingest([account("001A", "k1", 5, Name="Acme", Plan__c=None)])
    plan = rec.of_type(ev.SyncPlanned)
    rules = {s["field"]: s["rule"] for p in plan for s in p.skipped}  # type: ignore[attr-defined]
    assert rules["custom_attributes.plan"] == "source_empty"


def test_skip_if_destination_has_value_keeps_the_destination() -> None:
    app = new_ledger()
    app.ingest([account("001A", "k1", 1, Website="https://keep.example")])
    rec = app.ingest([company("c1", "k1", 100, kind="created", website="https://new.example")])
    plan = rec.of_type(ev.SyncPlanned)[0]
    assert isinstance(plan, ev.SyncPlanned)
    assert {s["field"]: s["rule"] for s in plan.skipped}["Website"] == "destination_has_value"
    assert ("001A", "Website") not in planned(app)


def test_no_write_is_planned_when_the_destination_already_holds_the_value() -> None:
    app = new_ledger()
    app.ingest([account("001A", "k1", 1, Industry="Banking", NumberOfEmployees=10)])
    app.ingest([company("c1", "k1", 100, kind="created", industry="Banking", size=10)])
    assert planned(app) == {}


def test_a_value_outside_a_restricted_picklist_is_a_recorded_rejection() -> None:
    app = new_ledger()
    app.ingest([account("001A", "k1", 1)])
    rec = app.ingest([company("c1", "k1", 100, kind="created", industry="Space Mining")])
    plan = rec.of_type(ev.SyncPlanned)[0]
    assert isinstance(plan, ev.SyncPlanned)
    assert [r["field"] for r in plan.rejected] == ["Industry"]
    assert "restricted picklist" in plan.rejected[0]["reason"]


def test_our_own_write_coming_back_is_an_echo_and_triggers_nothing() -> None:
    app = new_ledger()
    establish(app)
    rec = app.ingest(
        [account("001A", "k1", 5, Name="Acme", Industry="Banking", NumberOfEmployees=10)]
    )
    assert types(rec) == ["AccountUpdated", "EchoRecognised"]
    assert app.pending_writes() == []


def test_a_newer_change_supersedes_a_pending_write() -> None:
    app = new_ledger()
    establish(app)
    app.ingest([company("c1", "k1", 200, name="Acme", industry="Banking", size=20)])
    rec = app.ingest([company("c1", "k1", 300, name="Acme", industry="Banking", size=30)])
    assert "WriteSkipped" in types(rec)
    assert planned(app) == {("001A", "NumberOfEmployees"): 30}


def test_repeated_and_out_of_order_facts_record_nothing() -> None:
    app = new_ledger()
    establish(app)
    app.ingest([company("c1", "k1", 300, name="Acme", industry="Banking", size=30)])
    assert (
        app.ingest([company("c1", "k1", 300, name="Acme", industry="Banking", size=30)]).count == 0
    )
    assert app.ingest([company("c1", "k1", 250, name="Acme", industry="Retail", size=1)]).count == 0


def test_lookup_needs_name_unknown_counterparts_once() -> None:
    app = new_ledger()
    facts = [company("c1", "k1", 100, kind="created"), account("001Z", "k7", 1)]
    needs = app.lookup_needs(facts)
    assert needs.salesforce_keys == ("k1",) and needs.intercom_keys == ("k7",)
    app.ingest(
        [
            app.lookup_answer(ev.SALESFORCE, "AccountNumber", ["k1"], [account("001A", "k1", 1)]),
            app.lookup_answer(ev.INTERCOM, "company_id", ["k7"], []),
            *facts,
        ]
    )
    assert mapped(app) == {"k1": ("c1", "001A")}
    assert not app.lookup_needs(facts)


def test_standard_config_is_version_one() -> None:
    assert new_ledger().config.version == 1
    assert new_ledger(config=None).config.version == 0
    assert STANDARD_CONFIG.identifier_field == "AccountNumber"


def test_changes_whose_counterparts_were_looked_up_in_the_same_batch_still_trigger() -> None:
    app = new_ledger()
    new_company = company("c1", "k1", 100, kind="created", industry="Banking")
    new_account = account("001A", "k1", 1, Name="Acme")
    snapshot_company = CompanyChange(
        "c1", "k1", new_company.attributes, 100, kind="snapshot", source="lookup"
    )
    snapshot_account = AccountChange(
        "001A", new_account.fields, new_account.system_modstamp, kind="snapshot", source="lookup"
    )
    rec = app.ingest(
        [
            app.lookup_answer(ev.SALESFORCE, "AccountNumber", ["k1"], [snapshot_account]),
            app.lookup_answer(ev.INTERCOM, "company_id", ["k1"], [snapshot_company]),
            new_company,
            new_account,
        ]
    )
    assert "CompanyCreated" in types(rec) and "AccountCreated" in types(rec)
    assert mapped(app) == {"k1": ("c1", "001A")}
    assert planned(app) == {("001A", "Industry"): "Banking", ("c1", "name"): "Acme"}


def test_a_change_seen_first_by_a_read_before_write_is_still_synced() -> None:
    app = new_ledger()
    establish(app)
    # The writer reads the company (it is a destination) before Intercom's webhook arrives.
    changed = company("c1", "k1", 200, name="Acme", industry="Retail", size=10)
    app.ingest([CompanyChange("c1", "k1", changed.attributes, 200, "snapshot", "read")])
    app.ingest([changed])
    assert planned(app) == {("001A", "Industry"): "Retail"}
