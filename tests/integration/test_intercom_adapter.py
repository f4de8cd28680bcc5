"""IntercomCompanies against the Intercom simulator over real HTTP (and a few transport fakes)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from adapters.intercom.client import IntercomCompanies, company_to_change
from adapters.intercom.errors import (
    IntercomAuthError,
    IntercomError,
    IntercomRateLimited,
    IntercomRejected,
    IntercomUnavailable,
)
from adapters.simulators.intercom import IntercomState, create_intercom_app
from adapters.simulators.server import serving
from ledger.catalog import IntercomAttribute
from ledger.facts import CompanyChange, CompanyRemoval

TOKEN = "sim-token"


class SimClock:
    """A settable clock in Unix seconds; ``sleep`` advances it instead of waiting."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


class Launcher:
    """Serves simulators and builds adapters for one test; :meth:`close` stops them all."""

    def __init__(self) -> None:
        self.clock = SimClock()
        self._stack = ExitStack()

    def __call__(
        self,
        state: IntercomState | None = None,
        *,
        token: str = TOKEN,
        max_retries: int = 5,
        rate_limit_reserve: int = 10,
        **kwargs: Any,
    ) -> tuple[IntercomCompanies, IntercomState]:
        state = state or IntercomState(now=self.clock, seed=7)
        server = self._stack.enter_context(serving(create_intercom_app(state, **kwargs)))
        adapter = IntercomCompanies(
            server.url,
            token,
            timeout=5,
            max_retries=max_retries,
            sleep=self.clock.sleep,
            now=self.clock,
            rate_limit_reserve=rate_limit_reserve,
        )
        self._stack.callback(adapter.close)
        return adapter, state

    def close(self) -> None:
        self._stack.close()


@pytest.fixture
def launch() -> Iterator[Launcher]:
    launcher = Launcher()
    try:
        yield launcher
    finally:
        launcher.close()


def test_lookup_found_and_not_found(launch: Launcher) -> None:
    adapter, state = launch()
    state.define_attribute("tier", "string")
    iid = state.create_company(
        "acme-1", name="Acme", plan="Pro", size=50, custom_attributes={"tier": "gold"}
    )

    answers = adapter.lookup(["acme-1", "nobody"])

    assert len(answers) == 1
    [change] = answers
    assert change.intercom_id == iid
    assert change.company_id == "acme-1"
    assert (change.kind, change.source) == ("snapshot", "lookup")
    assert change.attributes["name"] == "Acme"
    assert change.attributes["size"] == 50
    assert change.attributes["plan.name"] == "Pro"
    assert change.attributes["custom_attributes.tier"] == "gold"
    assert isinstance(change.updated_at, int) and change.updated_at > 0


def test_read_present_and_deleted(launch: Launcher) -> None:
    adapter, state = launch()
    kept = state.create_company("c-1", name="Kept")
    gone = state.create_company("c-2", name="Gone")
    state.delete_company(gone)

    present, removed = adapter.read([kept, gone])

    assert isinstance(present, CompanyChange)
    assert (present.intercom_id, present.source, present.kind) == (kept, "read", "snapshot")
    assert removed == CompanyRemoval(intercom_id=gone, source="read")


def test_write_standard_and_custom_attributes(launch: Launcher) -> None:
    adapter, state = launch()
    state.define_attribute("tier", "string")
    state.define_attribute("seats", "integer")
    iid = state.create_company("c-1", name="Old")

    call = adapter.write(
        iid,
        "c-1",
        {
            "name": "New",
            "industry": "Software",
            "plan.name": "Enterprise",
            "custom_attributes.tier": "gold",
            "custom_attributes.seats": 12,
        },
    )

    assert call["method"] == "POST" and call["path"] == "/companies" and call["status"] == 200
    assert "request_id" in call
    company = state.get(iid)
    assert company is not None
    assert company["name"] == "New" and company["industry"] == "Software"
    assert company["plan"]["name"] == "Enterprise"
    assert company["custom_attributes"] == {"tier": "gold", "seats": 12}


