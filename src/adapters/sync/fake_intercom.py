"""The in-memory Intercom workspace (:class:`FakeIntercom`); see :mod:`adapters.sync.fakes`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from adapters.sync.ports import RecordResult, Updates, WriteRefused, write_each
from adapters.sync.sample_catalog import EPOCH, INTERCOM_ATTRIBUTES, INTERCOM_KINDS, value_problem
from ledger.catalog import IntercomAttribute
from ledger.facts import CompanyChange, CompanyRemoval

__all__ = ["FakeIntercom"]


class FakeIntercom:
    """An Intercom workspace's companies in memory (``CompanySystem``).

    Attributes are keyed by full name (``"name"``, ``"custom_attributes.plan"``); every writable
    attribute is present (``None`` when unset). Each change queues the notification Intercom's
    webhook would deliver; :meth:`webhooks` hands them over in order.
    """

    def __init__(self, attributes: Iterable[IntercomAttribute] = INTERCOM_ATTRIBUTES) -> None:
        self.schema: dict[str, IntercomAttribute] = {a.name: a for a in attributes}
        self._data_attributes = [
            a.name for a in self.schema.values() if a.api_writable and a.name != "company_id"
        ]
        self.companies: dict[str, dict[str, Any]] = {}
        self._queue: list[tuple[str, CompanyChange | CompanyRemoval]] = []
        self._notifications = 0
        self._clock = int(EPOCH.timestamp())
        self._held = False
        self._ids = 0

    # --- users -------------------------------------------------------------------------------

    def create(
        self,
        company_id: str | None,
        attributes: Mapping[str, Any] | None = None,
        *,
        notify: bool = True,
        **attrs: Any,
    ) -> str:
        """A company appears (by API or during qualification when ``company_id`` is None).

        ``notify=False`` seeds a company that existed before the sync was installed.
        """
        if company_id is not None and any(
            c["company_id"] == company_id for c in self.companies.values()
        ):
            raise WriteRefused(f"company_id {company_id!r} is taken", code="conflict")
        merged = {**(attributes or {}), **attrs}
        self._check(merged)
        self._ids += 1
        intercom_id = f"6762f0{self._ids:018x}"
        now = self._tick()
        self.companies[intercom_id] = {
            "id": intercom_id,
            "company_id": company_id,
            "created_at": now,
            "updated_at": now,
            "attributes": {**dict.fromkeys(self._data_attributes), **merged},
        }
        if notify:
            self._notify(self._fact(intercom_id, "created", "webhook"))
        return intercom_id

    def update(
        self, intercom_id: str, attributes: Mapping[str, Any] | None = None, **attrs: Any
    ) -> None:
        """A teammate or integration updates a company (queues ``company.updated``)."""
        company = self._live(intercom_id)
        merged = {**(attributes or {}), **attrs}
        self._check(merged)
        company["attributes"].update(merged)
        company["updated_at"] = self._tick()
        self._notify(self._fact(intercom_id, "updated", "webhook"))

    @contextmanager
    def within_one_second(self) -> Iterator[None]:
        """Changes made inside share one ``updated_at`` (Intercom stamps whole seconds)."""
        self._clock += 1
        self._held = True
        try:
            yield
        finally:
            self._held = False

    def delete(self, intercom_id: str) -> None:
        """A company is deleted (queues ``company.deleted``)."""
        company = self._live(intercom_id)
        del self.companies[intercom_id]
        self._notify(CompanyRemoval(intercom_id, company["company_id"], source="webhook"))

    def get(self, intercom_id: str) -> dict[str, Any] | None:
        """The company's attributes as a user sees them (a copy), or ``None`` once deleted."""
        company = self.companies.get(intercom_id)
        return None if company is None else dict(company["attributes"])

    def by_company_id(self, company_id: str) -> str | None:
        """The intercom id of the live company with ``company_id``."""
        return next((i for i, c in self.companies.items() if c["company_id"] == company_id), None)

    # --- Intercom's webhooks -----------------------------------------------------------------

    def webhooks(self) -> list[tuple[str, CompanyChange | CompanyRemoval]]:
        """The webhook notifications ``(notification id, fact)`` Intercom would have delivered
        since the last call, oldest first: what :meth:`LedgerApp.receive` keeps."""
        queued, self._queue = self._queue, []
        return queued

    # --- the sync -----------------------------------------------------------------------------

    def lookup(self, keys: Sequence[str]) -> list[CompanyChange]:
        """Every company whose ``company_id`` is one of ``keys``."""
        wanted = set(keys)
        return [
            self._fact(iid, "snapshot", "lookup")
            for iid, c in sorted(self.companies.items())
            if c["company_id"] in wanted
        ]

    def every_company(self) -> list[CompanyChange]:
        """Every company as it is now."""
        return [self._fact(iid, "snapshot", "scroll") for iid in sorted(self.companies)]

    def read(self, ids: Sequence[str]) -> list[CompanyChange | CompanyRemoval]:
        """The companies ``ids`` as they are now (a removal for one that is gone)."""
        return [
            self._fact(iid, "snapshot", "read")
            if iid in self.companies
            else CompanyRemoval(iid, source="read")
            for iid in ids
        ]

    def write(self, updates: Updates) -> list[RecordResult]:
        """Update companies one call each; like any change each queues ``company.updated``."""
        return write_each(updates, self._write_one)

    def _write_one(self, intercom_id: str, values: Mapping[str, Any]) -> None:
        if intercom_id not in self.companies:
            raise WriteRefused(f"company {intercom_id} does not exist", code="company_not_found")
        self.update(intercom_id, values)

    # --- internals ----------------------------------------------------------------------------

    def _notify(self, fact: CompanyChange | CompanyRemoval) -> None:
        self._notifications += 1
        self._queue.append((f"notif_{self._notifications:06d}", fact))

    def _tick(self) -> int:
        if not self._held:
            self._clock += 1
        return self._clock

    def _live(self, intercom_id: str) -> dict[str, Any]:
        if intercom_id not in self.companies:
            raise WriteRefused(f"company {intercom_id} does not exist", code="company_not_found")
        return self.companies[intercom_id]

    def _check(self, values: Mapping[str, Any]) -> None:
        bad: dict[str, str] = {}
        for name, value in values.items():
            attribute = self.schema.get(name)
            if attribute is None or name not in self._data_attributes:
                bad[name] = "no such writable company attribute"
            elif (
                problem := value_problem(
                    value, INTERCOM_KINDS.get(attribute.data_type, attribute.data_type)
                )
            ) is not None:
                bad[name] = problem
        if bad:
            text = "; ".join(f"{k}: {v}" for k, v in sorted(bad.items()))
            raise WriteRefused(text, code="parameter_invalid", fields=sorted(bad))

    def _fact(self, intercom_id: str, kind: str, source: str) -> CompanyChange:
        c = self.companies[intercom_id]
        return CompanyChange(
            intercom_id,
            c["company_id"],
            dict(c["attributes"]),
            int(c["updated_at"]),
            kind="created" if kind == "created" else "updated" if kind == "updated" else "snapshot",
            source=source,
        )
