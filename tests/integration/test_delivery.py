"""End to end over HTTP: both simulators, the real adapters, ``run_cycle`` and a ledger.

The same seeded data is synced under clean webhook delivery, duplicated and shuffled webhooks,
and transient faults on both APIs; every run must end in the same mappings and values.
"""

from __future__ import annotations

import random
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from adapters.demo.story import demo_config
from adapters.intercom.client import IntercomCompanies
from adapters.intercom.errors import IntercomError
from adapters.intercom.system import IntercomSystem
from adapters.salesforce.client import SalesforceAccounts
from adapters.salesforce.errors import SalesforceError
from adapters.salesforce.system import SalesforceSystem
from adapters.simulators.intercom import IntercomState, create_intercom_app
from adapters.simulators.salesforce import SalesforceState, create_salesforce_app
from adapters.simulators.server import serving
from adapters.sync.cycle import CycleReport, run_cycle
from ledger.application import LedgerApp
from ledger.catalog import FieldCatalog
from tests.support import Inbox, webhook_receiver

SECRET = "delivery-secret"
COUNT = 30
MAX_CYCLES = 40
SF_FIELDS = ("Name", "AccountNumber", "Plan__c", "Industry", "NumberOfEmployees", "Website")
IC_ATTRIBUTES = ("name", "custom_attributes.plan", "industry", "size", "website")
INDUSTRIES = ("Banking", "Technology", "Retail", "Energy", "Media")
IC_EDITED = frozenset(f"K-{i:03d}" for i in range(0, COUNT, 3))

Outcome = tuple[frozenset[tuple[str, str]], dict[str, tuple[Any, ...]], dict[str, tuple[Any, ...]]]


def seed_data(sf: SalesforceState, ic: IntercomState) -> tuple[dict[str, str], dict[str, str]]:
    """COUNT accounts and COUNT companies sharing keys, with differing values on each side;
    returns the Salesforce and Intercom ids by key."""
    rng = random.Random(2026)
    sids, iids = {}, {}
    for i in range(COUNT):
        key = f"K-{i:03d}"
        sids[key] = sf.create_account(
            {
                "Name": f"Account {i}",
                "AccountNumber": key,
                "Plan__c": rng.choice(["Free", "Pro", "Enterprise", None]),
                "Industry": rng.choice(INDUSTRIES),
                "NumberOfEmployees": rng.randint(1, 500),
                "Website": rng.choice([None, f"https://sf{i}.example"]),
            }
        )
        iids[key] = ic.create_company(
            key,
            name=f"Company {i}",
            industry=rng.choice(INDUSTRIES),
            size=rng.randint(1, 500),
            website=f"https://ic{i}.example",
            custom_attributes={"plan": rng.choice(["Free", "Legacy"])},
        )
    return sids, iids


def users_edit(
    sf: SalesforceState, ic: IntercomState, sids: dict[str, str], iids: dict[str, str]
) -> None:
    """After the first sync: Intercom users edit every third company's industry and size,
    Salesforce users rename and re-plan other accounts."""
    for i in range(COUNT):
        key = f"K-{i:03d}"
        if key in IC_EDITED:
            company = ic.get(iids[key])
            assert company is not None
            other = [x for x in INDUSTRIES if x != company.get("industry")][i % 4]
            ic.update_company(iids[key], industry=other, size=1000 + i)
        elif i % 3 == 1:
            sf.update_account(sids[key], {"Name": f"Renamed {i}", "Plan__c": "Enterprise"})


@dataclass
class Run:
    outcome: Outcome
    totals: CycleReport
    cycles: int
    cycle_errors: list[str]
    inbox: Inbox
    #: retry waits the adapters asked for (not waited), by system
    retries: dict[str, int]


