"""The HTTP app's defences (issue 14): a CSV export a spreadsheet cannot run."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from adapters.http.export import csv_rows
from projections.views import WriteEntry

# --- the CSV export cannot run formulas ------------------------------------------------------

DANGEROUS = {
    "equals": '=HYPERLINK("http://evil.example")',
    "plus": "+1+1",
    "minus": "-1+1",
    "at": "@SUM(A1:A2)",
    "tab": "\t=1+1",
    "carriage return": "\r=1+1",
    "newline": "\n=1+1",
    "semicolon": ";=1+1",
    "pipe": "|calc",
    "space before equals": " =1+1",
    "spaces before plus": "  +1",
    "newline before equals": "\n=1",
    "full-width equals": "＝1+1",
}
HARMLESS = {"word": "Acme", "inner equals": "a=b", "number text": "1.5", "space word": " Acme"}


def _exported(value: str) -> str:
    entry = WriteEntry(
        position=1,
        at=datetime(2026, 1, 1, tzinfo=UTC),
        write_id="w1",
        system="salesforce",
        record_id="001",
        company_id="k1",
        field="Industry",
        source_system="intercom",
        source_record_id="c1",
        source_field="industry",
        source_value=value,
        before="Retail",
        value=value,
        overwrite=True,
        rules=[],
        config_version=1,
        trigger="company_updated",
        cause="x:1",
        api_call={},
    )
    text = "".join(csv_rows(lambda after, _limit: [entry] if after == 0 else []))
    row = next(csv.DictReader(io.StringIO(text)))
    assert row["source_value"] == row["value"]
    return row["value"]


@pytest.mark.parametrize("value", list(DANGEROUS.values()), ids=list(DANGEROUS))
def test_a_cell_a_spreadsheet_would_run_is_quoted(value: str) -> None:
    assert _exported(value) == "'" + value


@pytest.mark.parametrize("value", list(HARMLESS.values()), ids=list(HARMLESS))
def test_other_cells_are_exported_as_they_are(value: str) -> None:
    assert _exported(value) == value
