"""Both simulators and ``syncledger serve`` as real processes on loopback, for the benchmarks.

The same arrangement as ``tests/e2e/test_service.py``'s ``Stack``: each program is started
with the ``syncledger`` console script (``simulate salesforce``, ``simulate intercom``,
``serve``), configured only through its options and ``SYNCLEDGER_*`` variables.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from bench_common import Processes, base_env, wait_for

from adapters.demo.story import demo_config
from adapters.simulators.server import free_port
from adapters.store.database import ledger_env
from ledger.application import LedgerApp

SECRET = "bench-client-secret"
TOKEN = "sim-token"
SF_API = "/services/data/v62.0"


@dataclass
class Stack:
    procs: Processes
    database_url: str
    sf: httpx.Client
    ic: httpx.Client
    service_url: str

    def ledger(self) -> LedgerApp:
        """A reader of the service's ledger (caught up when made)."""
        return LedgerApp(env=ledger_env(self.database_url, create_tables=False))

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.service_url}/health", timeout=10).json()
        return body


def pairs_data(n: int, prefix: str = "K") -> tuple[dict[str, Any], dict[str, Any]]:
    """Seed files of ``n`` account/company pairs with equal mapped values (and the company
    data attribute the demo configuration maps)."""
    accounts, companies = [], []
    for i in range(n):
        key = f"{prefix}-{i:06d}"
        accounts.append(
            {"Name": f"Company {i}", "AccountNumber": key, "Plan__c": "Pro",
             "Industry": "Banking", "NumberOfEmployees": 10, "Website": f"https://c{i}.example"}
        )  # fmt: skip
        companies.append(
            {"company_id": key, "name": f"Company {i}", "industry": "Banking", "size": 10,
             "website": f"https://c{i}.example", "custom_attributes": {"plan": "Pro"}}
        )  # fmt: skip
    ic = {"data_attributes": [{"name": "plan", "data_type": "string"}], "companies": companies}
    return {"accounts": accounts}, ic


@contextmanager
def running_stack(
    workdir: Path,
    database_url: str,
    *,
    sf_data: Mapping[str, Any] | None = None,
    ic_data: Mapping[str, Any] | None = None,
    webhooks_to_service: bool = False,
    poll_interval: float = 300.0,
    serve_args: Sequence[str] = ("--config", "sync.toml"),
    sf_options: Sequence[str] = (),
    ic_options: Sequence[str] = (),
) -> Iterator[Stack]:
    """Start the simulators and the service; stop them all on leaving the block."""
    workdir.mkdir(parents=True, exist_ok=True)
    sf_port, ic_port, svc_port = free_port(), free_port(), free_port()
    service_url = f"http://127.0.0.1:{svc_port}"
    env = base_env() | {
        "SYNCLEDGER_DATABASE_URL": database_url,
        "SYNCLEDGER_SALESFORCE_INSTANCE_URL": f"http://127.0.0.1:{sf_port}",
        "SYNCLEDGER_SALESFORCE_SESSION_ID": TOKEN,
        "SYNCLEDGER_INTERCOM_BASE_URL": f"http://127.0.0.1:{ic_port}",
        "SYNCLEDGER_INTERCOM_TOKEN": TOKEN,
        "SYNCLEDGER_INTERCOM_CLIENT_SECRET": SECRET,
        "SYNCLEDGER_POLL_INTERVAL_SECONDS": f"{poll_interval:g}",
    }
    procs = Processes(workdir, env)
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    sf = httpx.Client(base_url=f"http://127.0.0.1:{sf_port}", headers=headers, timeout=30)
    ic = httpx.Client(base_url=f"http://127.0.0.1:{ic_port}", headers=headers, timeout=30)
    try:
        sf_args = ["simulate", "salesforce", "--port", str(sf_port), *sf_options]
        if sf_data is not None:
            (workdir / "sf.json").write_text(json.dumps(sf_data), encoding="utf-8")
            sf_args += ["--data", "sf.json"]
        ic_args = ["simulate", "intercom", "--port", str(ic_port), *ic_options]
        (workdir / "ic.json").write_text(
            json.dumps(ic_data or {"data_attributes": [{"name": "plan", "data_type": "string"}]}),
            encoding="utf-8",
        )
        ic_args += ["--data", "ic.json"]
        if webhooks_to_service:
            ic_args += [
                "--client-secret",
                SECRET,
                "--webhook-url",
                f"{service_url}/webhooks/intercom",
            ]
        procs.start("salesforce", *sf_args)
        procs.start("intercom", *ic_args)
        wait_for(lambda: sf.get(f"{SF_API}/limits").status_code == 200, "the Salesforce simulator")
        wait_for(lambda: ic.get("/data_attributes").status_code == 200, "the Intercom simulator")
        (workdir / "sync.toml").write_text(demo_config().to_toml(), encoding="utf-8")
        procs.start("serve", "serve", "--port", str(svc_port), *serve_args)

        def up() -> bool:
            procs.check_alive()
            return httpx.get(f"{service_url}/health", timeout=5).status_code == 200

        wait_for(up, "syncledger serve")
        yield Stack(procs, database_url, sf, ic, service_url)
    finally:
        procs.stop_all()
        sf.close()
        ic.close()
