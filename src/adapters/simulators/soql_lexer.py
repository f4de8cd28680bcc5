"""The SOQL subset's tokenizer, literal escapes, LIKE patterns and Salesforce's error layout."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from adapters.simulators.soql_model import SoqlError


@dataclass(frozen=True)
class Token:
    kind: str  # ident, string, number, date, datetime, op, punct, eof
    text: str
    value: Any
    pos: int


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
   |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
   |(?P<baddatetime>\d{4}-\d{2}-\d{2}T[\w:.+-]*)
   |(?P<date>\d{4}-\d{2}-\d{2}(?![\w:]))
   |(?P<number>-?\d+(?:\.\d+)?(?![\w.]))
   |(?P<string>'(?:[^'\\]|\\.)*')
   |(?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
   |(?P<op><=|>=|!=|<>|=|<|>)
   |(?P<punct>[(),])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


def located(text: str, pos: int, message: str) -> str:
    """Salesforce's error layout: the offending line, a caret, Row/Column, the message."""
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    line = text[start : end if end >= 0 else len(text)]
    row, col = text.count("\n", 0, pos) + 1, pos - start + 1
    return f"\n{line}\n{' ' * (col - 1)}^\nERROR at Row:{row}:Column:{col}\n{message}"


_ESCAPE_RE = re.compile(r"\\(.)|(%)|(_)|(.)", re.DOTALL)


def _unescape(body: str) -> str:
    # \% and \_ stay escaped: they only mean something to LIKE (see like_regex).
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), body)


def like_regex(raw: str) -> re.Pattern[str]:
    """LIKE pattern -> regex: % is any run, _ any one character, backslash escapes."""

    def part(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return re.escape(_ESCAPES.get(m.group(1), m.group(1)))
        return ".*" if m.group(2) else "." if m.group(3) else re.escape(m.group(4))

    return re.compile(_ESCAPE_RE.sub(part, raw), re.IGNORECASE | re.DOTALL)


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens; raises MALFORMED_QUERY on characters SOQL does not know."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.lastgroup == "baddatetime":
            bad = text[pos:].split(None, 1)[0] if m is None else m.group()
            raise SoqlError("MALFORMED_QUERY", located(text, pos, f"unexpected token: '{bad}'"))
        kind, raw = m.lastgroup or "", m.group()
        if kind != "ws":
            value: Any = raw
            if kind == "string":
                value = _unescape(raw[1:-1])
            elif kind == "number":
                value = float(raw) if "." in raw else int(raw)
            elif kind in ("date", "datetime"):
                value = _parse_temporal(text, pos, raw, kind)
            tokens.append(Token(kind, raw, value, pos))
        pos = m.end()
    tokens.append(Token("eof", "<EOF>", None, len(text)))
    return tokens


def _parse_temporal(text: str, pos: int, raw: str, kind: str) -> date | datetime:
    try:
        return date.fromisoformat(raw) if kind == "date" else datetime.fromisoformat(raw)
    except ValueError:
        raise SoqlError("MALFORMED_QUERY", located(text, pos, f"invalid {kind}: {raw}")) from None
