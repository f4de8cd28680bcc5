"""Attribute writes: planned (with the values held back or rejected), skipped, applied, failed.

Each planned write is stored as a JSON object and read as a :class:`ledger.writes.PlannedWrite`
through the properties here.
"""

from __future__ import annotations

from typing import Any

from ledger.events.base import LedgerEvent
from ledger.writes import PlannedWrite, RejectedWrite, SkippedWrite

# --- attribute writes --------------------------------------------------------------------


class SyncPlanned(LedgerEvent):
    """One trigger's attribute decisions for one destination record.

    ``planned``: writes to send; ``skipped``: values a rule held back; ``rejected``: values the
    destination cannot take. Each is stored as JSON objects; read them as
    :attr:`writes`, :attr:`skips` and :attr:`rejections` (:mod:`ledger.writes`).
    """

    system: str
    record_id: str
    company_id: str
    trigger: str
    cause: str
    config_version: int
    planned: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    rejected: list[dict[str, Any]]

    @property
    def writes(self) -> list[PlannedWrite]:
        return [PlannedWrite.from_stored(d) for d in self.planned]

    @property
    def skips(self) -> list[SkippedWrite]:
        return [SkippedWrite.from_stored(d) for d in self.skipped]

    @property
    def rejections(self) -> list[RejectedWrite]:
        return [RejectedWrite.from_stored(d) for d in self.rejected]


class WriteEvent(LedgerEvent):
    """An event about one planned write (``write``, stored as a JSON object; read it as
    :attr:`planned_write`)."""

    system: str
    record_id: str
    write: dict[str, Any]

    @property
    def planned_write(self) -> PlannedWrite:
        return PlannedWrite.from_stored(self.write)

    @property
    def write_id(self) -> str:
        """The planned write's id (cheaper than :attr:`planned_write` when it is all one needs)."""
        return str(self.write["write_id"])


class WriteSkipped(WriteEvent):
    """A planned write will not be sent after all (``rule`` says why)."""

    rule: str
    detail: str
    cause: str


class WriteApplied(WriteEvent):
    """The destination accepted a write. ``before`` is its value just before the write;
    ``api_call`` the request that carried it (:meth:`ledger.writes.ApiCall.stored`, ``{}``
    when none was reported)."""

    before: Any
    api_call: dict[str, Any]


class WriteFailed(WriteEvent):
    """The destination refused a write, or the call failed; retryable ones stay pending."""

    error: str
    code: str
    retryable: bool
    attempt: int


SKIP_RULES = (
    "source_empty",
    "destination_has_value",
    "already_equal",
    "no_mapping",
    "superseded",
    "configuration_changed",
    "retries_exhausted",
)
