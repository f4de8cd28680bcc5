"""Faulty delivery, end to end: the Intercom simulator delivering every webhook two or three times
and out of order, and both simulators failing a share of API calls (429, 503, record locks).

One story of user changes (:func:`tell_story`) runs on each faulty stack; its outcome is known
in advance (:func:`expected_state`, what a fault-free run reaches) and the service must reach
it: every pair matched, every value where its direction and rules put it, each write applied
once, nothing left pending and no write given up.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger import events as ev
from ledger.decisions import READ_AGAIN
from tests.e2e.stack import Stack, launch, wait_for

KEYS = [f"F-{i}" for i in range(8)]
ROUNDS = 3
BURST = 40
CONVERGENCE_TIMEOUT = 120.0


def tell_story(s: Stack) -> dict[str, tuple[str, str]]:
    """Accounts, then their companies, then rounds of edits on both sides, the rounds half a
    second apart (so one company's updates interleave with the webhooks still in flight).
    Returns company_id → (account id, company id)."""
    sids = {
        key: s.create_account(Name=f"Account {key}", Plan__c="Basic", AccountNumber=key)
        for key in KEYS
    }
    wait_for(
        lambda: set(sids.values()) <= set(s.reader().live_record_ids(ev.SALESFORCE)),
        "the accounts in the ledger",
        timeout=CONVERGENCE_TIMEOUT,
    )
    iids = {
        key: s.upsert_company(
            company_id=key, name=f"Company {key}", industry="Banking", size=i,
            website=f"https://{key.lower()}.example",
        )
        for i, key in enumerate(KEYS)
    }  # fmt: skip
    for r in range(1, ROUNDS + 1):
        time.sleep(0.5)
        for i, key in enumerate(KEYS):
            s.upsert_company(company_id=key, size=10 * r + i)
            s.update_account(sids[key], Name=f"Account {key} r{r}")
    for key in KEYS:
        s.update_account(sids[key], Plan__c="Pro")
    for size in range(100, 100 + BURST):  # one company edited in a burst, across seconds
        s.upsert_company(company_id=KEYS[0], size=size)
    return {key: (sids[key], iids[key]) for key in KEYS}


def expected_state() -> dict[str, dict[str, Any]]:
    """The story's outcome, per key: Salesforce fields and Intercom attributes of the pair."""
    return {
        key: {
            "Industry": "Banking",
            "NumberOfEmployees": 99 + BURST if i == 0 else 10 * ROUNDS + i,
            "Website": f"https://{key.lower()}.example",
            "name": f"Account {key} r{ROUNDS}",
            "plan": "Pro",
        }
        for i, key in enumerate(KEYS)
    }


def actual_state(s: Stack, pairs: dict[str, tuple[str, str]]) -> dict[str, dict[str, Any]]:
    state = {}
    for key, (sid, iid) in pairs.items():
        account, company = s.account(sid), s.company(iid)
        state[key] = {
            "Industry": account["Industry"],
            "NumberOfEmployees": account["NumberOfEmployees"],
            "Website": account["Website"],
            "name": company["name"],
            "plan": company["custom_attributes"].get("plan"),
        }
    return state


def assert_converged(s: Stack, pairs: dict[str, tuple[str, str]]) -> None:
    expected = expected_state()
    wait_for(
        lambda: actual_state(s, pairs) == expected, "the story's outcome",
        timeout=CONVERGENCE_TIMEOUT,
    )  # fmt: skip
    assert s.links() == {key: sid for key, (sid, _) in pairs.items()}
    wait_for(lambda: not s.reader().pending_writes(), "no write pending")
    events = s.events()
    applied = Counter(e.write["write_id"] for e in events if isinstance(e, ev.WriteApplied))
    assert applied and max(applied.values()) == 1, applied.most_common(3)
    given_up = [e for e in events if isinstance(e, ev.WriteFailed) and not e.retryable]
    assert not given_up, given_up[:3]
    assert actual_state(s, pairs) == expected  # and it stays there: no echo loop undid it


@pytest.fixture
def faulty_stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    """Both simulators failing a fifth of API calls, and Intercom delivering every webhook two or
    three times, out of order."""
    with launch(
        tmp_path,
        database_url,
        salesforce=["--fault-rate", "0.2"],
        intercom=["--fault-rate", "0.2", "--duplicate-webhooks", "--shuffle-webhooks"],
    ) as s:
        yield s


@pytest.fixture
def shuffling_stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    """Intercom delivering every webhook two or three times, out of order; no API faults."""
    with launch(
        tmp_path, database_url, intercom=["--duplicate-webhooks", "--shuffle-webhooks"]
    ) as s:
        yield s


def test_duplicated_and_shuffled_webhooks_converge_and_apply_each_write_once(
    shuffling_stack: Stack,
) -> None:
    s = shuffling_stack
    s.start_service("--config", "sync.toml")
    pairs = tell_story(s)
    assert_converged(s, pairs)

    # copies of a notification may still be held back or retried after the outcome is reached
    wait_for(lambda: s.ic.get("/_sim/webhooks").json()["pending"] == 0, "every delivery done")
    deliveries = s.ic.get("/_sim/webhooks").json()["deliveries"]
    sent = Counter(d["notification_id"] for d in deliveries if d["status_code"] == 200)
    assert min(sent.values()) >= 2  # every notification was delivered more than once
    received = Counter(
        e.notification_id for e in s.events() if isinstance(e, ev.NotificationReceived)
    )
    assert set(received) == set(sent) and max(received.values()) == 1  # each stored once
    burst = [
        e.fact["attributes"]["size"]
        for e in s.events()
        if isinstance(e, ev.NotificationReceived) and e.fact.get("company_id") == KEYS[0]
    ]
    assert burst != sorted(burst)  # the burst's notifications did arrive out of order
    reread = [e for e in s.events() if isinstance(e, ev.CompanyFact) and e.source == READ_AGAIN]
    print(f"\n{len(received)} notifications, {len(reread)} decided on a fresh read")


def test_faulty_apis_converge_to_the_fault_free_outcome(faulty_stack: Stack) -> None:
    s = faulty_stack
    s.start_service("--config", "sync.toml")
    pairs = tell_story(s)
    assert_converged(s, pairs)

    failed = [e for e in s.events() if isinstance(e, ev.WriteFailed)]
    counters = s.sf.get("/_sim/counters").json()
    assert counters.get("faults", 0) > 0  # faults did happen, and were ridden out
    assert all(e.retryable for e in failed)
    assert "Traceback" not in s.log("serve")