def test_write_of_an_undefined_custom_attribute_is_rejected(launch: Launcher) -> None:
    adapter, state = launch()
    iid = state.create_company("c-1", name="Acme")

    with pytest.raises(IntercomRejected) as caught:
        adapter.write(iid, "c-1", {"custom_attributes.nope": "x"})

    assert caught.value.status == 400
    assert caught.value.code == "parameter_invalid"
    assert "Custom attribute 'nope' does not exist" in str(caught.value)
    assert launch.clock.slept == []  # a permanent refusal is not retried


def test_catalog_lists_standard_and_custom_attributes(launch: Launcher) -> None:
    adapter, state = launch()
    state.define_attribute("tier", "string")

    catalog = {attr.name: attr for attr in adapter.catalog()}

    assert all(isinstance(attr, IntercomAttribute) for attr in catalog.values())
    assert catalog["name"].data_type == "string" and not catalog["name"].custom
    assert catalog["name"].api_writable
    assert not catalog["user_count"].api_writable
    tier = catalog["custom_attributes.tier"]
    assert tier.custom and tier.data_type == "string" and tier.api_writable


def test_scroll_all_yields_every_company(launch: Launcher) -> None:
    state = IntercomState(now=launch.clock, seed=3, scroll_page_size=4)
    ids = {state.create_company(f"c-{i}", name=f"Company {i}") for i in range(10)}
    adapter, _ = launch(state)

    changes = list(adapter.scroll_all())

    assert {c.intercom_id for c in changes} == ids
    assert len(changes) == 10
    assert all(c.kind == "snapshot" for c in changes)


def test_every_call_sends_the_intercom_version(launch: Launcher) -> None:
    adapter, state = launch()
    state.create_company("c-1", name="Acme")

    adapter.lookup(["c-1"])
    adapter.catalog()
    list(adapter.scroll_all())

    assert state.intercom_versions == {"2.14": sum(state.counters.values())}


def test_429_waits_for_retry_after_and_succeeds(launch: Launcher) -> None:
    adapter, state = launch(rate_limit_per_10s=2)
    state.create_company("c-1", name="Acme")

    answers = adapter.lookup(["c-1", "c-1", "c-1", "c-1", "c-1"])

    assert len(answers) == 5
    assert launch.clock.slept, "the 429 should have been waited out"
    assert all(0 < s <= 10 for s in launch.clock.slept)
    assert adapter.rate_limit.limit == 2
    assert adapter.rate_limit.remaining is not None
    assert adapter.rate_limit.reset is not None


def test_429_beyond_the_retries_raises_rate_limited(launch: Launcher) -> None:
    # without pacing: the client would otherwise wait for the window's reset and never see 429
    adapter, state = launch(rate_limit_per_10s=1, max_retries=0, rate_limit_reserve=-1)
    state.create_company("c-1", name="Acme")
    adapter.lookup(["c-1"])

    with pytest.raises(IntercomRateLimited):
        adapter.lookup(["c-1"])


def test_half_the_calls_failing_still_completes_through_retries(launch: Launcher) -> None:
    state = IntercomState(now=launch.clock, seed=11)
    state.define_attribute("tier", "string")
    ids = [state.create_company(f"c-{i}", name=f"C{i}") for i in range(5)]
    adapter, _ = launch(state, fault_rate=0.5, seed=11, max_retries=10)

    assert len(adapter.lookup([f"c-{i}" for i in range(5)])) == 5
    assert all(isinstance(f, CompanyChange) for f in adapter.read(ids))
    for i, iid in enumerate(ids):
        adapter.write(iid, f"c-{i}", {"custom_attributes.tier": "gold"})
    assert "custom_attributes.tier" in {a.name for a in adapter.catalog()}

    assert launch.clock.slept, "some calls should have been retried"
    assert all((state.get(i) or {}).get("custom_attributes") == {"tier": "gold"} for i in ids)


