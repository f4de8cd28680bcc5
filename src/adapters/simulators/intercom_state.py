"""The in-memory Intercom workspace behind the simulator: companies, data attributes, one scroll.

:class:`IntercomState` is thread-safe (one re-entrant lock) and framework-free: the FastAPI app in
:mod:`adapters.simulators.intercom` translates HTTP into its methods, and tests or the demo can
drive it directly through the helper methods (``create_company`` and friends), which emit the same
webhooks as the API does. The company records are :mod:`.intercom_companies`, the checks on a write
:mod:`.intercom_writes`, and seed data in and out :mod:`.intercom_seed`.
"""

from __future__ import annotations

import copy
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from adapters.simulators.intercom_companies import CompanyRecords, CompanyWrite
from adapters.simulators.intercom_model import (
    AttributeCatalog,
    company_not_found,
    parameter_invalid,
)
from adapters.simulators.intercom_seed import dump_workspace, read_seed_file, seed_workspace
from adapters.simulators.intercom_webhooks import WebhookDelivery
from adapters.simulators.intercom_writes import (
    SYSTEM_FIELDS,
    company_id_of,
    prepare_write,
    refuse_unknown,
)

JSON = dict[str, Any]


class CompanyEventSink(Protocol):
    """Receives company.created/updated/deleted notifications (the webhook dispatcher)."""

    def publish(self, topic: str, item: JSON) -> None:
        """Accept a notification without blocking."""

    def flush(self, timeout: float) -> bool:
        """Wait until everything published was handled; False on timeout."""


