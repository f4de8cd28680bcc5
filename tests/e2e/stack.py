"""Both simulators and ``syncledger serve`` as real processes on loopback, for e2e tests.

:func:`launch` starts the two simulators (extra options per simulator: faults, webhook
duplication, seed data) and yields a :class:`Stack` with clients that act as users of Salesforce
and Intercom; :meth:`Stack.start_service` starts the service between them. :func:`fresh_database`
gives a ledger URL (SQLite file, or a fresh PostgreSQL schema) for fixtures wider than one test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.demo.story import demo_config
from adapters.simulators.server import free_port
from adapters.store.database import ledger_env
from ledger import events as ev
from ledger.application import LedgerApp
from tests.conftest import postgres_schema

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


def _transient(response: httpx.Response) -> bool:
    """A fault the simulators inject (nothing was changed): a user would simply try again."""
    return response.status_code in (429, 502, 503) or (
        response.status_code == 400 and "UNABLE_TO_LOCK_ROW" in response.text
    )


def _call(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    for _ in range(50):
        response = client.request(method, url, **kwargs)
        if not _transient(response):
            return response
        time.sleep(0.05)
    return response


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
    _reader: LedgerApp | None = None

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

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A ``syncledger`` command on this stack's settings, to completion."""
        return subprocess.run(
            [str(SYNCLEDGER), *args], capture_output=True, text=True, cwd=self.tmp,
            env=self.env, timeout=120,
        )  # fmt: skip

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def ledger(self) -> LedgerApp:
        return LedgerApp(env=ledger_env(self.database_url, create_tables=False))

    def reader(self) -> LedgerApp:
        """One ledger kept open for the stack's life; its reads catch up with the service."""
        if self._reader is None:
            self._reader = self.ledger()
        return self._reader

    def links(self) -> dict[str, str]:
        """The mapping table in force: company_id → Salesforce account id."""
        return {m.company_id: m.salesforce_id for m in self.reader().mappings()}

    def events(self) -> list[ev.LedgerEvent]:
        """Every event in the ledger, in order."""
        return [e for _, e in self.reader().read_events()]

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.service_url}/health").json()
        return body

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        for p in reversed(self.processes):
            if p.poll() is None:
                p.terminate()
        for p in self.processes:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        self.sf.close()
        self.ic.close()

    # -- what users do (a fault the simulators inject is retried, as a user would) ---------------

    def create_account(self, **fields: Any) -> str:
        r = _call(self.sf, "POST", f"{SF_API}/sobjects/Account", json=fields)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def update_account(self, sid: str, **fields: Any) -> None:
        r = _call(self.sf, "PATCH", f"{SF_API}/sobjects/Account/{sid}", json=fields)
        assert r.status_code == 204, r.text

    def delete_account(self, sid: str) -> None:
        r = _call(self.sf, "DELETE", f"{SF_API}/sobjects/Account/{sid}")
        assert r.status_code == 204, r.text

    def account(self, sid: str) -> dict[str, Any]:
        r = _call(self.sf, "GET", f"{SF_API}/sobjects/Account/{sid}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def query(self, soql: str) -> list[dict[str, Any]]:
        r = _call(self.sf, "GET", f"{SF_API}/query", params={"q": soql})
        assert r.status_code == 200, r.text
        records: list[dict[str, Any]] = r.json()["records"]
        return records

    def upsert_company(self, **body: Any) -> str:
        r = _call(self.ic, "POST", "/companies", json=body)
        assert r.status_code == 200, r.text
        return str(r.json()["id"])

    def update_company(self, iid: str, **body: Any) -> None:
        r = _call(self.ic, "PUT", f"/companies/{iid}", json=body)
        assert r.status_code == 200, r.text

    def qualify_company(self, **body: Any) -> str:
        """A company created by Messenger qualification: it has no company_id."""
        r = self.ic.post("/_sim/qualified_companies", json=body)
        assert r.status_code == 200, r.text
        return str(r.json()["id"])

    def company(self, iid: str) -> dict[str, Any]:
        r = _call(self.ic, "GET", f"/companies/{iid}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def delete_company(self, iid: str) -> None:
        r = _call(self.ic, "DELETE", f"/companies/{iid}")
        assert r.status_code == 200, r.text


@contextmanager
def launch(
    tmp: Path,
    database_url: str,
    *,
    salesforce: Sequence[str] = (),
    intercom: Sequence[str] = (),
    salesforce_data: dict[str, Any] | None = None,
    poll_interval: float = 1.0,
) -> Iterator[Stack]:
    """Both simulators running (extra command-line options for each), the ``plan`` company
    attribute defined, and ``sync.toml`` (the demo configuration) written in ``tmp``."""
    sf_port, ic_port, svc_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCLEDGER_")}
    env |= {
        "SYNCLEDGER_DATABASE_URL": database_url,
        "SYNCLEDGER_SALESFORCE_INSTANCE_URL": f"http://127.0.0.1:{sf_port}",
        "SYNCLEDGER_SALESFORCE_SESSION_ID": TOKEN,
        "SYNCLEDGER_INTERCOM_BASE_URL": f"http://127.0.0.1:{ic_port}",
        "SYNCLEDGER_INTERCOM_TOKEN": TOKEN,
        "SYNCLEDGER_INTERCOM_CLIENT_SECRET": SECRET,
        "SYNCLEDGER_POLL_INTERVAL_SECONDS": str(poll_interval),
    }
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    s = Stack(
        tmp=tmp,
        database_url=database_url,
        sf=httpx.Client(base_url=f"http://127.0.0.1:{sf_port}", headers=headers, timeout=10),
        ic=httpx.Client(base_url=f"http://127.0.0.1:{ic_port}", headers=headers, timeout=10),
        service_url=f"http://127.0.0.1:{svc_port}",
        env=env,
    )
    sf_args = ["simulate", "salesforce", "--port", str(sf_port), *salesforce]
    if salesforce_data is not None:
        (tmp / "salesforce.json").write_text(json.dumps(salesforce_data), encoding="utf-8")
        sf_args += ["--data", "salesforce.json"]
    try:
        s.start(sf_args, "salesforce")
        s.start(
            ["simulate", "intercom", "--port", str(ic_port), "--client-secret", SECRET,
             "--webhook-url", f"{s.service_url}/webhooks/intercom", *intercom],
            "intercom",
        )  # fmt: skip
        wait_for(lambda: s.sf.get(f"{SF_API}/limits").status_code == 200, "Salesforce simulator")
        wait_for(lambda: s.ic.get("/data_attributes").status_code == 200, "Intercom simulator")
        created = _call(
            s.ic,
            "POST",
            "/data_attributes",
            json={"name": "plan", "model": "company", "data_type": "string"},
        )
        assert created.status_code == 200, created.text
        (tmp / "sync.toml").write_text(demo_config().to_toml(), encoding="utf-8")
        yield s
    finally:
        s.close()


@contextmanager
def fresh_database(kind: str, tmp: Path) -> Iterator[str]:
    """A ledger URL on an empty store: a SQLite file in ``tmp``, or a PostgreSQL schema made
    for the caller and dropped after (skips when no PostgreSQL is configured)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'ledger.db'}"
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    """Both simulators for one test (the service is started by the test)."""
    with launch(tmp_path, database_url) as s:
        yield s
