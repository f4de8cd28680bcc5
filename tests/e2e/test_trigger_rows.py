"""Every row of the seed's trigger tables, end to end: both simulators and ``syncledger serve``
run as OS processes; records are created and changed through the simulators' REST APIs, as a
user of Salesforce or Intercom would; outcomes are read from the simulators' state (and the
ledger, for the reasons it recorded).

The tests mirror ``tests/unit/test_triggers.py`` row by row and share one stack per store (each
row uses its own identifier values, so rows do not interfere). Salesforce reports a deletion only
once its minute has passed (getDeleted), so the two deletion rows are set off when the stack
starts and checked near the end; the identifier-field change, which unmatches everything, runs
last.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from adapters.demo.story import demo_config
from ledger import events as ev
from tests.e2e.stack import Stack, fresh_database, launch, wait_for

DELETION_TIMEOUT = 150.0  # getDeleted's whole minute, the poll, and a busy machine

PERSON = {"Name": "Jane Doe", "AccountNumber": "R-PA", "IsPersonAccount": True}


@dataclass
class World:
    """The shared stack, and the records of the rows set off before the tests run."""

    stack: Stack
    ids: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp(f"rows-{request.param}")
    with (
        fresh_database(request.param, tmp) as url,
        launch(tmp, url, salesforce_data={"accounts": [PERSON]}) as stack,
    ):
        stack.start_service("--config", "sync.toml")
        w = World(stack)
        _set_off_deletions(w)
        yield w


def _set_off_deletions(w: World) -> None:
    s = w.stack
    # account deleted with a mapping: the pair R-ADEL
    w.ids["adel"] = s.create_account(Name="Gone Ltd", AccountNumber="R-ADEL")
    w.ids["adel_company"] = s.upsert_company(company_id="R-ADEL", name="Gone Ltd")
    # the holder of a duplicated key is deleted: R-HAND, held by the newer of two accounts
    w.ids["hand_old"] = s.create_account(Name="Hand Old", AccountNumber="R-HAND")
    w.ids["hand_new"] = s.create_account(Name="Hand New", AccountNumber="R-HAND")
    wait_for(lambda: knows_accounts(s, w.ids["hand_old"], w.ids["hand_new"]), "both duplicates")
    w.ids["hand_company"] = s.upsert_company(company_id="R-HAND", name="Hand (Intercom)")
    expected = {"R-ADEL": w.ids["adel"], "R-HAND": w.ids["hand_new"]}
    wait_for(lambda: expected.items() <= s.links().items(), "the pairs to delete from")
    s.delete_account(w.ids["adel"])
    s.delete_account(w.ids["hand_new"])


# --- helpers ---------------------------------------------------------------------------------


def knows_accounts(s: Stack, *sids: str) -> bool:
    return set(sids) <= set(s.reader().live_record_ids(ev.SALESFORCE))


def sees_account(s: Stack, sid: str, **fields: Any) -> bool:
    """Whether the ledger knows the account ``sid`` with these field values."""
    reader = s.reader()
    reader.catch_up()
    known = reader.state.accounts.get(sid)
    return known is not None and all(known.fields.get(k) == v for k, v in fields.items())


def knows_companies(s: Stack, *iids: str) -> bool:
    return set(iids) <= set(s.reader().live_record_ids(ev.INTERCOM))


def of_type(s: Stack, kind: type[ev.LedgerEvent], **match: Any) -> list[Any]:
    """The ledger's events of ``kind`` whose attributes equal ``match``."""
    return [
        e
        for e in s.events()
        if isinstance(e, kind) and all(getattr(e, k) == v for k, v in match.items())
    ]


def unmap_reasons(s: Stack, company_id: str) -> list[str]:
    return [e.reason for e in of_type(s, ev.IdentityUnmapped, company_id=company_id)]


def skipped_rules(s: Stack, record_id: str) -> dict[str, str]:
    return {
        skip["field"]: skip["rule"]
        for plan in of_type(s, ev.SyncPlanned, record_id=record_id)
        for skip in plan.skipped
    }


def plan_of(company: dict[str, Any]) -> Any:
    return company["custom_attributes"].get("plan")


# --- Intercom → Salesforce -------------------------------------------------------------------


def test_company_updated_with_mapping_syncs_only_the_updated_attributes(world: World) -> None:
    s = world.stack
    sid = s.create_account(Name="Umbrella", AccountNumber="R-CU")
    iid = s.upsert_company(company_id="R-CU", name="Umbrella", industry="Banking", size=10)
    wait_for(lambda: s.account(sid)["NumberOfEmployees"] == 10, "the pair's first sync")
    # a Salesforce user changes Industry there; it flows Intercom → Salesforce only, so it stays
    s.update_account(sid, Industry="Retail")
    wait_for(lambda: sees_account(s, sid, Industry="Retail"), "the account's edit")

    s.update_company(iid, size=25)  # industry is not updated

    wait_for(lambda: s.account(sid)["NumberOfEmployees"] == 25, "the updated size")
    assert s.account(sid)["Industry"] == "Retail"  # the company's unchanged industry not synced