def sync_until_quiet(
    *, duplicate: bool = False, shuffle: bool = False, fault_rate: float = 0.0
) -> Run:
    sf_state, ic_state = SalesforceState(), IntercomState(seed=7)
    ic_state.define_attribute("plan", "string")
    inbox = Inbox(SECRET)
    waits: dict[str, list[float]] = {"salesforce": [], "intercom": []}
    with ExitStack() as stack:
        receiver = stack.enter_context(serving(webhook_receiver(inbox)))
        sf_server = stack.enter_context(
            serving(create_salesforce_app(sf_state, fault_rate=fault_rate, seed=11))
        )
        ic_app = create_intercom_app(
            ic_state,
            webhook_url=f"{receiver.url}/hook",
            client_secret=SECRET,
            duplicate_webhooks=duplicate,
            shuffle_webhooks=shuffle,
            fault_rate=fault_rate,
            seed=13,
        )
        ic_server = stack.enter_context(serving(ic_app))
        accounts = SalesforceAccounts(
            sf_server.url,
            "sim-token",
            fields=SF_FIELDS,
            identifier_field="AccountNumber",
            sleep=waits["salesforce"].append,
            rng=random.Random(1),
        )
        stack.callback(accounts.close)
        companies = IntercomCompanies(
            ic_server.url,
            "sim-token",
            timeout=5,
            sleep=waits["intercom"].append,
            rng=random.Random(2),
        )
        stack.callback(companies.close)
        salesforce, intercom = SalesforceSystem(accounts), IntercomSystem(companies)

        app = LedgerApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        app.apply_config(demo_config(), FieldCatalog.of(accounts.describe(), companies.catalog()))
        sids, iids = seed_data(sf_state, ic_state)
        totals, errors, cycles = CycleReport(), [], 0

        def until_quiet() -> None:
            nonlocal cycles
            quiet = 0
            while quiet < 2 and cycles < MAX_CYCLES:
                cycles += 1
                assert ic_state.flush_webhooks(10.0)
                inbox.deliver(app)
                try:
                    report = run_cycle(app, salesforce, intercom)
                except (SalesforceError, IntercomError) as exc:  # outlasted the adapter retries
                    errors.append(type(exc).__name__)
                    quiet = 0
                    continue
                for name in ("mappings_made", "writes_planned", "writes_applied", "writes_failed"):
                    setattr(totals, name, getattr(totals, name) + getattr(report, name))
                totals.skipped_by_rule.update(report.skipped_by_rule)
                totals.failures += report.failures
                busy = report.writes_planned or report.writes_applied or report.writes_failed
                quiet = 0 if busy or report.mappings_made or app.pending_writes() else quiet + 1
            assert quiet == 2, f"no convergence in {MAX_CYCLES} cycles"

        until_quiet()
        users_edit(sf_state, ic_state, sids, iids)
        until_quiet()
        outcome = _outcome(app, sf_state, ic_state)
    return Run(outcome, totals, cycles, errors, inbox, {k: len(v) for k, v in waits.items()})


def _outcome(app: LedgerApp, sf: SalesforceState, ic: IntercomState) -> Outcome:
    """Mappings and values in stable terms (keys, not generated ids)."""
    mappings = set()
    for link in app.mappings():
        account, company = sf.get(link.salesforce_id), ic.get(link.intercom_id)
        assert account is not None and company is not None
        mappings.add((str(account["AccountNumber"]), str(company["company_id"])))
    sf_values = {str(a["AccountNumber"]): tuple(a[f] for f in SF_FIELDS) for a in sf.all_accounts()}
    ic_values = {
        str(c["company_id"]): (
            c.get("name"),
            (c.get("custom_attributes") or {}).get("plan"),
            c.get("industry"),
            c.get("size"),
            c.get("website"),
        )
        for c in ic.all_companies()
    }
    return frozenset(mappings), sf_values, ic_values


@pytest.fixture(scope="module")
def clean() -> Run:
    return sync_until_quiet()


def test_clean_delivery_syncs_every_pair(clean: Run) -> None:
    mappings, sf_values, ic_values = clean.outcome
    assert mappings == {(f"K-{i:03d}", f"K-{i:03d}") for i in range(COUNT)}
    for key, (name, account_number, plan, industry, employees, _website) in sf_values.items():
        ic_name, ic_plan, ic_industry, ic_size, _ = ic_values[key]
        assert account_number == key and ic_name == name
        if plan is not None:
            assert ic_plan == plan
        if key in IC_EDITED:
            assert (industry, employees) == (ic_industry, ic_size)
    assert clean.totals.writes_applied > 0 and clean.totals.writes_failed == 0
    assert clean.cycle_errors == [] and clean.retries == {"salesforce": 0, "intercom": 0}


@pytest.mark.parametrize(
    "options", [{"duplicate": True}, {"shuffle": True}, {"duplicate": True, "shuffle": True}]
)
def test_duplicated_or_shuffled_webhooks_end_the_same(clean: Run, options: Any) -> None:
    run = sync_until_quiet(**options)
    assert run.outcome == clean.outcome
    if options.get("duplicate"):
        assert "duplicate" in run.inbox.outcomes
    assert not any(o.startswith("rejected") for o in run.inbox.outcomes)


def test_transient_faults_still_converge_without_losing_a_write(clean: Run) -> None:
    run = sync_until_quiet(fault_rate=0.2)
    assert run.outcome == clean.outcome
    assert run.totals.skipped_by_rule["retries_exhausted"] == 0
    assert all(f.retryable for f in run.totals.failures), run.totals.failures
    assert run.cycles <= MAX_CYCLES
    assert run.retries["salesforce"] > 0 and run.retries["intercom"] > 0  # faults did happen
