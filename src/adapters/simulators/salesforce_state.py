"""The simulated org's data: Accounts, the delete log, daily API usage, query cursors, counters.

(Over 400 lines on purpose: one class whose every method holds one lock, so the org's data,
its delete log and its usage change together; split into classes, each call would need the
lock passed around. It plays Salesforce in tests and the demo, not in production.)

Every method takes the state's lock, so the HTTP app (in uvicorn's thread) and a test or demo
(in its own thread) can use one :class:`SalesforceState` at the same time.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from adapters.simulators.salesforce_meter import ApiMeter, QueryCursors
from adapters.simulators.salesforce_schema import ACCOUNT_FIELDS, ACCOUNT_SPECS, full_row
from adapters.simulators.salesforce_values import (
    ApiError,
    format_datetime,
    make_id,
    normalize_id,
    render,
    seed_value,
    validate_write,
)

UPDATED_WINDOW = timedelta(days=30)
DELETED_WINDOW = timedelta(days=15)
_MS = timedelta(milliseconds=1)
STORED_FIELDS = tuple(f.name for f in ACCOUNT_FIELDS if f.formula is None and f.type != "address")
ROLLED_BACK = ApiError(
    400,
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone "
    "header",
    [],
)


def utcnow() -> datetime:
    """The default clock: aware UTC now."""
    return datetime.now(UTC)


def _minute(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(second=0, microsecond=0)


@dataclass(frozen=True, order=True)
class DeletedRecord:
    """One entry of the delete log read by ``sobjects/Account/deleted``."""

    deleted_date: datetime
    id: str


class MultipleMatches(Exception):
    """An external id matched several records (HTTP 300)."""

    def __init__(self, ids: Sequence[str]) -> None:
        super().__init__(f"{len(ids)} records match")
        self.ids = list(ids)


class SalesforceState:
    """In-memory Accounts plus everything the REST simulator keeps between calls.

    ``now`` is the clock (inject one in tests). ``accounts`` maps 18-char id to the stored row
    (describe-cased field -> Python value; derived fields are computed on read). ``delete_log``
    is ordered by deletion time. ``meter`` holds the daily API usage behind ``Sforce-Limit-Info``
    and the calls by kind (``counters``) that benchmarks read; ``cursors`` the open query results.
    """

    def __init__(self, *, now: Callable[[], datetime] = utcnow) -> None:
        self._lock = threading.RLock()
        self.now = now
        self.accounts: dict[str, dict[str, Any]] = {}
        self.delete_log: list[DeletedRecord] = []
        self.earliest_delete_available = _minute(now()) - DELETED_WINDOW
        self.replication_id_limit = 600_000
        self.owner_id = make_id("005", 1)
        self.meter = ApiMeter(lambda: self.now())
        self.cursors = QueryCursors()
        self._seq = 0
        self._last_stamp: datetime | None = None
        #: every update applied, in order: (Id, the values set) — tests count writes with it
        self.update_log: list[tuple[str, dict[str, Any]]] = []

    # -- seeding -------------------------------------------------------------------------------
    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], *, now: Callable[[], datetime] = utcnow
    ) -> SalesforceState:
        """A state seeded from ``{"accounts": [{field: value, ...}, ...]}``.

        Seed rows may carry system fields (Id, CreatedDate, SystemModstamp, IsDeleted, ...);
        raises ValueError naming the first bad row.
        """
        state = cls(now=now)
        for i, raw in enumerate(data.get("accounts", [])):
            try:
                state.seed_account(raw)
            except (ValueError, ApiError) as exc:
                raise ValueError(f"accounts[{i}]: {exc}") from None
        return state

    def seed_account(self, raw: Mapping[str, Any]) -> str:
        """Insert one row as given (system fields allowed, no access checks); returns its id."""
        values: dict[str, Any] = {}
        for key, value in raw.items():
            spec = ACCOUNT_SPECS.get(key.lower())
            if key == "attributes":
                continue
            if spec is None or spec.name not in STORED_FIELDS:
                raise ValueError(f"unknown or derived field {key!r}")
            values[spec.name] = seed_value(spec, value)
        if not values.get("Name"):
            raise ValueError("Name is required")
        with self._lock:
            stamp = values.get("SystemModstamp") or values.get("LastModifiedDate") or self._stamp()
            values.setdefault("CreatedDate", stamp)
            values.setdefault("LastModifiedDate", stamp)
            values.setdefault("SystemModstamp", stamp)
            if self._last_stamp is None or stamp > self._last_stamp:
                self._last_stamp = stamp
            record_id = values.pop("Id", None) or self._new_id()
            if record_id in self.accounts:
                raise ValueError(f"duplicate Id {record_id}")
            row = self._blank(record_id) | values
            self.accounts[record_id] = row
            if row["IsDeleted"]:
                bisect.insort(self.delete_log, DeletedRecord(row["SystemModstamp"], record_id))
            return record_id

    # -- internals -----------------------------------------------------------------------------
    def _stamp(self) -> datetime:
        """Now, in whole milliseconds, strictly after the previous stamp."""
        t = self.now().astimezone(UTC)
        t = t.replace(microsecond=t.microsecond // 1000 * 1000)
        if self._last_stamp is not None and t <= self._last_stamp:
            t = self._last_stamp + _MS
        self._last_stamp = t
        return t

    def _new_id(self) -> str:
        while True:
            self._seq += 1
            record_id = make_id("001", self._seq)
            if record_id not in self.accounts:
                return record_id

    def _blank(self, record_id: str) -> dict[str, Any]:
        row: dict[str, Any] = dict.fromkeys(STORED_FIELDS)
        row.update(Id=record_id, IsDeleted=False, IsPersonAccount=False, Is_Customer__c=False)
        row["OwnerId"] = self.owner_id
        return row

    def _live(self, record_id: str) -> dict[str, Any]:
        """The stored, undeleted row for ``record_id``, or Salesforce's 400/404 for it."""
        normal = normalize_id(record_id)
        if normal is None:
            msg = f"Provided external ID field does not exist or is not accessible: {record_id}"
            raise ApiError(404, "NOT_FOUND", msg)
        if not normal.startswith("001"):
            msg = f"Account ID: id value of incorrect type: {record_id}"
            raise ApiError(400, "MALFORMED_ID", msg, ["Id"])
        row = self.accounts.get(normal)
        if row is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        if row["IsDeleted"]:
            raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
        return row

    def _insert(self, values: Mapping[str, Any]) -> str:
        stamp = self._stamp()
        record_id = self._new_id()
        row = self._blank(record_id) | dict(values)
        row.update(CreatedDate=stamp, LastModifiedDate=stamp, SystemModstamp=stamp)
        self.accounts[record_id] = row
        return record_id

    def _update(self, row: dict[str, Any], values: Mapping[str, Any]) -> None:
        row.update(values)
        self.update_log.append((row["Id"], dict(values)))
        row["LastModifiedDate"] = row["SystemModstamp"] = self._stamp()

    def _delete(self, row: dict[str, Any]) -> None:
        stamp = self._stamp()
        row.update(IsDeleted=True, LastModifiedDate=stamp, SystemModstamp=stamp)
        self.delete_log.append(DeletedRecord(stamp, row["Id"]))

    # -- record operations (used by the HTTP app, and directly by tests and the demo) -----------
    def create_account(self, fields: Mapping[str, Any]) -> str:
        """Create an Account as ``POST sobjects/Account`` would; returns the new 18-char id."""
        values = validate_write(fields, creating=True)
        with self._lock:
            return self._insert(values)

    def update_account(self, record_id: str, fields: Mapping[str, Any]) -> None:
        """Update an Account as ``PATCH sobjects/Account/{id}`` would (bumps SystemModstamp)."""
        with self._lock:
            row = self._live(record_id)
            self._update(row, validate_write(fields, creating=False))

    def delete_account(self, record_id: str) -> None:
        """Soft-delete an Account: it stays visible to queryAll and enters the delete log."""
        with self._lock:
            self._delete(self._live(record_id))

    def read(self, record_id: str) -> dict[str, Any]:
        """The full row (derived fields included) of a live Account, or the REST error."""
        with self._lock:
            return full_row(self._live(record_id))

    def get(self, record_id: str) -> dict[str, Any] | None:
        """The Account as JSON values (deleted ones too, with IsDeleted=true), or None."""
        normal = normalize_id(record_id, "001")
        with self._lock:
            row = self.accounts.get(normal or "")
            return None if row is None else {k: render(v) for k, v in full_row(row).items()}

    def all_accounts(self, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Every Account as JSON values, in creation order."""
        with self._lock:
            rows = [r for r in self.accounts.values() if include_deleted or not r["IsDeleted"]]
            return [{k: render(v) for k, v in full_row(r).items()} for r in rows]

    def account_rows(self, *, include_deleted: bool) -> list[dict[str, Any]]:
        """Snapshot of full rows (Python values) for a query."""
        with self._lock:
            rows = [r for r in self.accounts.values() if include_deleted or not r["IsDeleted"]]
            return [full_row(r) for r in rows]

    def find_external(self, field: str, value: str) -> list[dict[str, Any]]:
        """Live rows whose external id ``field`` equals ``value`` (case-insensitively)."""
        folded = value.casefold()
        with self._lock:
            return [
                full_row(r)
                for r in self.accounts.values()
                if not r["IsDeleted"] and (r.get(field) or "").casefold() == folded
            ]

    def upsert(
        self, field: str, value: str, data: Mapping[str, Any], *, update_only: bool = False
    ) -> tuple[str, bool]:
        """Upsert by external id ``field`` (or ``Id``); returns (id, created).

        Raises MultipleMatches when several live rows carry ``value``.
        """
        with self._lock:
            if field == "Id":
                row = self._live(value)
                self._update(row, validate_write(data, creating=False))
                return row["Id"], False
            body = dict(data)
            for key in [k for k in body if k.lower() == field.lower()]:
                if str(body.pop(key)).casefold() != value.casefold():
                    msg = f"The {field} value in the request body does not match the URL: {value}"
                    raise ApiError(400, "INVALID_FIELD", msg, [field])
            matches = self.find_external(field, value)
            if len(matches) > 1:
                raise MultipleMatches([m["Id"] for m in matches])
            if matches:
                row = self.accounts[matches[0]["Id"]]
                self._update(row, validate_write(body, creating=False))
                return row["Id"], False
            if update_only:
                raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
            return self._insert(validate_write({**body, field: value}, creating=True)), True

    def save_collection(
        self, records: Sequence[Mapping[str, Any]], *, creating: bool, all_or_none: bool
    ) -> list[dict[str, Any]]:
        """sObject Collections create/update: SaveResults in request order.

        Deserialisation errors (unknown field, wrong JSON type) raise and fail the whole request;
        other errors are per record. With ``all_or_none`` one failure changes nothing.
        """
        with self._lock:
            plans: list[tuple[dict[str, Any] | None, dict[str, Any]] | ApiError] = []
            seen: set[str] = set()
            for record in records:
                try:
                    plans.append(self._plan(record, creating, seen))
                except ApiError as exc:
                    if exc.request_level:
                        raise
                    plans.append(exc)
            if all_or_none and any(isinstance(p, ApiError) for p in plans):
                return [_failure(p if isinstance(p, ApiError) else ROLLED_BACK) for p in plans]
            results: list[dict[str, Any]] = []
            for plan in plans:
                if isinstance(plan, ApiError):
                    results.append(_failure(plan))
                    continue
                row, values = plan
                if row is None:
                    record_id = self._insert(values)
                else:
                    self._update(row, values)
                    record_id = row["Id"]
                results.append({"id": record_id, "success": True, "errors": []})
            return results

    def _plan(
        self, record: Mapping[str, Any], creating: bool, seen: set[str]
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        fields = {k: v for k, v in record.items() if k != "attributes"}
        id_keys = [k for k in fields if k.lower() == "id"]
        if creating:
            if id_keys:
                raise ApiError(400, "INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
            return None, validate_write(fields, creating=True)
        raw_id = fields.pop(id_keys[0]) if id_keys else None
        if not raw_id:
            raise ApiError(400, "MISSING_ARGUMENT", "Id not specified in an update call", [])
        normal = normalize_id(raw_id, "001")
        if normal is None:
            msg = f"Account ID: id value of incorrect type: {raw_id}"
            raise ApiError(400, "MALFORMED_ID", msg, ["Id"])
        if normal in seen:
            raise ApiError(400, "DUPLICATE_VALUE", f"Duplicate id in list: {normal}", [])
        seen.add(normal)
        row = self.accounts.get(normal)
        if row is None:
            raise ApiError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
        if row["IsDeleted"]:
            raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
        return row, validate_write(fields, creating=False)

    def delete_collection(self, ids: Sequence[str], *, all_or_none: bool) -> list[dict[str, Any]]:
        """sObject Collections delete: DeleteResults in request order."""
        with self._lock:
            plans: list[dict[str, Any] | ApiError] = []
            for raw in ids:
                try:
                    if normalize_id(raw) is None:
                        raise ApiError(400, "MALFORMED_ID", f"malformed id {raw}", [])
                    plans.append(self._live(raw))
                except ApiError as exc:
                    plans.append(exc)
            if all_or_none and any(isinstance(p, ApiError) for p in plans):
                return [_failure(p if isinstance(p, ApiError) else ROLLED_BACK) for p in plans]
            results = []
            for plan in plans:
                if isinstance(plan, ApiError):
                    results.append(_failure(plan))
                else:
                    self._delete(plan)
                    results.append({"id": plan["Id"], "success": True, "errors": []})
            return results

    def retrieve(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """Full rows for ``ids`` (None for malformed, unknown or deleted ids)."""
        with self._lock:
            rows = [self.accounts.get(normalize_id(i, "001") or "") for i in ids]
            return [full_row(r) if r is not None and not r["IsDeleted"] else None for r in rows]

    # -- replication (getUpdated / getDeleted) --------------------------------------------------
    def _window(self, start: datetime, end: datetime, span: timedelta) -> tuple[datetime, datetime]:
        start_t, end_t, now = _minute(start), _minute(end), self.now()
        if start_t > end_t:
            msg = "startDate must chronologically precede endDate"
            raise ApiError(400, "INVALID_REPLICATION_DATE", msg)
        if start_t < now - span:
            msg = f"startDate cannot be more than {span.days} days ago"
            raise ApiError(400, "INVALID_REPLICATION_DATE", msg)
        return start_t, min(end_t, _minute(now))

    def _check_id_limit(self, count: int) -> None:
        if count > self.replication_id_limit:
            msg = f"more than {self.replication_id_limit} ids in the window; use a shorter window"
            raise ApiError(400, "EXCEEDED_ID_LIMIT", msg)

    def updated(self, start: datetime, end: datetime) -> dict[str, Any]:
        """The getUpdated body: live ids with start <= SystemModstamp < latestDateCovered."""
        with self._lock:
            start_t, latest = self._window(start, end, UPDATED_WINDOW)
            rows = [
                r
                for r in self.accounts.values()
                if not r["IsDeleted"] and start_t <= r["SystemModstamp"] < latest
            ]
            self._check_id_limit(len(rows))
            rows.sort(key=lambda r: r["SystemModstamp"])
            return {"ids": [r["Id"] for r in rows], "latestDateCovered": format_datetime(latest)}

    def deleted(self, start: datetime, end: datetime) -> dict[str, Any]:
        """The getDeleted body, with earliestDateAvailable moved by :meth:`purge_delete_log`."""
        with self._lock:
            start_t, latest = self._window(start, end, DELETED_WINDOW)
            found = [d for d in self.delete_log if start_t <= d.deleted_date < latest]
            self._check_id_limit(len(found))
            return {
                "deletedRecords": [
                    {"id": d.id, "deletedDate": format_datetime(d.deleted_date)} for d in found
                ],
                "earliestDateAvailable": format_datetime(self.earliest_delete_available),
                "latestDateCovered": format_datetime(latest),
            }

    def purge_delete_log(self, before: datetime) -> None:
        """Empty the Recycle Bin up to ``before``: those rows vanish, even from queryAll."""
        with self._lock:
            gone = [d for d in self.delete_log if d.deleted_date < before]
            self.delete_log = [d for d in self.delete_log if d.deleted_date >= before]
            for d in gone:
                self.accounts.pop(d.id, None)
            self.earliest_delete_available = max(self.earliest_delete_available, before)

    # -- API accounting --------------------------------------------------------------------------
    @property
    def api_calls_by_day(self) -> dict[date, int]:
        """API calls per UTC day (the usage in ``Sforce-Limit-Info``)."""
        return self.meter.calls_by_day

    @property
    def counters(self) -> dict[str, int]:
        """Calls by kind plus ``total``; ``faults`` and ``limit_exceeded`` are not in the total."""
        return self.meter.counters

    def reset_counters(self) -> None:
        """Zero the counters (today's API usage is left alone)."""
        self.meter.reset_counters()


def _failure(error: ApiError) -> dict[str, Any]:
    return {"success": False, "errors": [error.record_error()]}


def load_data(path: str | Path, *, now: Callable[[], datetime] = utcnow) -> SalesforceState:
    """A state seeded from a JSON file shaped ``{"accounts": [{field: value, ...}]}``."""
    return SalesforceState.from_json(json.loads(Path(path).read_text(encoding="utf-8")), now=now)
