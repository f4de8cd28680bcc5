"""Run a parsed SOQL :class:`~adapters.simulators.soql_model.Query` over in-memory rows, SOQL-style.

Text compares case-insensitively, ids on their case-sensitive 15-character form, multipicklists
as sets; ``!=`` and ``NOT IN`` match nulls while ordering operators never do; ASC sorts put nulls
first and DESC sorts put them last unless ``NULLS FIRST|LAST`` says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from adapters.simulators.soql_model import (
    ID_TYPES,
    TEXT_TYPES,
    Condition,
    Junction,
    OrderItem,
    Query,
)


def _key(ftype: str, value: Any) -> Any:
    """Comparison key: text compares case-insensitively, ids on their case-sensitive 15 chars."""
    if value is None:
        return None
    if ftype in ID_TYPES:
        return str(value)[:15]
    if ftype == "multipicklist":
        return frozenset(v.strip().casefold() for v in str(value).split(";") if v.strip())
    if ftype in TEXT_TYPES:
        return str(value).casefold()
    return value


_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}


def matches(cond: Condition, row: Mapping[str, Any]) -> bool:
    """Whether ``row`` (field name -> Python value) satisfies ``cond``, with SOQL null rules."""
    if isinstance(cond, Junction):
        if cond.op == "AND":
            return all(matches(p, row) for p in cond.parts)
        if cond.op == "OR":
            return any(matches(p, row) for p in cond.parts)
        return not matches(cond.parts[0], row)
    value = _key(cond.ftype, row.get(cond.field))
    if cond.op in ("IN", "NOT IN"):
        found = value in {_key(cond.ftype, v) for v in cond.value}
        return found if cond.op == "IN" else not found
    if cond.op == "LIKE":
        return value is not None and cond.value.fullmatch(str(row.get(cond.field))) is not None
    literal = _key(cond.ftype, cond.value)
    if cond.op == "=":
        return bool(value == literal)
    if cond.op == "!=":
        return bool(value != literal)
    if value is None or literal is None:
        return False
    return _ORDERING[cond.op](value, literal)


def execute(query: Query, rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Filter, sort, offset and limit ``rows``; projection is left to the caller."""
    selected = [r for r in rows if query.where is None or matches(query.where, r)]
    for item in reversed(query.order_by):
        null_rank = 0 if item.nulls_first != item.descending else 1

        def sort_key(row: Mapping[str, Any], item: OrderItem = item, nr: int = null_rank) -> Any:
            value = _key(item.ftype, row.get(item.field))
            if isinstance(value, frozenset):
                value = ";".join(sorted(value))
            return (nr, 0) if value is None else (1 - nr, value)

        selected.sort(key=sort_key, reverse=item.descending)
    start = query.offset or 0
    end = None if query.limit is None else start + query.limit
    return selected[start:end]
