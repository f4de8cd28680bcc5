"""Intercom writes go several at a time, and the client paces itself by Intercom's rate-limit
headers: a 429's wait (or a backoff) holds up only its own write."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx

from adapters.intercom.client import IntercomCompanies
from adapters.intercom.system import IntercomSystem
from adapters.sync.ports import WriteRefused, write_each


def company(intercom_id: str) -> dict[str, Any]:
    return {
        "type": "company",
        "id": intercom_id,
        "company_id": f"K-{intercom_id}",
        "name": "x",
        "updated_at": 1_700_000_000,
        "custom_attributes": {},
    }


def test_write_each_keeps_the_order_and_turns_refusals_into_results() -> None:
    def write_one(record_id: str, _values: Any) -> None:
        time.sleep(0.01 * (5 - int(record_id)))  # later records finish first
        if record_id == "2":
            raise WriteRefused("no", code="bad", fields=("f",))

    results = write_each([(str(i), {}) for i in range(5)], write_one, concurrency=4)
    assert [r.record_id for r in results] == ["0", "1", "2", "3", "4"]
    assert [r.ok for r in results] == [True, True, False, True, True]
    assert results[2].code == "bad" and results[2].fields == ("f",)


def test_intercom_writes_are_in_flight_together() -> None:
    """Found by an operator: at 20 % faults every 429's Retry-After was slept serially while
    Intercom writes went one at a time (93 s to converge instead of 3.7 s)."""
    together = threading.Barrier(4, timeout=5)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=company(request.url.path.rsplit("/", 1)[1]))
        together.wait()  # four writes must be in flight at once, or this times out
        body = json.loads(request.content)
        return httpx.Response(200, json={**company("x"), **body})

    companies = IntercomCompanies(
        "http://intercom.test", "t", transport=httpx.MockTransport(handler)
    )
    system = IntercomSystem(companies, concurrency=4)
    results = system.write([(f"ic{i}", {"name": f"n{i}"}) for i in range(8)])
    assert [r.ok for r in results] == [True] * 8, [r.message for r in results]
    assert [r.record_id for r in results] == [f"ic{i}" for i in range(8)]


def test_a_rate_limited_write_waits_alone() -> None:
    slept: list[float] = []
    lock = threading.Lock()
    first_429: set[str] = set()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=company(request.url.path.rsplit("/", 1)[1]))
        name = json.loads(request.content)["name"]
        with lock:
            refuse = name == "n0" and name not in first_429
            first_429.add(name)
        if refuse:
            return httpx.Response(
                429, headers={"Retry-After": "2"}, json={"type": "error.list", "errors": []}
            )
        return httpx.Response(200, json=company("x"))

    def sleep(seconds: float) -> None:
        with lock:
            slept.append(seconds)

    companies = IntercomCompanies(
        "http://intercom.test", "t", transport=httpx.MockTransport(handler), sleep=sleep
    )
    results = IntercomSystem(companies, concurrency=4).write(
        [(f"ic{i}", {"name": f"n{i}"}) for i in range(4)]
    )
    assert all(r.ok for r in results)
    assert slept == [2.0]  # one wait, for the one write that was refused


def test_the_client_waits_for_the_reset_near_the_end_of_the_window() -> None:
    now = 1_000.0
    slept: list[float] = []

    def handler(_request: httpx.Request) -> httpx.Response:
        headers = {
            "X-RateLimit-Limit": "1666",
            "X-RateLimit-Remaining": "3",
            "X-RateLimit-Reset": str(int(now) + 4),
        }
        return httpx.Response(200, headers=headers, json=company("a"))

    companies = IntercomCompanies(
        "http://intercom.test",
        "t",
        transport=httpx.MockTransport(handler),
        sleep=slept.append,
        now=lambda: now,
    )
    companies.read(["a"])  # learns: 3 calls left, reset in 4 s
    assert slept == []
    companies.read(["a"])
    assert slept == [4.0]