def test_company_created_without_mapping_creates_mapping_and_syncs_all_mapped_attributes(
    world: World,
) -> None:
    s = world.stack
    sid = s.create_account(Name="Initech", AccountNumber="R-CC")
    wait_for(lambda: knows_accounts(s, sid), "the account in the ledger")

    iid = s.upsert_company(
        company_id="R-CC", name="Initech (Intercom)", industry="Banking", size=40,
        website="https://initech.example",
    )  # fmt: skip

    wait_for(lambda: s.links().get("R-CC") == sid, "the mapping")
    expected = {
        "Industry": "Banking",
        "NumberOfEmployees": 40,
        "Website": "https://initech.example",
    }
    wait_for(lambda: expected.items() <= s.account(sid).items(), "every mapped attribute")
    assert [e.trigger for e in of_type(s, ev.IdentityMapped, company_id="R-CC")] == [
        "company_created"
    ]
    assert s.company(iid)["name"] == "Initech (Intercom)"  # our write's echo triggered nothing


def test_company_deleted_with_mapping_deletes_the_mapping_never_the_account(world: World) -> None:
    s = world.stack
    sid = s.create_account(Name="Hooli", AccountNumber="R-CD")
    iid = s.upsert_company(company_id="R-CD", name="Hooli")
    wait_for(lambda: s.links().get("R-CD") == sid, "the mapping")

    s.delete_company(iid)

    wait_for(lambda: "R-CD" not in s.links(), "the mapping dropped")
    assert unmap_reasons(s, "R-CD") == ["company deleted"]
    assert s.account(sid)["Name"] == "Hooli"  # the account is kept
    assert s.account(sid)["AccountNumber"] == "R-CD"


# --- Salesforce → Intercom -------------------------------------------------------------------


def test_account_updated_with_mapping_syncs_all_mapped_attributes(world: World) -> None:
    s = world.stack
    sid = s.create_account(Name="Vandelay", AccountNumber="R-AU")
    wait_for(lambda: knows_accounts(s, sid), "the account in the ledger")
    iid = s.upsert_company(company_id="R-AU", name="Vandelay Industries")
    wait_for(lambda: s.links().get("R-AU") == sid, "the mapping")
    assert s.company(iid)["name"] == "Vandelay Industries"  # a company's creation syncs to SF

    s.update_account(sid, Plan__c="Pro")  # the name is not changed

    wait_for(lambda: plan_of(s.company(iid)) == "Pro", "the updated plan")
    assert s.company(iid)["name"] == "Vandelay"  # every mapped attribute, the unchanged too


def test_mapping_key_updated_with_mapping_unmaps_maps_anew_and_syncs_all(world: World) -> None:
    s = world.stack
    sid = s.create_account(Name="Stark", AccountNumber="R-KA")
    wait_for(lambda: knows_accounts(s, sid), "the account in the ledger")
    old = s.upsert_company(company_id="R-KA", name="Stark A")
    new = s.upsert_company(company_id="R-KB", name="Stark B")  # no account yet: it waits
    wait_for(lambda: s.links().get("R-KA") == sid, "the first mapping")
    wait_for(lambda: knows_companies(s, new), "the waiting company in the ledger")

    s.update_account(sid, AccountNumber="R-KB")

    wait_for(lambda: s.links().get("R-KB") == sid, "the new mapping")
    assert "R-KA" not in s.links()
    assert unmap_reasons(s, "R-KA") == ["key changed"]
    wait_for(lambda: s.company(new)["name"] == "Stark", "sync all to the new company")
    assert s.company(old)["name"] == "Stark A"


def test_mapping_key_updated_without_mapping_creates_mapping_and_syncs_all(world: World) -> None:
    s = world.stack
    sid = s.create_account(Name="Wayne", AccountNumber="R-KX", Plan__c="Gold")
    iid = s.upsert_company(company_id="R-KY", name="Wayne (Intercom)")
    wait_for(lambda: knows_accounts(s, sid) and knows_companies(s, iid), "both in the ledger")
    assert "R-KX" not in s.links() and "R-KY" not in s.links()

    s.update_account(sid, AccountNumber="R-KY")

    wait_for(lambda: s.links().get("R-KY") == sid, "the mapping")
    wait_for(lambda: s.company(iid)["name"] == "Wayne", "sync all")
    assert plan_of(s.company(iid)) == "Gold"


