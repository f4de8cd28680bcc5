"""The company records of a simulated Intercom workspace, with page lists and the one scroll.

:class:`CompanyRecords` does no locking, validation or notification of its own; it is the storage
that :class:`adapters.simulators.intercom_state.IntercomState` guards and drives.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from adapters.simulators.intercom_model import IntercomError, company_not_found, parameter_invalid

JSON = dict[str, Any]


@dataclass(frozen=True)
class CompanyWrite:
    """A validated company write: standard fields, custom attributes, system fields."""

    fields: JSON = field(default_factory=dict)
    custom: JSON = field(default_factory=dict)
    system: JSON = field(default_factory=dict)


@dataclass
class _Scroll:
    param: str
    ids: list[str]
    position: int
    last_used: float


class CompanyRecords:
    """Companies by Intercom id, indexed by ``company_id``, in creation order."""

    def __init__(self, app_id: str, now: Callable[[], float], rng: random.Random) -> None:
        self._app_id = app_id
        self._now = now
        self._rng = rng
        self._by_id: dict[str, JSON] = {}
        self._by_company_id: dict[str, str] = {}
        self._seq: dict[str, int] = {}
        self._next_seq = 0
        self._plans: dict[str, str] = {}
        self._scroll: _Scroll | None = None

    def __iter__(self) -> Iterator[JSON]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, intercom_id: str) -> JSON | None:
        """The stored company (not a copy), or None."""
        return self._by_id.get(intercom_id)

    def require(self, intercom_id: str) -> JSON:
        """The stored company, or 404 ``company_not_found``."""
        company = self._by_id.get(intercom_id)
        if company is None:
            raise company_not_found()
        return company

    def by_company_id(self, company_id: str) -> JSON | None:
        """The stored company with this ``company_id``, or None."""
        found = self._by_company_id.get(company_id)
        return self._by_id[found] if found is not None else None

    def by_name(self, name: str) -> JSON | None:
        """The first company (creation order) named exactly ``name``, or None."""
        return next((c for c in self._by_id.values() if c["name"] == name), None)

    def create(
        self, company_id: str | None, write: CompanyWrite, intercom_id: str | None = None
    ) -> JSON:
        """Store a new company with Intercom's defaults, then ``write`` applied (``company_id``
        None: a company created by Messenger qualification, which has none)."""
        now = int(self._now())
        intercom_id = intercom_id or self._new_id()
        if intercom_id in self._by_id:
            raise parameter_invalid(f"id '{intercom_id}' is already taken", "id")
        company: JSON = {
            "type": "company",
            "id": intercom_id,
            "app_id": self._app_id,
            "name": None,
            "company_id": company_id,
            "remote_created_at": None,
            "created_at": now,
            "updated_at": now,
            "last_request_at": None,
            "monthly_spend": 0,
            "session_count": 0,
            "user_count": 0,
            "size": None,
            "website": None,
            "industry": None,
            "plan": {},
            "custom_attributes": {},
            "tags": {"type": "tag.list", "tags": []},
            "segments": {"type": "segment.list", "segments": []},
        }
        self.apply(company, write)
        self._by_id[intercom_id] = company
        if company_id is not None:
            self._by_company_id[company_id] = intercom_id
        self._seq[intercom_id] = self._next_seq
        self._next_seq += 1
        return company

    def apply(self, company: JSON, write: CompanyWrite) -> None:
        """Apply a validated write to a stored company (timestamps are the caller's)."""
        for key, value in write.fields.items():
            company[key] = self._plan(value) if key == "plan" else value
        company["custom_attributes"].update(write.custom)
        company.update(write.system)

    def remove(self, intercom_id: str) -> JSON:
        """Delete and return the stored company, or 404."""
        company = self.require(intercom_id)
        del self._by_id[intercom_id]
        self._by_company_id.pop(company["company_id"], None)
        del self._seq[intercom_id]
        return company

    def page(self, page: int, per_page: int, order: str) -> tuple[list[JSON], int]:
        """Copies of one page sorted by ``last_request_at`` (ties by creation), and the total."""
        if order not in ("asc", "desc"):
            raise parameter_invalid("order must be either asc or desc", "order")
        if page < 1 or per_page < 1:
            raise parameter_invalid("page and per_page must be positive integers")
        ordered = sorted(
            self._by_id.values(),
            key=lambda c: (c["last_request_at"] or 0, self._seq[c["id"]]),
            reverse=order == "desc",
        )
        start = (page - 1) * per_page
        return copy.deepcopy(ordered[start : start + per_page]), len(ordered)

    def scroll(
        self, scroll_param: str | None, *, page_size: int, ttl: float, new_param: Callable[[], str]
    ) -> tuple[list[JSON], str]:
        """The next page of the workspace's only scroll, and its param.

        Without ``scroll_param`` a scroll starts (400 ``scroll_exists`` if one is live); a page
        with no data ends it and the param expires, as does ``ttl`` seconds without use (then 404
        ``not_found``). The scroll walks the companies that existed when it started.
        """
        now = self._now()
        active = self._scroll
        if active is not None and now - active.last_used >= ttl:
            self._scroll = active = None
        if not scroll_param:
            if active is not None:
                raise IntercomError(
                    400,
                    "scroll_exists",
                    "A scroll is already in progress for this app; continue it with its "
                    "scroll_param, or wait until it expires after 1 minute of inactivity",
                )
            active = self._scroll = _Scroll(new_param(), list(self._by_id), 0, now)
        elif active is None or active.param != scroll_param:
            raise IntercomError(
                404,
                "not_found",
                "Scroll parameter not found: it expired after 1 minute of inactivity or the "
                "scroll ended. Restart the scroll without scroll_param",
            )
        data: list[JSON] = []
        while len(data) < page_size and active.position < len(active.ids):
            company = self._by_id.get(active.ids[active.position])
            active.position += 1
            if company is not None:  # deleted since the scroll started
                data.append(copy.deepcopy(company))
        active.last_used = now
        if not data:
            self._scroll = None
        return data, active.param

    def _new_id(self) -> str:
        # Intercom ids are 24 hex digits, ObjectId-like: a seconds prefix and a random rest.
        while True:
            candidate = f"{int(self._now()) & 0xFFFFFFFF:08x}{self._rng.getrandbits(64):016x}"
            if candidate not in self._by_id:
                return candidate

    def _plan(self, name: str | None) -> JSON:
        if not name:
            return {}
        plan_id = self._plans.setdefault(name, str(269315 + len(self._plans)))
        return {"type": "plan", "id": plan_id, "name": name}
