"""Recovery of ``syncledger serve`` as a real process: SIGKILL under load, and two processes
sharing one PostgreSQL ledger.

The simulators and the service run as OS processes (the :class:`~tests.e2e.stack.Stack`
fixture); records are created and changed through the simulators' REST APIs.

The Intercom simulator gives a webhook up after ~4 attempts within 1.5 s, so a notification sent
while ``serve`` is down can be lost for good (Intercom's behaviour, not ours). To keep these tests
about the service's guarantees, Intercom changes are made only while ``serve`` is up, and before
each kill the test waits until the simulator has delivered every notification made so far (a
*barrier*: a marker company is updated and its notification awaited, deliveries being FIFO). The
kill then lands at a random moment while the worker is still deciding and sending. Salesforce
changes go on while ``serve`` is down: the poll picks them up after the restart.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from adapters.simulators.server import free_port
from adapters.sync.fakes import INDUSTRIES
from ledger import events as ev
from projections.projector import Projector
from tests.e2e.stack import SF_API, Stack, stack, wait_for
from tests.unit.test_projections import snapshot

__all__ = ["stack"]  # the fixture, re-exported for this module's tests

MARKER = "ZZ-MARKER"


# --- helpers -------------------------------------------------------------------------------


def ic_upsert(s: Stack, **body: Any) -> dict[str, Any]:
    """``POST /companies``, waiting out the simulator's 10-second rate limit."""
    for _ in range(100):
        r = s.ic.post("/companies", json=body)
        if r.status_code == 429:
            time.sleep(0.5)
            continue
        assert r.status_code == 200, r.text
        company: dict[str, Any] = r.json()
        return company
    raise AssertionError("the Intercom simulator kept answering 429")


def accounts_by_key(s: Stack) -> dict[str, dict[str, Any]]:
    q = "SELECT Id, Name, AccountNumber, Industry, NumberOfEmployees FROM Account"
    r = s.sf.get(f"{SF_API}/query", params={"q": q})
    assert r.status_code == 200, r.text
    body = r.json()
    records = list(body["records"])
    while not body.get("done", True):
        body = s.sf.get(body["nextRecordsUrl"]).json()
        records += body["records"]
    return {str(a["AccountNumber"]): a for a in records if a.get("AccountNumber")}


def companies_by_key(s: Stack) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    page = 1
    while True:
        r = s.ic.post("/companies/list", params={"page": page, "per_page": 60, "order": "asc"})
        if r.status_code == 429:
            time.sleep(0.5)
            continue
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        found |= {str(c["company_id"]): c for c in data if c.get("company_id")}
        if len(data) < 60:
            return found
        page += 1


def differences(s: Stack, keys: list[str]) -> list[str]:
    """Where a pair disagrees on a synced attribute (empty: converged)."""
    accounts, companies = accounts_by_key(s), companies_by_key(s)
    out: list[str] = []
    for key in keys:
        a, c = accounts[key], companies[key]
        if c["name"] != a["Name"]:
            out.append(f"{key} name {c['name']!r} != Name {a['Name']!r}")
        if a["Industry"] != c["industry"]:
            out.append(f"{key} Industry {a['Industry']!r} != industry {c['industry']!r}")
        if a["NumberOfEmployees"] != c["size"]:
            out.append(f"{key} NumberOfEmployees {a['NumberOfEmployees']!r} != size {c['size']!r}")
    return out


def service_log(s: Stack, name: str) -> str:
    """The service's log without uvicorn's access lines."""
    if not (s.tmp / f"{name}.log").exists():
        return ""
    lines = s.log(name).splitlines()
    return "\n".join(line for line in lines if '" 200 OK' not in line)


