"""Time to converge with faulty APIs: the same changes with no faults and with 20 % of every
Salesforce and Intercom call failing (5xx, 429 with ``Retry-After: 1``), side by side.

Each run starts both simulators (``--fault-rate``) and ``syncledger serve`` on a fresh SQLite
ledger with ``pairs`` mapped account/company pairs, then changes every account's ``Name`` in
Salesforce (one Intercom write per company) and every company's ``size`` in Intercom (webhooks,
one Salesforce write per 200 records), and times from the first change until both systems hold
every new value. Run directly: ``python scripts/bench_faults.py [--pairs N] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from bench_common import Section, secs, wait_for
from bench_stack import SF_API, Stack, pairs_data, running_stack

FAULT_RATES = (0.0, 0.2)


def _sf_accounts(s: Stack) -> dict[str, dict[str, object]]:
    soql = "SELECT Id, AccountNumber, Name, NumberOfEmployees FROM Account"
    body = _retry(lambda: s.sf.get(f"{SF_API}/query", params={"q": soql})).json()
    records = list(body["records"])
    while body.get("nextRecordsUrl"):
        body = _retry(lambda url=body["nextRecordsUrl"]: s.sf.get(url)).json()
        records += body["records"]
    return {r["AccountNumber"]: r for r in records}


def _ic_companies(s: Stack) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    param: str | None = None
    while True:
        params = {"scroll_param": param} if param else None
        data = _retry(lambda p=params: s.ic.get("/companies/scroll", params=p)).json()
        if not data["data"]:
            return out
        out |= {c["company_id"]: c for c in data["data"]}
        param = data["scroll_param"]


def _retry(call: Callable[[], httpx.Response]) -> httpx.Response:
    """A user's change, sent again while the faulty simulator refuses it."""
    for _ in range(50):
        answer = call()
        if answer.status_code < 300:
            return answer
        time.sleep(0.05)
    raise RuntimeError(f"the simulator kept refusing: {answer.status_code} {answer.text[:200]}")


def one_run(workdir: Path, pairs: int, fault_rate: float) -> float:
    """Seconds from the first change until every change reached the other system."""
    sf_data, ic_data = pairs_data(pairs)
    faults = ["--fault-rate", str(fault_rate)] if fault_rate else []
    with running_stack(
        workdir,
        f"sqlite:///{workdir / 'ledger.db'}",
        sf_data=sf_data,
        ic_data=ic_data,
        webhooks_to_service=True,
        poll_interval=1.0,
        sf_options=faults,
        ic_options=faults,
    ) as s:
        reader = s.ledger()
        wait_for(lambda: len(list(reader.mappings())) == pairs, "the pairs mapped", 300)
        accounts = _sf_accounts(s)
        companies = _ic_companies(s)
        started = time.perf_counter()
        for key, account in accounts.items():
            _retry(
                lambda a=account, k=key: s.sf.patch(
                    f"{SF_API}/sobjects/Account/{a['Id']}", json={"Name": f"Renamed {k}"}
                )
            )
            _retry(lambda k=key: s.ic.post("/companies", json={"company_id": k, "size": 77}))

        def converged() -> bool:
            names = {k: c.get("name") for k, c in _ic_companies(s).items()}
            sizes = {k: a.get("NumberOfEmployees") for k, a in _sf_accounts(s).items()}
            return all(names[k] == f"Renamed {k}" and sizes[k] == 77 for k in companies)

        wait_for(converged, "convergence", 600)
        reader.close()
        return time.perf_counter() - started


def faults_section(tmp: Path, pairs: int, repeats: int, progress: Callable[[str], None]) -> Section:
    times: dict[float, list[float]] = {rate: [] for rate in FAULT_RATES}
    for r in range(repeats):
        for rate in FAULT_RATES:  # side by side, alternating, on the same machine
            seconds = one_run(tmp / f"faults-{rate}-{r}", pairs, rate)
            times[rate].append(seconds)
            progress(f"faults: {pairs} pairs at {rate:.0%} faults: {seconds:.1f} s")
    clean = statistics.median(times[0.0])
    rows = [
        [f"{rate:.0%}", secs(statistics.median(t)), f"{statistics.median(t) / clean:.1f}x",
         ", ".join(f"{x:.1f}" for x in t)]
        for rate, t in times.items()
    ]  # fmt: skip
    return Section(
        title="7. Faults: time to converge at 20 % faults vs none",
        method=f"""
{pairs} mapped pairs on SQLite; every account's Name changed in Salesforce and every company's
size in Intercom, then timed until both systems hold every new value (poll every 1 s). Both
simulators fail the given share of calls (5xx, or 429 with Retry-After: 1); the service retries
each call with backoff, Intercom writes 8 at a time, each 429 waited only by its own write.
Median of {repeats} runs, the two settings alternating in one process.""",
        header=["fault rate", "converged in (median)", "vs none", "runs (s)"],
        rows=rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        section = faults_section(Path(tmp), args.pairs, args.repeats, print)
    print(section.markdown())


if __name__ == "__main__":
    main()
