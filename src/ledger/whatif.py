"""What-if for the identifier field: which mappings a candidate field keeps, loses and makes.

Pure computation over the accounts and companies the ledger knows (or a fresh read of the
candidate field, supplied by the caller) with the same matching rule the decisions use: a
company matches the live business account whose candidate field value equals its
``company_id``; several accounts with one value — the most recently updated holds it (ties:
smallest Id). Changing the identifier field ends every mapping and makes the predicted ones as
records are seen again (or at once, by a backfill), so the prediction is what the mapping table
becomes, pair for pair.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.catalog import SalesforceField
from ledger.state import IdentityLink, LedgerState
from ledger.values import key_of


@dataclass(frozen=True)
class AccountView:
    """One live account as the what-if sees it: its value of the candidate field."""

    salesforce_id: str
    value: Any
    system_modstamp: str
    is_person_account: bool = False
    #: whether the value is known (an observation may not carry the candidate field)
    observed: bool = True


@dataclass(frozen=True)
class Pair:
    """A company ↔ account mapping on ``company_id``; ``why`` says why it is lost or new."""

    company_id: str
    intercom_id: str
    salesforce_id: str
    why: str = ""

    def to_dict(self) -> dict[str, str]:
        """As the what-if report writes it (``why`` only when there is one)."""
        ids = {
            "company_id": self.company_id,
            "intercom_id": self.intercom_id,
            "salesforce_id": self.salesforce_id,
        }
        return {**ids, "why": self.why} if self.why else ids


@dataclass
class WhatIf:
    """The what-if report for one candidate identifier field."""

    candidate: str
    stay: list[Pair] = field(default_factory=list)
    lost: list[Pair] = field(default_factory=list)
    new: list[Pair] = field(default_factory=list)
    #: value → every live business account carrying it (the first holds the match)
    ties: dict[str, list[str]] = field(default_factory=dict)
    accounts: int = 0
    without_value: int = 0
    unobserved: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "stay_matched": len(self.stay),
            "lost": len(self.lost),
            "newly_matched": len(self.new),
            "tied_keys": len(self.ties),
            "accounts": self.accounts,
            "accounts_without_value": self.without_value,
            "accounts_not_observed": self.unobserved,
        }

    def to_dict(self) -> dict[str, Any]:
        """The report as the CLI writes it (``--report``)."""
        return {
            "field": self.candidate,
            "counts": self.counts(),
            "stay": [p.to_dict() for p in self.stay],
            "lost": [p.to_dict() for p in self.lost],
            "new": [p.to_dict() for p in self.new],
            "ties": self.ties,
        }

    def predicted(self) -> set[tuple[str, str, str]]:
        """``(company_id, intercom_id, salesforce_id)`` of every mapping under the candidate."""
        return {(p.company_id, p.intercom_id, p.salesforce_id) for p in [*self.stay, *self.new]}


def accounts_from_state(state: LedgerState, field_name: str) -> list[AccountView]:
    """The live accounts the ledger knows, with their last observed value of ``field_name``."""
    return [
        AccountView(
            a.salesforce_id,
            a.fields.get(field_name),
            a.system_modstamp,
            a.is_person_account,
            observed=field_name in a.fields,
        )
        for a in state.accounts.values()
        if not a.deleted
    ]


def identifier_what_if(
    candidate: SalesforceField,
    accounts: Iterable[AccountView],
    companies: Mapping[str, str],
    links: Iterable[IdentityLink],
) -> WhatIf:
    """Compare the mappings ``links`` with those ``candidate`` would make between
    ``accounts`` and the live ``companies`` (``company_id → intercom_id``)."""
    report = WhatIf(candidate.name)
    by_key: dict[str, list[AccountView]] = {}
    for a in accounts:
        if a.is_person_account:
            continue
        report.accounts += 1
        if not a.observed:
            report.unobserved += 1
            continue
        key = key_of(a.value, candidate.type)
        if key is None:
            report.without_value += 1
            continue
        by_key.setdefault(key, []).append(a)
    holder: dict[str, AccountView] = {}
    for key, found in sorted(by_key.items()):
        found.sort(key=lambda a: a.salesforce_id)
        found.sort(key=lambda a: a.system_modstamp, reverse=True)
        holder[key] = found[0]
        if len(found) > 1:
            report.ties[key] = [a.salesforce_id for a in found]
    predicted = {
        key: (companies[key], holder[key].salesforce_id) for key in holder if key in companies
    }
    current = {link.company_id: (link.intercom_id, link.salesforce_id) for link in links}
    for key in sorted(set(predicted) | set(current)):
        now, then = current.get(key), predicted.get(key)
        if now is not None and now == then:
            report.stay.append(Pair(key, *now))
            continue
        if now is not None:
            report.lost.append(Pair(key, *now, why=_why_lost(key, now, then, candidate)))
        if then is not None:
            tied = f"; {len(report.ties[key])} accounts share it" if key in report.ties else ""
            why = "newly matched" if now is None else "matched to another account"
            report.new.append(Pair(key, *then, why=why + tied))
    return report


def _why_lost(
    key: str, now: tuple[str, str], then: tuple[str, str] | None, candidate: SalesforceField
) -> str:
    if then is None:
        return f"no live business account has {candidate.name} = {key!r}"
    if then[0] != now[0]:
        return f"company {then[0]} carries company_id {key!r} now"
    return f"account {then[1]} holds {candidate.name} = {key!r} (more recently updated)"
