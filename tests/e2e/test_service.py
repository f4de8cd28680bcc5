"""``syncledger serve`` as a real process between the two simulators (also real processes).

Records are created and changed through the simulators' REST APIs, exactly as a user of
Salesforce or Intercom would; outcomes are checked in the simulators' state and in the ledger.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.demo import demo_config
from adapters.simulators.server import free_port
from adapters.store import ledger_env
from ledger.application import LedgerApp

SYNCLEDGER = Path(sys.executable).parent / "syncledger"
SECRET = "e2e-client-secret"
TOKEN = "sim-token"
SF_API = "/services/data/v62.0"


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.TransportError, AssertionError):
            last = None
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


@dataclass
class Stack:
    """Both simulators and the service, as processes; clients for each."""

    tmp: Path
    database_url: str
    sf: httpx.Client
    ic: httpx.Client
    service_url: str
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    service: subprocess.Popen[bytes] | None = None

    def start(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        with (self.tmp / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [str(SYNCLEDGER), *args], stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp,
                env=self.env,
            )  # fmt: skip
        self.processes.append(process)
        return process

    def start_service(self, *extra: str) -> subprocess.Popen[bytes]:
        port = self.service_url.rsplit(":", 1)[1]
        self.service = self.start(["serve", "--port", port, *extra], "serve")
        wait_for(lambda: httpx.get(f"{self.service_url}/health").status_code == 200, "serve")
        return self.service

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def ledger(self) -> LedgerApp:
        return LedgerApp(env=ledger_env(self.database_url, create_tables=False))

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.service_url}/health").json()
        return body

    # -- what users do --------------------------------------------------------------------------

    def create_account(self, **fields: Any) -> str:
        r = self.sf.post(f"{SF_API}/sobjects/Account", json=fields)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def update_account(self, sid: str, **fields: Any) -> None:
        r = self.sf.patch(f"{SF_API}/sobjects/Account/{sid}", json=fields)
        assert r.status_code == 204, r.text

    def delete_account(self, sid: str) -> None:
        assert self.sf.delete(f"{SF_API}/sobjects/Account/{sid}").status_code == 204

    def account(self, sid: str) -> dict[str, Any]:
        r = self.sf.get(f"{SF_API}/sobjects/Account/{sid}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def upsert_company(self, **body: Any) -> str:
        r = self.ic.post("/companies", json=body)
        assert r.status_code == 200, r.text
        return str(r.json()["id"])

    def company(self, iid: str) -> dict[str, Any]:
        r = self.ic.get(f"/companies/{iid}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def delete_company(self, iid: str) -> None:
        assert self.ic.delete(f"/companies/{iid}").status_code == 200


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    sf_port, ic_port, svc_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCLEDGER_")}
    env |= {
        "SYNCLEDGER_DATABASE_URL": database_url,
        "SYNCLEDGER_SALESFORCE_INSTANCE_URL": f"http://127.0.0.1:{sf_port}",
        "SYNCLEDGER_SALESFORCE_SESSION_ID": TOKEN,
        "SYNCLEDGER_INTERCOM_BASE_URL": f"http://127.0.0.1:{ic_port}",
        "SYNCLEDGER_INTERCOM_TOKEN": TOKEN,
        "SYNCLEDGER_INTERCOM_CLIENT_SECRET": SECRET,
        "SYNCLEDGER_POLL_INTERVAL_SECONDS": "1",
    }
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    s = Stack(
        tmp=tmp_path,
        database_url=database_url,
        sf=httpx.Client(base_url=f"http://127.0.0.1:{sf_port}", headers=headers, timeout=10),
        ic=httpx.Client(base_url=f"http://127.0.0.1:{ic_port}", headers=headers, timeout=10),
        service_url=f"http://127.0.0.1:{svc_port}",
        env=env,
    )
    try:
        s.start(["simulate", "salesforce", "--port", str(sf_port)], "salesforce")
        s.start(
            ["simulate", "intercom", "--port", str(ic_port), "--client-secret", SECRET,
             "--webhook-url", f"{s.service_url}/webhooks/intercom"],
            "intercom",
        )  # fmt: skip
        wait_for(lambda: s.sf.get(f"{SF_API}/limits").status_code == 200, "Salesforce simulator")
        wait_for(lambda: s.ic.get("/data_attributes").status_code == 200, "Intercom simulator")
        created = s.ic.post(
            "/data_attributes", json={"name": "plan", "model": "company", "data_type": "string"}
        )
        assert created.status_code == 200, created.text
        (tmp_path / "sync.toml").write_text(demo_config().to_toml(), encoding="utf-8")
        yield s
    finally:
        for p in reversed(s.processes):
            if p.poll() is None:
                p.terminate()
        for p in s.processes:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        s.sf.close()
        s.ic.close()


def test_a_new_pair_is_mapped_and_synced_both_ways(stack: Stack) -> None:
    stack.start_service("--config", "sync.toml")
    sid = stack.create_account(Name="Acme", AccountNumber="K-1", Plan__c="Pro")
    iid = stack.upsert_company(company_id="K-1", name="Old name", industry="Banking", size=50)

    # the company's creation maps the pair and syncs the company's attributes (the seed's
    # "company created" row); the account's wait for a trigger on the account
    wait_for(lambda: stack.account(sid)["Industry"] == "Banking", "Industry → Salesforce")
    assert stack.account(sid)["NumberOfEmployees"] == 50
    assert stack.company(iid)["name"] == "Old name"

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