class IntercomState:
    """One simulated Intercom workspace.

    ``now`` is the clock (Unix seconds) used for timestamps, the rate limiter and scroll expiry;
    ``seed`` makes ids reproducible. The scroll API pages ``scroll_page_size`` companies at a time
    and forgets a scroll after ``scroll_ttl`` seconds without use.
    """

    def __init__(
        self,
        *,
        app_id: str = "simapp01",
        now: Callable[[], float] = time.time,
        seed: int | None = None,
        scroll_page_size: int = 50,
        scroll_ttl: float = 60.0,
    ) -> None:
        self.app_id = app_id
        self.now = now
        self.scroll_page_size = scroll_page_size
        self.scroll_ttl = scroll_ttl
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._companies = CompanyRecords(app_id, now, self._rng)
        self._catalog = AttributeCatalog.standard()
        self._counters: Counter[str] = Counter()
        self._versions: Counter[str] = Counter()
        self._sinks: list[CompanyEventSink] = []
        self._webhook_log: list[WebhookDelivery] = []

    # -- ids and time -------------------------------------------------------------------------

    def new_uuid(self) -> str:
        """A random (seeded) UUID4 string, for request ids and scroll params."""
        with self._lock:
            return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _timestamp(self) -> int:
        return int(self.now())

    # -- companies through the API -------------------------------------------------------------

    def upsert_company(self, body: Mapping[str, Any]) -> JSON:
        """``POST /companies``: create or update by ``company_id``."""
        refuse_unknown(body, {"company_id", "update_last_request_at"})
        company_id = company_id_of(body.get("company_id"))
        with self._lock:
            write = self._prepare(body)
            existing = self._companies.by_company_id(company_id)
            if existing is None:
                return self._create(company_id, write)
            return self._update(existing, write)

    def update_company_by_id(self, intercom_id: str, body: Mapping[str, Any]) -> JSON:
        """``PUT /companies/{id}``: update by Intercom id; ``company_id`` cannot change."""
        with self._lock:
            company = self._companies.require(intercom_id)
            refuse_unknown(body, {"company_id", "update_last_request_at"})
            if "company_id" in body and company_id_of(body["company_id"]) != company["company_id"]:
                raise parameter_invalid("company_id cannot be updated", "company_id")
            return self._update(company, self._prepare(body))

    def qualify_company(self, body: Mapping[str, Any]) -> JSON:
        """A company created by Messenger qualification (a visitor typed its name): it has no
        ``company_id``, and a ``company.created`` webhook is sent as for any other company."""
        refuse_unknown(body, set())
        with self._lock:
            return self._create(None, self._prepare(body))

    def find(self, intercom_id: str) -> JSON:
        """``GET /companies/{id}``, or 404."""
        with self._lock:
            return copy.deepcopy(self._companies.require(intercom_id))

    def find_by(self, *, company_id: str | None = None, name: str | None = None) -> JSON:
        """``GET /companies?company_id=`` or ``?name=``: one company, or 404."""
        with self._lock:
            if company_id is not None:
                found = self._companies.by_company_id(company_id)
            else:
                found = self._companies.by_name(name) if name is not None else None
            if found is None:
                raise company_not_found()
            return copy.deepcopy(found)

    def remove(self, intercom_id: str) -> JSON:
        """``DELETE /companies/{id}``: the ``deleted`` answer; emits ``company.deleted``."""
        with self._lock:
            company = self._companies.remove(intercom_id)
            item = {"type": "company", "id": intercom_id, "company_id": company["company_id"]}
            self._emit("company.deleted", item)
            return {"id": intercom_id, "object": "company", "deleted": True}

    def list_page(self, page: int, per_page: int, order: str) -> tuple[list[JSON], int]:
        """``POST /companies/list``: one page sorted by ``last_request_at``, and the total."""
        with self._lock:
            return self._companies.page(page, per_page, order)

    def scroll(self, scroll_param: str | None) -> tuple[list[JSON], str]:
        """``GET /companies/scroll``: the next page of the app's one scroll, and its param."""
        with self._lock:
            return self._companies.scroll(
                scroll_param,
                page_size=self.scroll_page_size,
                ttl=self.scroll_ttl,
                new_param=self.new_uuid,
            )

    # -- data attributes ------------------------------------------------------------------------

    def list_attributes(self, model: str | None, include_archived: bool) -> list[JSON]:
        """``GET /data_attributes``."""
        with self._lock:
            return [
                attr.to_json()
                for attr in self._catalog
                if (model is None or attr.model == model)
                and (include_archived or not attr.archived)
            ]

    def create_attribute(self, body: Mapping[str, Any]) -> JSON:
        """``POST /data_attributes``."""
        with self._lock:
            return self._catalog.create(body, self._timestamp()).to_json()

    def update_attribute(self, attribute_id: int, body: Mapping[str, Any]) -> JSON:
        """``PUT /data_attributes/{id}``."""
        with self._lock:
            return self._catalog.update(attribute_id, body, self._timestamp()).to_json()

    # -- helpers for tests and the demo (no HTTP; same validation and webhooks) -----------------

    def create_company(self, company_id: str, **attrs: Any) -> str:
        """Create a company and return its Intercom id. ``attrs`` are API-writable fields plus
        ``user_count``, ``session_count`` and ``last_request_at``."""
        company_id = company_id_of(company_id)
        refuse_unknown(attrs, {*SYSTEM_FIELDS, "update_last_request_at"})
        with self._lock:
            if self._companies.by_company_id(company_id) is not None:
                raise parameter_invalid(f"company_id '{company_id}' already exists", "company_id")
            write = self._prepare(attrs, system=True)
            return str(self._create(company_id, write)["id"])

    def update_company(self, intercom_id: str, **attrs: Any) -> JSON:
        """Update a company like ``PUT /companies/{id}`` (system fields allowed too)."""
        refuse_unknown(attrs, {*SYSTEM_FIELDS, "update_last_request_at"})
        with self._lock:
            company = self._companies.require(intercom_id)
            return self._update(company, self._prepare(attrs, system=True))

    def delete_company(self, intercom_id: str) -> None:
        """Delete a company like ``DELETE /companies/{id}``."""
        self.remove(intercom_id)

    def get(self, intercom_id: str) -> JSON | None:
        """The company with this Intercom id, or None."""
        with self._lock:
            company = self._companies.get(intercom_id)
            return copy.deepcopy(company) if company is not None else None

    def by_company_id(self, company_id: str) -> JSON | None:
        """The company with this ``company_id``, or None."""
        with self._lock:
            found = self._companies.by_company_id(company_id)
            return copy.deepcopy(found) if found is not None else None

    def all_companies(self) -> list[JSON]:
        """Every company, in creation order."""
        with self._lock:
            return copy.deepcopy(list(self._companies))

    def define_attribute(
        self,
        name: str,
        data_type: str,
        *,
        options: list[str] | None = None,
        description: str = "",
        model: str = "company",
    ) -> JSON:
        """Create a custom data attribute (``data_type`` as in ``POST /data_attributes``)."""
        body: JSON = {"name": name, "model": model, "data_type": data_type}
        body["description"] = description
        if options is not None:
            body.update(data_type="options", options=[{"value": v} for v in options])
        return self.create_attribute(body)

    # -- counters, versions, webhook sinks ------------------------------------------------------

    def count_call(self, endpoint: str) -> None:
        """Count one API call to ``endpoint`` (e.g. ``"GET /companies/{id}"``)."""
        with self._lock:
            self._counters[endpoint] += 1

    def record_version(self, version: str) -> None:
        """Remember an ``Intercom-Version`` header value that a call sent."""
        with self._lock:
            self._versions[version] += 1

    @property
    def counters(self) -> dict[str, int]:
        """API calls by endpoint since the last :meth:`reset_counters` (a snapshot)."""
        with self._lock:
            return dict(self._counters)

    @property
    def intercom_versions(self) -> dict[str, int]:
        """How often each ``Intercom-Version`` header value was sent."""
        with self._lock:
            return dict(self._versions)

    def reset_counters(self) -> None:
        """Zero the call counters and the version tally."""
        with self._lock:
            self._counters.clear()
            self._versions.clear()

    def add_sink(self, sink: CompanyEventSink) -> None:
        """Send company notifications to ``sink`` from now on."""
        with self._lock:
            self._sinks.append(sink)

    def remove_sink(self, sink: CompanyEventSink) -> None:
        """Stop sending company notifications to ``sink``."""
        with self._lock:
            if sink in self._sinks:
                self._sinks.remove(sink)

    def record_delivery(self, delivery: WebhookDelivery) -> None:
        """Log a webhook delivery attempt (called by the dispatcher's worker)."""
        with self._lock:
            self._webhook_log.append(delivery)

    @property
    def webhook_log(self) -> list[WebhookDelivery]:
        """Every webhook delivery attempt so far, in the order they were made."""
        with self._lock:
            return list(self._webhook_log)

    def flush_webhooks(self, timeout: float = 5.0) -> bool:
        """Wait until all queued webhooks were delivered (or given up); False on timeout.

        Only running simulator apps deliver webhooks, so call this while the app is served.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            sinks = list(self._sinks)
        return all(sink.flush(max(0.0, deadline - time.monotonic())) for sink in sinks)

    # -- seeding ---------------------------------------------------------------------------------

    @classmethod
    def from_json(cls, data: Mapping[str, Any], **kwargs: Any) -> IntercomState:
        """A state seeded from ``{"companies": [...], "data_attributes": [...]}``."""
        state = cls(**kwargs)
        state.seed(data)
        return state

    def load_data(self, path: str | Path) -> IntercomState:
        """Seed this state from a JSON file (the simulator's ``--data FILE``); returns self."""
        self.seed(read_seed_file(path), source=str(path))
        return self

    def seed(self, data: Mapping[str, Any], *, source: str = "seed data") -> None:
        """Add data attributes, then companies (full objects or create bodies); no webhooks."""
        with self._lock:
            seed_workspace(
                data,
                companies=self._companies,
                catalog=self._catalog,
                timestamp=self._timestamp,
                source=source,
            )

    def to_json(self) -> JSON:
        """A dump that :meth:`from_json` reads back."""
        with self._lock:
            return dump_workspace(self._companies, self._catalog)

    # -- internals --------------------------------------------------------------------------------

    def _prepare(self, body: Mapping[str, Any], *, system: bool = False) -> CompanyWrite:
        """Validate a write completely before anything changes."""
        return prepare_write(body, self._catalog, self._timestamp, system=system)

    def _create(self, company_id: str | None, write: CompanyWrite) -> JSON:
        company = self._companies.create(company_id, write)
        self._emit("company.created", company)
        return copy.deepcopy(company)

    def _update(self, company: JSON, write: CompanyWrite) -> JSON:
        self._companies.apply(company, write)
        company["updated_at"] = self._timestamp()
        self._emit("company.updated", company)
        return copy.deepcopy(company)

    def _emit(self, topic: str, item: JSON) -> None:
        # Called under the lock, so notifications are queued in the order the changes happened.
        for sink in self._sinks:
            sink.publish(topic, copy.deepcopy(item))
