"""The scripted ledger the HTTP tests share, and their API keys.

:class:`Story` makes a SQLite ledger by real sync cycles (``sync_cycle``: the webhooks kept in
the inbox, then ``run_cycle``) between the in-memory fakes of both systems, so every event is one
the service itself would record.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from adapters.settings import ApiKeys
from adapters.store.database import ledger_env
from adapters.sync.fakes import FakeIntercom, FakeSalesforce
from ledger.application import LedgerApp
from projections.queries import Audit
from tests.support import CATALOG, STANDARD_CONFIG, FakeClock, sync_cycle

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

READER, OPERATOR, REPLAYER, ALL = "reader-key", "operator-key", "replayer-key", "all-key"
KEYS = ApiKeys.parse(
    f"{READER}=audit:read,{OPERATOR}=sync:operate,{REPLAYER}=replay:execute,"
    f"{ALL}=audit:read+sync:operate+replay:execute"
)
#: A key granting every scope but the one named.
ALL_BUT = {"audit:read": OPERATOR, "sync:operate": READER, "replay:execute": READER}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def login_token(client: TestClient) -> str:
    """The CSRF token of a fresh sign-in form (its cookie is now in ``client``)."""
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/review/login").text)
    assert found is not None
    return found[1]


class Story:
    """The scripted ledger: what the fakes did and the ids to ask about."""

    def __init__(self, url: str) -> None:
        self.ledger = LedgerApp(env=ledger_env(url), clock=FakeClock())
        self.ledger.apply_config(STANDARD_CONFIG, CATALOG)
        sf, ic = FakeSalesforce(), FakeIntercom()
        # k1: Intercom's industry overwrites the account's; Salesforce's name flows back.
        self.account = sf.create(AccountNumber="k1", Name="Acme", Industry="Retail")
        self.company = ic.create("k1", {"name": "Acme Old", "industry": "Banking"})
        # k2: a pair whose account has no industry yet (a write, not an overwrite).
        self.account2 = sf.create(AccountNumber="k2", Name="Beta")
        self.company2 = ic.create("k2", {"name": "Beta", "industry": "Agriculture"})
        # Never synced: a person account, a company without company_id, a company alone.
        self.person = sf.create(AccountNumber="k3", Name="Jo Doe", person=True)
        self.anonymous = ic.create(None, {"name": "Lead Co"})
        self.lonely = ic.create("k9", {"name": "Nobody"})
        sync_cycle(self.ledger, sf, ic)
        sync_cycle(self.ledger, sf, ic)  # echoes of the first cycle's writes
        ic.update(self.company, industry="Technology")  # a second overwrite of Industry on k1
        ic.update(self.company2, industry="Energy")  # not in the picklist: a rejected value
        sync_cycle(self.ledger, sf, ic)
        self.sf, self.ic = sf, ic
        self.audit: Audit
