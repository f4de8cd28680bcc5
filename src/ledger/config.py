"""Sync configuration: the field that identifies an account, and which attributes flow where.

The file format (TOML) is public: users and other tools write it.

.. code-block:: toml

    [identifier]
    salesforce_field = "AccountNumber"      # matched against the Intercom company_id

    [[attribute]]
    intercom = "name"                        # standard attribute, or "custom_attributes.<name>"
    salesforce = "Name"
    direction = "salesforce_to_intercom"     # or "intercom_to_salesforce"
    skip_if_source_empty = false             # optional, default false
    skip_if_destination_has_value = false    # optional, default false

:func:`parse_config` checks the file's shape; :func:`ledger.validation.resolve_config` checks it
against the live field catalogs and produces the :class:`ActiveConfig` the ledger records.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ledger.catalog import IntercomAttribute, SalesforceField
from ledger.errors import SyncLedgerError

DEFAULT_IDENTIFIER_FIELD = "AccountNumber"
COMPANY_ID = "company_id"


class Direction(StrEnum):
    """Which system is the source of an attribute mapping."""

    INTERCOM_TO_SALESFORCE = "intercom_to_salesforce"
    SALESFORCE_TO_INTERCOM = "salesforce_to_intercom"


@dataclass(frozen=True)
class AttributeMapping:
    """One Intercom company attribute mapped to one Salesforce Account field."""

    intercom: str
    salesforce: str
    direction: Direction
    skip_if_source_empty: bool = False
    skip_if_destination_has_value: bool = False

    @property
    def source(self) -> str:
        return (
            self.intercom if self.direction is Direction.INTERCOM_TO_SALESFORCE else self.salesforce
        )

    @property
    def destination(self) -> str:
        return (
            self.salesforce if self.direction is Direction.INTERCOM_TO_SALESFORCE else self.intercom
        )

    @property
    def label(self) -> str:
        """``intercom → salesforce`` (or ``←``), the arrow pointing at the destination."""
        arrow = "→" if self.direction is Direction.INTERCOM_TO_SALESFORCE else "←"
        return f"{self.intercom} {arrow} {self.salesforce}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "intercom": self.intercom,
            "salesforce": self.salesforce,
            "direction": self.direction.value,
            "skip_if_source_empty": self.skip_if_source_empty,
            "skip_if_destination_has_value": self.skip_if_destination_has_value,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttributeMapping:
        return cls(
            intercom=str(data["intercom"]),
            salesforce=str(data["salesforce"]),
            direction=Direction(data["direction"]),
            skip_if_source_empty=bool(data.get("skip_if_source_empty", False)),
            skip_if_destination_has_value=bool(data.get("skip_if_destination_has_value", False)),
        )


@dataclass(frozen=True)
class SyncConfig:
    """A configuration as a user wrote it (shape checked, not yet validated against catalogs)."""

    identifier_field: str = DEFAULT_IDENTIFIER_FIELD
    attributes: tuple[AttributeMapping, ...] = ()

    def to_toml(self) -> str:
        """Render in the public file format."""
        lines = ["[identifier]", f"salesforce_field = {_toml_str(self.identifier_field)}"]
        for m in self.attributes:
            lines += [
                "",
                "[[attribute]]",
                f"intercom = {_toml_str(m.intercom)}",
                f"salesforce = {_toml_str(m.salesforce)}",
                f"direction = {_toml_str(m.direction.value)}",
                f"skip_if_source_empty = {str(m.skip_if_source_empty).lower()}",
                f"skip_if_destination_has_value = {str(m.skip_if_destination_has_value).lower()}",
            ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ConfigProblem:
    """One reason a configuration is refused: where it is, which field, and why."""

    where: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field}: {self.reason}"


class ConfigError(SyncLedgerError, ValueError):
    """A configuration was refused; ``problems`` lists every reason at once."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"configuration refused ({len(self.problems)} problem(s)):\n{lines}")


