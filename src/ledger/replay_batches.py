"""A replay batch's records: the writes planned for the target org, and what it answered.

``ReplayBatchPlanned.writes`` and ``ReplayBatchApplied.results`` store these as JSON objects,
as they always have; :meth:`stored` gives that object and ``from_stored`` reads it back, so the
stored form is read by key nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ReplayWrite:
    """One field to write on one target account (``key``: its identifier value; ``mapping``:
    the attribute mapping's label; ``before``: the target's value when planned)."""

    record_id: str
    key: str
    field: str
    before: Any
    value: Any
    type: str
    mapping: str

    def stored(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "key": self.key,
            "field": self.field,
            "before": self.before,
            "value": self.value,
            "type": self.type,
            "mapping": self.mapping,
        }

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> ReplayWrite:
        return cls(
            record_id=str(data["record_id"]),
            key=str(data["key"]),
            field=str(data["field"]),
            before=data["before"],
            value=data["value"],
            type=str(data["type"]),
            mapping=str(data["mapping"]),
        )


@dataclass(frozen=True, slots=True)
class RecordAnswer:
    """What the target org answered for one record of a batch (``fields``: the refused ones,
    when it named them)."""

    record_id: str
    ok: bool
    code: str
    message: str
    fields: tuple[str, ...]
    retryable: bool

    @property
    def may_succeed_later(self) -> bool:
        """Refused for now: the same write may be accepted later."""
        return self.retryable and not self.ok

    def stored(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "ok": self.ok,
            "code": self.code,
            "message": self.message,
            "fields": list(self.fields),
            "retryable": self.retryable,
        }

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> RecordAnswer:
        return cls(
            record_id=str(data["record_id"]),
            ok=bool(data["ok"]),
            code=str(data["code"]),
            message=str(data["message"]),
            fields=tuple(data["fields"]),
            retryable=bool(data["retryable"]),
        )


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """One batch sent: each record's answer, the records found already holding the planned
    values (not sent again), and the API calls it took."""

    answers: Sequence[RecordAnswer]
    already: Sequence[str]
    api_calls: int
