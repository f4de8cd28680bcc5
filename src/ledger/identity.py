"""Identity decisions: which company and which account are one, on the identifier value.

A company and an account are mapped when the company's ``company_id`` equals the account's
value in the identifier field. Where several live business accounts share the value, the most
recently updated one (greatest ``SystemModstamp``, ties by smallest Id) holds the mapping; a
switch is recorded as "superseded by a more recently updated duplicate". Every mapping made
plans the pair's attributes (:meth:`~ledger.planning.Planner.plan_sync`); every mapping ended
closes the planned writes it allowed.
"""

from __future__ import annotations

from ledger import events as ev
from ledger import ids
from ledger.config import Direction
from ledger.planning import Planner
from ledger.state import IdentityLink


class IdentityDecisions(Planner):
    """Maps and unmaps pairs (the triggers, :mod:`ledger.triggers`, say when)."""

    def map_pair(
        self, key: str, intercom_id: str, salesforce_id: str, trigger: str, cause: str
    ) -> IdentityLink:
        """Record the mapping ``key``: company ``intercom_id`` ↔ account ``salesforce_id``."""
        st = self.state
        self.emit(
            ev.IdentityMapped(
                **self.stamp(ids.identity_stream(key)),
                company_id=key,
                intercom_id=intercom_id,
                salesforce_id=salesforce_id,
                identifier_field=st.config.identifier_field,
                config_version=st.config.version,
                trigger=trigger,
                cause=cause,
            )
        )
        return st.links[key]

    def unmap_pair(self, link: IdentityLink, reason: str, cause: str) -> None:
        """End the mapping ``link`` and close the pending writes it no longer allows."""
        self.emit(
            ev.IdentityUnmapped(
                **self.stamp(ids.identity_stream(link.company_id)),
                company_id=link.company_id,
                intercom_id=link.intercom_id,
                salesforce_id=link.salesforce_id,
                identifier_field=link.identifier_field,
                reason=reason,
                cause=cause,
            )
        )
        self._rejudge_record(ev.SALESFORCE, link.salesforce_id, cause)
        self._rejudge_record(ev.INTERCOM, link.intercom_id, cause)

    def _match_account(self, sid: str, key: str, trigger: str, cause: str) -> None:
        st = self.state
        winner = st.candidates(key)[0]
        if winner.salesforce_id != sid:
            self._not_synced(
                ev.SALESFORCE,
                sid,
                f"account {winner.salesforce_id} also has {st.config.identifier_field} = "
                f"{key!r} and was updated more recently; it holds the mapping",
                key=key,
                cause=cause,
            )
            return
        company = st.live_company(key)
        if company is None:
            self._not_synced(
                ev.SALESFORCE,
                sid,
                f"no Intercom company has company_id {key!r} yet; the account waits for one",
                key=key,
                cause=cause,
            )
            return
        link = st.links.get(key)
        if link is not None and link.salesforce_id != sid:
            self.unmap_pair(link, "superseded by a more recently updated duplicate", cause)
            link = None
        if link is not None and link.intercom_id != company.intercom_id:
            self.unmap_pair(link, "company replaced", cause)
            link = None
        if link is None:
            link = self.map_pair(key, company.intercom_id, sid, trigger, cause)
        self.plan_sync(Direction.SALESFORCE_TO_INTERCOM, link, None, trigger, cause)

    def _reevaluate(self, key: str, cause: str, *, take_over: bool) -> None:
        """Make the best live candidate hold ``key``'s mapping.

        With ``take_over`` an unmapped key is mapped to the best remaining duplicate (after the
        holder left the key); without it only an existing mapping may switch holder.
        """
        st = self.state
        winner = next(iter(st.candidates(key)), None)
        company = st.live_company(key)
        link = st.links.get(key)
        if link is not None:
            if winner is None or company is None or winner.salesforce_id == link.salesforce_id:
                return
            self.unmap_pair(link, "superseded by a more recently updated duplicate", cause)
            trigger = "duplicate_superseded"
        elif take_over and winner is not None and company is not None:
            trigger = "duplicate_took_over"
        else:
            return
        assert winner is not None and company is not None
        new_link = self.map_pair(key, company.intercom_id, winner.salesforce_id, trigger, cause)
        self.plan_sync(Direction.SALESFORCE_TO_INTERCOM, new_link, None, trigger, cause)
