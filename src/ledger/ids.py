"""Deterministic identifiers: every stream id and write id derives from natural keys.

Replaying the same facts therefore yields the same ids, with no random generator to inject.
"""

from __future__ import annotations

from uuid import UUID, uuid5

NAMESPACE = UUID("6f1c3e2a-7d4b-5c8e-9a10-2b3c4d5e6f70")


def stream_id(kind: str, *key: str) -> UUID:
    """The stream (``originator_id``) for ``kind`` and its natural key."""
    return uuid5(NAMESPACE, kind + ":" + "\x1f".join(key))


CONFIG_STREAM = stream_id("configuration")
HEAD_STREAM = stream_id("head")
INBOX_STREAM = stream_id("inbox")


def company_stream(intercom_id: str) -> UUID:
    return stream_id("company", intercom_id)


def account_stream(salesforce_id: str) -> UUID:
    return stream_id("account", salesforce_id)


def record_stream(system: str, record_id: str) -> UUID:
    """The stream of a record in ``system`` ("salesforce" or "intercom")."""
    return account_stream(record_id) if system == "salesforce" else company_stream(record_id)


def identity_stream(company_id: str) -> UUID:
    return stream_id("identity", company_id)


def system_stream(system: str) -> UUID:
    """The stream of facts about a whole system (API usage, resyncs)."""
    return stream_id("system", system)


def lookup_stream(system: str, field: str, key: str) -> UUID:
    return stream_id("lookup", system, field, key)


def write_id(cause: str, system: str, record_id: str, field: str) -> str:
    """The id of the write of ``field`` on a record that the event ``cause`` planned."""
    return str(stream_id("write", cause, system, record_id, field))
