"""Intercom webhook intake without a web framework: verify, parse, de-duplicate.

Intercom signs each delivery with ``X-Hub-Signature: sha1=<hex HMAC-SHA1 of the raw body>``
keyed by the app's client secret (reference B8). Deliveries are at least once and unordered, so
the receiver de-duplicates on the notification ``id``; ordering is left to the ledger, which
compares ``updated_at``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.intercom.companies import company_to_change
from ledger.errors import SyncLedgerError
from ledger.facts import CompanyChange, CompanyKind, CompanyRemoval

__all__ = [
    "Notification",
    "WebhookRejected",
    "parse_notification",
    "verify_signature",
]

_PREFIX = "sha1="
#: The deepest nesting of objects and arrays a webhook body may have.
MAX_DEPTH = 32
_KINDS: Mapping[str, CompanyKind] = {"company.created": "created", "company.updated": "updated"}


class WebhookRejected(SyncLedgerError):
    """The webhook body cannot be accepted; ``reason`` says why (safe to log and return)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Notification:
    """One ``notification_event``; ``fact`` is None for topics the ledger ignores (``ping``)."""

    id: str
    topic: str
    created_at: int
    fact: CompanyChange | CompanyRemoval | None


def verify_signature(raw_body: bytes, header: str | None, client_secret: str) -> bool:
    """True if ``header`` is ``sha1=`` + the hex HMAC-SHA1 of ``raw_body`` under the secret."""
    if not header or not header.startswith(_PREFIX):
        return False
    expected = hmac.new(client_secret.encode(), raw_body, hashlib.sha1).hexdigest()
    given = header[len(_PREFIX) :].strip().lower()
    # compare_digest refuses non-ASCII str; such a header is simply not a valid signature.
    if not given.isascii():
        return False
    return hmac.compare_digest(expected, given)


def _str(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise WebhookRejected(f"{where}.{key} must be a non-empty string")
    return value


def _int(data: Mapping[str, Any], key: str, where: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise WebhookRejected(f"{where}.{key} must be an integer")
    return value


def _object(data: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise WebhookRejected(f"{where}.{key} must be an object")
    return value


def _company_fact(topic: str, item: dict[str, Any]) -> CompanyChange | CompanyRemoval:
    intercom_id = _str(item, "id", "data.item")
    company_id = item.get("company_id")
    if company_id is not None and not isinstance(company_id, str):
        raise WebhookRejected("data.item.company_id must be a string or null")
    if topic == "company.deleted":
        return CompanyRemoval(intercom_id=intercom_id, company_id=company_id, source="webhook")
    _int(item, "updated_at", "data.item")
    for key in ("plan", "custom_attributes"):
        if item.get(key) is not None and not isinstance(item[key], dict):
            raise WebhookRejected(f"data.item.{key} must be an object")
    return company_to_change(item, _KINDS[topic], "webhook")


def _too_deep(value: Any, limit: int) -> bool:
    """True if ``value`` nests objects/arrays more than ``limit`` levels (no recursion)."""
    level: list[Any] = [value]
    for _ in range(limit):
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return True


def parse_notification(raw_body: bytes) -> Notification:
    """Parse a verified webhook body; raise :class:`WebhookRejected` for anything malformed."""
    try:
        data = json.loads(raw_body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise WebhookRejected("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise WebhookRejected("body must be a JSON object")
    if _too_deep(data, MAX_DEPTH):
        # Intercom's company payloads nest four levels; a deeper body would be stored, then fail
        # to decode from the ledger (the decoder's recursion limit is below the parser's).
        raise WebhookRejected(f"body nests deeper than {MAX_DEPTH} levels")
    try:  # JSON may escape a lone surrogate ("\ud800"): no UTF-8 text can hold it
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError, RecursionError):
        raise WebhookRejected("body holds an invalid Unicode escape") from None
    if data.get("type") != "notification_event":
        raise WebhookRejected("type must be 'notification_event'")
    notification_id = _str(data, "id", "notification")
    topic = _str(data, "topic", "notification")
    created_at = _int(data, "created_at", "notification")
    fact: CompanyChange | CompanyRemoval | None = None
    if topic in _KINDS or topic == "company.deleted":
        item = _object(_object(data, "data", "notification"), "item", "data")
        fact = _company_fact(topic, item)
    return Notification(id=notification_id, topic=topic, created_at=created_at, fact=fact)
