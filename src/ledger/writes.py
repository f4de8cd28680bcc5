"""Attribute decisions as typed records: planned writes, skips, rejections, and API calls.

:func:`ledger.decisions.Decider.plan_sync` judges each mapped attribute of a record pair and
ends with one of three records, all sharing the fields of :class:`AttributeDecision`:

* :class:`PlannedWrite`: the value to send (it gets a ``write_id``; the state keeps it pending
  until an outcome closes it);
* :class:`SkippedWrite`: a rule held the value back (``rule``, one of :data:`SKIP_RULES`);
* :class:`RejectedWrite`: the destination cannot take the value (``reason``).

The events store each as a plain JSON object (``SyncPlanned.planned``, ``WriteApplied.write``,
...), exactly as the ledger always has, so existing ledgers and their hash chain are unchanged:
:meth:`~AttributeDecision.stored` gives that object (keys in their historical order) and
``from_stored`` reads it back. Nothing else reads the stored form by key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Self

from ledger.config import AttributeMapping


@dataclass(frozen=True)
class AttributeDecision:
    """What every decision about one mapped attribute of one destination record records.

    ``field`` and ``type`` are the destination field and its type; ``source_*`` say where the
    value comes from; ``before`` is the destination's value when it was decided; ``mapping``
    the attribute mapping (with its skip rules) and ``config_version`` the configuration it
    was decided under; ``company_id`` the mapping's identifier value; ``trigger`` and ``cause``
    the trigger and the event (``<stream>:<version>``) that led to it.
    """

    field: str
    type: str
    source_system: str
    source_record_id: str
    source_field: str
    source_value: Any
    before: Any
    mapping: AttributeMapping
    skip_if_source_empty: bool
    skip_if_destination_has_value: bool
    config_version: int
    company_id: str
    trigger: str
    cause: str

    def stored(self) -> dict[str, Any]:
        """The JSON object the events store (field order is the stored key order)."""
        values = self.__dict__
        out = {name: values[name] for name in _names(type(self))}
        out["mapping"] = self.mapping.to_dict()
        return out

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> Self:
        """The record :meth:`stored` gave ``data`` for.

        Built as ``eventsourcing``'s mapper builds a stored event, without ``__init__`` (which
        only assigns the fields, one by one, at several times the cost): a ledger's rebuild and
        its projections read one of these per planned write and per outcome.
        """
        values = dict(data)
        if values.keys() != _fields(cls):  # (a KeyError names a missing field)
            values = {name: data[name] for name in _names(cls)}
        values["mapping"] = _mapping(values["mapping"])
        record = object.__new__(cls)
        object.__setattr__(record, "__dict__", values)
        return record

    def planned(self, write_id: str, value: Any) -> PlannedWrite:
        """This decision as the write of ``value``."""
        return PlannedWrite(**self._shared(), write_id=write_id, value=value)

    def skipped(self, rule: str, value: Any) -> SkippedWrite:
        """This decision as ``value`` held back by ``rule``."""
        return SkippedWrite(**self._shared(), rule=rule, value=value)

    def rejected(self, reason: str) -> RejectedWrite:
        """This decision as a value the destination cannot take."""
        return RejectedWrite(**self._shared(), reason=reason)

    def _shared(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _names(AttributeDecision)}


@dataclass(frozen=True)
class PlannedWrite(AttributeDecision):
    """A value to write to the destination field; ``write_id`` names it until its outcome."""

    write_id: str
    value: Any


@dataclass(frozen=True)
class SkippedWrite(AttributeDecision):
    """A value a rule held back (``rule``: ``source_empty``, ``destination_has_value``,
    ``already_equal``); ``value`` is the converted value, ``None`` when the source is empty."""

    rule: str
    value: Any


@dataclass(frozen=True)
class RejectedWrite(AttributeDecision):
    """A source value the destination field cannot take, and why."""

    reason: str


@dataclass(frozen=True, slots=True)
class ApiCall:
    """The API request that carried an applied (or refused) write.

    ``request`` is what the adapter reported of it (method, path, status, attempts, records in
    the request, ...), kept as given; it is stored after the four named fields.
    """

    system: str
    operation: str
    record_id: str
    fields: tuple[str, ...]
    request: Mapping[str, Any]

    def stored(self) -> dict[str, Any]:
        """The JSON object ``WriteApplied.api_call`` stores."""
        return {
            "system": self.system,
            "operation": self.operation,
            "record_id": self.record_id,
            "fields": list(self.fields),
            **self.request,
        }


_NAMES: dict[type[AttributeDecision], tuple[str, ...]] = {}
_FIELDS: dict[type[AttributeDecision], frozenset[str]] = {}
#: Stored mappings already read, by their values: a ledger holds a handful of distinct ones,
#: and a rebuild reads one per planned write and per outcome.
_MAPPINGS: dict[tuple[Any, ...], AttributeMapping] = {}


def _mapping(data: Mapping[str, Any]) -> AttributeMapping:
    key = tuple(data.items())
    found = _MAPPINGS.get(key)
    if found is None:
        found = AttributeMapping.from_dict(data)
        if len(_MAPPINGS) < 10_000:
            _MAPPINGS[key] = found
    return found


def _names(cls: type[AttributeDecision]) -> tuple[str, ...]:
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def _fields(cls: type[AttributeDecision]) -> frozenset[str]:
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = frozenset(_names(cls))
    return found
