"""Rows from the configuration, the transactions, API usage, observed records, decisions
about records, and mappings (the identity map's spans)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger import events as ev
from ledger.config import ActiveConfig
from ledger.values import key_of
from projections.rows import PageRows, Row


class RecordRows(PageRows):
    """The handlers of every event but the attribute writes'."""

    # --- configuration and transactions -------------------------------------------------------

    def _config(self, e: ev.ConfigurationApplied) -> None:
        self.config = ActiveConfig.from_dict(e.config)
        self.inserts["configs"].append(
            {
                "version": e.version,
                "position": self._pos,
                "at_us": self._at,
                "identifier_field": self.config.identifier_field,
                "previous_identifier_field": e.previous_identifier_field,
                "config": e.config,
            }
        )

    def _advanced(self, e: ev.LedgerAdvanced) -> None:
        self.inserts["transactions"].append(
            {"position": self._pos, "at_us": self._at, "summary": e.summary, "events": e.events}
        )

    def _api_usage(self, e: ev.ApiUsageObserved) -> None:
        self.inserts["api_usage"].append(
            {
                "position": self._pos,
                "at_us": self._at,
                "system": e.system,
                "used": e.used,
                "limit": e.limit,
                "allocation": e.allocation,
                "tier": e.tier,
            }
        )

    # --- observations -------------------------------------------------------------------------

    def _company(self, e: ev.CompanyFact) -> None:
        row = self._record(ev.INTERCOM, e.intercom_id)
        self._seen(row, company_id=e.company_id, deleted=False, person=False)
        verb = {ev.CompanyCreated: "created", ev.CompanyUpdated: "updated"}.get(type(e), "read")
        summary = f"{verb} in Intercom"
        if e.changed:
            summary += ": " + ", ".join(e.changed)
        self._entry(
            ev.INTERCOM,
            e.intercom_id,
            "observation",
            summary,
            company_id=e.company_id,
            details={
                "company_id": e.company_id,
                "changed": list(e.changed),
                "values": {k: e.attributes.get(k) for k in e.changed},
                "updated_at": e.updated_at,
                "source": e.source,
            },
        )

    def _company_deleted(self, e: ev.CompanyDeleted) -> None:
        row = self._record(ev.INTERCOM, e.intercom_id)
        key = e.company_id or row["company_id"]
        self._seen(row, company_id=key, deleted=True, person=False)
        self._entry(
            ev.INTERCOM,
            e.intercom_id,
            "deletion",
            "deleted in Intercom",
            company_id=key,
            details={"company_id": e.company_id, "source": e.source},
        )

    def _account(self, e: ev.AccountFact) -> None:
        ident = self.config.identifier
        key = key_of(e.fields.get(ident.name), ident.type)
        row = self._record(ev.SALESFORCE, e.salesforce_id)
        self._seen(row, company_id=key, deleted=False, person=e.is_person_account)
        details: dict[str, Any] = {
            "key": key,
            "changed": list(e.changed),
            "values": {k: e.fields.get(k) for k in e.changed},
            "system_modstamp": e.system_modstamp,
            "is_person_account": e.is_person_account,
            "source": e.source,
        }
        if isinstance(e, ev.AccountIdentifierChanged):
            summary = (
                f"{e.identifier_field} changed in Salesforce: {e.old_value!r} → {e.new_value!r}"
            )
            details.update(
                identifier_field=e.identifier_field, old_value=e.old_value, new_value=e.new_value
            )
        else:
            verb = {ev.AccountCreated: "created", ev.AccountUpdated: "updated"}.get(type(e), "read")
            summary = f"{verb} in Salesforce"
            if e.changed:
                summary += ": " + ", ".join(e.changed)
        self._entry(
            ev.SALESFORCE, e.salesforce_id, "observation", summary, company_id=key, details=details
        )

    def _account_deleted(self, e: ev.AccountDeleted) -> None:
        row = self._record(ev.SALESFORCE, e.salesforce_id)
        self._seen(row, company_id=row["company_id"], deleted=True, person=row["is_person_account"])
        self._entry(
            ev.SALESFORCE,
            e.salesforce_id,
            "deletion",
            "deleted in Salesforce",
            company_id=row["company_id"],
            details={"deleted_at": e.deleted_at, "source": e.source},
        )

    # --- decisions about records ----------------------------------------------------------------

    def _ignored(self, e: ev.RecordIgnored) -> None:
        row = self._record(e.system, e.record_id)
        row.update(
            ignored_reason=e.reason,
            ignored_cause=e.cause,
            ignored_position=self._pos,
            ignored_at_us=self._at,
        )
        self._entry(
            e.system,
            e.record_id,
            "ignored",
            f"ignored: {e.reason}",
            company_id=row["company_id"],
            cause=e.cause,
            details={"reason": e.reason},
        )

    def _not_synced(self, e: ev.NotSynced) -> None:
        self._entry(
            e.system,
            e.record_id,
            "not_synced",
            f"not synced: {e.reason}",
            company_id=e.key,
            cause=e.cause,
            details={"reason": e.reason, "key": e.key},
        )

    def _echo(self, e: ev.EchoRecognised) -> None:
        self._entry(
            e.system,
            e.record_id,
            "echo",
            "our own write seen again" + (": " + ", ".join(e.fields) if e.fields else ""),
            cause=e.cause,
            details={"fields": list(e.fields)},
        )

    # --- identity --------------------------------------------------------------------------------

    def _mapped(self, e: ev.IdentityMapped) -> None:
        old = self.spans.get(e.company_id)
        if old is not None:  # the ledger replaces a link it was never told to end
            self._close(old, "replaced by a new mapping", e.ref)
        span = {
            "company_id": e.company_id,
            "mapped_position": self._pos,
            "intercom_id": e.intercom_id,
            "salesforce_id": e.salesforce_id,
            "identifier_field": e.identifier_field,
            "config_version": e.config_version,
            "trigger": e.trigger,
            "cause": e.cause,
            "mapped_at_us": self._at,
            "unmapped_position": None,
            "unmapped_at_us": None,
            "unmap_reason": None,
            "unmap_cause": None,
        }
        self.spans[e.company_id] = span
        self.dirty_spans[(e.company_id, self._pos)] = span
        how = (
            f"by {e.identifier_field} = {e.company_id!r} ({e.trigger}, config v{e.config_version})"
        )
        self._both_sides(
            e,
            "mapping",
            lambda other: f"mapped to {other} {how}",
            {"trigger": e.trigger},
            config_version=e.config_version,
        )

    def _both_sides(
        self,
        e: ev.IdentityMapped | ev.IdentityUnmapped,
        category: str,
        summary: Callable[[str], str],
        extra: dict[str, Any],
        config_version: int | None = None,
    ) -> None:
        """One timeline entry on each record of a mapping change; ``summary`` is given the
        other record ("account …" or "company …")."""
        details = {
            "company_id": e.company_id,
            "intercom_id": e.intercom_id,
            "salesforce_id": e.salesforce_id,
            "identifier_field": e.identifier_field,
            **extra,
        }
        for system, record_id, other in (
            (ev.INTERCOM, e.intercom_id, f"account {e.salesforce_id}"),
            (ev.SALESFORCE, e.salesforce_id, f"company {e.intercom_id}"),
        ):
            self._entry(
                system,
                record_id,
                category,
                summary(other),
                company_id=e.company_id,
                cause=e.cause,
                config_version=config_version,
                details=details,
            )

    def _close(self, span: Row, reason: str, cause: str) -> None:
        span.update(
            unmapped_position=self._pos,
            unmapped_at_us=self._at,
            unmap_reason=reason,
            unmap_cause=cause,
        )
        self.dirty_spans[(span["company_id"], span["mapped_position"])] = span
        del self.spans[span["company_id"]]

    def _unmapped(self, e: ev.IdentityUnmapped) -> None:
        span = self.spans.get(e.company_id)
        if span is not None and span["salesforce_id"] == e.salesforce_id:
            self._close(span, e.reason, e.cause)
        self._both_sides(
            e, "unmapping", lambda other: f"unmapped from {other}: {e.reason}", {"reason": e.reason}
        )
