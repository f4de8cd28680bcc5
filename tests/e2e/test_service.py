"""``syncledger serve`` as a real process between the two simulators (also real processes).

Records are created and changed through the simulators' REST APIs, exactly as a user of
Salesforce or Intercom would; outcomes are checked in the simulators' state and in the ledger.
"""

from __future__ import annotations

import signal
import subprocess

import httpx
import pytest

from adapters.demo.story import demo_config
from adapters.simulators.server import free_port
from tests.e2e.stack import SYNCLEDGER, Stack, stack, wait_for

__all__ = ["stack"]  # the fixture, re-exported for this module's tests


def test_a_new_pair_is_mapped_and_synced_both_ways(stack: Stack) -> None:
    stack.start_service("--config", "sync.toml")
    sid = stack.create_account(Name="Acme", AccountNumber="K-1", Plan__c="Pro")
    iid = stack.upsert_company(company_id="K-1", name="Old name", industry="Banking", size=50)

    # the company's creation maps the pair and syncs the company's attributes (the seed's
    # "company created" row: the trigger finds the account, polled or looked up)
    wait_for(lambda: stack.account(sid)["Industry"] == "Banking", "Industry → Salesforce")
    assert stack.account(sid)["NumberOfEmployees"] == 50
    # and the account's creation, whether the poll or the company's lookup saw it first,
    # syncs its attributes to Intercom ("account created")
    wait_for(lambda: stack.company(iid)["name"] == "Acme", "Name → Intercom")
    assert stack.company(iid)["custom_attributes"]["plan"] == "Pro"

    # a user edits the account: every mapped attribute flows to Intercom ("account updated")
    stack.update_account(sid, Name="Acme Corp")
    wait_for(lambda: stack.company(iid)["name"] == "Acme Corp", "the poll's change")
    assert stack.company(iid)["custom_attributes"]["plan"] == "Pro"
    # a user edits the company: its change arrives by webhook
    stack.upsert_company(company_id="K-1", industry="Retail")
    wait_for(lambda: stack.account(sid)["Industry"] == "Retail", "the webhook's change")
    assert stack.account(sid)["Name"] == "Acme Corp"  # no echo undid anything


def test_deletions_drop_only_the_mapping_and_a_key_change_rematches(stack: Stack) -> None:
    stack.start_service("--config", "sync.toml")
    sid = stack.create_account(Name="Acme", AccountNumber="K-1")
    other = stack.create_account(Name="Globex", AccountNumber="K-2")
    iid = stack.upsert_company(company_id="K-1", name="Acme")
    iid2 = stack.upsert_company(company_id="K-2", name="Globex")

    def links() -> dict[str, str]:
        with stack.ledger() as ledger:
            return {link.company_id: link.salesforce_id for link in ledger.mappings()}

    wait_for(lambda: links() == {"K-1": sid, "K-2": other}, "both mappings")
    stack.delete_company(iid2)
    wait_for(lambda: links() == {"K-1": sid}, "the company deletion")
    assert stack.account(other)["Name"] == "Globex"  # the account is kept

    stack.delete_account(sid)
    # getDeleted covers whole minutes: a deletion is seen once its minute has passed
    wait_for(lambda: links() == {}, "the account deletion", timeout=90)
    assert stack.company(iid)["name"] == "Acme"  # the company is kept

    stack.update_account(other, AccountNumber="K-1")  # the key changes: it matches K-1 now
    wait_for(lambda: links() == {"K-1": other}, "the re-match")
    wait_for(lambda: stack.company(iid)["name"] == "Globex", "sync all after the re-match")


def test_bad_webhooks_get_4xx_and_append_nothing(stack: Stack) -> None:
    stack.start_service()
    before = stack.health()["ledger_position"]
    url = f"{stack.service_url}/webhooks/intercom"
    body = b'{"type":"notification_event","id":"n1","topic":"company.updated"}'
    assert httpx.post(url, content=body).status_code == 401
    assert httpx.post(url, content=body, headers={"X-Hub-Signature": "sha1=00"}).status_code == 401
    assert httpx.post(url, content=b"x" * 2_000_000).status_code == 413
    assert stack.health()["ledger_position"] == before
    assert stack.health()["webhooks"]["rejected"] == 3


def test_sigterm_stops_cleanly_and_a_second_sqlite_service_is_refused(
    stack: Stack, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the single-process rule is SQLite's")
    first = stack.start_service()
    second = subprocess.run(
        [str(SYNCLEDGER), "serve", "--port", str(free_port())], capture_output=True, text=True,
        cwd=stack.tmp, env=stack.env, timeout=60,
    )  # fmt: skip
    assert second.returncode == 1
    assert "another syncledger service is already running" in second.stderr
    assert "Traceback" not in second.stderr

    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0
    assert "Traceback" not in stack.log("serve")


def test_config_validate_reads_the_live_catalogs_and_sync_once_runs_a_cycle(
    stack: Stack, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the commands, not the store, are under test")
    bad = stack.tmp / "bad.toml"
    bad.write_text(
        demo_config().to_toml().replace("custom_attributes.plan", "custom_attributes.tier"),
        encoding="utf-8",
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SYNCLEDGER), *args], capture_output=True, text=True, cwd=stack.tmp,
            env=stack.env, timeout=60,
        )  # fmt: skip

    refused = run("config", "validate", "bad.toml")
    assert refused.returncode == 1 and "custom_attributes.tier" in refused.stderr
    assert "sample catalog" not in refused.stderr  # the simulators' live catalogs were read
    assert run("config", "validate", "sync.toml").returncode == 0
    assert run("config", "apply", "sync.toml").returncode == 0

    sid = stack.create_account(Name="Acme", AccountNumber="K-9")
    stack.upsert_company(company_id="K-9", name="Acme", industry="Retail")
    once = run("sync", "--once")
    assert once.returncode == 0, once.stderr
    assert "mappings made" in once.stdout
    with stack.ledger() as ledger:  # the new account's lookup found the company
        assert [(m.company_id, m.salesforce_id) for m in ledger.mappings()] == [("K-9", sid)]


def test_the_running_service_answers_the_audit_api_from_read_models_it_keeps_current(
    stack: Stack,
) -> None:
    stack.env["SYNCLEDGER_API_KEYS"] = "reader=audit:read"
    stack.start_service("--config", "sync.toml")
    reader = {"Authorization": "Bearer reader"}
    sid = stack.create_account(Name="Acme", AccountNumber="K-7", Industry="Retail")
    stack.upsert_company(company_id="K-7", name="Acme", industry="Banking")
    wait_for(lambda: stack.account(sid)["Industry"] == "Banking", "Industry → Salesforce")

    with httpx.Client(base_url=stack.service_url, timeout=10) as api:
        assert api.get("/mappings").status_code == 401
        table = api.get("/mappings", headers=reader).json()
        history = api.get(f"/history/account/{sid}", headers=reader).json()
        overwrites = api.get(
            "/writes", params={"overwrites_only": "true", "field": "Industry"}, headers=reader
        ).json()
    assert [(m["company_id"], m["salesforce_id"]) for m in table["mappings"]] == [("K-7", sid)]
    assert history["known"] and history["company_id"] == "K-7"
    [write] = overwrites["writes"]
    assert (write["before"], write["value"]) == ("Retail", "Banking")
