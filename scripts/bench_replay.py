#!/usr/bin/env python3
"""Measure replay throughput: records planned and applied per second, API calls per 1,000.

Usage::

    .venv/bin/python scripts/bench_replay.py [--records N]

A production ledger (in memory) records N account/company pairs: each account as a poll showed
it, then its company created in Intercom with a different industry and size (the demo
configuration plans Intercom → Salesforce writes). A sandbox org (the Salesforce simulator,
``IsSandbox = true``, over real HTTP on loopback) holds the same N accounts under other Ids.
The replay is timed in its two phases: *plan* (guard, re-derivation of every recorded fact
through a shadow ledger, the batched lookup of the target accounts) and *apply* (batches of 200
records through sObject Collections, each recorded in the ledger). API calls come from the
simulator's own counters.
"""

from __future__ import annotations

import argparse
import time

from adapters.demo.story import demo_config
from adapters.salesforce.sandbox import target_accounts
from adapters.simulators.salesforce import SalesforceState, create_salesforce_app
from adapters.simulators.server import serving
from adapters.sync.fakes import catalog
from adapters.sync.replay import (
    ReplayRequest,
    apply_run,
    check_target,
    plan_replay,
    start_run,
)
from ledger.application import LedgerApp
from ledger.facts import AccountChange, CompanyChange

ORG = "00D000000000002EAA"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=5000)
    n = parser.parse_args().records

    ledger = LedgerApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    ledger.apply_config(demo_config(), catalog())
    sandbox = SalesforceState()
    facts: list[AccountChange | CompanyChange] = []
    for i in range(n):
        key = f"K-{i:06d}"
        fields = {"Name": f"Account {i}", "AccountNumber": key, "Plan__c": "Pro",
                  "Industry": "Banking", "NumberOfEmployees": 10, "Website": None}  # fmt: skip
        sandbox.create_account(fields)
        facts.append(AccountChange(f"001PROD{i:011d}", fields, f"2026-01-01T00:00:{i % 60:02d}Z"))
    for i in range(n):
        attrs = {"name": f"Account {i}", "industry": "Technology", "size": 20 + i,
                 "website": f"https://c{i}.example"}  # fmt: skip
        facts.append(CompanyChange(f"ic{i:08d}", f"K-{i:06d}", attrs, 1_760_000_000 + i, "created"))
    for i in range(0, len(facts), 1000):
        ledger.ingest(facts[i : i + 1000])
    print(f"production ledger: {ledger.state.position} events for {n} pairs")

    with serving(create_salesforce_app(sandbox, sandbox=True, org_id=ORG)) as server:
        request = ReplayRequest(server.url, "sim-token", requested_by="bench")
        with target_accounts(request) as accounts:
            t0 = time.perf_counter()
            org = check_target(accounts, [ORG], server.url)
            planned = plan_replay(ledger, accounts, request, list(catalog().intercom.values()))
            status = start_run(ledger, request, org, planned, "bench")
            t1 = time.perf_counter()
            plan_calls = sandbox.counters["total"]
            sandbox.reset_counters()
            done = apply_run(ledger, accounts, status, resumed=False)
            t2 = time.perf_counter()
            apply_calls = sandbox.counters["total"]
    records = planned.plan.summary()["records"]
    writes = planned.plan.summary()["writes"]
    print(f"planned {records} records ({writes} field writes) in {t1 - t0:.2f} s = "
          f"{records / (t1 - t0):,.0f} records/s; {plan_calls} API calls "
          f"({plan_calls * 1000 / records:.1f} per 1,000 records)")  # fmt: skip
    print(f"applied {done.counts()['records_applied']} records in {t2 - t1:.2f} s = "
          f"{records / (t2 - t1):,.0f} records/s; {apply_calls} API calls "
          f"({apply_calls * 1000 / records:.1f} per 1,000 records)")  # fmt: skip
    total = plan_calls + apply_calls
    print(f"whole replay: {total} API calls = {total * 1000 / records:.1f} per 1,000 records")


if __name__ == "__main__":
    main()
