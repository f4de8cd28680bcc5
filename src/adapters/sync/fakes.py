"""In-memory fakes of Salesforce and Intercom, as users see them and as the sync needs them.

:class:`FakeSalesforce` and :class:`FakeIntercom` satisfy the ports in :mod:`adapters.sync.ports`
(``AccountSystem``, ``CompanySystem``), so the tests run a real sync cycle offline. User actions
(``create``/``update``/``delete``) change the data the way people in each system do; the sync's
own calls (poll, lookup, read, write) and Intercom's webhooks report it as ledger facts. Their
fields are the sample catalog (:mod:`adapters.sync.sample_catalog`, re-exported here).

What they keep faithful, because the ledger's decisions depend on it:

- Salesforce ``SystemModstamp`` strictly increases with every save (ours included), so a poll
  ``changes_since`` the ledger's watermark shows each change, and our writes come back (echoes).
- Intercom ``updated_at`` increases with every change, and every change (ours included) queues a
  webhook notification, under an id of its own; deleting a company queues ``company.deleted``.
  Nothing delivers them: :meth:`FakeIntercom.webhooks` hands them over, to be kept in the
  ledger's inbox (:meth:`ledger.application.LedgerApp.receive`), as the service's webhook intake
  keeps what Intercom delivers.
- A value outside a restricted picklist, of the wrong type, or for a read-only field is refused
  (:class:`adapters.sync.ports.WriteRefused`), naming the fields.
"""

from __future__ import annotations

from adapters.sync.fake_intercom import FakeIntercom
from adapters.sync.fake_salesforce import FakeSalesforce
from adapters.sync.sample_catalog import EPOCH, INDUSTRIES, catalog

__all__ = ["EPOCH", "INDUSTRIES", "FakeIntercom", "FakeSalesforce", "catalog"]
