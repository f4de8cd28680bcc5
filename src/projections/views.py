"""What the audit read API returns: pydantic models, ready for JSON (FastAPI, ``--format json``).

Times are timezone-aware UTC datetimes; ``position`` is the ledger position (notification id)
of the event a row comes from, the one total order of the ledger.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Category = Literal[
    "observation",
    "deletion",
    "lookup",
    "mapping",
    "unmapping",
    "write_planned",
    "write_skipped",
    "write_rejected",
    "write_applied",
    "write_failed",
    "ignored",
    "not_synced",
    "echo",
]
WriteStatus = Literal["planned", "retrying", "applied", "skipped", "failed"]
ExplainStatus = Literal["synced", "not_synced", "ignored", "deleted", "unknown"]


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class MappingView(_View):
    """One identity mapping (company ↔ account), with when and why it began and ended."""

    company_id: str
    intercom_id: str
    salesforce_id: str
    identifier_field: str
    config_version: int
    trigger: str
    cause: str
    mapped_at: datetime
    mapped_position: int
    unmapped_at: datetime | None = None
    unmapped_position: int | None = None
    unmap_reason: str | None = None
    unmap_cause: str | None = None


class MappingTable(_View):
    """The mapping table right after ledger position ``position`` (the last one at or before
    ``as_of`` when asked by instant), by ``company_id``. ``next_after`` is the cursor for the
    next page (pass it as ``after``), ``None`` on the last page."""

    as_of: datetime | None
    position: int
    mappings: list[MappingView]
    next_after: str | None = None


class TimelineEntry(_View):
    """One thing that happened to a record: an observation, a mapping change, a write decision
    or outcome. ``event`` is the ledger event's type, ``cause`` the reference
    (``<stream>:<version>``) of the event that caused it, ``details`` the rest. In a record's
    history the cause is resolved too: ``cause_position`` and ``cause_summary`` are that event's
    position and summary (``None`` when it left no timeline entry)."""

    position: int
    seq: int
    at: datetime
    event: str
    category: Category
    summary: str
    field: str | None = None
    cause: str | None = None
    cause_position: int | None = None
    cause_summary: str | None = None
    config_version: int | None = None
    details: dict[str, Any]


class RecordHistory(_View):
    """A company's or an account's timeline, oldest first. ``known`` is false when the ledger
    has never seen the record (``entries`` is then empty)."""

    system: Literal["intercom", "salesforce"]
    record_id: str
    known: bool
    company_id: str | None = None
    deleted: bool = False
    entries: list[TimelineEntry]


class WriteEntry(_View):
    """An applied write: the destination value before it, the value written, the rules of the
    mapping that allowed it (``rules`` lists its flags set: ``skip_if_source_empty``,
    ``skip_if_destination_has_value``; empty for an unconditional mapping), the configuration
    version, the causing event and the API call that carried it. ``overwrite`` is true when the
    destination held a different non-empty value."""

    position: int
    at: datetime
    write_id: str
    system: Literal["intercom", "salesforce"]
    record_id: str
    company_id: str
    field: str
    source_system: str
    source_record_id: str
    source_field: str
    source_value: Any = None
    before: Any = None
    value: Any = None
    overwrite: bool
    rules: list[str]
    config_version: int
    trigger: str
    cause: str
    planned_position: int | None = None
    api_call: dict[str, Any]


class WriteStatusView(_View):
    """A planned write and where it stands (planned, retrying, applied, skipped, failed)."""

    write_id: str
    system: Literal["intercom", "salesforce"]
    record_id: str
    field: str
    value: Any = None
    source_system: str
    source_record_id: str
    company_id: str
    status: WriteStatus
    attempts: int
    rule: str | None = None
    error: str | None = None
    config_version: int
    planned_at: datetime
    planned_position: int
    closed_at: datetime | None = None
    closed_position: int | None = None


class IgnoredRecord(_View):
    """A record the ledger never syncs (person account, company without ``company_id``)."""

    system: Literal["intercom", "salesforce"]
    record_id: str
    reason: str
    cause: str
    at: datetime
    position: int


class RejectedValue(_View):
    """A value the destination cannot take (e.g. outside a restricted picklist)."""

    position: int
    seq: int
    at: datetime
    system: Literal["intercom", "salesforce"]
    record_id: str
    company_id: str
    field: str
    source_field: str
    source_value: Any = None
    reason: str
    config_version: int
    cause: str


class ApiUsagePoint(_View):
    """One recorded API usage reading (``ApiUsageObserved``) and the budget tier it meant."""

    position: int
    at: datetime
    system: str
    used: int
    limit: int
    allocation: int | None = None
    tier: str


class Explanation(_View):
    """Why a company or an account is (or is not) synced, from the ledger's events.

    ``status``: ``synced`` (mapped; ``mapping`` says by which key, when, under which
    configuration), ``not_synced`` (the last decision's reason, e.g. no counterpart with that
    key), ``ignored`` (never synced, and why), ``deleted``, or ``unknown`` (the ledger has never
    seen it). ``summary`` says it in one sentence; ``chain`` is the causal chain of events behind
    the answer, oldest first; ``pending_writes`` and ``failed_writes`` are writes to or from the
    record that have not (yet) gone through.
    """

    subject: Literal["company", "account"]
    system: Literal["intercom", "salesforce"]
    record_id: str | None
    company_id: str | None
    status: ExplainStatus
    synced: bool
    summary: str
    mapping: MappingView | None = None
    counterpart_id: str | None = None
    chain: list[TimelineEntry]
    pending_writes: list[WriteStatusView]
    failed_writes: list[WriteStatusView]
    position: int