def test_account_created_creates_mapping_and_syncs_all_mapped_attributes(world: World) -> None:
    s = world.stack
    iid = s.upsert_company(company_id="R-AC", name="Cyberdyne (Intercom)")
    wait_for(lambda: of_type(s, ev.NotSynced, record_id=iid), "the company waiting")

    sid = s.create_account(Name="Cyberdyne", AccountNumber="R-AC", Plan__c="Enterprise")

    wait_for(lambda: s.links().get("R-AC") == sid, "the mapping")
    wait_for(lambda: s.company(iid)["name"] == "Cyberdyne", "the name")
    assert plan_of(s.company(iid)) == "Enterprise"


# --- identity rules --------------------------------------------------------------------------


def test_duplicate_keys_match_the_most_recently_updated_account(world: World) -> None:
    s = world.stack
    older = s.create_account(Name="Dup Older", AccountNumber="R-DUP")
    newer = s.create_account(Name="Dup Newer", AccountNumber="R-DUP")
    s.update_account(older, Name="Dup Older, edited")  # now the most recently updated
    wait_for(
        lambda: sees_account(s, older, Name="Dup Older, edited") and knows_accounts(s, newer),
        "both duplicates in the ledger",
    )

    iid = s.upsert_company(company_id="R-DUP", name="Dup (Intercom)")

    wait_for(lambda: s.links().get("R-DUP") == older, "the most recently updated account")
    s.update_account(older, Plan__c="Silver")  # a change of the holder syncs to the company
    wait_for(lambda: plan_of(s.company(iid)) == "Silver", "the holder's plan")
    assert s.company(iid)["name"] == "Dup Older, edited"


def test_more_recently_updated_duplicate_supersedes_the_mapping(world: World) -> None:
    s = world.stack
    first = s.create_account(Name="Acme One", AccountNumber="R-SUP")
    wait_for(lambda: knows_accounts(s, first), "the account in the ledger")
    iid = s.upsert_company(company_id="R-SUP", name="Acme (Intercom)")
    wait_for(lambda: s.links().get("R-SUP") == first, "the first mapping")

    second = s.create_account(Name="Acme Two", AccountNumber="R-SUP")

    wait_for(lambda: s.links().get("R-SUP") == second, "the newer duplicate's mapping")
    assert unmap_reasons(s, "R-SUP") == ["superseded by a more recently updated duplicate"]
    wait_for(lambda: s.company(iid)["name"] == "Acme Two", "sync all from the new holder")
    assert s.account(first)["AccountNumber"] == "R-SUP"  # the other account is left alone


def test_person_accounts_are_never_synced_and_recorded_as_ignored(world: World) -> None:
    s = world.stack
    [person] = s.query("SELECT Id, IsPersonAccount FROM Account WHERE AccountNumber = 'R-PA'")
    assert person["IsPersonAccount"] is True
    sid = person["Id"]
    iid = s.upsert_company(company_id="R-PA", name="Doe Household")
    wait_for(lambda: of_type(s, ev.NotSynced, record_id=iid), "the company's decision")

    s.update_account(sid, Name="Jane Q. Doe", Plan__c="Pro")  # a user edits the person account

    wait_for(lambda: len(of_type(s, ev.RecordIgnored, record_id=sid)) >= 2, "both ignored")
    assert "R-PA" not in s.links()
    assert s.company(iid)["name"] == "Doe Household" and plan_of(s.company(iid)) is None
    assert not of_type(s, ev.SyncPlanned, company_id="R-PA")


def test_companies_without_company_id_are_never_synced_and_recorded_as_ignored(
    world: World,
) -> None:
    s = world.stack
    iid = s.qualify_company(name="Qualified Co")  # Messenger qualification: no company_id
    wait_for(lambda: of_type(s, ev.RecordIgnored, record_id=iid), "the company ignored")

    s.update_company(iid, industry="Banking", size=12)  # a user fills it in

    wait_for(lambda: len(of_type(s, ev.RecordIgnored, record_id=iid)) >= 2, "ignored again")
    assert s.company(iid)["company_id"] is None
    assert not s.query("SELECT Id FROM Account WHERE NumberOfEmployees = 12")
    assert not [e for e in of_type(s, ev.NotSynced) if e.record_id == iid]


# --- attribute rules -------------------------------------------------------------------------


def test_skip_if_source_empty_records_the_skip(world: World) -> None:
    s = world.stack
    sid = s.create_account(Name="Soylent", AccountNumber="R-SE")  # no Plan__c
    wait_for(lambda: knows_accounts(s, sid), "the account in the ledger")
    iid = s.upsert_company(company_id="R-SE", name="Soylent", custom_attributes={"plan": "Gold"})
    wait_for(lambda: s.links().get("R-SE") == sid, "the mapping")

    s.update_account(sid, Name="Soylent Corp")

    wait_for(lambda: s.company(iid)["name"] == "Soylent Corp", "the name")
    assert plan_of(s.company(iid)) == "Gold"  # the empty Plan__c did not clear it
    assert skipped_rules(s, iid)["custom_attributes.plan"] == "source_empty"


