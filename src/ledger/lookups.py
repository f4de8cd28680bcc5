"""Lookups: which counterparts the ledger must ask the other system about before deciding.

Intercom's own app asks Salesforce which account carries a company's key when the company
changes; the ledger does the same, once per key (answers are recorded facts,
``LookupAnswered``), and before the changes that need them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ledger import events as ev
from ledger.config import COMPANY_ID
from ledger.facts import AccountChange, CompanyChange, Fact
from ledger.state import LedgerState
from ledger.values import key_of


@dataclass(frozen=True)
class LookupNeeds:
    """Keys whose counterparts the ledger has never seen, by the system to ask."""

    salesforce_field: str
    salesforce_keys: tuple[str, ...]
    intercom_keys: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.salesforce_keys or self.intercom_keys)


def lookup_needs(st: LedgerState, facts: Sequence[Fact]) -> LookupNeeds:
    """Which counterparts to ask the other system about before ingesting ``facts``.

    A company change whose key no known account carries needs a Salesforce lookup; an account
    change whose key no known company carries needs an Intercom lookup — unless the same
    question was answered before (answers are recorded facts).
    """
    ident = st.config.identifier
    sf_keys: set[str] = set()
    ic_keys: set[str] = set()
    for fact in facts:
        if isinstance(fact, CompanyChange) and fact.kind != "snapshot" and fact.company_id:
            key = fact.company_id
            asked = (ev.SALESFORCE, ident.name, key) in st.looked_up
            if not st.accounts_by_key.get(key) and not asked:
                sf_keys.add(key)
        elif (
            isinstance(fact, AccountChange)
            and fact.kind != "snapshot"
            and not fact.is_person_account
        ):
            akey = key_of(fact.fields.get(ident.name), ident.type)
            if (
                akey is not None
                and akey not in st.company_by_key
                and (ev.INTERCOM, COMPANY_ID, akey) not in st.looked_up
            ):
                ic_keys.add(akey)
    return LookupNeeds(ident.name, tuple(sorted(sf_keys)), tuple(sorted(ic_keys)))