def health_of(url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{url}/health", timeout=5).json()
    return body


def converge(s: Stack, keys: list[str], what: str, timeout: float) -> None:
    """Wait until every pair agrees; on timeout, say where they differ."""
    problems: list[str] = []

    def converged() -> bool:
        problems[:] = differences(s, keys)
        return not problems

    try:
        wait_for(converged, "every pair to converge", timeout)
    except AssertionError as exc:
        logs = "\n".join(service_log(s, name)[-4000:] for name in ("serve", "serve2"))
        shown = "\n".join(problems[:20])
        raise AssertionError(
            f"{what}: {exc}; {len(problems)} differences:\n{shown}\n{logs}"
        ) from exc


class Barrier:
    """Waits until the Intercom simulator delivered every notification published so far."""

    def __init__(self, s: Stack) -> None:
        self.s = s
        self.intercom_id = ic_upsert(s, company_id=MARKER, name="barrier 0")["id"]
        self.count = 1

    def delivered(self) -> int:
        log = self.s.ic.get("/_sim/webhooks").json()["deliveries"]
        ok = {
            d["notification_id"]
            for d in log
            if d["item_id"] == self.intercom_id and d["status_code"] == 200
        }
        return len(ok)

    def wait(self, timeout: float = 60.0) -> None:
        ic_upsert(self.s, company_id=MARKER, name=f"barrier {self.count}")
        self.count += 1
        wait_for(lambda: self.delivered() >= self.count, "the webhook barrier", timeout)


def lost_webhooks(s: Stack) -> list[str]:
    """Notifications every delivery attempt of which failed (the simulator gave them up)."""
    log = s.ic.get("/_sim/webhooks").json()["deliveries"]
    ok = {d["notification_id"] for d in log if d["status_code"] == 200}
    return sorted({d["notification_id"] for d in log} - ok)


def ledger_checks(s: Stack) -> tuple[int, int]:
    """Once the ledger is quiescent: no write applied twice, and the state rebuilt from the
    events alone equals the live one. Returns (events, writes applied)."""
    with s.ledger() as ledger:

        def quiescent() -> bool:
            ledger.catch_up()
            return not ledger.state.inbox and not ledger.state.pending

        wait_for(quiescent, "an empty inbox and no pending writes")
        # a running service may append (API usage, polls) after catch_up: rebuild up to the
        # position caught up to (the same as rebuild() when nothing is running)
        position = ledger.state.position
        assert ledger.state_at(position).snapshot() == ledger.state.snapshot()
        applied: Counter[str] = Counter()
        count = 0
        for _, e in ledger.read_events():
            count += 1
            if isinstance(e, ev.WriteApplied):
                applied[str(e.write["write_id"])] += 1
        twice = {w: n for w, n in applied.items() if n > 1}
        assert not twice, f"write_ids applied more than once: {twice}"
        return count, sum(applied.values())


def read_models_checks(s: Stack) -> None:
    """The read models the killed and restarted services kept up incrementally equal a rebuild
    from scratch (the service is stopped first, so the ledger holds still)."""
    assert s.service is not None
    s.service.terminate()
    assert s.service.wait(timeout=30) == 0
    with s.ledger() as ledger:
        projector = Projector.open(ledger, s.database_url)
        try:
            projector.catch_up()
            incremental = snapshot(projector.engine)
            projector.rebuild()
            assert snapshot(projector.engine) == incremental
        finally:
            projector.close()


def make_pairs(s: Stack, n: int, rng: random.Random) -> list[str]:
    keys = [f"K-{i:04d}" for i in range(n)]
    for i, key in enumerate(keys):
        s.create_account(Name=f"Account {i}", AccountNumber=key, Plan__c="Pro")
    for i, key in enumerate(keys):
        ic_upsert(
            s, company_id=key, name=f"Account {i}", industry=rng.choice(INDUSTRIES),
            size=rng.randint(1, 10_000),
        )  # fmt: skip

    def mapped() -> bool:
        with s.ledger() as ledger:
            return {link.company_id for link in ledger.mappings()} >= set(keys)

    wait_for(mapped, f"{n} mappings", timeout=90)
    return keys


def change_company(s: Stack, key: str, rng: random.Random) -> None:
    attrs: dict[str, Any] = {}
    roll = rng.random()
    if roll < 0.6:
        attrs["industry"] = rng.choice(INDUSTRIES)
    if roll > 0.4:
        attrs["size"] = rng.randint(1, 100_000)
    ic_upsert(s, company_id=key, **attrs)


def rename_accounts(s: Stack, ids: dict[str, str], count: int, rng: random.Random) -> None:
    for _ in range(count):
        key = rng.choice(sorted(ids))
        s.update_account(ids[key], Name=f"{key} renamed {rng.randrange(10**9)}")


# --- 1. SIGKILL under load -----------------------------------------------------------------

PAIRS = 300
COMPANY_CHANGES = 2000
RENAMES_WHILE_UP = 150
RENAMES_WHILE_DOWN = 15
KILLS = 3


def test_sigkill_under_load_loses_nothing_and_applies_nothing_twice(stack: Stack) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    started = time.monotonic()
    stack.start_service("--config", "sync.toml")
    keys = make_pairs(stack, PAIRS, rng)
    ids = {key: a["Id"] for key, a in accounts_by_key(stack).items()}
    barrier = Barrier(stack)
    setup = time.monotonic() - started

    segments = KILLS + 1
    per_segment = COMPANY_CHANGES // segments
    renames_per_segment = RENAMES_WHILE_UP // segments
    at_kill: list[dict[str, Any]] = []
    for segment in range(segments):
        for i in range(per_segment):
            change_company(stack, rng.choice(keys), rng)
            if i % max(1, per_segment // renames_per_segment) == 0:
                rename_accounts(stack, ids, 1, rng)
        if segment == segments - 1:
            break
        barrier.wait()  # every Intercom change so far is in serve's hands (or its ledger)
        time.sleep(rng.uniform(0.0, 0.05))  # the last notifications are being decided
        service = stack.service
        assert service is not None and service.poll() is None
        try:
            at_kill.append(stack.health())
        except httpx.HTTPError:
            at_kill.append({})
        service.send_signal(signal.SIGKILL)
        assert service.wait(timeout=10) == -signal.SIGKILL
        rename_accounts(stack, ids, RENAMES_WHILE_DOWN, rng)  # the poll must catch these
        stack.start_service()
    load = time.monotonic() - started - setup

    converge(stack, keys, f"seed {seed}", timeout=60)
    wait_for(
        lambda: (h := stack.health())["inbox"] == 0 and h["pending_writes"] == 0,
        "a quiescent service",
    )
    events, applied = ledger_checks(stack)
    read_models_checks(stack)
    assert "Traceback" not in stack.log("serve")
    print(
        f"\nseed {seed}: {PAIRS} pairs, {COMPANY_CHANGES} company changes, "
        f"{RENAMES_WHILE_UP + KILLS * RENAMES_WHILE_DOWN} renames, {KILLS} SIGKILLs; "
        f"health at each kill {[(h.get('inbox'), h.get('pending_writes')) for h in at_kill]}; "
        f"{events} events, {applied} writes applied, lost webhooks {len(lost_webhooks(stack))}; "
        f"setup {setup:.1f} s, load {load:.1f} s, "
        f"total {time.monotonic() - started:.1f} s"
    )


# --- 2. two serve processes on one PostgreSQL ledger ---------------------------------------


@pytest.fixture
def second_url(database_url: str) -> Iterator[str]:
    if not database_url.startswith("postgresql"):
        pytest.skip("several services share a PostgreSQL ledger only")
    yield f"http://127.0.0.1:{free_port()}"


def leaders(urls: list[str]) -> list[bool]:
    return [bool(health_of(u)["worker"]["leader"]) for u in urls]


def test_two_services_on_one_postgres_ledger_take_turns(second_url: str, stack: Stack) -> None:
    rng = random.Random()
    started = time.monotonic()
    # the second process starts first and leads; the first (Intercom's webhook URL) follows,
    # keeping webhooks in the shared ledger's inbox for the leader to decide
    port = second_url.rsplit(":", 1)[1]
    leader = stack.start(["serve", "--port", port, "--config", "sync.toml"], "serve2")
    wait_for(lambda: httpx.get(f"{second_url}/health").status_code == 200, "the second serve")
    wait_for(lambda: leaders([second_url]) == [True], "the second serve to lead")
    follower = stack.start_service()
    urls = [second_url, stack.service_url]
    wait_for(lambda: "worker" in health_of(stack.service_url), "the first serve's worker")

    keys = make_pairs(stack, 50, rng)
    ids = {key: a["Id"] for key, a in accounts_by_key(stack).items()}
    samples: list[list[bool]] = []
    # One company often changes twice within a second (Intercom's updated_at counts whole
    # seconds), and a 503 from an intake whose transaction lost to the leader's makes Intercom
    # retry: such notifications arrive out of order, and the ledger reads the company again.
    for i in range(300):
        key = rng.choice(keys)
        change_company(stack, key, rng)
        if i % 6 == 0:
            rename_accounts(stack, ids, 1, rng)
        if i % 20 == 0:
            samples.append(leaders(urls))
    converge(stack, keys, "two services", timeout=60)
    samples.append(leaders(urls))
    assert all(s == [True, False] for s in samples), samples
    assert health_of(stack.service_url)["webhooks"]["kept"] > 300  # the follower kept them
    ledger_checks(stack)

    leader.send_signal(signal.SIGKILL)
    assert leader.wait(timeout=10) == -signal.SIGKILL
    wait_for(lambda: leaders([stack.service_url]) == [True], "the follower to take over")
    for _ in range(20):
        change_company(stack, rng.choice(keys), rng)
    rename_accounts(stack, ids, 10, rng)
    converge(stack, keys, "after the takeover", timeout=60)
    wait_for(
        lambda: (h := health_of(stack.service_url))["inbox"] == 0 and h["pending_writes"] == 0,
        "a quiescent service",
    )
    ledger_checks(stack)
    assert follower.poll() is None
    for name in ("serve", "serve2"):
        assert "Traceback" not in stack.log(name), service_log(stack, name)[-8000:]
    print(f"\ntwo services: {time.monotonic() - started:.1f} s; leaders sampled {len(samples)}x")