def test_skip_if_destination_has_value_keeps_the_destination(world: World) -> None:
    s = world.stack
    sid = s.create_account(Name="Tyrell", AccountNumber="R-DV", Website="https://keep.example")
    wait_for(lambda: knows_accounts(s, sid), "the account in the ledger")

    s.upsert_company(
        company_id="R-DV", name="Tyrell", industry="Retail", website="https://new.example"
    )

    wait_for(lambda: s.account(sid)["Industry"] == "Retail", "the industry")
    assert s.account(sid)["Website"] == "https://keep.example"
    assert skipped_rules(s, sid)["Website"] == "destination_has_value"


# --- deletions (set off when the stack started) ---------------------------------------------


def test_account_deleted_with_mapping_deletes_the_mapping_never_the_company(world: World) -> None:
    s, ids = world.stack, world.ids
    wait_for(lambda: "R-ADEL" not in s.links(), "the deletion", timeout=DELETION_TIMEOUT)
    assert unmap_reasons(s, "R-ADEL") == ["account deleted"]
    assert s.company(ids["adel_company"])["name"] == "Gone Ltd"  # the company is kept


def test_deleting_the_holder_hands_the_key_to_the_remaining_duplicate(world: World) -> None:
    s, ids = world.stack, world.ids
    wait_for(
        lambda: s.links().get("R-HAND") == ids["hand_old"], "the hand-over",
        timeout=DELETION_TIMEOUT,
    )  # fmt: skip
    assert unmap_reasons(s, "R-HAND") == ["account deleted"]
    wait_for(lambda: s.company(ids["hand_company"])["name"] == "Hand Old", "sync all")


# --- the identifier field (last: it unmatches every pair) -----------------------------------


def test_changing_the_identifier_field_unmatches_every_mapping(world: World) -> None:
    s, ids = world.stack, world.ids
    # pairs by Site, not matched while AccountNumber identifies accounts
    ids["s1"] = s.create_account(Name="Site One", AccountNumber="R-S1-AN", Site="R-S1")
    ids["s2"] = s.create_account(Name="Site Two", Site="R-S2")
    ids["c1"] = s.upsert_company(company_id="R-S1", name="Site One", industry="Banking", size=5)
    ids["c2"] = s.upsert_company(company_id="R-S2", name="Site Two (Intercom)")
    wait_for(lambda: knows_accounts(s, ids["s1"], ids["s2"]), "the accounts in the ledger")
    wait_for(lambda: knows_companies(s, ids["c1"], ids["c2"]), "the companies in the ledger")
    before = s.links()
    assert before and "R-S1" not in before

    (s.tmp / "by-site.toml").write_text(demo_config("Site").to_toml(), encoding="utf-8")
    applied = s.run("config", "apply", "by-site.toml")  # while serve runs
    assert applied.returncode == 0, applied.stderr

    def unmatched() -> dict[str, str]:
        reasons = {e.company_id: e.reason for e in of_type(s, ev.IdentityUnmapped)}
        return {key: reasons.get(key, "") for key in before}

    wait_for(
        lambda: unmatched() == dict.fromkeys(before, "identifier field changed"),
        "every mapping dropped",
    )
    assert not before.keys() & s.links().keys()
    assert 'salesforce_field = "Site"' in s.run("config", "show").stdout
    # new mappings are made going forward, by the new field
    s.update_company(ids["c1"], size=77)
    wait_for(lambda: s.links().get("R-S1") == ids["s1"], "a mapping by Site")
    assert {m.identifier_field for m in s.reader().mappings()} == {"Site"}


def test_company_updated_without_mapping_creates_mapping_and_syncs_updated_attributes(
    world: World,
) -> None:
    # after the identifier-field change above: R-S1 was not matched until its company changed
    s, ids = world.stack, world.ids
    wait_for(lambda: s.account(ids["s1"])["NumberOfEmployees"] == 77, "the updated size")
    assert s.account(ids["s1"])["Industry"] is None  # industry was not updated
    mapped = of_type(s, ev.IdentityMapped, company_id="R-S1")
    assert [e.trigger for e in mapped] == ["company_updated"]


def test_account_updated_without_mapping_creates_mapping_and_syncs_all(world: World) -> None:
    s, ids = world.stack, world.ids
    assert "R-S2" not in s.links()  # no record changed since the identifier field did
    assert s.company(ids["c2"])["name"] == "Site Two (Intercom)"

    s.update_account(ids["s2"], Plan__c="Pro")

    wait_for(lambda: s.links().get("R-S2") == ids["s2"], "the mapping by Site")
    wait_for(lambda: plan_of(s.company(ids["c2"])) == "Pro", "the plan")
    assert s.company(ids["c2"])["name"] == "Site Two"
