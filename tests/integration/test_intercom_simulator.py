"""The Intercom simulator over real HTTP: shapes, errors, limits, scroll, attributes, webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from adapters.simulators.intercom import IntercomState, create_intercom_app
from adapters.simulators.server import serving

TOKEN = "sim-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "s3cret"
COMPANY_KEYS = {
    "type",
    "id",
    "app_id",
    "name",
    "company_id",
    "remote_created_at",
    "created_at",
    "updated_at",
    "last_request_at",
    "monthly_spend",
    "session_count",
    "user_count",
    "size",
    "website",
    "industry",
    "plan",
    "custom_attributes",
    "tags",
    "segments",
}


class SimClock:
    """A settable clock in Unix seconds."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Sim:
    client: httpx.Client
    state: IntercomState
    url: str


@dataclass
class Receiver:
    """A tiny webhook endpoint recording raw bodies; answers 500 to the first ``fail_first``."""

    fail_first: int = 0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            with self.lock:
                self.received.append((dict(request.headers), body))
                count = len(self.received)
            return Response(status_code=500 if count <= self.fail_first else 200)

        return app

    def envelopes(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for _, body in self.received]


@pytest.fixture
def sim_clock() -> SimClock:
    return SimClock()


class Launcher:
    """Serves simulators and webhook receivers for one test; :meth:`close` stops them all."""

    def __init__(self, clock: SimClock) -> None:
        self._clock = clock
        self._stack = ExitStack()

    def __call__(self, state: IntercomState | None = None, **kwargs: Any) -> Sim:
        state = state or IntercomState(now=self._clock, seed=7)
        server = self._stack.enter_context(serving(create_intercom_app(state, **kwargs)))
        client = httpx.Client(base_url=server.url, headers=AUTH, timeout=5)
        self._stack.callback(client.close)
        return Sim(client, state, server.url)

    def receiver(self, receiver: Receiver) -> str:
        """Serve ``receiver`` and return its webhook URL."""
        server = self._stack.enter_context(serving(receiver.app()))
        return f"{server.url}/hook"

    def close(self) -> None:
        self._stack.close()


@pytest.fixture
def launch(sim_clock: SimClock) -> Iterator[Launcher]:
    launcher = Launcher(sim_clock)
    try:
        yield launcher
    finally:
        launcher.close()


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error.list"
    uuid.UUID(body["request_id"])
    assert body["errors"][0]["code"] == code
    message: str = body["errors"][0]["message"]
    return message


# -- companies -------------------------------------------------------------------------------


def test_post_creates_then_updates_by_company_id(launch: Launcher, sim_clock: SimClock) -> None:
    sim = launch()
    created = sim.client.post(
        "/companies",
        json={"company_id": "acme-1", "name": "Acme", "plan": "Pro", "size": 50},
    )
    assert created.status_code == 200
    company = created.json()
    assert set(company) == COMPANY_KEYS
    assert re.fullmatch(r"[0-9a-f]{24}", company["id"])
    assert company["type"] == "company"
    assert company["plan"] == {"type": "plan", "id": company["plan"]["id"], "name": "Pro"}
    assert company["tags"] == {"type": "tag.list", "tags": []}
    assert company["segments"] == {"type": "segment.list", "segments": []}
    assert company["created_at"] == company["updated_at"] == int(sim_clock())

    sim_clock.advance(5)
    updated = sim.client.post(
        "/companies", json={"company_id": "acme-1", "monthly_spend": 99.9, "website": "x"}
    ).json()
    assert updated["id"] == company["id"]
    assert updated["name"] == "Acme"
    assert updated["monthly_spend"] == 99  # Intercom truncates to an integer
    assert updated["updated_at"] == company["created_at"] + 5
    assert len(sim.state.all_companies()) == 1

    no_plan = sim.client.post("/companies", json={"company_id": "acme-2"}).json()
    assert no_plan["plan"] == {}


def test_post_refuses_bad_input(launch: Launcher) -> None:
    sim = launch()
    assert "company_id" in _error(
        sim.client.post("/companies", json={"name": "x"}), 400, "parameter_not_found"
    )
    message = _error(
        sim.client.post("/companies", json={"company_id": "c", "test": 1}), 400, "bad_request"
    )
    assert message == "bad 'test' parameter"
    _error(
        sim.client.post("/companies", json={"company_id": "c", "size": "big"}),
        400,
        "parameter_invalid",
    )
    _error(sim.client.post("/companies", content=b"{nope"), 400, "bad_request")
    assert sim.state.all_companies() == []


