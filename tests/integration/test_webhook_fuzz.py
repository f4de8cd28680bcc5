"""Hypothesis fuzz tests of ``POST /webhooks/intercom`` (``adapters.http.app``), in process.

The app runs under ``fastapi.testclient.TestClient`` (its lifespan starts the intake's writer
thread) with no sync worker, on a ledger in the in-memory (``popo``) store, shared by the
module's tests: every property compares the ledger just before and just after one request.

What is fuzzed:

* bodies: arbitrary bytes; truncated valid JSON; JSON that is not an object; the
  ``notification_event`` envelope with one field of a wrong type or missing, at every level
  (``type``, ``id``, ``topic``, ``created_at``, ``data``, ``data.item`` and its ``id``,
  ``company_id``, ``updated_at``, ``plan``, ``custom_attributes``, and the unchecked ``name``,
  ``size``, ``website``); unknown topics; JSON nested up to 5,000 deep; bodies around and over
  1 MiB; valid ``company.created`` / ``company.updated`` / ``company.deleted`` notifications;
* headers: the correct ``X-Hub-Signature`` (also with the name in other cases and an upper-case
  digest), a wrong secret, a body tampered with after signing, no header, a header of another
  name, no ``sha1=`` prefix or a wrong one, non-hex, non-ASCII, truncated and empty values.

Properties: no answer is ever 5xx; a 4xx stores nothing (same position, no event after it); an
invalid signature is 401 whatever the body; a signed company notification is 200 and its id is in
the inbox; an unknown topic is 200 "ignored" and stores nothing; the same notification twice is
"accepted" then "duplicate" and stored once; a body over 1 MiB is 413.

Example counts: 1,500 (anything), 500 (invalid signatures), 600 (wrong types), 300 (truncated
JSON), 100 (deep nesting), 500 (valid notifications), 300 (unknown topics), 200 (sent twice), and
6 large bodies (1 MiB, 1 MiB + 1 and 1.3 MiB, with and without Content-Length): 4,006 examples,
plus 7 deterministic cases for the lone-surrogate bug below. About 20 s in all.

A bug this file found: a signed notification with a JSON escape of a lone UTF-16 surrogate
(``"\\ud800"``) was answered 503 (the ledger cannot encode it as UTF-8; Intercom would retry it
forever) or 500 (in an unknown topic). Such bodies are now refused with 400
(:func:`test_a_lone_surrogate_escape_in_a_signed_notification_is_400_and_stores_nothing`).
Hypothesis never generates lone surrogates in text, so the fuzz tests above do not meet it.
"""

from __future__ import annotations

import itertools
import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.exceptions import StarletteDeprecationWarning

from adapters import bootstrap
from adapters.http.app import create_app
from adapters.service.intake import MAX_WEBHOOK_BYTES, WebhookIntake
from adapters.simulators.intercom_webhooks import sign
from ledger import events as ev
from ledger.application import LedgerApp

with warnings.catch_warnings():
    # httpx2 is not among the test dependencies; starlette warns about plain httpx on import.
    warnings.filterwarnings("ignore", message=".*httpx2.*", category=StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

SECRET = "fuzz-client-secret"
URL = "/webhooks/intercom"
HEADER = "X-Hub-Signature"
COMPANY_TOPICS = ("company.created", "company.updated", "company.deleted")
HEX = "0123456789abcdefABCDEF"

FUZZ = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)

# --- the service -----------------------------------------------------------------------------


@dataclass
class Service:
    client: TestClient
    app: LedgerApp

    def post(self, body: bytes | Iterator[bytes], headers: dict[str, bytes]) -> httpx.Response:
        return self.client.post(URL, content=body, headers=headers)


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    app = LedgerApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    intake = WebhookIntake(app, SECRET)
    # A server error is answered 500 (not raised here): the properties are about answers.
    with TestClient(
        create_app(bootstrap.Service(app, intake)), raise_server_exceptions=False
    ) as client:
        yield Service(client, app)


