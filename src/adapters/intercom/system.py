"""The Intercom side of the sync's ports: :class:`IntercomSystem` wraps
:class:`~adapters.intercom.client.IntercomCompanies` as a ``CompanySystem``.

Refusals become :class:`~adapters.sync.ports.WriteRefused`: a refused value (undefined custom
attribute) is permanent; an outage or rate limit that outlasted the adapter's own retries is
``retryable``. Auth errors are not a verdict on one write and propagate.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from adapters.intercom.client import (
    IntercomAuthError,
    IntercomCompanies,
    IntercomError,
    IntercomRateLimited,
    IntercomUnavailable,
)
from adapters.intercom.companies import CUSTOM_PREFIX
from adapters.sync.ports import RecordResult, Updates, WriteRefused, write_each
from ledger.facts import (
    CompanyChange,
    CompanyRemoval,
)


class IntercomSystem:
    """Intercom companies as the sync needs them (``cycle.CompanySystem``).

    Intercom's write is an upsert keyed by ``company_id``, so the system remembers each company's
    ``company_id`` from what it read or looked up, and reads the company first when it does not
    know it. A company seen deleted (by a read) is refused rather than re-created. What no
    client can prevent: a company deleted between the cycle's read-before-write and its write
    would be re-created by the upsert (Intercom has no conditional write).

    Webhooks do not come here: the service's intake (:mod:`adapters.service.intake`) verifies
    them and keeps them in the ledger's inbox.
    """

    def __init__(self, companies: IntercomCompanies, *, concurrency: int = 8) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.companies = companies
        #: Writes in flight at once (Intercom has no batch update; its rate limit is shared
        #: through ``X-RateLimit-*``, which the client paces itself by).
        self.concurrency = concurrency
        self._lock = threading.Lock()
        self._company_ids: dict[str, str] = {}
        self._gone: set[str] = set()

    # -- the sync's calls -------------------------------------------------------------------------

    def lookup(self, keys: Sequence[str]) -> list[CompanyChange]:
        found = self.companies.lookup(keys)
        with self._lock:
            self._remember(found)
        return found

    def every_company(self) -> Iterator[CompanyChange]:
        """Intercom's scroll API, page by page."""
        return self.companies.scroll_all()

    def read(self, ids: Sequence[str]) -> list[CompanyChange | CompanyRemoval]:
        facts = self.companies.read(ids)
        with self._lock:
            self._remember(facts)
        return facts

    def write(self, updates: Updates) -> list[RecordResult]:
        """One ``POST /companies`` per company (Intercom has no batch update), ``concurrency``
        at a time."""
        return write_each(updates, self._write_one, concurrency=self.concurrency)

    def _write_one(self, intercom_id: str, values: Mapping[str, Any]) -> None:
        company_id = self._company_id(intercom_id)
        try:
            self.companies.write(intercom_id, company_id, values)
        except IntercomAuthError:
            raise
        except IntercomError as exc:
            retryable = isinstance(exc, IntercomUnavailable | IntercomRateLimited)
            raise WriteRefused(
                exc.message,
                code=exc.code or "error",
                fields=_named_fields(exc.message, values),
                retryable=retryable,
            ) from None

    # -- internals --------------------------------------------------------------------------------

    def _company_id(self, intercom_id: str) -> str:
        with self._lock:
            known = self._company_ids.get(intercom_id)
            gone = intercom_id in self._gone
        if gone:
            raise WriteRefused(f"company {intercom_id} was deleted", code="company_not_found")
        if known is not None:
            return known
        try:
            [fact] = self.read([intercom_id])
        except (IntercomUnavailable, IntercomRateLimited) as exc:
            raise WriteRefused(exc.message, code=exc.code or "error", retryable=True) from None
        if isinstance(fact, CompanyRemoval):
            raise WriteRefused(f"company {intercom_id} does not exist", code="company_not_found")
        if fact.company_id is None:
            raise WriteRefused(
                f"company {intercom_id} has no company_id; it cannot be written",
                code="no_company_id",
            )
        return fact.company_id

    def _remember(self, facts: Sequence[CompanyChange | CompanyRemoval]) -> None:
        """Note each company's ``company_id``, and each company seen gone for good (Intercom
        never reuses an id, so nothing brings one back); hold ``_lock``."""
        for fact in facts:
            if isinstance(fact, CompanyRemoval):
                self._company_ids.pop(fact.intercom_id, None)
                self._gone.add(fact.intercom_id)
            elif fact.company_id is not None and fact.intercom_id not in self._gone:
                self._company_ids[fact.intercom_id] = fact.company_id


def _named_fields(message: str, values: Mapping[str, Any]) -> tuple[str, ...]:
    """The attributes of ``values`` that Intercom's error message names (quoted), if any."""
    return tuple(
        name
        for name in values
        if f"'{name.removeprefix(CUSTOM_PREFIX)}'" in message or f"'{name}'" in message
    )