def test_retrieve_by_company_id_name_and_id_and_404_shape(launch: Launcher) -> None:
    sim = launch()
    intercom_id = sim.state.create_company("c-1", name="One")
    by_cid = sim.client.get("/companies", params={"company_id": "c-1"})
    assert by_cid.status_code == 200
    assert by_cid.json()["id"] == intercom_id
    assert sim.client.get("/companies", params={"name": "One"}).json()["id"] == intercom_id
    assert sim.client.get(f"/companies/{intercom_id}").json()["company_id"] == "c-1"

    missing = sim.client.get("/companies", params={"company_id": "nope"})
    assert _error(missing, 404, "company_not_found") == "Company Not Found"
    _error(sim.client.get("/companies/0123456789abcdef01234567"), 404, "company_not_found")


def test_put_updates_by_id_and_keeps_company_id(launch: Launcher) -> None:
    sim = launch()
    intercom_id = sim.state.create_company("c-1", name="One")
    put = sim.client.put(f"/companies/{intercom_id}", json={"name": "Uno", "company_id": "c-1"})
    assert put.status_code == 200
    assert put.json()["name"] == "Uno"
    refused = sim.client.put(f"/companies/{intercom_id}", json={"company_id": "c-2"})
    _error(refused, 400, "parameter_invalid")
    assert sim.state.get(intercom_id)["company_id"] == "c-1"  # type: ignore[index]
    _error(sim.client.put("/companies/" + "f" * 24, json={"name": "x"}), 404, "company_not_found")


def test_delete(launch: Launcher) -> None:
    sim = launch()
    intercom_id = sim.state.create_company("c-1")
    deleted = sim.client.delete(f"/companies/{intercom_id}")
    assert deleted.status_code == 200
    assert deleted.json() == {"id": intercom_id, "object": "company", "deleted": True}
    _error(sim.client.get(f"/companies/{intercom_id}"), 404, "company_not_found")
    _error(sim.client.delete(f"/companies/{intercom_id}"), 404, "company_not_found")
    recreated = sim.client.post("/companies", json={"company_id": "c-1"}).json()
    assert recreated["id"] != intercom_id


def test_list_pages(launch: Launcher) -> None:
    sim = launch()
    ids = [sim.state.create_company(f"c-{i:02}") for i in range(35)]
    first = sim.client.post("/companies/list").json()
    assert first["type"] == "list"
    assert first["total_count"] == 35
    assert first["pages"]["type"] == "pages"
    assert (first["pages"]["page"], first["pages"]["per_page"]) == (1, 15)
    assert first["pages"]["total_pages"] == 3
    assert "page=2" in first["pages"]["next"]
    seen = []
    for page in (1, 2, 3):
        body = sim.client.post(
            "/companies/list", params={"page": page, "per_page": 15, "order": "asc"}
        ).json()
        seen += [c["id"] for c in body["data"]]
    assert seen == ids
    assert body["pages"]["next"] is None
    clamped = sim.client.post("/companies/list", params={"per_page": 100}).json()
    assert clamped["pages"]["per_page"] == 60
    assert len(clamped["data"]) == 35
    beyond = sim.client.post("/companies/list", params={"page": 9}).json()
    assert beyond["data"] == []
    _error(sim.client.post("/companies/list", params={"order": "up"}), 400, "parameter_invalid")
    _error(sim.client.post("/companies/list", params={"page": "x"}), 400, "parameter_invalid")


def test_scroll_to_the_end(launch: Launcher) -> None:
    state = IntercomState(seed=1, scroll_page_size=10)
    sim = launch(state)
    ids = {state.create_company(f"c-{i}") for i in range(25)}
    first = sim.client.get("/companies/scroll").json()
    assert first["pages"] is None and first["total_count"] is None
    param = first["scroll_param"]
    uuid.UUID(param)
    sizes, seen = [len(first["data"])], {c["id"] for c in first["data"]}
    while True:
        page = sim.client.get("/companies/scroll", params={"scroll_param": param}).json()
        assert page["scroll_param"] == param
        sizes.append(len(page["data"]))
        seen |= {c["id"] for c in page["data"]}
        if not page["data"]:
            break
    assert sizes == [10, 10, 5, 0]
    assert seen == ids
    # The end of the scroll expires its param and frees the slot for a new scroll.
    ended = sim.client.get("/companies/scroll", params={"scroll_param": param})
    _error(ended, 404, "not_found")
    assert sim.client.get("/companies/scroll").status_code == 200


