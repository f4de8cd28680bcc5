"""``syncledger serve`` logging in to ``syncledger simulate salesforce`` with each flow, as real
processes, while the simulator's sessions expire between polls: every poll renews the session,
and records keep syncing both ways."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from adapters.cli.main import app
from adapters.salesforce.login import PasswordLogin, SalesforceConnector
from tests.e2e.stack import Stack, launch, wait_for
from tests.salesforce_auth import (
    CONSUMER_KEY,
    CONSUMER_SECRET,
    PASSWORD,
    SECURITY_TOKEN,
    USERNAME,
    key_pair,
)

SESSION_TIMEOUT = 2  # seconds idle; the service polls every 3 s, so each poll finds it expired
POLL_INTERVAL = 3


def flow_variables(flow: str, key_file: Path, login_url: str) -> dict[str, str]:
    chosen = {
        "password": {"USERNAME": USERNAME, "PASSWORD": PASSWORD, "SECURITY_TOKEN": SECURITY_TOKEN},
        "jwt": {
            "CONSUMER_KEY": CONSUMER_KEY,
            "PRIVATE_KEY_FILE": str(key_file),
            "USERNAME": USERNAME,
        },
        "client_credentials": {"CONSUMER_KEY": CONSUMER_KEY, "CONSUMER_SECRET": CONSUMER_SECRET},
    }[flow]
    return {f"SYNCLEDGER_SALESFORCE_{k}": v for k, v in (chosen | {"LOGIN_URL": login_url}).items()}


def logins(stack: Stack) -> dict[str, int]:
    counters: dict[str, int] = stack.sf.get("/_sim/counters").json()
    return {"login": counters.get("login", 0), "login_failed": counters.get("login_failed", 0)}


class User:
    """A Salesforce user: a login of their own for each action (their sessions expire too)."""

    def __init__(self, login_url: str) -> None:
        self.login_url = login_url
        self.logins = 0

    def _client(self) -> Any:
        self.logins += 1
        credentials = PasswordLogin(USERNAME, PASSWORD, SECURITY_TOKEN)
        return SalesforceConnector(credentials, login_url=self.login_url, timeout=10)

    def create_account(self, **fields: Any) -> str:
        login = self._client()
        try:
            return str(login.connect().Account.create(fields)["id"])
        finally:
            login.close()

    def account(self, sid: str) -> dict[str, Any]:
        login = self._client()
        try:
            record: dict[str, Any] = login.connect().Account.get(sid)
            return record
        finally:
            login.close()


@pytest.mark.parametrize("flow", ["password", "jwt", "client_credentials"])
def test_serve_renews_expired_sessions_with_each_flow(tmp_path: Path, flow: str) -> None:
    pair = key_pair()
    (tmp_path / "key.pem").write_text(pair.private_key, encoding="ascii")
    (tmp_path / "cert.pem").write_bytes(pair.certificate)
    options = [
        "--username", USERNAME, "--password", PASSWORD, "--security-token", SECURITY_TOKEN,
        "--consumer-key", CONSUMER_KEY, "--consumer-secret", CONSUMER_SECRET,
        "--jwt-certificate", str(tmp_path / "cert.pem"),
        "--session-timeout", str(SESSION_TIMEOUT),
    ]  # fmt: skip
    database = f"sqlite:///{tmp_path / 'ledger.db'}"
    with launch(tmp_path, database, salesforce=options, poll_interval=POLL_INTERVAL) as stack:
        sim_url = str(stack.sf.base_url).rstrip("/")
        user = User(sim_url)
        for name in ("INSTANCE_URL", "SESSION_ID"):
            del stack.env[f"SYNCLEDGER_SALESFORCE_{name}"]
        stack.env |= flow_variables(flow, tmp_path / "key.pem", sim_url)
        stack.start_service("--config", "sync.toml")
        sid = user.create_account(Name="Renewal Co", AccountNumber="R-1", Plan__c="Pro")
        iid = stack.upsert_company(company_id="R-1", name="Old name", industry="Banking")

        wait_for(lambda: stack.company(iid)["name"] == "Renewal Co", "Name → Intercom", 60)
        wait_for(lambda: user.account(sid)["Industry"] == "Banking", "Industry → SF", 60)
        # the service's first login, then one renewal per poll (each finds its session idle)
        wait_for(lambda: logins(stack)["login"] - user.logins >= 4, "three renewals", 60)
        stack.upsert_company(company_id="R-1", industry="Retail")  # a write on a renewed session
        wait_for(lambda: user.account(sid)["Industry"] == "Retail", "Industry → SF again", 60)
        assert logins(stack)["login_failed"] == 0
        health = httpx.get(f"{stack.service_url}/health").json()
        assert health["status"] == "ok", health
        assert "Traceback" not in stack.log("serve")


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--consumer-secret", "s"], "--consumer-key"),
        (["--consumer-key", "k", "--jwt-certificate", "cert.pem"], "--username"),
        (["--username", "u"], "--password"),
        (["--consumer-key", "k", "--username", "u", "--jwt-certificate", "nope.pem"], "nope.pem"),
        (
            ["--consumer-key", "k", "--username", "u", "--jwt-certificate", "key.pem"],
            "not a PEM X.509 certificate",
        ),
    ],
    ids=["secret-without-key", "certificate-without-user", "user-alone", "missing", "not-a-cert"],
)
def test_simulate_salesforce_refuses_incomplete_login_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: list[str], says: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "cert.pem").write_bytes(key_pair().certificate)
    (tmp_path / "key.pem").write_text(key_pair().private_key, encoding="ascii")
    result = CliRunner().invoke(app, ["simulate", "salesforce", "--port", "1", *options])
    assert result.exit_code == 2
    assert says in result.output
    assert "Traceback" not in result.output
