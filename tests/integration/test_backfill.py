"""Backfill over real HTTP: every account and company read, mapped, and synced under the rules."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from adapters.cli.main import app as cli
from adapters.simulators.salesforce import create_salesforce_app
from adapters.simulators.server import serving
from ledger import events as ev
from tests.integration.test_replay import PROD_ORG, KillAfterWrites, World, build_world, written


def test_backfill_converges_both_systems_for_mapped_attributes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ExitStack() as stack:
        w = build_world(stack, tmp_path, 300, sync_first=False)
        w.inbox.take()  # the webhooks of the seeding: not the point
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


# --- killed midway, resumed -----------------------------------------------------------------

PAIRS = 450  # three batches of KEYS_PER_BATCH = 200 keys: 200, 200, 50
SF_MAPPED = ("Name", "Plan__c", "Industry", "NumberOfEmployees", "Website")
IC_MAPPED = ("name", "plan", "industry", "size", "website")


def _record_intercom_writes(w: World) -> list[tuple[str, str, str]]:
    """Every ``(company_id, attribute, value)`` an upsert (the writer's only call) set."""
    log: list[tuple[str, str, str]] = []
    upsert = w.intercom.upsert_company

    def recording(body: Mapping[str, Any]) -> Any:
        values = {k: v for k, v in body.items() if k not in ("company_id", "custom_attributes")}
        values.update(body.get("custom_attributes") or {})
        log.extend((str(body["company_id"]), k, json.dumps(v)) for k, v in values.items())
        return upsert(body)

    w.intercom.upsert_company = recording  # type: ignore[method-assign]
    return log


def _backfill_command(w: World, instance_url: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, **w.env(SYNCLEDGER_SALESFORCE_INSTANCE_URL=instance_url)}
    return [str(Path(sys.executable).parent / "syncledger"), "backfill"], env


def _final_values(w: World) -> dict[str, tuple[Any, ...]]:
    """The mapped fields of each key on both sides."""
    accounts = {a["AccountNumber"]: a for a in w.prod.all_accounts()}
    values: dict[str, tuple[Any, ...]] = {}
    for c in w.intercom.all_companies():
        attrs = {**c, **(c.get("custom_attributes") or {})}
        account = accounts[c["company_id"]]
        values[c["company_id"]] = (*(account[f] for f in SF_MAPPED),
                                   *(attrs.get(f) for f in IC_MAPPED))  # fmt: skip
    return values


@pytest.mark.parametrize(
    "batch",
    [
        pytest.param(2, id="killed-in-batch-2-of-3"),
        pytest.param(3, id="killed-in-the-last-batch"),
    ],
)
def test_a_backfill_killed_midway_and_resumed_writes_everything_exactly_once(
    tmp_path: Path, batch: int
) -> None:
    """SIGKILLed as batch ``batch``'s Salesforce write is applied but before the answer is
    heard (the KillAfterWrites of the replay test), then run again."""
    with ExitStack() as stack:
        # the reference: an identical world, backfilled without interruption
        (tmp_path / "ref").mkdir()
        ref = build_world(stack, tmp_path / "ref", PAIRS, sync_first=False)
        ref_ic = _record_intercom_writes(ref)
        command, env = _backfill_command(ref, ref.prod_url)
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr

        w = build_world(stack, tmp_path, PAIRS, sync_first=False)
        ic_log = _record_intercom_writes(w)
        killer = KillAfterWrites(create_salesforce_app(w.prod, org_id=PROD_ORG), after=batch)
        command, env = _backfill_command(w, stack.enter_context(serving(killer)).url)
        first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        killer.pid = first.pid
        first.wait(timeout=120)
        assert first.returncode == -signal.SIGKILL
        assert killer.seen == batch  # one Salesforce write request per batch of 200 keys
        w.app.catch_up()
        [started] = w.app.events_of_type(ev.BackfillStarted)
        assert len(w.app.events_of_type(ev.BackfillRead)) == 1
        decided = w.app.events_of_type(ev.BackfillKeysDecided)
        assert [d.through for d in decided] == ["K-0199", "K-0399", "K-0449"][:batch]
        assert w.app.events_of_type(ev.BackfillFinished) == []  # unfinished
        lost = {p.write_id for p in w.app.pending_writes(ev.SALESFORCE)}
        assert len(lost) > 40  # the killed batch's Salesforce writes: applied, answer lost
        assert len(w.prod.update_log) == min(200 * batch, PAIRS)  # every record has a write

        killer.pid = None
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        said = " ".join(second.stdout.split())
        assert f"backfill {started.run_id} resumed" in said
        left = PAIRS - min(200 * batch, PAIRS)  # only the keys after the last batch decided
        assert f"company(ies), {left} key(s) to map" in said
        w.app.catch_up()
        assert len(w.app.events_of_type(ev.BackfillStarted)) == 1
        assert len(w.app.events_of_type(ev.BackfillRead)) == 1  # not read again
        [finished] = w.app.events_of_type(ev.BackfillFinished)
        assert finished.run_id == started.run_id and finished.outcome == "completed"
        assert w.app.pending_writes() == []
        assert len(w.app.mappings()) == PAIRS

        # every planned write closed once: applied, or (batch 2's lost answers) found applied
        planned = {
            x["write_id"]: (p.system, p.record_id, x["field"], json.dumps(x["value"]))
            for p in w.app.events_of_type(ev.SyncPlanned)
            for x in p.planned
        }
        applied = Counter(str(e.write["write_id"]) for e in w.app.events_of_type(ev.WriteApplied))
        skipped = {str(e.write["write_id"]): e.rule for e in w.app.events_of_type(ev.WriteSkipped)}
        assert w.app.events_of_type(ev.WriteFailed) == []
        assert max(applied.values()) == 1
        assert set(applied) | set(skipped) == set(planned)
        assert set(skipped) == lost and set(skipped.values()) == {"already_equal"}

        # …and in effect once each, as the systems saw it
        sf_written = written(w.prod)
        assert max(sf_written.values()) == 1
        assert set(sf_written) == {
            (r, f, v) for s, r, f, v in planned.values() if s == "salesforce"
        }
        assert max(Counter(ic_log).values()) == 1
        ic_ids = {c["id"]: c["company_id"] for c in w.intercom.all_companies()}
        ic_planned = {(ic_ids[r], f.removeprefix("custom_attributes."), v)
                      for s, r, f, v in planned.values() if s == "intercom"}  # fmt: skip
        assert set(ic_log) == ic_planned

        # the same writes and the same end state as the uninterrupted backfill
        def by_key(state: World) -> Counter[tuple[str, str, str]]:
            key = {a["Id"]: a["AccountNumber"] for a in state.prod.all_accounts()}
            return Counter((key[r], f, v) for (r, f, v) in written(state.prod).elements())

        assert by_key(w) == by_key(ref) and Counter(ic_log) == Counter(ref_ic)
        assert _final_values(w) == _final_values(ref)
        assert len(_final_values(w)) == PAIRS