@dataclass(frozen=True)
class ResolvedMapping:
    """An attribute mapping together with the catalog facts decisions need."""

    mapping: AttributeMapping
    salesforce: SalesforceField
    intercom: IntercomAttribute

    @property
    def direction(self) -> Direction:
        return self.mapping.direction

    def to_dict(self) -> dict[str, Any]:
        return {
            "mapping": self.mapping.to_dict(),
            "salesforce": self.salesforce.to_dict(),
            "intercom": self.intercom.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResolvedMapping:
        return cls(
            mapping=AttributeMapping.from_dict(data["mapping"]),
            salesforce=SalesforceField.from_dict(data["salesforce"]),
            intercom=IntercomAttribute.from_dict(data["intercom"]),
        )


@dataclass(frozen=True)
class ActiveConfig:
    """A validated configuration as recorded in the ledger, with its version number."""

    version: int
    identifier: SalesforceField
    mappings: tuple[ResolvedMapping, ...] = ()

    @property
    def identifier_field(self) -> str:
        return self.identifier.name

    def as_sync_config(self) -> SyncConfig:
        return SyncConfig(self.identifier.name, tuple(m.mapping for m in self.mappings))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "identifier": self.identifier.to_dict(),
            "mappings": [m.to_dict() for m in self.mappings],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActiveConfig:
        return cls(
            version=int(data["version"]),
            identifier=SalesforceField.from_dict(data["identifier"]),
            mappings=tuple(ResolvedMapping.from_dict(m) for m in data["mappings"]),
        )


#: The configuration in force before any is applied: match on AccountNumber, sync nothing.
INITIAL_CONFIG = ActiveConfig(
    version=0,
    identifier=SalesforceField(name=DEFAULT_IDENTIFIER_FIELD, type="string", length=40),
)

_TOP_KEYS = {"identifier", "attribute"}
_IDENTIFIER_KEYS = {"salesforce_field"}
_ATTRIBUTE_KEYS = {
    "intercom",
    "salesforce",
    "direction",
    "skip_if_source_empty",
    "skip_if_destination_has_value",
}


def parse_config(text: str) -> SyncConfig:
    """Parse the TOML text of a configuration file, checking its shape.

    Raises :class:`ConfigError` listing every shape problem at once.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem("file", "-", f"not valid TOML: {exc}")]) from None
    problems: list[ConfigProblem] = []
    for key in sorted(set(data) - _TOP_KEYS):
        problems.append(ConfigProblem("file", key, "unknown section or key"))

    identifier_field = DEFAULT_IDENTIFIER_FIELD
    ident = data.get("identifier", {})
    if not isinstance(ident, dict):
        problems.append(ConfigProblem("[identifier]", "-", "must be a table"))
    else:
        for key in sorted(set(ident) - _IDENTIFIER_KEYS):
            problems.append(ConfigProblem("[identifier]", key, "unknown key"))
        value = ident.get("salesforce_field", DEFAULT_IDENTIFIER_FIELD)
        if not isinstance(value, str) or not value.strip():
            problems.append(
                ConfigProblem("[identifier]", "salesforce_field", "must be a non-empty string")
            )
        else:
            identifier_field = value.strip()

    mappings: list[AttributeMapping] = []
    raw_attrs = data.get("attribute", [])
    if not isinstance(raw_attrs, list):
        problems.append(ConfigProblem("[[attribute]]", "-", "must be an array of tables"))
        raw_attrs = []
    for i, raw in enumerate(raw_attrs, start=1):
        where = f"[[attribute]] #{i}"
        if not isinstance(raw, dict):
            problems.append(ConfigProblem(where, "-", "must be a table"))
            continue
        for key in sorted(set(raw) - _ATTRIBUTE_KEYS):
            problems.append(ConfigProblem(where, key, "unknown key"))
        ok = True
        for key in ("intercom", "salesforce"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                problems.append(ConfigProblem(where, key, "required; must be a non-empty string"))
                ok = False
        direction = raw.get("direction")
        if direction not in {d.value for d in Direction}:
            problems.append(
                ConfigProblem(
                    where,
                    "direction",
                    f"must be 'intercom_to_salesforce' or 'salesforce_to_intercom', "
                    f"not {direction!r}",
                )
            )
            ok = False
        for key in ("skip_if_source_empty", "skip_if_destination_has_value"):
            if key in raw and not isinstance(raw[key], bool):
                problems.append(ConfigProblem(where, key, "must be true or false"))
                ok = False
        if ok:
            mappings.append(
                AttributeMapping(
                    intercom=raw["intercom"].strip(),
                    salesforce=raw["salesforce"].strip(),
                    direction=Direction(str(direction)),
                    skip_if_source_empty=raw.get("skip_if_source_empty", False),
                    skip_if_destination_has_value=raw.get("skip_if_destination_has_value", False),
                )
            )
    if problems:
        raise ConfigError(problems)
    return SyncConfig(identifier_field=identifier_field, attributes=tuple(mappings))


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
