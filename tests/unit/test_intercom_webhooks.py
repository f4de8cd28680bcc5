"""Webhook intake: signatures, notification parsing, de-duplication."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.bootstrap import open_ledger
from adapters.intercom.webhooks import (
    MAX_DEPTH,
    WebhookRejected,
    parse_notification,
    verify_signature,
)
from ledger.facts import CompanyChange, CompanyRemoval

SECRET = "s3cret"
COMPANY = {
    "type": "company",
    "id": "6762f0761bb69f9f2193bae2",
    "company_id": "acme-1",
    "name": "Acme",
    "updated_at": 1734537334,
    "created_at": 1734537000,
    "size": 100,
    "plan": {"type": "plan", "id": "269315", "name": "Pro"},
    "custom_attributes": {"tier": "gold"},
}


def envelope(topic: str, item: dict[str, Any] | None = None, **extra: Any) -> bytes:
    body: dict[str, Any] = {
        "type": "notification_event",
        "app_id": "a86dr8yl",
        "id": "notif_1",
        "topic": topic,
        "created_at": 1571080403,
        "delivery_attempts": 1,
        "data": {"type": "notification_event_data", "item": item if item is not None else {}},
        **extra,
    }
    return json.dumps(body).encode()


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


# -- signatures -----------------------------------------------------------------------------------


def test_signature_accepted() -> None:
    body = envelope("company.updated", COMPANY)
    assert verify_signature(body, sign(body), SECRET)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("sha256=abc", id="wrong-scheme"),
        pytest.param("sha1=", id="no-digest"),
        pytest.param("sha1=not-hex-at-all", id="not-hex"),
        pytest.param("sha1=é" * 3, id="non-ascii"),
        pytest.param("da39a3ee5e6b4b0d3255bfef95601890afd80709", id="no-prefix"),
    ],
)
def test_signature_rejected_for_missing_or_malformed_header(header: str | None) -> None:
    assert not verify_signature(envelope("ping"), header, SECRET)


def test_signature_rejected_for_wrong_secret() -> None:
    body = envelope("company.updated", COMPANY)
    assert not verify_signature(body, sign(body, "other"), SECRET)


def test_signature_rejected_for_tampered_body() -> None:
    body = envelope("company.updated", COMPANY)
    header = sign(body)
    assert not verify_signature(body.replace(b"Acme", b"Evil"), header, SECRET)


# -- parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "topic, kind", [("company.created", "created"), ("company.updated", "updated")]
)
def test_parse_created_and_updated(topic: str, kind: str) -> None:
    notification = parse_notification(envelope(topic, COMPANY))

    assert (notification.id, notification.topic, notification.created_at) == (
        "notif_1",
        topic,
        1571080403,
    )
    fact = notification.fact
    assert isinstance(fact, CompanyChange)
    assert (fact.intercom_id, fact.company_id) == (COMPANY["id"], "acme-1")
    assert (fact.kind, fact.source, fact.updated_at) == (kind, "webhook", 1734537334)
    assert fact.attributes["name"] == "Acme"
    assert fact.attributes["plan.name"] == "Pro"
    assert fact.attributes["custom_attributes.tier"] == "gold"


def test_parse_deleted_carries_only_identifiers() -> None:
    item = {"type": "company", "id": "abc", "company_id": "acme-1"}
    notification = parse_notification(envelope("company.deleted", item))
    assert notification.fact == CompanyRemoval(intercom_id="abc", company_id="acme-1")


def test_parse_ping_has_no_fact() -> None:
    notification = parse_notification(envelope("ping", {"type": "ping", "message": "hi"}))
    assert notification.topic == "ping" and notification.fact is None


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "JSON object"),
        (json.dumps({"type": "other"}).encode(), "notification_event"),
        (envelope("company.updated", COMPANY, id=7), "id"),
        (envelope("company.updated", COMPANY, created_at="soon"), "created_at"),
        (envelope("company.updated", {**COMPANY, "updated_at": "x"}), "updated_at"),
        (envelope("company.updated", {**COMPANY, "id": None}), "data.item.id"),
        (envelope("company.updated", {**COMPANY, "plan": "Pro"}), "plan"),
        (envelope("company.deleted", {"id": "a", "company_id": 5}), "company_id"),
        (envelope("company.updated", data=[]), "data"),
    ],
)
def test_malformed_notifications_are_rejected_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(WebhookRejected) as caught:
        parse_notification(body)
    assert reason in caught.value.reason


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
TOPICS = st.sampled_from(["company.created", "company.updated", "company.deleted", "ping", "x"])
ITEM = st.fixed_dictionaries(
    {},
    optional={
        "id": JSON_VALUES | st.text(max_size=5),
        "company_id": JSON_VALUES,
        "updated_at": JSON_VALUES | st.integers(),
        "plan": JSON_VALUES,
        "custom_attributes": JSON_VALUES,
        "name": JSON_VALUES,
    },
)
ENVELOPES = st.fixed_dictionaries(
    {},
    optional={
        "type": st.just("notification_event") | JSON_VALUES,
        "id": st.text(max_size=5) | JSON_VALUES,
        "topic": TOPICS | JSON_VALUES,
        "created_at": st.integers() | JSON_VALUES,
        "data": st.fixed_dictionaries({}, optional={"item": ITEM | JSON_VALUES}) | JSON_VALUES,
    },
)


@settings(max_examples=500, deadline=None)
@given(
    st.binary(max_size=200)
    | JSON_VALUES.map(lambda v: json.dumps(v).encode())
    | ENVELOPES.map(lambda v: json.dumps(v).encode())
)
def test_any_input_parses_or_is_rejected(raw: bytes) -> None:
    # Parsing or WebhookRejected are the only outcomes; any other exception fails the test.
    with contextlib.suppress(WebhookRejected):
        parse_notification(raw)


def test_deeply_nested_json_is_rejected_not_a_crash() -> None:
    with pytest.raises(WebhookRejected):
        parse_notification(b"[" * 100_000 + b"]" * 100_000)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_a_notification_nested_past_the_limit_is_rejected() -> None:
    """Found by the webhook fuzz test: arrays nested hundreds deep in a custom attribute parsed
    and were stored; reading the event back on a deeper stack (a request thread catching the
    read models up) then failed with RecursionError, so the ledger could not decode its own
    event. Nothing Intercom sends nests past four levels."""
    item = {**COMPANY, "custom_attributes": {"tier": nested(500)}}
    with pytest.raises(WebhookRejected, match="nests deeper than 32 levels"):
        parse_notification(envelope("company.updated", item))


def test_a_notification_nested_within_the_limit_is_kept_and_read_back(tmp_path: Any) -> None:
    item = {**COMPANY, "custom_attributes": {"tier": nested(MAX_DEPTH - 5)}}
    notification = parse_notification(envelope("company.updated", item))
    assert notification.fact is not None
    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = open_ledger(url)
    try:
        assert ledger.receive([(notification.id, notification.fact)]).count >= 1
    finally:
        ledger.close()
    again = open_ledger(url)
    try:
        assert "NotificationReceived" in [type(e).__name__ for _, e in again.read_events()]
    finally:
        again.close()
