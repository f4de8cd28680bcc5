"""What-if for the identifier field, checked against what applying the field then does."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.cli.main import app as cli
from adapters.demo.story import demo_config
from tests.integration.test_replay import build_world

COUNT = 60


def site(i: int) -> str | None:
    """Site carries the key for most accounts; none for every 10th; every 7th carries its
    neighbour's key (a tie, and a pair lost if it wins)."""
    if i % 10 == 0:
        return None
    if i % 7 == 0:
        return f"K-{i + 1:04d}"
    return f"K-{i:04d}"


def test_whatif_numbers_match_what_applying_the_field_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ExitStack() as stack:
        w = build_world(stack, tmp_path, COUNT, site=site)
        for name, value in w.env().items():
            monkeypatch.setenv(name, value)
        w.app.catch_up()
        assert len(w.app.mappings()) == COUNT
        report = tmp_path / "whatif.json"
        result = CliRunner().invoke(
            cli, ["whatif", "identifier", "Site", "--refresh", "--report", str(report)]
        )
        assert result.exit_code == 0, result.output
        assert "pairs that stay matched" in result.output
        body = json.loads(report.read_text())
        counts = body["counts"]
        ties = [i for i in range(COUNT - 1) if site(i) is not None and site(i) == site(i + 1)]
        assert counts["tied_keys"] == len(ties)
        assert counts["accounts_without_value"] == COUNT // 10
        assert counts["stay_matched"] + counts["lost"] == COUNT
        assert counts["lost"] >= COUNT // 10 and counts["newly_matched"] > 0

        again = tmp_path / "observed.json"
        observed = CliRunner().invoke(cli, ["whatif", "identifier", "Site", "--report", str(again)])
        assert observed.exit_code == 0, observed.output
        assert json.loads(again.read_text())["counts"] == counts  # the ledger had read Site

        refused = CliRunner().invoke(cli, ["whatif", "identifier", "Description"])
        assert refused.exit_code == 1 and "cannot be the identifier" in refused.output

        from adapters.bootstrap import live_catalog
        from adapters.settings import load_settings

        w.app.apply_config(demo_config("Site"), live_catalog(load_settings()))  # type: ignore[arg-type]
        assert w.app.mappings() == []  # a new identifier field ends every mapping
        done = CliRunner().invoke(cli, ["backfill"])
        assert done.exit_code == 0, done.output
        w.app.catch_up()
        after = {(m.company_id, m.intercom_id, m.salesforce_id) for m in w.app.mappings()}
        predicted = {
            (p["company_id"], p["intercom_id"], p["salesforce_id"])
            for p in body["stay"] + body["new"]
        }
        assert after == predicted
        assert len(after) == counts["stay_matched"] + counts["newly_matched"]
