"""The demo's seed data: a few hundred accounts and companies, with every kind of record the
rules care about (matched pairs, duplicate account numbers, a person account, conflicting and
empty values, records with no counterpart), and which records play which part in the story."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from adapters.simulators.salesforce_values import make_id

WORDS = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Soylent", "Tyrell",
          "Wonka", "Cyberdyne", "Oceanic", "Stark", "Wayne", "Monarch", "Dunder")  # fmt: skip
SUFFIXES = ("Labs", "Systems", "Corp", "GmbH", "Partners", "Logistics", "Foods", "Analytics")
PLANS = ("Free", "Pro", "Enterprise")
INDUSTRIES = ("Banking", "Technology", "Retail", "Agriculture", "Healthcare", "Other")


def company_name(i: int) -> str:
    """A made-up company name, different for every ``i``."""
    return f"{WORDS[i % len(WORDS)]} {SUFFIXES[(i // len(WORDS)) % len(SUFFIXES)]} {i}"


@dataclass
class Sample:
    """The seed data files' contents, and which records play which part in the story."""

    accounts: list[dict[str, Any]] = field(default_factory=list)
    companies: list[dict[str, Any]] = field(default_factory=list)
    pairs: dict[str, str] = field(default_factory=dict)  # company_id -> account Id
    duplicates: list[str] = field(default_factory=list)  # account Ids
    lonely_accounts: list[str] = field(default_factory=list)  # keys with no company
    lonely_companies: list[str] = field(default_factory=list)  # keys with no account


def sample_data(rng: random.Random) -> Sample:
    """About 250 accounts and 240 companies, with every kind of record the rules care about."""
    s = Sample()

    def maybe(p: float, value: Any) -> Any:
        return value if rng.random() < p else None

    rows: list[tuple[str, dict[str, Any]]] = []  # (role, seed row)
    for i in range(1, 201):
        key, name = f"AC-{i:05d}", company_name(i)
        slug = name.lower().replace(" ", "-")
        industry = maybe(0.8, rng.choice(INDUSTRIES))
        rows.append(("pair", {
            "AccountNumber": key,
            "Site": rng.choices([key, None, f"AC-{rng.randint(1, 200):05d}"], [7, 2, 1])[0],
            "Name": name,
            "Industry": industry,
            "NumberOfEmployees": maybe(0.7, rng.choice((5, 40, 250, 1200))),
            "Website": maybe(0.6, f"https://{slug}.example"),
            "Plan__c": maybe(0.75, rng.choice(PLANS)),
        }))  # fmt: skip
        company: dict[str, Any] = {
            "company_id": key,
            "name": rng.choices([name, f"{name} Ltd", None], [6, 3, 1])[0],
            "industry": rng.choices([industry, rng.choice(INDUSTRIES), None], [5, 4, 1])[0],
            "size": maybe(0.8, rng.choice((5, 40, 250, 1200, 5000))),
            "website": maybe(0.7, f"https://www.{slug}.example"),
        }
        if plan := maybe(0.5, rng.choice(PLANS)):
            company["custom_attributes"] = {"plan": plan}
        s.companies.append({k: v for k, v in company.items() if v is not None})
    for i in rng.sample(range(1, 201), 12):  # duplicate account numbers
        rows.append(
            ("duplicate", {"AccountNumber": f"AC-{i:05d}", "Name": f"{company_name(i)} (dup)"})
        )
    rows.append(
        ("person", {"AccountNumber": "AC-00007", "Name": "Jane Doe", "IsPersonAccount": True})
    )
    for i in range(1, 41):  # accounts with no company, some without an account number
        key = f"AC-5{i:04d}"
        rows.append(
            ("lonely", {"AccountNumber": key if i <= 30 else None, "Name": company_name(500 + i)})
        )
        if i <= 30:
            s.lonely_accounts.append(key)
    rng.shuffle(rows)  # seeded in this order: some duplicates are newer than their original
    for n, (role, row) in enumerate(rows, start=1):
        row = {"Id": make_id("001", n), **{k: v for k, v in row.items() if v is not None}}
        s.accounts.append(row)
        if role == "pair":
            s.pairs[row["AccountNumber"]] = row["Id"]
        elif role == "duplicate":
            s.duplicates.append(row["Id"])
    for i in range(1, 41):  # companies with no account
        key = f"AC-7{i:04d}"
        s.companies.append({"company_id": key, "name": company_name(700 + i), "size": 10 * i})
        s.lonely_companies.append(key)
    return s
