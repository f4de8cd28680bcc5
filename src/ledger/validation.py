"""Validation of a sync configuration against the live field catalogs.

:func:`ledger.config.parse_config` only checks a file's shape. Here the configuration meets the
facts both systems report about their fields (:class:`ledger.catalog.FieldCatalog`), and every
rule from the design notes is applied:

- the identifier field exists, is not the record ``Id``, is text, a number or an id (never a Text
  Area), and is not a formula;
- each attribute mapping names an existing Salesforce field and Intercom attribute, uses each of
  them only once (the identifier mapping counts: ``company_id`` and the identifier field are
  taken), involves no formula, compound or other never-synced field and no frequently changing
  attribute, pairs compatible types in an allowed direction, and writes only to a destination
  that can be written.

Every problem is reported at once, each naming the field and saying what to do, so a CRM admin
can fix a file in one pass. A field that does not exist is reported once, not again as a type
problem; likewise a field refused outright (formula, compound, frequently changing) is not
reported again for its type or writability.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection
from typing import TypeAlias

from ledger.catalog import FieldCatalog, IntercomAttribute, SalesforceField
from ledger.config import (
    COMPANY_ID,
    ActiveConfig,
    AttributeMapping,
    ConfigError,
    ConfigProblem,
    Direction,
    ResolvedMapping,
    SyncConfig,
)
from ledger.values import IDENTIFIER_TYPES, NEVER_TYPES, allowed_directions

#: Intercom company attributes that change too often to sync. Each moves on almost every visit or
#: session of any of the company's users, so syncing them would spend the Salesforce API budget
#: on noise and keep overwriting the destination; Intercom's own Salesforce app refuses them too.
FREQUENTLY_CHANGING: frozenset[str] = frozenset(
    {
        "last_request_at",
        "last_seen",
        "session_count",
        "user_count",
        "updated_at",
        "last_seen_at",
    }
)

#: The Salesforce record id; Salesforce sets it, so it can be neither identifier nor destination.
RECORD_ID = "Id"

_IDENTIFIER = "[identifier]"
_COMPOUND_TYPES = frozenset({"address", "location"})
_INTERCOM_TYPES = ("string", "integer", "float", "boolean", "date")

#: How the side checks report a problem: ``report(field, reason)``.
_Report: TypeAlias = Callable[[str, str], None]


def validate_config(config: SyncConfig, catalog: FieldCatalog) -> list[ConfigProblem]:
    """Every reason ``config`` cannot be applied with these catalogs; empty when it can.

    Problems come in file order: the identifier first, then each ``[[attribute]]`` mapping
    (numbered from 1, as :func:`ledger.config.parse_config` numbers them).
    """
    problems = _identifier_problems(config.identifier_field, catalog)
    # The identifier mapping uses the identifier field and company_id; remember later uses.
    used_sf: dict[str, int] = {}
    used_ic: dict[str, int] = {}
    for number, mapping in enumerate(config.attributes, start=1):
        problems += _mapping_problems(
            number, mapping, config.identifier_field, catalog, used_sf, used_ic
        )
    return problems


def resolve_config(config: SyncConfig, catalog: FieldCatalog, version: int) -> ActiveConfig:
    """Validate ``config`` and bind it to the catalog facts decisions need, as ``version``.

    Raises :class:`ledger.config.ConfigError` listing every problem :func:`validate_config`
    finds; otherwise returns the :class:`ledger.config.ActiveConfig`, mappings in file order.
    """
    problems = validate_config(config, catalog)
    if problems:
        raise ConfigError(problems)
    return ActiveConfig(
        version=version,
        identifier=catalog.salesforce[config.identifier_field],
        mappings=tuple(
            ResolvedMapping(m, catalog.salesforce[m.salesforce], catalog.intercom[m.intercom])
            for m in config.attributes
        ),
    )


def _identifier_problems(name: str, catalog: FieldCatalog) -> list[ConfigProblem]:
    def problem(reason: str) -> list[ConfigProblem]:
        return [ConfigProblem(_IDENTIFIER, name, reason)]

    if name == RECORD_ID:
        return problem(
            "the Salesforce record Id cannot be the identifier; use a field that holds the same "
            "value as each company's company_id in Intercom, e.g. AccountNumber"
        )
    sf = catalog.salesforce.get(name)
    if sf is None:
        return problem(_unknown_salesforce(name, catalog))
    problems: list[ConfigProblem] = []
    if sf.type == "textarea":
        problems += problem(
            "Text Area fields cannot be the identifier; use a Text (string) field, or change "
            "this field's type to Text in Salesforce"
        )
    elif sf.type not in IDENTIFIER_TYPES:
        problems += problem(
            f"a {sf.type} field cannot be the identifier; use a Text (string), Number (int or "
            "double) or ID field"
        )
    if sf.calculated:
        problems += problem(
            "formula fields cannot be the identifier; use a field that stores the value"
        )
    return problems


def _mapping_problems(
    number: int,
    mapping: AttributeMapping,
    identifier_field: str,
    catalog: FieldCatalog,
    used_sf: dict[str, int],
    used_ic: dict[str, int],
) -> list[ConfigProblem]:
    where = f"[[attribute]] #{number}"
    problems: list[ConfigProblem] = []

    def problem(field: str, reason: str) -> None:
        problems.append(ConfigProblem(where, field, reason))

    # Each side is checked on its own; a side refused outright is left out of the pair checks.
    sf = _salesforce_side(mapping.salesforce, identifier_field, catalog, used_sf, number, problem)
    ic = _intercom_side(mapping.intercom, catalog, used_ic, number, problem)

    if sf is not None and ic is not None:
        allowed = allowed_directions(sf.type, ic.data_type)
        if not allowed:
            problem(
                sf.name,
                f"types incompatible: Salesforce {sf.type} vs Intercom {ic.data_type} "
                f"({ic.name}); {_compatible_hint(sf.type)}",
            )
        elif mapping.direction not in allowed:
            only = " or ".join(sorted(d.value for d in allowed))
            problem(
                sf.name,
                f'{sf.type} can only flow {only}; set direction = "{only}" or remove this mapping',
            )

    if mapping.direction is Direction.INTERCOM_TO_SALESFORCE and sf is not None:
        if sf.name == RECORD_ID:
            problem(
                sf.name,
                "the record Id is set by Salesforce and cannot be a destination; map the "
                "attribute to another field",
            )
        elif not sf.updateable:
            problem(
                sf.name,
                "Salesforce does not allow writing this field, so it cannot be a destination; "
                'use direction = "salesforce_to_intercom" or map the attribute to another field',
            )
    if (
        mapping.direction is Direction.SALESFORCE_TO_INTERCOM
        and ic is not None
        and not ic.api_writable
    ):
        problem(
            ic.name,
            "Intercom does not allow the API to write this attribute, so it cannot be a "
            'destination; use direction = "intercom_to_salesforce" or map the field to '
            "another attribute (e.g. a custom attribute)",
        )
    return problems


def _salesforce_side(
    name: str,
    identifier_field: str,
    catalog: FieldCatalog,
    used: dict[str, int],
    number: int,
    problem: _Report,
) -> SalesforceField | None:
    """The Salesforce field if it can take part in the pair checks; reports why not."""
    if name == identifier_field:
        problem(
            name,
            "already used as the identifier ([identifier] salesforce_field); a field may be used "
            "in only one mapping, so remove this mapping or pick another field",
        )
        return None
    sf = catalog.salesforce.get(name)
    if sf is None:
        problem(name, _unknown_salesforce(name, catalog))
        return None
    if name in used:
        problem(
            name,
            f"already used in [[attribute]] #{used[name]}; a Salesforce field may be used in "
            "only one mapping, so remove one of them or pick another field",
        )
    else:
        used[name] = number
    usable = True
    if sf.calculated:
        problem(
            name,
            "formula (calculated) fields cannot be synced in either direction; map a field that "
            "stores the value instead",
        )
        usable = False
    if sf.type in _COMPOUND_TYPES:
        problem(
            name,
            f"compound ({sf.type}) fields cannot be synced; map its component fields "
            f"(e.g. {_components(sf, catalog)}) instead",
        )
        usable = False
    elif sf.type in NEVER_TYPES:
        problem(
            name,
            f"{sf.type} fields cannot be synced; remove this mapping or pick a field of another "
            "type",
        )
        usable = False
    return sf if usable else None


def _intercom_side(
    name: str,
    catalog: FieldCatalog,
    used: dict[str, int],
    number: int,
    problem: _Report,
) -> IntercomAttribute | None:
    """The Intercom attribute if it can take part in the pair checks; reports why not."""
    if name == COMPANY_ID:
        problem(
            name,
            "matched against the identifier field ([identifier] "
            "salesforce_field) and cannot also be in an attribute mapping; remove this mapping",
        )
        return None
    if name in FREQUENTLY_CHANGING:
        problem(
            name,
            "this attribute changes too often to sync (on almost every visit or session); "
            "remove this mapping",
        )
        return None
    ic = catalog.intercom.get(name)
    if ic is None:
        problem(name, _unknown_intercom(name, catalog))
        return None
    if name in used:
        problem(
            name,
            f"already used in [[attribute]] #{used[name]}; an Intercom attribute may be used in "
            "only one mapping, so remove one of them or pick another attribute",
        )
    else:
        used[name] = number
    return ic


def _unknown_salesforce(name: str, catalog: FieldCatalog) -> str:
    return (
        "not a field of the Salesforce Account object; check its API name in Setup → Object "
        f"Manager → Account → Fields (custom fields end in __c){_suggest(name, catalog.salesforce)}"
    )


def _unknown_intercom(name: str, catalog: FieldCatalog) -> str:
    # A custom attribute written without its prefix is the likeliest slip.
    custom = f"custom_attributes.{name}"
    hint = f" (did you mean {custom}?)" if custom in catalog.intercom else ""
    return (
        "not a company data attribute in Intercom; custom attributes are written "
        "custom_attributes.<name>, so check the spelling or create the attribute in Intercom"
        f"{hint or _suggest(name, catalog.intercom)}"
    )


def _suggest(name: str, candidates: Collection[str]) -> str:
    same_but_case = [c for c in candidates if c.lower() == name.lower()]
    close = same_but_case or difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _components(sf: SalesforceField, catalog: FieldCatalog) -> str:
    parts = [f.name for f in catalog.salesforce.values() if f.compound_field_name == sf.name]
    return ", ".join(parts[:3]) if parts else "BillingCity"


def _compatible_hint(sf_type: str) -> str:
    fits = [t for t in _INTERCOM_TYPES if allowed_directions(sf_type, t)]
    if not fits:
        return f"Salesforce {sf_type} fields cannot be synced; pick a field of another type"
    return f"a Salesforce {sf_type} field maps to an Intercom {' or '.join(fits)} attribute"