def signed(body: bytes, name: str = HEADER) -> dict[str, bytes]:
    return {name: sign(body, SECRET).encode()}


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def assert_nothing_stored(svc: Service, before: int, response: httpx.Response) -> None:
    assert svc.app.state.position == before, response.text
    assert list(svc.app.read_events(after=before)) == [], response.text


def assert_consistent(svc: Service, before: int, response: httpx.Response) -> None:
    """The answer is not 5xx, a 4xx stored nothing, and a 200 says truly what was stored."""
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code != 200:
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
        assert "error" in response.json()
        assert_nothing_stored(svc, before, response)
        return
    answer = response.json()
    if answer["status"] == "accepted":
        notification_id = answer["id"]
        assert notification_id in svc.app.state.inbox
        assert notification_id in svc.app.state.notifications_seen
        received = [
            e
            for _, e in svc.app.read_events(after=before)
            if isinstance(e, ev.NotificationReceived)
        ]
        assert [e.notification_id for e in received] == [notification_id]
    elif answer["status"] == "duplicate":
        assert answer["id"] in svc.app.state.notifications_seen
        assert_nothing_stored(svc, before, response)
    else:
        assert answer["status"] == "ignored", answer
        assert_nothing_stored(svc, before, response)


# --- JSON ------------------------------------------------------------------------------------

# Hypothesis text never holds lone surrogates, so json.dumps never writes "\udXXX" escapes alone.
texts = st.text(max_size=20)
nonempty = st.text(min_size=1, max_size=20)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | texts
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


def company_item(topic: str) -> st.SearchStrategy[dict[str, Any]]:
    required: dict[str, st.SearchStrategy[Any]] = {"id": nonempty}
    if topic != "company.deleted":
        required["updated_at"] = st.integers()
    return st.fixed_dictionaries(
        required,
        optional={
            "company_id": st.none() | texts,
            "name": texts,
            "size": st.integers(min_value=0, max_value=10**6),
            "website": texts,
            "industry": texts,
            "plan": st.fixed_dictionaries({}, optional={"name": texts, "id": texts}),
            "custom_attributes": st.dictionaries(texts, scalars, max_size=5),
        },
    )


@st.composite
def notifications(draw: st.DrawFn, topics: st.SearchStrategy[str] | None = None) -> dict[str, Any]:
    """A valid company ``notification_event`` (as Python data)."""
    topic = draw(st.sampled_from(COMPANY_TOPICS) if topics is None else topics)
    item = draw(company_item(topic))
    return {
        "type": "notification_event",
        "app_id": "fuzz",
        "id": draw(nonempty),
        "topic": topic,
        "created_at": draw(st.integers(min_value=0, max_value=2**40)),
        "delivery_attempts": 1,
        "data": {"type": "notification_event_data", "item": item},
    }


unknown_topics = st.sampled_from(["ping", "user.created", "contact.tag.created"]) | nonempty.filter(
    lambda t: t not in COMPANY_TOPICS
)

MISSING = object()


def _nonempty_str(v: Any) -> bool:
    return isinstance(v, str) and bool(v)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _str_or_none(v: Any) -> bool:
    return v is None or isinstance(v, str)


def _dict_or_none(v: Any) -> bool:
    return v is None or isinstance(v, dict)


def _anything(_: Any) -> bool:
    return True


#: (path in the envelope, what a valid value is, whether it may be missing, the topics it
#: matters for); fields whose check is ``_anything`` are not checked by the endpoint.
FIELDS: list[tuple[tuple[str, ...], Callable[[Any], bool], bool, tuple[str, ...]]] = [
    (("type",), lambda v: v == "notification_event", False, COMPANY_TOPICS),
    (("id",), _nonempty_str, False, COMPANY_TOPICS),
    (("topic",), _nonempty_str, False, COMPANY_TOPICS),
    (("created_at",), _int, False, COMPANY_TOPICS),
    (("data",), lambda v: isinstance(v, dict), False, COMPANY_TOPICS),
    (("data", "item"), lambda v: isinstance(v, dict), False, COMPANY_TOPICS),
    (("data", "item", "id"), _nonempty_str, False, COMPANY_TOPICS),
    (("data", "item", "company_id"), _str_or_none, True, COMPANY_TOPICS),
    (("data", "item", "updated_at"), _int, False, COMPANY_TOPICS[:2]),
    (("data", "item", "plan"), _dict_or_none, True, COMPANY_TOPICS[:2]),
    (("data", "item", "custom_attributes"), _dict_or_none, True, COMPANY_TOPICS[:2]),
    (("data", "item", "name"), _anything, True, COMPANY_TOPICS),
    (("data", "item", "size"), _anything, True, COMPANY_TOPICS),
    (("data", "item", "website"), _anything, True, COMPANY_TOPICS),
]


