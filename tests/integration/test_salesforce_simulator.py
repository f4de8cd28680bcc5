"""The Salesforce simulator driven by the real simple-salesforce client over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from adapters.salesforce.login import connect
from adapters.simulators.salesforce import SalesforceState, create_salesforce_app, load_data
from adapters.simulators.server import serving
from tests.support import StoppedClock

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SEEDED = 4500


class Sim:
    """One simulator on loopback with a connected simple-salesforce client."""

    def __init__(self, stack: ExitStack, state: SalesforceState, **options: Any) -> None:
        self.state = state
        self.stack = stack
        self.server = stack.enter_context(serving(create_salesforce_app(state, **options)))
        self.sf = self.client(options.get("token", "sim-token"))

    def client(self, token: str) -> Any:  # simple-salesforce answers are untyped JSON
        """A simple-salesforce client of this simulator, closed with it."""
        sf = connect(self.server.url, token)
        self.stack.callback(sf.session.close)
        return sf


@pytest.fixture
def clock() -> StoppedClock:
    return StoppedClock(T0)


@pytest.fixture
def make_sim(clock: StoppedClock) -> Iterator[Callable[..., Sim]]:
    """Factory: a fresh simulator (state on the stopped clock) per call, stopped after the test."""
    with ExitStack() as stack:
        yield lambda state=None, **options: Sim(
            stack, state or SalesforceState(now=clock), **options
        )


@pytest.fixture
def sim(make_sim: Callable[..., Sim]) -> Sim:
    return make_sim()


@pytest.fixture(scope="module")
def big() -> Iterator[Sim]:
    """4500 accounts, one per second from T0 (read-only tests share it)."""
    clock = StoppedClock(T0)
    state = SalesforceState(now=clock)
    industries = ["Banking", "Technology", "Retail"]
    for i in range(SEEDED):
        fields = {"Name": f"Acct {i:04d}", "Seats__c": i % 700, "Industry": industries[i % 3]}
        state.create_account(fields)
        clock.advance(seconds=1)
    with ExitStack() as stack:
        yield Sim(stack, state)


def error_of(exc: pytest.ExceptionInfo[Exception]) -> dict[str, Any]:
    content = exc.value.content  # type: ignore[attr-defined]
    assert isinstance(content, list) and len(content) == 1
    entry: dict[str, Any] = content[0]
    return entry


def records(n: int) -> list[dict[str, Any]]:
    return [{"attributes": {"type": "Account"}, "Name": f"R{i}"} for i in range(n)]


# -- queries -------------------------------------------------------------------------------------


def test_query_pages_by_2000_and_query_all_iter_reads_everything(big: Sim) -> None:
    first = big.sf.query("SELECT Id, Name FROM Account")
    assert first["totalSize"] == SEEDED and first["done"] is False
    assert len(first["records"]) == 2000
    assert first["nextRecordsUrl"].startswith("/services/data/v62.0/query/01g")
    assert first["nextRecordsUrl"].endswith("-2000")
    record = first["records"][0]
    assert list(record) == ["attributes", "Id", "Name"]
    assert record["attributes"] == {
        "type": "Account",
        "url": f"/services/data/v62.0/sobjects/Account/{record['Id']}",
    }
    assert len(record["Id"]) == 18 and record["Id"].startswith("001")
    second = big.sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert len(second["records"]) == 2000 and second["nextRecordsUrl"].endswith("-4000")
    ids = [r["Id"] for r in big.sf.query_all_iter("SELECT Id FROM Account")]
    assert len(ids) == len(set(ids)) == SEEDED


def test_where_on_system_modstamp_with_order_by(big: Sim) -> None:
    cutoff = T0 + timedelta(seconds=4000)
    for literal in (
        "2024-05-01T13:06:40Z",
        "2024-05-01T13:06:40+00:00",
        "2024-05-01T15:06:40+02:00",
    ):
        result = big.sf.query(
            "SELECT Id, Name, SystemModstamp FROM Account "
            f"WHERE SystemModstamp > {literal} ORDER BY SystemModstamp, Id"
        )
        stamps = [r["SystemModstamp"] for r in result["records"]]
        assert result["totalSize"] == SEEDED - 4001
        assert stamps == sorted(stamps)
        assert stamps[0] == "2024-05-01T13:06:41.000+0000"
        assert datetime.strptime(stamps[0], "%Y-%m-%dT%H:%M:%S.%f%z") > cutoff
    upto = big.sf.query(
        "SELECT Id FROM Account WHERE SystemModstamp <= 2024-05-01T12:00:02.000+0000"
    )
    assert upto["totalSize"] == 3


def test_in_and_or_limit_and_order(big: Sim) -> None:
    names = big.sf.query(
        "SELECT Name FROM Account WHERE Name IN ('Acct 0001', 'acct 0002', 'nope') "
        "ORDER BY Name DESC"
    )
    assert [r["Name"] for r in names["records"]] == ["Acct 0002", "Acct 0001"]
    not_in = big.sf.query("SELECT Id FROM Account WHERE Industry NOT IN ('Banking', 'Retail')")
    assert not_in["totalSize"] == SEEDED // 3
    mixed = big.sf.query(
        "SELECT Name, Seats__c FROM Account WHERE (Seats__c = 5 OR Seats__c = 6) "
        "AND Industry = 'Retail' ORDER BY Seats__c ASC, Name LIMIT 3"
    )
    assert mixed["totalSize"] == 3
    assert all(r["Seats__c"] in (5, 6) for r in mixed["records"])
    assert [r["Seats__c"] for r in mixed["records"]] == sorted(
        r["Seats__c"] for r in mixed["records"]
    )
    like = big.sf.query("SELECT Id FROM Account WHERE Name LIKE 'acct 449%'")
    assert like["totalSize"] == 10
    org = big.sf.query("SELECT Id, IsSandbox, OrganizationType FROM Organization")
    assert org["records"][0]["Id"] == "00D000000000001EAA"
    assert big.sf.is_sandbox() is False


def test_sandbox_organization(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim(sandbox=True, org_id="00DSm0000000001")
    assert sim.sf.is_sandbox() is True
    org = sim.sf.Organization.get("00DSm0000000001")
    assert org["OrganizationType"] == "Developer Edition" and org["IsSandbox"] is True


@pytest.mark.parametrize(
    ("soql", "code", "needle"),
    [
        ("SELECT Foo FROM Account", "INVALID_FIELD", "No such column 'Foo' on entity 'Account'"),
        ("SELECT Id FROM Account WHERE Seats__c = '5'", "INVALID_FIELD", "must be of type integer"),
        (
            "SELECT Id FROM Account WHERE Name = 'a' AND Seats__c = 1 OR Seats__c = 2",
            "MALFORMED_QUERY",
            "unexpected token: OR",
        ),
        ("SELECT Id FROM Account WHERE SystemModstamp > '2024-05-01'", "INVALID_FIELD", "dateTime"),
        ("SELECT Id FROM Account WHERE Description = 'x'", "INVALID_FIELD", "can not be filtered"),
        ("SELECT Id FROM Account LIMIT", "MALFORMED_QUERY", "<EOF>"),
        ("SELECT Id FROM Contact", "INVALID_TYPE", "sObject type 'Contact' is not supported"),
    ],
)
def test_query_errors(big: Sim, soql: str, code: str, needle: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        big.sf.query(soql)
    assert error_of(exc)["errorCode"] == code
    assert needle in error_of(exc)["message"]


def test_query_all_includes_soft_deleted_rows(sim: Sim) -> None:
    kept = sim.state.create_account({"Name": "Kept"})
    gone = sim.state.create_account({"Name": "Gone"})
    sim.sf.Account.delete(gone)
    live = sim.sf.query("SELECT Id FROM Account")
    assert [r["Id"] for r in live["records"]] == [kept]
    everything = sim.sf.query_all(
        "SELECT Id, IsDeleted FROM Account ORDER BY Name", include_deleted=True
    )
    assert [(r["Id"], r["IsDeleted"]) for r in everything["records"]] == [
        (gone, True),
        (kept, False),
    ]


def test_query_all_next_records_url_still_says_query(sim: Sim) -> None:
    for i in range(250):
        sim.state.create_account({"Name": f"N{i}"})
    page = sim.sf.query(
        "SELECT Id FROM Account",
        include_deleted=True,
        headers={"Sforce-Query-Options": "batchSize=200"},
    )
    assert len(page["records"]) == 200
    assert "/query/" in page["nextRecordsUrl"]


# -- describe ------------------------------------------------------------------------------------


def test_describe_field_metadata(sim: Sim) -> None:
    doc = sim.sf.Account.describe()
    fields = {f["name"]: f for f in doc["fields"]}
    assert doc["name"] == "Account" and doc["keyPrefix"] == "001"
    tier = fields["Tier__c"]
    assert tier["calculated"] is True and tier["updateable"] is False
    assert "Seats__c" in tier["calculatedFormula"] and tier["custom"] is True
    assert fields["BillingAddress"]["type"] == "address"
    assert fields["BillingAddress"]["updateable"] is False
    assert fields["BillingCity"]["compoundFieldName"] == "BillingAddress"
    assert fields["BillingStreet"]["type"] == "textarea"
    description = fields["Description"]
    assert (description["type"], description["length"]) == ("textarea", 32000)
    assert fields["Name"]["nillable"] is False and fields["Name"]["length"] == 255
    industry = fields["Industry"]
    assert industry["restrictedPicklist"] is True
    assert {"value": "Banking", "label": "Banking", "active": True}.items() <= industry[
        "picklistValues"
    ][2].items()
    assert fields["IsPersonAccount"]["createable"] is False
    assert fields["OwnerId"]["referenceTo"] == ["User"]
    assert fields["SystemModstamp"]["type"] == "datetime"
    assert fields["NumberOfEmployees"]["soapType"] == "xsd:int"
    assert fields["Tags__c"]["type"] == "multipicklist"
    assert fields["Intercom_Company_Id__c"]["externalId"] is True
    org = sim.sf.Organization.describe()
    assert "IsSandbox" in {f["name"] for f in org["fields"]}


# -- single-record writes ------------------------------------------------------------------------


def test_create_get_update_delete(sim: Sim, clock: StoppedClock) -> None:
    created = sim.sf.Account.create(
        {"Name": "Acme", "Industry": "Banking", "Seats__c": 60, "BillingCity": "Paris"}
    )
    assert created["success"] is True and created["errors"] == []
    account_id = created["id"]
    got = sim.sf.Account.get(account_id)
    assert got["Name"] == "Acme" and got["Tier__c"] == "Growth"
    assert got["BillingAddress"]["city"] == "Paris"
    assert got["CreatedDate"] == got["SystemModstamp"] == "2024-05-01T12:00:00.000+0000"
    assert got["IsPersonAccount"] is False and got["IsDeleted"] is False
    clock.advance(minutes=1)
    assert sim.sf.Account.update(account_id, {"Seats__c": 600, "Website": "acme.com"}) == 204
    got = sim.sf.Account.get(account_id)
    assert got["Tier__c"] == "Enterprise" and got["Website"] == "acme.com"
    assert got["LastModifiedDate"] == got["SystemModstamp"] == "2024-05-01T12:01:00.000+0000"
    partial = sim.sf.Account.get(account_id, params={"fields": "name,Seats__c"})
    assert list(partial) == ["attributes", "Name", "Seats__c"]
    assert sim.sf.Account.delete(account_id) == 204
    with pytest.raises(SalesforceResourceNotFound) as exc:
        sim.sf.Account.get(account_id)
    assert error_of(exc)["errorCode"] == "ENTITY_IS_DELETED"
    with pytest.raises(SalesforceResourceNotFound) as exc:
        sim.sf.Account.get("001Sm0000000zzzAAA")
    assert error_of(exc)["errorCode"] == "NOT_FOUND"


def test_system_modstamp_strictly_increases_within_one_millisecond(sim: Sim) -> None:
    account_id = sim.sf.Account.create({"Name": "Tick"})["id"]
    stamps = [sim.sf.Account.get(account_id)["SystemModstamp"]]
    for i in range(3):
        sim.sf.Account.update(account_id, {"Plan__c": f"p{i}"})
        stamps.append(sim.sf.Account.get(account_id)["SystemModstamp"])
    assert stamps == [
        "2024-05-01T12:00:00.000+0000",
        "2024-05-01T12:00:00.001+0000",
        "2024-05-01T12:00:00.002+0000",
        "2024-05-01T12:00:00.003+0000",
    ]


@pytest.mark.parametrize(
    ("data", "code", "fields"),
    [
        ({"IsPersonAccount": True}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["IsPersonAccount"]),
        (
            {"Tier__c": "Gold", "SystemModstamp": "2024-05-01T00:00:00Z"},
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            ["SystemModstamp", "Tier__c"],
        ),
        ({"Industry": "Spaceflight"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["Industry"]),
        ({"AccountNumber": "x" * 41}, "STRING_TOO_LONG", ["AccountNumber"]),
        ({"Name": None}, "REQUIRED_FIELD_MISSING", ["Name"]),
        ({"NumberOfEmployees": 10**9}, "NUMBER_OUTSIDE_VALID_RANGE", ["NumberOfEmployees"]),
    ],
)
def test_update_refusals(sim: Sim, data: dict[str, Any], code: str, fields: list[str]) -> None:
    account_id = sim.state.create_account({"Name": "Acme"})
    before = sim.state.get(account_id)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sim.sf.Account.update(account_id, data)
    assert error_of(exc)["errorCode"] == code
    assert sorted(error_of(exc)["fields"]) == fields
    assert sim.state.get(account_id) == before


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"Name": "x", "Foo__c": 1}, "INVALID_FIELD"),
        ({"Name": "x", "Seats__c": "lots"}, "JSON_PARSER_ERROR"),
        ({"Industry": "Banking"}, "REQUIRED_FIELD_MISSING"),
    ],
)
def test_create_refusals(sim: Sim, data: dict[str, Any], code: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sim.sf.Account.create(data)
    assert error_of(exc)["errorCode"] == code
    assert sim.state.all_accounts() == []


def test_upsert_by_external_id(sim: Sim) -> None:
    acct = sim.sf.Account
    created = acct.upsert("Intercom_Company_Id__c/ic-1", {"Name": "One"}, raw_response=True)
    assert created.status_code == 201 and created.json()["created"] is True
    updated = acct.upsert("Intercom_Company_Id__c/IC-1", {"Plan__c": "pro"}, raw_response=True)
    assert updated.status_code == 200
    assert updated.json() == {
        "id": created.json()["id"],
        "success": True,
        "errors": [],
        "created": False,
    }
    assert sim.state.read(created.json()["id"])["Plan__c"] == "pro"
    sim.state.create_account({"Name": "Twin A", "Intercom_Company_Id__c": "dup"})
    sim.state.create_account({"Name": "Twin B", "Intercom_Company_Id__c": "dup"})
    with pytest.raises(SalesforceMoreThanOneRecord) as exc:
        acct.upsert("Intercom_Company_Id__c/dup", {"Plan__c": "x"})
    assert exc.value.status == 300 and len(exc.value.content) == 2
    with pytest.raises(SalesforceResourceNotFound):
        acct.upsert("Name/One", {"Plan__c": "x"})


# -- getUpdated / getDeleted ---------------------------------------------------------------------


def test_updated_and_deleted_windows(sim: Sim, clock: StoppedClock) -> None:
    first = sim.state.create_account({"Name": "First"})
    clock.advance(minutes=2)
    second = sim.state.create_account({"Name": "Second"})
    sim.state.delete_account(first)
    clock.advance(minutes=3, seconds=30)
    start, end = T0 - timedelta(minutes=1), T0 + timedelta(hours=1)
    updated = sim.sf.Account.updated(start, end)
    assert updated == {"ids": [second], "latestDateCovered": "2024-05-01T12:05:00.000+0000"}
    deleted = sim.sf.Account.deleted(start, end)
    assert deleted["deletedRecords"] == [
        {"id": first, "deletedDate": "2024-05-01T12:02:00.001+0000"}
    ]
    assert deleted["latestDateCovered"] == "2024-05-01T12:05:00.000+0000"
    assert deleted["earliestDateAvailable"] <= "2024-04-17T12:00:00.000+0000"
    later = sim.sf.Account.updated(T0 + timedelta(minutes=2, seconds=59), end)  # seconds dropped
    assert later["ids"] == [second]
    sim.state.purge_delete_log(T0 + timedelta(minutes=4))
    purged = sim.sf.Account.deleted(start, end)
    assert purged["deletedRecords"] == []
    assert purged["earliestDateAvailable"] == "2024-05-01T12:04:00.000+0000"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sim.sf.Account.updated(T0 - timedelta(days=31), end)
    assert error_of(exc)["errorCode"] == "INVALID_REPLICATION_DATE"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sim.sf.Account.deleted(T0 - timedelta(days=16), end)
    assert error_of(exc)["errorCode"] == "INVALID_REPLICATION_DATE"
    sim.state.replication_id_limit = 0
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sim.sf.Account.updated(start, end)
    assert error_of(exc)["errorCode"] == "EXCEEDED_ID_LIMIT"


# -- sObject Collections -------------------------------------------------------------------------


def test_collections_update_reports_per_record_errors(sim: Sim) -> None:
    a = sim.state.create_account({"Name": "A"})
    b = sim.state.create_account({"Name": "B"})
    body = {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Account"}, "id": a, "Plan__c": "gold"},
            {"attributes": {"type": "Account"}, "id": b, "Industry": "Spaceflight"},
            {"attributes": {"type": "Account"}, "id": "bogus", "Plan__c": "x"},
        ],
    }
    results = sim.sf.restful("composite/sobjects", method="PATCH", json=body)
    assert results[0] == {"id": a, "success": True, "errors": []}
    assert results[1]["success"] is False
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert results[1]["errors"][0]["fields"] == ["Industry"]
    assert results[2]["errors"][0]["statusCode"] == "MALFORMED_ID"
    assert sim.state.read(a)["Plan__c"] == "gold"


def test_collections_all_or_none_rolls_back(sim: Sim) -> None:
    a = sim.state.create_account({"Name": "A"})
    b = sim.state.create_account({"Name": "B"})
    before = sim.state.all_accounts()
    body = {
        "allOrNone": True,
        "records": [
            {"attributes": {"type": "Account"}, "id": a, "Plan__c": "gold"},
            {"attributes": {"type": "Account"}, "id": b, "Tier__c": "x"},
        ],
    }
    results = sim.sf.restful("composite/sobjects", method="PATCH", json=body)
    assert [r["success"] for r in results] == [False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert sim.state.all_accounts() == before
    created = sim.sf.restful("composite/sobjects", method="POST", json={"records": records(3)})
    ids = [r["id"] for r in created]
    got = sim.sf.restful(
        "composite/sobjects/Account",
        params={"ids": ",".join([*ids, "001Sm0000000zzz"]), "fields": "Id,Name"},
    )
    assert [r and r["Name"] for r in got] == ["R0", "R1", "R2", None]


def test_collections_refuse_more_than_200_records(sim: Sim) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sim.sf.restful("composite/sobjects", method="POST", json={"records": records(201)})
    assert error_of(exc)["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert sim.state.all_accounts() == []
    done = sim.sf.restful("composite/sobjects", method="POST", json={"records": records(200)})
    assert len(done) == 200 and all(r["success"] for r in done)


# -- auth, limits, faults ------------------------------------------------------------------------


def test_limits_and_api_usage_header(sim: Sim) -> None:
    sim.sf.query("SELECT Id FROM Account")
    assert sim.sf.api_usage["api-usage"].used == 1
    assert sim.sf.api_usage["api-usage"].total == 100_000
    limits = sim.sf.limits()
    assert limits["DailyApiRequests"] == {"Max": 100_000, "Remaining": 100_000 - 2}
    counters = requests.get(f"{sim.server.url}/_sim/counters", timeout=5).json()
    assert counters == {"query": 1, "limits": 1, "total": 2}
    requests.post(f"{sim.server.url}/_sim/reset_counters", timeout=5)
    assert sim.state.counters == {"total": 0}


def test_wrong_token_is_an_expired_session(sim: Sim) -> None:
    intruder = sim.client("wrong-token")
    with pytest.raises(SalesforceExpiredSession) as exc:
        intruder.query("SELECT Id FROM Account")
    assert error_of(exc) == {
        "message": "Session expired or invalid",
        "errorCode": "INVALID_SESSION_ID",
    }
    assert sim.state.counters == {"total": 0}


def test_daily_limit_is_refused_until_the_next_day(
    make_sim: Callable[..., Sim], clock: StoppedClock
) -> None:
    sim = make_sim(daily_limit=3)
    for _ in range(3):
        sim.sf.query("SELECT Id FROM Account")
    with pytest.raises(SalesforceRefusedRequest) as exc:
        sim.sf.query("SELECT Id FROM Account")
    assert error_of(exc) == {
        "message": "TotalRequests Limit exceeded.",
        "errorCode": "REQUEST_LIMIT_EXCEEDED",
    }
    clock.advance(days=1)
    sim.sf.query("SELECT Id FROM Account")
    assert sim.sf.api_usage["api-usage"].used == 1


def test_fault_rate_one_fails_every_call_and_changes_nothing(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim(fault_rate=1.0, seed=7)
    account_id = sim.state.create_account({"Name": "Stable"})
    before = sim.state.get(account_id)
    with pytest.raises(SalesforceGeneralError) as exc:
        sim.sf.query("SELECT Id FROM Account")
    assert exc.value.status == 503
    assert error_of(exc)["errorCode"] == "SERVER_UNAVAILABLE"
    codes = set()
    for _ in range(8):
        with pytest.raises((SalesforceGeneralError, SalesforceMalformedRequest)) as write_exc:
            sim.sf.Account.update(account_id, {"Name": "Changed"})
        codes.add(error_of(write_exc)["errorCode"])
    assert codes == {"SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW"}
    body = {"records": [{"attributes": {"type": "Account"}, "id": account_id, "Name": "C"}]}
    for _ in range(4):
        try:
            result = sim.sf.restful("composite/sobjects", method="PATCH", json=body)
        except SalesforceGeneralError:
            continue
        assert result[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert sim.state.get(account_id) == before
    assert sim.state.counters["faults"] == 13


# -- seeding -------------------------------------------------------------------------------------


def test_load_data_seeds_system_fields(
    tmp_path: Path, make_sim: Callable[..., Sim], clock: StoppedClock
) -> None:
    path = tmp_path / "seed.json"
    seed = {
        "accounts": [
            {"Name": "Old", "SystemModstamp": "2024-04-30T08:00:00.000+0000", "Seats__c": 75},
            {"Id": "001Sm0000000ABC", "Name": "Gone", "IsDeleted": True},
        ]
    }
    path.write_text(json.dumps(seed), encoding="utf-8")
    sim = make_sim(load_data(path, now=clock))
    rows = sim.sf.query_all(
        "SELECT Id, Name, Tier__c, IsDeleted, SystemModstamp FROM Account", include_deleted=True
    )
    by_name = {r["Name"]: r for r in rows["records"]}
    assert by_name["Old"]["Tier__c"] == "Growth"
    assert by_name["Old"]["SystemModstamp"] == "2024-04-30T08:00:00.000+0000"
    assert by_name["Gone"]["IsDeleted"] is True
    assert by_name["Gone"]["Id"] == "001Sm0000000ABCIA2"  # the 15-char id gets its suffix
    with pytest.raises(ValueError, match=r"accounts\[0\]"):
        SalesforceState.from_json({"accounts": [{"Name": "x", "Tier__c": "Gold"}]})
