"""The SOQL subset's query model: field types, the parsed :class:`Query` and its conditions.

:mod:`.soql` builds these from query text; :mod:`.soql_eval` runs them over rows. The describe
metadata of the Salesforce simulator satisfies :class:`FieldLike`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

TEXT_TYPES = frozenset(
    {"string", "textarea", "picklist", "multipicklist", "combobox", "url", "phone", "email"}
)
ID_TYPES = frozenset({"id", "reference"})
NUMBER_TYPES = frozenset({"int", "long", "double", "currency", "percent"})
ID_RE = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")


class SoqlError(Exception):
    """A query Salesforce would refuse; ``code`` is the REST errorCode (MALFORMED_QUERY, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FieldLike(Protocol):
    """What the parser needs to know about a field (the describe metadata satisfies it)."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def filterable(self) -> bool: ...
    @property
    def sortable(self) -> bool: ...


@dataclass(frozen=True)
class Entity:
    """A queryable sObject: its API name and its fields keyed by lower-cased name."""

    name: str
    fields: Mapping[str, FieldLike]


@dataclass(frozen=True)
class Comparison:
    field: str
    ftype: str
    op: str  # =, !=, <, <=, >, >=, LIKE, IN, NOT IN
    value: Any  # a literal, a tuple of literals for IN, a compiled regex for LIKE


@dataclass(frozen=True)
class Junction:
    op: str  # AND, OR, NOT
    parts: tuple[Condition, ...]


Condition = Comparison | Junction


@dataclass(frozen=True)
class OrderItem:
    field: str
    ftype: str
    descending: bool
    nulls_first: bool


@dataclass(frozen=True)
class Query:
    """A parsed, type-checked query. ``fields`` holds describe-cased names."""

    entity: str
    fields: tuple[str, ...]
    count_only: bool
    where: Condition | None
    order_by: tuple[OrderItem, ...]
    limit: int | None
    offset: int | None