def test_scroll_is_one_at_a_time_and_expires(launch: Launcher, sim_clock: SimClock) -> None:
    sim = launch()
    sim.state.create_company("c-1")
    param = sim.client.get("/companies/scroll").json()["scroll_param"]
    _error(sim.client.get("/companies/scroll"), 400, "scroll_exists")
    sim_clock.advance(59)
    assert sim.client.get("/companies/scroll", params={"scroll_param": param}).status_code == 200
    sim_clock.advance(60)
    expired = sim.client.get("/companies/scroll", params={"scroll_param": param})
    assert "Restart the scroll" in _error(expired, 404, "not_found")
    assert sim.client.get("/companies/scroll").status_code == 200


# -- data attributes ---------------------------------------------------------------------------


def test_data_attributes_list_create_and_custom_attribute_writes(launch: Launcher) -> None:
    sim = launch()
    listed = sim.client.get("/data_attributes", params={"model": "company"}).json()
    assert listed["type"] == "list"
    by_full_name = {a["full_name"]: a for a in listed["data"]}
    assert by_full_name["name"]["api_writable"] is True
    assert by_full_name["company_id"]["api_writable"] is False
    assert by_full_name["monthly_spend"]["data_type"] == "float"
    assert by_full_name["size"]["data_type"] == "integer"
    assert by_full_name["plan.name"]["name"] == "name"
    assert {"plan.id", "app_id", "user_count", "session_count", "updated_at"} <= set(by_full_name)
    for attr in listed["data"]:
        assert attr["type"] == "data_attribute" and attr["model"] == "company"
        assert attr["custom"] is False and attr["archived"] is False

    refused = sim.client.post(
        "/companies", json={"company_id": "c-1", "custom_attributes": {"tier": "gold"}}
    )
    assert _error(refused, 400, "parameter_invalid") == "Custom attribute 'tier' does not exist"

    created = sim.client.post(
        "/data_attributes", json={"name": "tier", "model": "company", "data_type": "string"}
    )
    assert created.status_code == 200
    tier = created.json()
    assert tier["full_name"] == "custom_attributes.tier"
    assert tier["custom"] is True and tier["api_writable"] is True
    assert isinstance(tier["id"], int)
    renewal = sim.client.post(
        "/data_attributes", json={"name": "renewal", "model": "company", "data_type": "datetime"}
    ).json()
    assert renewal["data_type"] == "date"
    seats = sim.state.define_attribute("seats", "integer")
    assert seats["full_name"] == "custom_attributes.seats"

    ok = sim.client.post(
        "/companies",
        json={"company_id": "c-1", "custom_attributes": {"tier": "gold", "renewal": 1700000000}},
    )
    assert ok.json()["custom_attributes"] == {"tier": "gold", "renewal": 1700000000}
    mismatch = sim.client.post(
        "/companies", json={"company_id": "c-1", "custom_attributes": {"seats": "ten"}}
    )
    assert "integer" in _error(mismatch, 400, "parameter_invalid")

    def create(body: dict[str, Any]) -> str:
        return _error(sim.client.post("/data_attributes", json=body), 400, "parameter_invalid")

    base = {"model": "company", "data_type": "string"}
    assert create({**base, "name": "tier"}).startswith("You already have 'tier'")
    assert "alphanumeric" in create({**base, "name": "!nv@l!d n@me"})
    assert create({**base, "name": "x", "data_type": "mithril"}) == "Data Type isn't an option"
    assert "two options" in create(
        {**base, "name": "band", "data_type": "options", "options": [{"value": "1-10"}]}
    )
    assert "model" in create({**base, "name": "y", "model": "ticket"})
    names = {a["name"] for a in sim.client.get("/data_attributes").json()["data"]}
    assert {"tier", "renewal", "seats"} <= names


# -- gateway: auth, rate limit, version, counters, faults ---------------------------------------


