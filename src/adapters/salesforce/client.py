"""``SalesforceAccounts``: the Salesforce Account adapter on the real simple-salesforce client.

Reads are SOQL (``query`` + ``nextRecordsUrl`` pages, so each page is retried on its own),
deletions come from ``sobjects/Account/deleted`` (getDeleted), writes go through sObject
Collections (``PATCH composite/sobjects``, up to 200 records a request, ``allOrNone: false``).
Answers become ledger facts (:class:`~ledger.facts.AccountChange`,
:class:`~ledger.facts.AccountRemoval`) and catalog entries
(:class:`~ledger.catalog.SalesforceField`).

API usage: every successful answer carries ``Sforce-Limit-Info: api-usage=U/T``; simple-salesforce
parses it into ``api_usage`` on the object that made the call (reference A4: a fresh ``sf.Account``
each access), and :attr:`SalesforceAccounts.usage` keeps the latest. :meth:`budget_tier` turns it
into ``normal`` / ``pause_bulk`` (>= 40 % of the allocation) / ``pause_sync`` (>= 80 %).

Retries: HTTP 500/502/503/504, a whole-request ``UNABLE_TO_LOCK_ROW`` and connection or timeout
errors wait with exponential backoff and full jitter (injected ``sleep`` and ``rng``); per-record
``UNABLE_TO_LOCK_ROW`` in a collection answer is resent the same way. Every call is safe to
repeat: queries are reads, and a collection update sets absolute values.

Sessions: built with ``login`` (a :class:`~adapters.salesforce.login.SalesforceConnector`), the
adapter logs in at start, and a call answered 401 INVALID_SESSION_ID (the session timed out or
was revoked) logs in again with the same flow and is sent once more; each renewal is logged on
the ``syncledger`` logger (the flow's name, never a secret). A session id given as such cannot be
renewed: its 401 is a ``SalesforceAuthError``.

Errors are translated (:mod:`adapters.salesforce.calls`); no simple_salesforce or requests
exception escapes: see the tree in :mod:`ledger.errors`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from adapters.salesforce.calls import RETRYABLE_CODES, SalesforceCalls
from adapters.salesforce.errors import (
    SalesforceError,
)
from adapters.salesforce.login import SalesforceConnector, connect
from adapters.salesforce.records import (
    JSON,
    PollResult,
    Usage,
    WriteResult,
    escape_soql,
    soql_datetime,
)
from ledger.budget import Tier, budget_tier
from ledger.catalog import SalesforceField
from ledger.facts import AccountChange, AccountKind, AccountRemoval
from ledger.values import format_salesforce_datetime, parse_salesforce_datetime

BudgetTier = Tier

COLLECTION_SIZE = 200  # sObject Collections maximum
READ_BATCH = 200
# The SOQL travels percent-encoded in the GET URL; Salesforce caps URIs at 16,384 characters and
# common servers (h11, behind the simulator) cap the request head at 16 KiB, so leave headroom.
MAX_ENCODED_SOQL = 15_000
DELETED_WINDOW = timedelta(days=15) - timedelta(minutes=1)  # getDeleted looks back 15 days


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SalesforceAccounts(SalesforceCalls):
    """Salesforce Accounts over the REST API through simple-salesforce.

    Give ``instance_url`` + ``session_id`` (the adapter connects, and :meth:`close` closes the
    session), a ``login`` (the adapter logs in now, renews the session when Salesforce refuses
    it, and :meth:`close` closes the login's session) or a prebuilt ``client``. ``fields`` are
    the Account fields read into each :class:`AccountChange`; ``identifier_field`` is the field
    that matches Intercom companies. ``overlap_seconds`` (at least 60: getDeleted truncates to
    the minute) re-reads that much before the watermark on every poll. ``daily_allocation`` is
    this integration's share of the org's daily API calls (default: the org's whole limit from
    ``Sforce-Limit-Info``).
    """

    def __init__(
        self,
        instance_url: str | None = None,
        session_id: str | None = None,
        *,
        client: Any = None,  # simple_salesforce.Salesforce (untyped)
        login: SalesforceConnector | None = None,
        fields: Sequence[str],
        identifier_field: str,
        overlap_seconds: int = 300,
        daily_allocation: int | None = None,
        max_retries: int = 5,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = _utcnow,
        rng: random.Random | None = None,
        write_batch_size: int = COLLECTION_SIZE,
    ) -> None:
        if overlap_seconds < 60:
            raise ValueError("overlap_seconds must be at least 60 (getDeleted works in minutes)")
        self._login = login
        if client is None and login is not None:
            client = login.connect()
            self._owns_client = True
        elif client is None:
            if not instance_url or not session_id:
                raise ValueError("give instance_url and session_id, a login, or a client")
            client = connect(instance_url, session_id, timeout=timeout)
            self._owns_client = True
        else:
            self._owns_client = False
        self._sf: Any = client
        system = {"Id", "SystemModstamp", "IsPersonAccount"}
        self.fields = tuple(dict.fromkeys(f for f in fields if f not in system))
        self.identifier_field = identifier_field
        self.overlap = timedelta(seconds=overlap_seconds)
        self.daily_allocation = daily_allocation
        self.max_retries = max_retries
        if not 1 <= write_batch_size <= COLLECTION_SIZE:
            raise ValueError(f"write_batch_size must be from 1 to {COLLECTION_SIZE}")
        #: Records per sObject Collections update (``SYNCLEDGER_WRITE_BATCH_SIZE``).
        self.write_batch_size = write_batch_size
        self.usage: Usage | None = None
        self.has_person_accounts: bool | None = None  # known after describe()
        self._sleep = sleep
        self._now = now
        self._rng = rng or random.Random()

    def close(self) -> None:
        if self._owns_client:
            self._sf.session.close()

    def __enter__(self) -> SalesforceAccounts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the port ---------------------------------------------------------------------------------

    def describe(self) -> list[SalesforceField]:
        """Every Account field; also learns whether Person Accounts (IsPersonAccount) exist."""
        return [SalesforceField.from_describe(f) for f in self._describe_fields([])]

    def poll(self, watermark: str | None) -> PollResult:
        """Accounts changed after ``watermark`` (a SystemModstamp), and accounts deleted since.

        Each poll reads from ``watermark`` minus the overlap, because a long transaction can
        commit with an earlier SystemModstamp than ones already read. Re-seen accounts come back
        again (de-duplicated here only within one result by ``(Id, SystemModstamp)``); that is
        safe because the ledger ignores an ``(Id, SystemModstamp)`` it has already recorded.
        ``None`` reads every account and skips getDeleted.
        """
        calls: list[JSON] = []
        self._ensure_described(calls)
        soql = f"SELECT {', '.join(self._select())} FROM Account"
        start: datetime | None = None
        if watermark is not None:
            start = parse_salesforce_datetime(watermark) - self.overlap
            soql += f" WHERE SystemModstamp > {soql_datetime(start)}"
        soql += " ORDER BY SystemModstamp, Id"
        changes: list[AccountChange] = []
        seen: set[tuple[str, str]] = set()
        for record in self._query(soql, calls):
            change = self._change(record, "change", "poll")
            key = (change.salesforce_id, change.system_modstamp)
            if key not in seen:
                seen.add(key)
                changes.append(change)
        highest = [parse_salesforce_datetime(watermark)] if watermark else []
        highest += [parse_salesforce_datetime(c.system_modstamp) for c in changes]
        result = PollResult(changes=changes, removals=[], watermark=None, api_calls=calls)
        if start is not None:
            self._poll_deleted(start, result)
            if result.deletes_covered_until:
                highest.append(parse_salesforce_datetime(result.deletes_covered_until))
        result.watermark = format_salesforce_datetime(max(highest)) if highest else None
        return result

    def lookup(self, field: str, keys: Sequence[str]) -> list[AccountChange]:
        """Snapshots of the accounts whose ``field`` is one of ``keys`` (unmatched keys omitted)."""
        calls: list[JSON] = []
        self._ensure_described(calls)
        found: list[AccountChange] = []
        for soql in self._in_queries(field, list(dict.fromkeys(keys))):
            found.extend(self._change(r, "snapshot", "lookup") for r in self._query(soql, calls))
        return found

    def read(self, ids: Sequence[str]) -> list[AccountChange | AccountRemoval]:
        """The current state of each account by Id; a removal for each id not returned."""
        calls: list[JSON] = []
        self._ensure_described(calls)
        facts: list[AccountChange | AccountRemoval] = []
        unique = list(dict.fromkeys(ids))
        for i in range(0, len(unique), READ_BATCH):
            batch = unique[i : i + READ_BATCH]
            quoted = ", ".join(f"'{escape_soql(x)}'" for x in batch)
            soql = f"SELECT {', '.join(self._select())} FROM Account WHERE Id IN ({quoted})"
            by_id: dict[str, AccountChange] = {}
            for record in self._query(soql, calls):
                change = self._change(record, "snapshot", "read")
                by_id[change.salesforce_id] = change
                by_id[change.salesforce_id[:15]] = change  # a 15-char id asked for
            for record_id in batch:
                got = by_id.get(record_id) or by_id.get(record_id[:15])
                facts.append(got or AccountRemoval(salesforce_id=record_id, source="read"))
        return facts

    def write(self, updates: Sequence[tuple[str, Mapping[str, Any]]]) -> list[WriteResult]:
        """Update accounts ``(Id, {field: value})`` by sObject Collections, ``write_batch_size``
        (at most 200) per request.

        Returns one result per update, in order. Per-record failures (a restricted picklist
        value, a deleted record) are results, not exceptions; per-record lock contention is
        resent with backoff and reported ``retryable`` if it persists.
        """
        results: list[WriteResult | None] = [None] * len(updates)
        pending = list(range(len(updates)))
        attempt = 0
        while pending:
            retry: list[int] = []
            size = self.write_batch_size
            for i in range(0, len(pending), size):
                chunk = pending[i : i + size]
                for index, result in zip(chunk, self._write_chunk(updates, chunk), strict=True):
                    results[index] = result
                    if result.retryable:
                        retry.append(index)
            if not retry or attempt >= self.max_retries:
                break
            self._sleep(self._backoff(attempt))
            attempt += 1
            pending = retry
        return [r for r in results if r is not None]

    def refresh_usage(self) -> Usage | None:
        """Ask Salesforce for today's API usage (``GET limits/``, one call) and keep it."""
        calls: list[JSON] = []
        body = self._call("GET", "limits", calls, lambda: self._sf.restful("limits/"))
        daily = body.get("DailyApiRequests") if isinstance(body, dict) else None
        if isinstance(daily, dict) and "Max" in daily and "Remaining" in daily:
            limit = int(daily["Max"])
            self.usage = Usage(used=limit - int(daily["Remaining"]), total=limit)
        return self.usage

    def budget_tier(self) -> BudgetTier:
        """``pause_sync`` at >= 80 % of the daily allocation, ``pause_bulk`` at >= 40 %."""
        if self.usage is None:
            return "normal"
        return budget_tier(self.usage.used, self.usage.total, self.daily_allocation)

    # -- building blocks --------------------------------------------------------------------------

    def _describe_fields(self, calls: list[JSON]) -> list[Mapping[str, Any]]:
        path = "sobjects/Account/describe"
        body = self._call("GET", path, calls, lambda: self._sf.restful(path))
        fields: list[Mapping[str, Any]] = body.get("fields") or []
        self.has_person_accounts = any(f.get("name") == "IsPersonAccount" for f in fields)
        return fields

    def _ensure_described(self, calls: list[JSON]) -> None:
        if self.has_person_accounts is None:
            self._describe_fields(calls)

    def _select(self) -> list[str]:
        columns = [*self.fields, "Id", "SystemModstamp"]
        if self.has_person_accounts:
            columns.append("IsPersonAccount")
        return columns

    def _in_queries(self, field: str, keys: list[str]) -> Iterator[str]:
        """``SELECT ... WHERE field IN (...)`` statements, each within the URL budget."""
        head = f"SELECT {', '.join(self._select())} FROM Account WHERE {field} IN ("
        batch: list[str] = []
        size = len(quote(head)) + 3
        for key in keys:
            literal = f"'{escape_soql(key)}'"
            cost = len(quote(literal)) + len(quote(", "))
            if batch and size + cost > MAX_ENCODED_SOQL:
                yield head + ", ".join(batch) + ")"
                batch, size = [], len(quote(head)) + 3
            batch.append(literal)
            size += cost
        if batch:
            yield head + ", ".join(batch) + ")"

    def _change(self, record: Mapping[str, Any], kind: AccountKind, source: str) -> AccountChange:
        return AccountChange(
            salesforce_id=str(record["Id"]),
            fields={name: record.get(name) for name in self.fields},
            system_modstamp=str(record["SystemModstamp"]),
            is_person_account=bool(record.get("IsPersonAccount") or False),
            kind=kind,
            source=source,
        )

    def query(self, soql: str) -> list[Mapping[str, Any]]:
        """Every record ``soql`` selects, page by page (each page retried on its own): for
        reads beyond the Account sync, such as the replay guard's ``Organization`` check."""
        return list(self._query(soql, []))

    def _query(self, soql: str, calls: list[JSON]) -> Iterator[Mapping[str, Any]]:
        """Every record of ``soql``, page by page (each page retried on its own)."""
        page = self._call("GET", "query", calls, lambda: self._sf.query(soql))
        while True:
            yield from page.get("records") or []
            next_url: str | None = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            page = self._call("GET", "query_more", calls, self._more(next_url))

    def _more(self, next_url: str) -> Callable[[], Any]:
        return lambda: self._sf.query_more(next_url, identifier_is_url=True)

    def _poll_deleted(self, start: datetime, result: PollResult) -> None:
        now = self._now().astimezone(UTC)
        earliest_allowed = now - DELETED_WINDOW
        if start < earliest_allowed:
            result.resync_needed = True
            result.message = (
                f"getDeleted only reaches back 15 days, not to {soql_datetime(start)}; "
                "deletions may have been missed: re-read every account"
            )
            start = earliest_allowed
        end = max(now, start)
        accounts: list[Any] = []  # the SFType of the last try (a renewal makes a new client)

        def deleted() -> Any:
            accounts.append(self._sf.Account)  # its api_usage, not sf.api_usage, sees it (A4)
            return accounts[-1].deleted(start, end)

        body = self._call("GET", "sobjects/Account/deleted", result.api_calls, deleted)
        self._note_usage(accounts[-1])
        for item in body.get("deletedRecords") or []:
            result.removals.append(
                AccountRemoval(
                    salesforce_id=str(item["id"]), deleted_at=item.get("deletedDate"), source="poll"
                )
            )
        earliest = body.get("earliestDateAvailable")
        if earliest and parse_salesforce_datetime(earliest) > start:
            result.resync_needed = True
            result.message = (
                f"Salesforce's delete log starts at {earliest}, after {soql_datetime(start)}; "
                "deletions may have been missed: re-read every account"
            )
        result.deletes_covered_until = body.get("latestDateCovered")

    def _write_chunk(
        self, updates: Sequence[tuple[str, Mapping[str, Any]]], chunk: list[int]
    ) -> list[WriteResult]:
        records = [
            {"attributes": {"type": "Account"}, "id": updates[i][0], **updates[i][1]} for i in chunk
        ]
        body = {"allOrNone": False, "records": records}
        calls: list[JSON] = []
        answer = self._call(
            "PATCH",
            "composite/sobjects",
            calls,
            lambda: self._sf.restful("composite/sobjects", method="PATCH", json=body),
        )
        api_call = {**calls[-1], "records": len(records)}
        if not isinstance(answer, list) or len(answer) != len(chunk):
            raise SalesforceError(
                f"PATCH composite/sobjects: Salesforce answered {len(chunk)} records with "
                f"{type(answer).__name__} of unexpected shape"
            )
        results: list[WriteResult] = []
        for index, item in zip(chunk, answer, strict=True):
            record_id = updates[index][0]
            if item.get("success"):
                results.append(WriteResult(record_id, True, api_call=api_call))
                continue
            errors = item.get("errors") or [{}]
            first = errors[0]
            code = str(first.get("statusCode", ""))
            results.append(
                WriteResult(
                    record_id,
                    False,
                    code=code,
                    message=str(first.get("message", "")),
                    fields=tuple(first.get("fields") or ()),
                    retryable=code in RETRYABLE_CODES,
                    api_call=api_call,
                )
            )
        return results

    # -- calls, retries and error translation -----------------------------------------------------
