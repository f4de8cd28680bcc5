"""The write log as CSV, for the audit API's ``/writes?format=csv`` and the review pages'
export: streamed page by page (constant memory), safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi.responses import StreamingResponse

from projections.views import WriteEntry

__all__ = ["WRITE_COLUMNS", "WritePages", "csv_response", "csv_rows", "formula_safe"]

#: CSV columns of the write log, in order.
WRITE_COLUMNS = (
    "at",
    "position",
    "system",
    "record_id",
    "company_id",
    "field",
    "before",
    "value",
    "overwrite",
    "rules",
    "config_version",
    "trigger",
    "cause",
    "source_system",
    "source_record_id",
    "source_field",
    "source_value",
    "write_id",
    "api_call",
)
#: First characters that make a spreadsheet read a cell as a formula or a command: the formula
#: signs (also full-width, which some locales accept), ``|`` and ``;`` (DDE and separators),
#: and the control characters a cell may start with.
_FORMULA_START = frozenset("=+-@|;\t\r\n＝＋－＠")
#: Leading whitespace a spreadsheet skips before a formula sign (`` =1+1`` is still a formula).
_SKIPPED = " \t\r\n\u00a0"
#: ``pages(after, limit)``: the writes after a position, at most ``limit`` of them.
WritePages = Callable[[int, int], list[WriteEntry]]


def csv_rows(pages: WritePages, start: int = 0) -> Iterator[str]:
    """The CSV text of every write ``pages(after, limit)`` yields, header first, page by page
    (constant memory). Text that a spreadsheet would run as a formula is quoted with ``'``
    (:func:`formula_safe`)."""
    buffer = io.StringIO()
    out = csv.writer(buffer)
    out.writerow(WRITE_COLUMNS)
    after = start
    while True:
        page = pages(after, 1000)
        for entry in page:
            out.writerow([_cell(getattr(entry, column)) for column in WRITE_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(page) < 1000:
            return
        after = page[-1].position


def csv_response(pages: WritePages, filename: str, start: int = 0) -> StreamingResponse:
    """A streamed CSV download of :func:`csv_rows`."""
    return StreamingResponse(
        csv_rows(pages, start),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    text = str(value)
    return formula_safe(text) if isinstance(value, str) else text


def formula_safe(text: str) -> str:
    """``text``, quoted with a leading ``'`` when a spreadsheet would run it as a formula
    (CSV injection): it starts with one of ``= + - @ | ;``, a tab, CR or newline, or with
    whitespace before a formula sign."""
    stripped = text.lstrip(_SKIPPED)
    if text[:1] in _FORMULA_START or stripped[:1] in _FORMULA_START:
        return "'" + text
    return text