@st.composite
def wrong_envelopes(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A notification with one field wrong or missing, or JSON that is not an object, and
    whether the endpoint must refuse it (400)."""
    if draw(st.integers(0, 9)) == 0:
        return dumps(draw(json_values.filter(lambda v: not isinstance(v, dict)))), True
    path, valid, optional, topics = draw(st.sampled_from(FIELDS))
    envelope = draw(notifications(st.sampled_from(topics)))
    parent = envelope
    for key in path[:-1]:
        parent = parent[key]
    wrong = json_values if valid is _anything else json_values.filter(lambda v: not valid(v))
    value = draw(wrong | st.just(MISSING)) if not optional else draw(wrong)
    if value is MISSING:
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value
    return dumps(envelope), valid is not _anything


@st.composite
def truncated(draw: st.DrawFn) -> bytes:
    """A proper prefix of a valid notification: never valid JSON."""
    body = dumps(draw(notifications()))
    return body[: draw(st.integers(0, len(body) - 1))]


@st.composite
def deeply_nested(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(1, 5000) | st.sampled_from([900, 990, 1000, 5000]))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"k":', "}")]))
    nested = opener * depth + "1" + closer * depth
    if draw(st.booleans()):
        return nested.encode()
    envelope = draw(notifications(st.sampled_from(COMPANY_TOPICS[:2])))
    envelope["data"]["item"]["custom_attributes"] = {"deep": "@@"}
    return dumps(envelope).replace(b'"@@"', nested.encode())


bodies = st.one_of(
    st.binary(max_size=2048),
    truncated(),
    wrong_envelopes().map(lambda pair: pair[0]),
    notifications().map(dumps),
    notifications(unknown_topics).map(dumps),
    deeply_nested(),
)

# --- headers ---------------------------------------------------------------------------------

header_names = st.sampled_from([HEADER, "x-hub-signature", "X-HUB-SIGNATURE", "x-Hub-signaturE"])
printable = st.characters(exclude_categories=("Cc", "Cs"))


@st.composite
def invalid_signatures(draw: st.DrawFn, body: bytes) -> tuple[bytes, dict[str, bytes]]:
    """``(body to send, headers)`` whose signature does not verify ``body to send``."""
    digest = sign(body, SECRET).removeprefix("sha1=")
    kind = draw(
        st.sampled_from(
            [
                "wrong_secret",
                "tampered",
                "missing",
                "other_name",
                "no_prefix",
                "wrong_prefix",
                "non_hex",
                "non_ascii",
                "truncated",
                "empty",
            ]
        )
    )
    value: str | bytes
    if kind == "wrong_secret":
        secret = draw(texts.filter(lambda s: s != SECRET))
        return body, {HEADER: sign(body, secret).encode()}
    if kind == "tampered":
        if body and draw(st.booleans()):
            at = draw(st.integers(0, len(body) - 1))
            flip = draw(st.integers(1, 255))
            sent = body[:at] + bytes([body[at] ^ flip]) + body[at + 1 :]
        else:
            sent = body + draw(st.binary(min_size=1, max_size=8))
        return sent, signed(body, draw(header_names))
    if kind == "missing":
        return body, {}
    if kind == "other_name":
        name = draw(st.sampled_from(["X-Hub-Signature-256", "X-Signature", "Signature"]))
        return body, {name: f"sha1={digest}".encode()}
    if kind == "no_prefix":
        value = digest
    elif kind == "wrong_prefix":
        value = draw(st.sampled_from(["SHA1=", "sha256=", "sha1:", "sha1 ", " sha1=", "md5="]))
        value += digest
    elif kind == "non_hex":
        chars = draw(st.lists(printable, min_size=40, max_size=40))
        if all(c in HEX for c in chars):
            chars[draw(st.integers(0, 39))] = "g"
        value = "sha1=" + "".join(chars)
    elif kind == "non_ascii":
        extra = draw(
            st.text(st.characters(min_codepoint=0x80, exclude_categories=("Cs",)), min_size=1)
        )
        at = draw(st.integers(0, 40))
        value = "sha1=" + digest[:at] + extra + digest[at:]
    elif kind == "truncated":
        value = "sha1=" + digest[: draw(st.integers(0, 39))]
    else:
        value = draw(st.sampled_from(["", " ", "sha1=", "sha1", "="]))
    return body, {draw(header_names): value.encode("utf-8")}


@st.composite
def valid_signatures(draw: st.DrawFn, body: bytes) -> dict[str, bytes]:
    digest = sign(body, SECRET).removeprefix("sha1=")
    if draw(st.booleans()):
        digest = digest.upper()
    return {draw(header_names): f"sha1={digest}".encode()}


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, dict[str, bytes], bool]:
    """Any body with any header: ``(body, headers, whether the signature is valid)``."""
    body = draw(bodies)
    if draw(st.booleans()):
        return body, draw(valid_signatures(body)), True
    sent, headers = draw(invalid_signatures(body))
    return sent, headers, False


# --- properties ------------------------------------------------------------------------------


@settings(FUZZ, max_examples=1500)
@given(request=requests())
def test_any_request_is_never_5xx_and_a_4xx_stores_nothing(
    service: Service, request: tuple[bytes, dict[str, bytes], bool]
) -> None:
    body, headers, valid = request
    before = service.app.state.position
    response = service.post(body, headers)
    assert_consistent(service, before, response)
    if not valid:
        assert response.status_code == 401, response.text


@settings(FUZZ, max_examples=500)
@given(data=st.data(), body=bodies)
def test_an_invalid_signature_is_401_and_stores_nothing(
    service: Service, data: st.DataObject, body: bytes
) -> None:
    sent, headers = data.draw(invalid_signatures(body))
    before = service.app.state.position
    response = service.post(sent, headers)
    assert response.status_code == 401, response.text
    assert_nothing_stored(service, before, response)


@settings(FUZZ, max_examples=600)
@given(case=wrong_envelopes())
def test_a_field_of_a_wrong_type_or_missing_is_400_and_stores_nothing(
    service: Service, case: tuple[bytes, bool]
) -> None:
    body, refused = case
    before = service.app.state.position
    response = service.post(body, signed(body))
    assert_consistent(service, before, response)
    if refused:
        assert response.status_code == 400, response.text


@settings(FUZZ, max_examples=300)
@given(body=truncated())
def test_truncated_json_is_400_and_stores_nothing(service: Service, body: bytes) -> None:
    before = service.app.state.position
    response = service.post(body, signed(body))
    assert response.status_code == 400, response.text
    assert_nothing_stored(service, before, response)


@settings(FUZZ, max_examples=100)
@given(body=deeply_nested())
def test_deeply_nested_json_is_never_5xx(service: Service, body: bytes) -> None:
    before = service.app.state.position
    response = service.post(body, signed(body))
    assert_consistent(service, before, response)


@settings(FUZZ, max_examples=500)
@given(data=st.data(), notification=notifications())
def test_a_signed_company_notification_is_200_and_in_the_inbox(
    service: Service, data: st.DataObject, notification: dict[str, Any]
) -> None:
    body = dumps(notification)
    before = service.app.state.position
    response = service.post(body, data.draw(valid_signatures(body)))
    assert response.status_code == 200, response.text
    assert response.json()["status"] in ("accepted", "duplicate")
    assert response.json()["id"] == notification["id"]
    assert notification["id"] in service.app.state.notifications_seen
    assert_consistent(service, before, response)


@settings(FUZZ, max_examples=300)
@given(notification=notifications(unknown_topics))
def test_an_unknown_topic_is_ignored_and_stores_nothing(
    service: Service, notification: dict[str, Any]
) -> None:
    body = dumps(notification)
    before = service.app.state.position
    response = service.post(body, signed(body))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ignored"
    assert_nothing_stored(service, before, response)


_fresh = itertools.count()


@settings(FUZZ, max_examples=200)
@given(notification=notifications())
def test_the_same_notification_twice_is_accepted_then_duplicate_and_stored_once(
    service: Service, notification: dict[str, Any]
) -> None:
    notification["id"] = f"twice-{next(_fresh)}-{notification['id']}"
    body = dumps(notification)
    before = service.app.state.position
    first = service.post(body, signed(body))
    assert first.status_code == 200, first.text
    assert first.json() == {"status": "accepted", "id": notification["id"]}
    after_first = service.app.state.position
    second = service.post(body, signed(body))
    assert second.status_code == 200, second.text
    assert second.json() == {"status": "duplicate", "id": notification["id"]}
    assert_nothing_stored(service, after_first, second)
    received = [
        e.notification_id
        for _, e in service.app.read_events(after=before)
        if isinstance(e, ev.NotificationReceived)
    ]
    assert received == [notification["id"]]


@pytest.mark.parametrize("chunked", [False, True], ids=["content_length", "chunked"])
@pytest.mark.parametrize("extra", [0, 1, 300_000], ids=["1_MiB", "1_MiB_plus_1", "1.3_MiB"])
@settings(FUZZ, max_examples=1)
@given(notification=notifications())
def test_a_body_over_1_mib_is_413_and_stores_nothing(
    service: Service, notification: dict[str, Any], extra: int, chunked: bool
) -> None:
    """Padded with JSON whitespace to ``MAX_WEBHOOK_BYTES + extra`` bytes: valid JSON; exactly
    1 MiB is still accepted."""
    notification["id"] = f"large-{next(_fresh)}"
    core = dumps(notification)
    body = core + b" " * (MAX_WEBHOOK_BYTES + extra - len(core))
    before = service.app.state.position
    content: bytes | Iterator[bytes] = body
    if chunked:  # no Content-Length: the endpoint counts while it reads
        content = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
    response = service.post(content, signed(body))
    if len(body) > MAX_WEBHOOK_BYTES:
        assert response.status_code == 413, response.text
        assert_nothing_stored(service, before, response)
    else:
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "accepted", "id": notification["id"]}


# --- the known bug ---------------------------------------------------------------------------

LONE_SURROGATE = "\ud800"


@pytest.mark.parametrize(
    "where",
    [
        "id",
        "item.id",
        "item.company_id",
        "item.name",
        "custom_attribute_key",
        "custom_attribute",
        "unknown_topic",
    ],
)
def test_a_lone_surrogate_escape_in_a_signed_notification_is_400_and_stores_nothing(
    service: Service, where: str
) -> None:
    item: dict[str, Any] = {"id": f"c-{where}", "updated_at": 1, "custom_attributes": {}}
    envelope: dict[str, Any] = {
        "type": "notification_event",
        "id": f"surrogate-{where}",
        "topic": "company.updated",
        "created_at": 1,
        "data": {"item": item},
    }
    if where == "id":
        envelope["id"] += LONE_SURROGATE
    elif where == "custom_attribute_key":
        item["custom_attributes"][LONE_SURROGATE] = 1
    elif where == "custom_attribute":
        item["custom_attributes"]["x"] = LONE_SURROGATE
    elif where == "unknown_topic":
        envelope["topic"] = f"ping{LONE_SURROGATE}"
    else:
        item[where.removeprefix("item.")] = f"x{LONE_SURROGATE}"
    body = dumps(envelope)  # ensure_ascii: the body is ASCII with a "\ud800" escape
    assert b"\\ud800" in body
    before = service.app.state.position
    response = service.post(body, signed(body))
    assert response.status_code == 400, (response.status_code, response.text)
    assert_consistent(service, before, response)
