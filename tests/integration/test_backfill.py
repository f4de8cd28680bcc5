"""Backfill over real HTTP: every account and company read, mapped, and synced under the rules."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.cli import app as cli
from ledger import events as ev
from tests.integration.test_replay import build_world


def test_backfill_converges_both_systems_for_mapped_attributes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ExitStack() as stack:
        w = build_world(stack, tmp_path, 300, sync_first=False)
        w.intercom_system.drain_notifications()  # the webhooks of the seeding: not the point
        for name, value in w.env().items():
            monkeypatch.setenv(name, value)
        w.app.catch_up()
        assert w.app.mappings() == []

        dry = CliRunner().invoke(cli, ["backfill", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "(dry run)" in dry.output and "300 key(s)" in dry.output
        w.app.catch_up()
        assert w.app.mappings() == [] and w.prod.update_log == []
        assert w.app.events_of_type(ev.BackfillStarted) == []  # a dry run records nothing

        result = CliRunner().invoke(cli, ["backfill"])
        assert result.exit_code == 0, result.output
        w.app.catch_up()
        assert len(w.app.mappings()) == 300
        [finished] = w.app.events_of_type(ev.BackfillFinished)
        assert finished.outcome == "completed"
        accounts = {a["AccountNumber"]: a for a in w.prod.all_accounts()}
        for company in w.intercom.all_companies():
            account = accounts[company["company_id"]]
            assert company["name"] == account["Name"]  # Salesforce → Intercom
            plan = (company.get("custom_attributes") or {}).get("plan")
            if account["Plan__c"] is not None:  # skip_if_source_empty
                assert plan == account["Plan__c"]
            assert account["Industry"] == company["industry"]  # Intercom → Salesforce
            assert account["NumberOfEmployees"] == company["size"]
            if account["Website"] is None or account["Website"] == company["website"]:
                continue
            # skip_if_destination_has_value kept the account's own website
            assert account["Website"].startswith("https://sf")
        # a backfill right after has nothing left to write
        writes = len(w.prod.update_log)
        again = CliRunner().invoke(cli, ["backfill"])
        assert again.exit_code == 0, again.output
        assert len(w.prod.update_log) == writes
        assert len(w.app.events_of_type(ev.BackfillFinished)) == 2
