"""In-memory fakes of Salesforce and Intercom, as users see them and as the sync needs them.

:class:`FakeSalesforce` and :class:`FakeIntercom` satisfy the ports in :mod:`adapters.sync.cycle`
(``AccountSystem``, ``CompanySystem``), so the demo and the tests run a real sync cycle offline.
User actions (``create``/``update``/``delete``) change the data the way people in each system do;
the sync's own calls (poll, notifications, lookup, read, write) report it as ledger facts.

What they keep faithful, because the ledger's decisions depend on it:

- Salesforce ``SystemModstamp`` strictly increases with every save (ours included), so a poll
  ``changes_since`` the ledger's watermark shows each change, and our writes come back (echoes).
- Intercom ``updated_at`` increases with every change, and every change (ours included) queues a
  webhook notification, under an id of its own; deleting a company queues ``company.deleted``.
  Nothing delivers them: :meth:`FakeIntercom.webhooks` hands them over, to be kept in the
  ledger's inbox (:meth:`ledger.application.LedgerApp.receive`), as the service's webhook intake
  keeps what Intercom delivers.
- A value outside a restricted picklist, of the wrong type, or for a read-only field is refused
  (:class:`adapters.sync.cycle.WriteRefused`), naming the fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.sync.ports import RecordResult, Updates, WriteRefused, write_each
from ledger.catalog import FieldCatalog, IntercomAttribute, SalesforceField
from ledger.events import SALESFORCE
from ledger.facts import (
    AccountChange,
    AccountRemoval,
    ApiUsage,
    CompanyChange,
    CompanyRemoval,
    DeletionsMissed,
)
from ledger.values import FLOAT_TYPES, STRING_TYPES, format_salesforce_datetime, key_of

#: Records per sObject Collections request (and per ``Id IN`` read).
COLLECTION_SIZE = 200

INDUSTRIES = ("Agriculture", "Banking", "Technology", "Retail", "Other")
#: 2026-01-01T00:00:00Z: the fakes' clocks start here and tick once per change.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _sf(name: str, type_: str, **kw: Any) -> SalesforceField:
    return SalesforceField(name=name, type=type_, **kw)


def _ro(name: str, type_: str, **kw: Any) -> SalesforceField:
    return SalesforceField(name=name, type=type_, updateable=False, createable=False, **kw)


SALESFORCE_FIELDS = (
    _ro("Id", "id"),
    _sf("Name", "string", length=255, nillable=False),
    _sf("AccountNumber", "string", length=40),
    _sf("Site", "string", length=80),
    _sf("Website", "url", length=255),
    _sf("Industry", "picklist", picklist_values=INDUSTRIES, restricted_picklist=True),
    _sf("NumberOfEmployees", "int"),
    _sf("AnnualRevenue", "currency"),
    _sf("Phone", "phone", length=40),
    _sf("Description", "textarea", length=32000),
    _ro("BillingAddress", "address"),
    _sf("BillingCity", "string", length=40, compound_field_name="BillingAddress"),
    _ro("IsPersonAccount", "boolean"),
    _ro("SystemModstamp", "datetime"),
    _sf("Plan__c", "string", length=80),
    _sf("Health_Score__c", "double"),
    _sf("Seats__c", "int"),
    _sf("Is_Customer__c", "boolean"),
    _sf("Renewal_Date__c", "date"),
    _ro("Tier__c", "string", calculated=True),
    _sf("Tags__c", "multipicklist"),
)

INTERCOM_ATTRIBUTES = (
    IntercomAttribute("name", "string"),
    IntercomAttribute("company_id", "string", api_writable=False),
    IntercomAttribute("website", "string"),
    IntercomAttribute("industry", "string"),
    IntercomAttribute("size", "integer"),
    IntercomAttribute("monthly_spend", "float"),
    IntercomAttribute("remote_created_at", "date"),
    IntercomAttribute("created_at", "date", api_writable=False),
    IntercomAttribute("updated_at", "date", api_writable=False),
    IntercomAttribute("last_request_at", "date", api_writable=False),
    IntercomAttribute("session_count", "integer", api_writable=False),
    IntercomAttribute("custom_attributes.plan", "string", custom=True),
    IntercomAttribute("custom_attributes.health_score", "float", custom=True),
    IntercomAttribute("custom_attributes.seats", "integer", custom=True),
    IntercomAttribute("custom_attributes.is_customer", "boolean", custom=True),
    IntercomAttribute("custom_attributes.renewal_date", "date", custom=True),
    IntercomAttribute("custom_attributes.account_code", "string", custom=True),
)


def catalog() -> FieldCatalog:
    """The field catalogs of the two fakes (what ``describe`` and ``data_attributes`` say)."""
    return FieldCatalog.of(SALESFORCE_FIELDS, INTERCOM_ATTRIBUTES)


#: Intercom data types as :func:`_type_problem` knows them (an Intercom date is Unix seconds).
_INTERCOM_KINDS = {"date": "unix"}


def _type_problem(value: Any, kind: str, length: int = 0) -> str | None:
    """Why ``value`` does not fit a field of type ``kind``, or ``None`` when it fits."""
    if value is None:
        return None
    if kind in STRING_TYPES | {"string", "url", "multipicklist"}:
        if not isinstance(value, str):
            return f"expected text, got {type(value).__name__}"
        if length and len(value) > length:
            return f"{len(value)} characters exceed the length of {length}"
        return None
    if kind in {"int", "integer"}:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"expected a whole number, got {value!r}"
    if kind in FLOAT_TYPES | {"float"}:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else f"expected a number, got {value!r}"
    if kind == "boolean":
        return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
    if kind == "date":  # a Salesforce date
        try:
            datetime.strptime(str(value), "%Y-%m-%d")
        except ValueError:
            return f"expected a date YYYY-MM-DD, got {value!r}"
        return None
    if kind == "datetime":
        return None if isinstance(value, str) else f"expected a date and time, got {value!r}"
    if kind == "unix":  # an Intercom date
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"expected Unix seconds, got {value!r}"
    return None


class FakeSalesforce:
    """A Salesforce org's Accounts in memory (``AccountSystem``).

    Field values are keyed by API name; every field of the catalog that holds data is present
    (``None`` when unset).
    """

    def __init__(self, fields: Iterable[SalesforceField] = SALESFORCE_FIELDS) -> None:
        self.schema: dict[str, SalesforceField] = {f.name: f for f in fields}
        self._data_fields = [
            f.name
            for f in self.schema.values()
            if f.type not in {"address", "id"}
            and f.name not in {"IsPersonAccount", "SystemModstamp"}
        ]
        self.accounts: dict[str, dict[str, Any]] = {}
        self.deleted: dict[str, str] = {}
        #: deletions before this stamp are no longer listed (see :meth:`purge_delete_log`)
        self.delete_log_start: str | None = None
        #: API calls made by the sync, against the org's daily ``api_limit``
        self.api_calls = 0
        self.api_limit = 100_000
        self.api_allocation: int | None = None
        self._tick = 0
        self._ids = 0

    # --- users -------------------------------------------------------------------------------

    def create(
        self, values: Mapping[str, Any] | None = None, *, person: bool = False, **fields: Any
    ) -> str:
        """A user creates an account; returns its Id."""
        merged = {**(values or {}), **fields}
        self._check(merged, "createable")
        self._ids += 1
        record_id = f"001{self._ids:015d}"
        record: dict[str, Any] = dict.fromkeys(self._data_fields)
        record.update(merged, Id=record_id, IsPersonAccount=person)
        record["SystemModstamp"] = self._stamp()
        self.accounts[record_id] = record
        return record_id

    def update(
        self, record_id: str, values: Mapping[str, Any] | None = None, **fields: Any
    ) -> None:
        """A user saves an account (``SystemModstamp`` moves on even if nothing changed)."""
        merged = {**(values or {}), **fields}
        record = self._live(record_id)
        self._check(merged, "updateable")
        record.update(merged)
        record["SystemModstamp"] = self._stamp()

    def delete(self, record_id: str) -> None:
        """A user deletes an account (it goes to the recycle bin; ``getDeleted`` shows it)."""
        self._live(record_id)
        del self.accounts[record_id]
        self.deleted[record_id] = self._stamp()

    def set_picklist_values(self, field: str, values: Sequence[str]) -> None:
        """An admin changes a picklist's active values (the sync's configuration is not told)."""
        self.schema[field] = SalesforceField(
            **{**self.schema[field].to_dict(), "picklist_values": tuple(values)}
        )

    def get(self, record_id: str) -> dict[str, Any] | None:
        """The account as a user sees it (a copy), or ``None`` once deleted."""
        record = self.accounts.get(record_id)
        return None if record is None else dict(record)

    def purge_delete_log(self) -> None:
        """Salesforce empties its recycle bin: deletions so far are no longer listed."""
        self.deleted.clear()
        self.delete_log_start = self._stamp()

    # --- the sync -----------------------------------------------------------------------------

    def changes_since(
        self, watermark: str | None
    ) -> list[AccountChange | AccountRemoval | DeletionsMissed]:
        """Accounts saved after ``watermark`` (all when ``None``), then deletions after it
        (two calls); :class:`DeletionsMissed` if the delete log starts after ``watermark``."""
        self._call(2 if watermark is not None else 1)
        changed: list[AccountChange | AccountRemoval | DeletionsMissed] = [
            self._fact(r, "change", "poll")
            for r in sorted(self.accounts.values(), key=lambda r: r["SystemModstamp"])
            if watermark is None or r["SystemModstamp"] > watermark
        ]
        if watermark is not None:
            changed += [
                AccountRemoval(rid, deleted_at=at, source="poll")
                for rid, at in sorted(self.deleted.items(), key=lambda item: item[1])
                if at > watermark
            ]
            if self.delete_log_start is not None and self.delete_log_start > watermark:
                reason = f"the delete log starts at {self.delete_log_start}, after {watermark}"
                changed.append(DeletionsMissed(SALESFORCE, reason))
        return changed

    def lookup(self, field: str, keys: Sequence[str]) -> list[AccountChange]:
        """Every account whose ``field`` carries one of ``keys`` (one query)."""
        self._call()
        wanted, kind = set(keys), self.schema[field].type
        return [
            self._fact(r, "snapshot", "lookup")
            for rid, r in sorted(self.accounts.items())
            if key_of(r.get(field), kind) in wanted
        ]

    def every_account(self) -> list[AccountChange]:
        """Every account as it is now, least recently saved first (one query)."""
        self._call()
        by_stamp = sorted(self.accounts.values(), key=lambda r: r["SystemModstamp"])
        return [self._fact(r, "snapshot", "read") for r in by_stamp]

    def read(self, ids: Sequence[str]) -> list[AccountChange | AccountRemoval]:
        """The accounts ``ids`` as they are now (a removal for one that is gone)."""
        self._call(-(-len(ids) // COLLECTION_SIZE))
        return [
            self._fact(self.accounts[rid], "snapshot", "read")
            if rid in self.accounts
            else AccountRemoval(rid, deleted_at=self.deleted.get(rid), source="read")
            for rid in ids
        ]

    def write(self, updates: Updates) -> list[RecordResult]:
        """Update accounts, 200 a call like sObject Collections; each record all or nothing."""
        self._call(-(-len(updates) // COLLECTION_SIZE))
        return write_each(updates, self._write_one)

    def api_usage(self) -> ApiUsage | None:
        """The usage after the sync's latest call (``None`` before the first)."""
        if not self.api_calls:
            return None
        return ApiUsage(SALESFORCE, self.api_calls, self.api_limit, self.api_allocation)

    def refresh_api_usage(self) -> ApiUsage | None:
        """One ``limits`` call."""
        self._call()
        return self.api_usage()

    def _write_one(self, record_id: str, values: Mapping[str, Any]) -> None:
        if record_id not in self.accounts:
            code = "ENTITY_IS_DELETED" if record_id in self.deleted else "NOT_FOUND"
            raise WriteRefused(f"account {record_id} does not exist", code=code)
        self.update(record_id, values)

    def _call(self, count: int = 1) -> None:
        self.api_calls += count

    # --- internals ----------------------------------------------------------------------------

    def _stamp(self) -> str:
        stamp = format_salesforce_datetime(EPOCH + timedelta(seconds=self._tick))
        self._tick += 1
        return stamp

    def _live(self, record_id: str) -> dict[str, Any]:
        if record_id not in self.accounts:
            raise WriteRefused(f"account {record_id} does not exist", code="NOT_FOUND")
        return self.accounts[record_id]

    def _check(self, values: Mapping[str, Any], access: str) -> None:
        bad: dict[str, str] = {}
        code = "INVALID_FIELD"
        for name, value in values.items():
            f = self.schema.get(name)
            if f is None or name not in self._data_fields:
                bad[name] = "no such field on Account"
            elif not getattr(f, access) or f.calculated:
                bad[name] = "the field is not writable"
            elif f.restricted_picklist and value is not None and value not in f.picklist_values:
                code = "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
                bad[name] = f"bad value for restricted picklist field: {value}"
            elif (problem := _type_problem(value, f.type, f.length)) is not None:
                bad[name] = problem
        if bad:
            text = "; ".join(f"{k}: {v}" for k, v in sorted(bad.items()))
            raise WriteRefused(text, code=code, fields=sorted(bad))

    def _fact(self, record: Mapping[str, Any], kind: str, source: str) -> AccountChange:
        return AccountChange(
            str(record["Id"]),
            {name: record.get(name) for name in self._data_fields},
            str(record["SystemModstamp"]),
            bool(record["IsPersonAccount"]),
            kind="snapshot" if kind == "snapshot" else "change",
            source=source,
        )


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
                problem := _type_problem(
                    value, _INTERCOM_KINDS.get(attribute.data_type, attribute.data_type)
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