def test_every_call_failing_raises_unavailable_after_the_retries(launch: Launcher) -> None:
    # seed 0 makes the last of the six faults a 503 (three of the others are 429s).
    adapter, state = launch(fault_rate=1.0, seed=0, max_retries=5)

    with pytest.raises(IntercomUnavailable) as caught:
        adapter.catalog()

    assert caught.value.status == 503
    assert state.counters == {"GET /data_attributes": 6}


def test_wrong_token_raises_auth_error(launch: Launcher) -> None:
    adapter, _ = launch(token="wrong")

    with pytest.raises(IntercomAuthError) as caught:
        adapter.lookup(["c-1"])

    assert str(caught.value) == (
        "Intercom refused the access token; check SYNCLEDGER_INTERCOM_TOKEN"
    )


# -- at the transport (no server) -----------------------------------------------------------------


def _adapter(handler: Any, **kwargs: Any) -> tuple[IntercomCompanies, list[float]]:
    slept: list[float] = []
    adapter = IntercomCompanies(
        "https://api.intercom.test",
        "t",
        transport=httpx.MockTransport(handler),
        sleep=slept.append,
        **kwargs,
    )
    return adapter, slept


def test_connection_errors_are_retried_then_translated() -> None:
    calls: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    adapter, slept = _adapter(refuse, max_retries=3)
    with adapter, pytest.raises(IntercomUnavailable) as caught:
        adapter.catalog()

    assert len(calls) == 4 and len(slept) == 3
    assert "ConnectError" in str(caught.value)
    assert not isinstance(caught.value, httpx.HTTPError)
    # Full jitter: each wait lies in [0, base * 2**attempt].
    assert all(0 <= s <= 0.5 * 2**i for i, s in enumerate(slept))


def test_headers_sent_and_429_waits_until_the_reset_without_retry_after() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(
                429,
                headers={"X-RateLimit-Limit": "10", "X-RateLimit-Reset": "1007"},
                json={"type": "error.list", "errors": [{"code": "rate_limit_exceeded"}]},
            )
        return httpx.Response(200, json={"type": "list", "data": []})

    adapter, slept = _adapter(handler, now=lambda: 1000.0)
    with adapter:
        assert adapter.catalog() == []

    assert slept == [7.0]
    headers = seen[0].headers
    assert headers["Authorization"] == "Bearer t"
    assert headers["Accept"] == "application/json"
    assert headers["Intercom-Version"] == "2.14"


def test_a_404_that_is_not_company_not_found_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            404, json={"type": "error.list", "errors": [{"code": "not_found", "message": "No"}]}
        )

    adapter, _ = _adapter(handler)
    with adapter, pytest.raises(IntercomRejected, match="not_found"):
        adapter.read(["abc"])


def test_a_non_json_answer_is_an_intercom_error_not_a_crash() -> None:
    adapter, _ = _adapter(lambda request: httpx.Response(200, text="<html>"))
    with adapter, pytest.raises(IntercomError):
        adapter.catalog()


def test_company_to_change_flattens_plan_and_custom_attributes() -> None:
    change = company_to_change(
        {
            "id": "abc",
            "company_id": "c-1",
            "name": "Acme",
            "updated_at": 1700000000,
            "plan": {},
            "custom_attributes": {"tier": "gold"},
            "tags": {"type": "tag.list", "tags": []},
        },
        "updated",
        "webhook",
    )

    assert change.attributes == {
        "name": "Acme",
        "updated_at": 1700000000,
        "custom_attributes.tier": "gold",
    }
    assert change.updated_at == 1700000000


def test_the_client_paces_itself_instead_of_meeting_the_429(launch: Launcher) -> None:
    adapter, state = launch(rate_limit_per_10s=1, max_retries=0)
    state.create_company("c-1", name="Acme")
    adapter.lookup(["c-1"])
    assert adapter.lookup(["c-1"])  # waited for the window's reset instead of a 429
    assert launch.clock.slept
