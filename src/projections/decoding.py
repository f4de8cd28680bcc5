"""Decoding stored ledger events fast, for the projector (the mapper is the fallback)."""

from __future__ import annotations

from datetime import datetime

from eventsourcing.persistence import Notification

from ledger import events as ev

try:  # optional: decodes stored events about 3x as fast as json
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - without orjson, the standard library's decoder
    from json import loads as _loads  # type: ignore[assignment]

#: The one custom-typed value in a ledger event's stored state: its timestamp.
_TIMESTAMP = b'"_type_"'


def fast_decode(notification: Notification) -> ev.LedgerEvent | None:
    """The event as ``Mapper.to_domain_event`` builds it, with the C JSON decoder and no
    object hook: ledger events hold JSON values only, but for their ``timestamp``. ``None`` when
    the state holds anything else (the mapper then decodes it)."""
    cls = ev.EVENT_CLASSES.get(notification.topic)
    state = notification.state
    if cls is None or getattr(cls, "class_version", 1) != 1 or state.count(_TIMESTAMP) != 1:
        return None
    try:
        data = _loads(state)
    except ValueError:  # NaN, integers past 64 bits: orjson refuses what json takes
        return None
    stamp = data.get("timestamp")
    if type(stamp) is not dict or stamp.get("_type_") != "datetime_iso" or len(stamp) != 2:
        return None
    if "class_version" in data:
        return None
    data["timestamp"] = datetime.fromisoformat(stamp["_data_"])
    data["originator_id"] = notification.originator_id
    data["originator_version"] = notification.originator_version
    event = object.__new__(cls)
    object.__setattr__(event, "__dict__", data)
    return event
