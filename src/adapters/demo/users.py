"""What users do in the demo: people editing records in Salesforce and Intercom through the
simulators' REST APIs, as the story goes."""

from __future__ import annotations

import random
from typing import Any

import httpx

from adapters.demo.errors import DemoError
from adapters.demo.sample import INDUSTRIES, PLANS, Sample, company_name
from adapters.demo.stack import SF_API


class Users:
    """People editing records in Salesforce and Intercom, as the story goes."""

    def __init__(self, sample: Sample, rng: random.Random, sf: httpx.Client, ic: httpx.Client):
        self.sample, self.rng, self.sf, self.ic = sample, rng, sf, ic
        self.gone: set[str] = set()  # keys whose pair the story broke up

    def _call(self, client: httpx.Client, method: str, path: str, **kw: Any) -> httpx.Response:
        r = client.request(method, path, **kw)
        if r.status_code >= 300:
            system = "Salesforce" if client is self.sf else "Intercom"
            raise DemoError(f"{system} refused {method} {path}: {r.status_code} {r.text[:200]}")
        return r

    def update_account(self, sid: str, **values: Any) -> None:
        self._call(self.sf, "PATCH", f"{SF_API}/sobjects/Account/{sid}", json=values)

    def create_account(self, **values: Any) -> str:
        return str(
            self._call(self.sf, "POST", f"{SF_API}/sobjects/Account", json=values).json()["id"]
        )

    def upsert_company(self, key: str, **values: Any) -> None:
        self._call(self.ic, "POST", "/companies", json={"company_id": key, **values})

    def keys(self, n: int) -> list[str]:
        return self.rng.sample(sorted(set(self.sample.pairs) - self.gone), n)

    def intercom_users_update(self) -> str:
        for key in self.keys(40):
            attr = self.rng.choice(("industry", "size", "website", "name"))
            value = {
                "industry": self.rng.choice((*INDUSTRIES, "Space Mining")),  # not a picklist value
                "size": self.rng.choice((12, 80, 300, 2500)),
                "website": f"https://{key.lower()}.example.org",
                "name": f"{company_name(int(key[3:]))} (renamed in Intercom)",
            }[attr]
            self.upsert_company(key, **{attr: value})
        for key in self.sample.lonely_accounts[:3]:
            self.upsert_company(key, name=f"New company {key}", industry="Banking", size=25)
        # a visitor names their company in the Messenger: Intercom creates it, without a
        # company_id (the simulator's stand-in for qualification), and a user edits it later
        made = [
            self._call(self.ic, "POST", "/_sim/qualified_companies", json={"name": name}).json()
            for name in ("Visitor's Bakery", "Qualified Lead Ltd")
        ]
        self._call(self.ic, "PUT", f"/companies/{made[0]['id']}", json={"size": 3})
        return (
            "40 companies updated, 3 created for accounts that waited for one, "
            "2 created by Messenger qualification (no company_id)"
        )

    def salesforce_users_edit(self) -> str:
        chosen = self.keys(32)
        for key in chosen[:30]:
            sid = self.sample.pairs[key]
            change = self.rng.choice(("rename", "plan", "clear plan"))
            if change == "rename":
                self.update_account(sid, Name=f"{company_name(int(key[3:]))} Holdings")
            else:
                plan = self.rng.choice(PLANS) if change == "plan" else None
                self.update_account(sid, Plan__c=plan)
        moved, emptied = chosen[30], chosen[31]
        new_key = self.sample.lonely_companies[0]
        self.update_account(self.sample.pairs[moved], AccountNumber=new_key)
        self.gone.add(moved)
        self.update_account(self.sample.pairs[emptied], NumberOfEmployees=None)
        older = sorted(self.sample.duplicates)[0]
        self.update_account(older, Phone="+1 555 0100")  # now the most recently updated one
        for key in self.sample.lonely_companies[1:4]:
            self.create_account(AccountNumber=key, Name=f"Account for {key}", Plan__c="Pro")
        return (
            f"30 accounts edited; {moved} renumbered to {new_key}; a duplicate edited; "
            "3 accounts created for companies that waited for one"
        )

    def intercom_user_deletes(self) -> str:
        key = self.keys(1)[0]
        found = self._call(self.ic, "GET", "/companies", params={"company_id": key}).json()
        self._call(self.ic, "DELETE", f"/companies/{found['id']}")
        self.gone.add(key)
        return f"company {key} deleted"

    def users_touch_records(self) -> str:
        for key in self.keys(25):
            self.update_account(self.sample.pairs[key], Description="reviewed")
        for key in self.keys(10):
            self.upsert_company(key, size=self.rng.choice((15, 150, 1500)))
        return "25 accounts and 10 companies touched"