def test_auth_failure_shape(launch: Launcher) -> None:
    sim = launch()
    with httpx.Client(base_url=sim.url, timeout=5) as anonymous:
        missing = anonymous.get("/companies/scroll")
        wrong = anonymous.get("/companies/scroll", headers={"Authorization": "Bearer nope"})
    for response in (missing, wrong):
        assert _error(response, 401, "unauthorized") == "Access Token Invalid"
        assert "X-RateLimit-Limit" in response.headers


def test_rate_limit_headers_and_429(launch: Launcher, sim_clock: SimClock) -> None:
    sim = launch(rate_limit_per_10s=3)
    remaining = []
    for _ in range(3):
        response = sim.client.get("/data_attributes")
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "3"
        assert int(response.headers["X-RateLimit-Reset"]) == int(sim_clock()) + 10
        remaining.append(response.headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    sim_clock.advance(4)
    limited = sim.client.get("/data_attributes")
    assert _error(limited, 429, "rate_limit_exceeded") == "Exceeded rate limit of 3 in 10_seconds"
    assert limited.headers["Retry-After"] == "6"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    sim_clock.advance(6)
    assert sim.client.get("/data_attributes").headers["X-RateLimit-Remaining"] == "2"


def test_intercom_version_and_counters(launch: Launcher) -> None:
    sim = launch()
    intercom_id = sim.state.create_company("c-1")
    assert sim.client.get(
        f"/companies/{intercom_id}", headers={"Intercom-Version": "2.14"}
    ).is_success
    assert sim.client.get(f"/companies/{intercom_id}").is_success
    bad = sim.client.get(f"/companies/{intercom_id}", headers={"Intercom-Version": "9.99"})
    _error(bad, 400, "intercom_version_invalid")
    sim.client.post("/companies", json={"company_id": "c-2"})

    counters = sim.client.get("/_sim/counters").json()
    assert counters["counters"] == {"GET /companies/{id}": 3, "POST /companies": 1}
    assert counters["total"] == 4
    assert counters["intercom_versions"] == {"2.14": 1, "9.99": 1}
    assert sim.state.counters == counters["counters"]
    assert sim.client.post("/_sim/reset_counters").status_code == 200
    assert sim.state.counters == {}


def test_fault_rate_one_fails_every_call_and_changes_nothing(launch: Launcher) -> None:
    sim = launch(fault_rate=1.0, seed=3)
    intercom_id = sim.state.create_company("c-1", name="One")
    before = sim.state.all_companies()
    statuses: Counter[int] = Counter()
    for i in range(20):
        response = sim.client.post("/companies", json={"company_id": f"new-{i}"})
        statuses[response.status_code] += 1
        if response.status_code == 429:
            assert response.headers["Retry-After"] == "1"
            _error(response, 429, "rate_limit_exceeded")
        else:
            _error(response, 503, "service_unavailable")
    statuses[sim.client.put(f"/companies/{intercom_id}", json={"name": "x"}).status_code] += 1
    statuses[sim.client.delete(f"/companies/{intercom_id}").status_code] += 1
    assert set(statuses) == {429, 503}
    assert sim.state.all_companies() == before


# -- webhooks --------------------------------------------------------------------------------


def _verify(headers: dict[str, str], body: bytes) -> None:
    expected = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    assert hmac.compare_digest(headers["x-hub-signature"], expected)
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "intercom-parrot-service-client/1.0"


def test_webhooks_are_signed_and_carry_each_topic(launch: Launcher) -> None:
    receiver = Receiver()
    url = launch.receiver(receiver)
    sim = launch(webhook_url=url, client_secret=SECRET)
    intercom_id = sim.client.post("/companies", json={"company_id": "c-1", "name": "A"}).json()[
        "id"
    ]
    sim.client.put(f"/companies/{intercom_id}", json={"name": "B"})
    sim.client.delete(f"/companies/{intercom_id}")
    helper_id = sim.state.create_company("c-2")
    sim.state.update_company(helper_id, size=3)
    sim.state.delete_company(helper_id)
    assert sim.state.flush_webhooks(5)

    for headers, body in receiver.received:
        _verify(headers, body)
    envelopes = receiver.envelopes()
    assert [e["topic"] for e in envelopes] == [
        "company.created",
        "company.updated",
        "company.deleted",
    ] * 2
    created, updated, deleted = envelopes[:3]
    assert created["type"] == "notification_event"
    assert created["id"].startswith("notif_")
    assert created["app_id"] == sim.state.app_id
    assert created["delivery_attempts"] == 1
    assert created["data"]["type"] == "notification_event_data"
    assert set(created["data"]["item"]) == COMPANY_KEYS
    assert updated["data"]["item"]["name"] == "B"
    assert deleted["data"]["item"] == {"type": "company", "id": intercom_id, "company_id": "c-1"}
    assert all(d.ok for d in sim.state.webhook_log)
    assert len(sim.client.get("/_sim/webhooks").json()["deliveries"]) == 6


def test_failed_delivery_is_retried(launch: Launcher) -> None:
    receiver = Receiver(fail_first=1)
    sim = launch(webhook_url=launch.receiver(receiver), client_secret=SECRET)
    sim.state.create_company("c-1")
    assert sim.state.flush_webhooks(5)
    log = sim.state.webhook_log
    assert [(d.status_code, d.attempt) for d in log] == [(500, 1), (200, 2)]
    assert log[0].notification_id == log[1].notification_id
    assert [e["delivery_attempts"] for e in receiver.envelopes()] == [1, 2]
    for headers, body in receiver.received:
        _verify(headers, body)


def test_duplicate_webhooks_deliver_every_notification_more_than_once(launch: Launcher) -> None:
    receiver = Receiver()
    url = launch.receiver(receiver)
    sim = launch(webhook_url=url, client_secret=SECRET, duplicate_webhooks=True, seed=5)
    for i in range(5):
        sim.state.create_company(f"c-{i}")
    assert sim.state.flush_webhooks(5)
    per_notification = Counter(e["id"] for e in receiver.envelopes())
    assert len(per_notification) == 5
    assert set(per_notification.values()) <= {2, 3}


def test_shuffle_webhooks_deliver_everything_in_another_order(launch: Launcher) -> None:
    reordered = False
    for seed in range(5):
        receiver = Receiver()
        url = launch.receiver(receiver)
        sim = launch(webhook_url=url, client_secret=SECRET, shuffle_webhooks=True, seed=seed)
        created = [sim.state.create_company(f"c-{i}") for i in range(8)]
        assert sim.state.flush_webhooks(5)
        delivered = [e["data"]["item"]["id"] for e in receiver.envelopes()]
        assert sorted(delivered) == sorted(created)
        if delivered != created:
            reordered = True
            break
    assert reordered


def test_webhook_worker_stops_with_the_app(launch: Launcher) -> None:
    receiver = Receiver()
    with ExitStack() as stack:
        receiver_server = stack.enter_context(serving(receiver.app()))
        app = create_intercom_app(webhook_url=f"{receiver_server.url}/hook", client_secret=SECRET)
        with serving(app):
            assert any(t.name == "intercom-sim-webhooks" for t in threading.enumerate())
        assert not any(t.name == "intercom-sim-webhooks" for t in threading.enumerate())


# -- seeding -----------------------------------------------------------------------------------


def test_seed_data_file(tmp_path: Path, launch: Launcher) -> None:
    data = {
        "data_attributes": [
            {"name": "tier", "data_type": "string"},
            {"name": "band", "options": ["small", "large"]},
        ],
        "companies": [
            {"company_id": "c-1", "name": "One", "custom_attributes": {"tier": "gold"}},
            {"company_id": "c-2", "plan": {"name": "Pro"}, "user_count": 4, "size": 9},
        ],
    }
    path = tmp_path / "intercom.json"
    path.write_text(json.dumps(data))
    state = IntercomState(seed=2).load_data(path)
    sim = launch(state)
    one = sim.client.get("/companies", params={"company_id": "c-1"}).json()
    assert one["custom_attributes"] == {"tier": "gold"}
    two = sim.client.get("/companies", params={"company_id": "c-2"}).json()
    assert (two["plan"]["name"], two["user_count"], two["size"]) == ("Pro", 4, 9)
    band = sim.client.post(
        "/companies", json={"company_id": "c-2", "custom_attributes": {"band": "medium"}}
    )
    _error(band, 400, "parameter_invalid")

    copy = IntercomState.from_json(state.to_json())
    assert copy.all_companies() == state.all_companies()
    with pytest.raises(ValueError, match=r"companies\[0\].*'nope' does not exist"):
        IntercomState.from_json(
            {"companies": [{"company_id": "x", "custom_attributes": {"nope": 1}}]}
        )
