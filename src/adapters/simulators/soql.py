"""A small SOQL subset for the Salesforce simulator: the recursive-descent parser.

Supported::

    SELECT f1, f2 | COUNT() FROM Entity
      [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]

``cond`` combines ``=, !=, <>, <, <=, >, >=, LIKE, IN (...), NOT IN (...)`` with ``AND``/``OR``,
parentheses and a leading ``NOT``. As in Salesforce, mixing ``AND`` and ``OR`` at one level
without parentheses is a MALFORMED_QUERY, and literals must match the field type (quoted strings
for text, bare numbers, ``true``/``false``, ``null``, ``2024-05-01`` dates and
``2024-05-01T00:00:00Z`` datetimes). Field names are case-insensitive. Nothing is ever ``eval``-ed;
:mod:`.soql_lexer` splits the text into tokens, :mod:`.soql_model` holds the parsed :class:`Query`
(importable from here too), and :mod:`.soql_eval` runs it over rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.simulators.soql_lexer import Token, like_regex, located, tokenize
from adapters.simulators.soql_model import (
    ID_RE,
    ID_TYPES,
    NUMBER_TYPES,
    TEXT_TYPES,
    Comparison,
    Condition,
    Entity,
    FieldLike,
    Junction,
    OrderItem,
    Query,
    SoqlError,
)

# The model is importable from here too: the Salesforce simulator imports it from this module.
__all__ = [
    "ID_RE",
    "ID_TYPES",
    "NUMBER_TYPES",
    "TEXT_TYPES",
    "Comparison",
    "Condition",
    "Entity",
    "FieldLike",
    "Junction",
    "OrderItem",
    "Query",
    "SoqlError",
    "Token",
    "parse",
    "tokenize",
]

_RESERVED = frozenset(
    {"AND", "OR", "NOT", "IN", "LIKE", "FROM", "WHERE", "ORDER", "BY", "LIMIT", "OFFSET", "SELECT"}
)
_TYPE_WORDS = {"int": "integer", "long": "long", "boolean": "boolean", "date": "date"}


class _Parser:
    def __init__(self, text: str, entities: Mapping[str, Entity]) -> None:
        self.text = text
        self.entities = entities
        self.tokens = tokenize(text)
        self.i = 0
        self.entity: Entity | None = None

    # -- token helpers -------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return tok

    def is_kw(self, *words: str) -> bool:
        return self.tok.kind == "ident" and self.tok.text.upper() in words

    def fail(self, tok: Token | None = None, message: str | None = None) -> SoqlError:
        tok = tok or self.tok
        return SoqlError(
            "MALFORMED_QUERY",
            located(self.text, tok.pos, message or f"unexpected token: {tok.text}"),
        )

    def expect_kw(self, word: str) -> Token:
        if not self.is_kw(word):
            raise self.fail()
        return self.advance()

    def expect_punct(self, ch: str) -> Token:
        if self.tok.kind != "punct" or self.tok.text != ch:
            raise self.fail()
        return self.advance()

    def field(self, tok: Token) -> FieldLike:
        assert self.entity is not None
        if tok.kind != "ident" or tok.text.upper() in _RESERVED:
            raise self.fail(tok)
        if "." in tok.text:
            head = tok.text.split(".", 1)[0]
            msg = (
                f"Didn't understand relationship '{head}' in field path. If you are attempting to "
                "use a custom relationship, be sure to append the '__r' after the custom "
                "relationship name. Please reference your WSDL or the describe call for the "
                "appropriate names."
            )
            raise SoqlError("INVALID_FIELD", located(self.text, tok.pos, msg))
        spec = self.entity.fields.get(tok.text.lower())
        if spec is None:
            msg = (
                f"No such column '{tok.text}' on entity '{self.entity.name}'. If you are "
                "attempting to use a custom field, be sure to append the '__c' after the custom "
                "field name. Please reference your WSDL or the describe call for the appropriate "
                "names."
            )
            raise SoqlError("INVALID_FIELD", located(self.text, tok.pos, msg))
        return spec

    # -- grammar -------------------------------------------------------------------------------
    def query(self) -> Query:
        self.expect_kw("SELECT")
        count_only, select = self.select_list()
        self.expect_kw("FROM")
        name_tok = self.advance()
        entity = self.entities.get(name_tok.text.lower()) if name_tok.kind == "ident" else None
        if entity is None:
            if name_tok.kind != "ident":
                raise self.fail(name_tok)
            msg = (
                f"sObject type '{name_tok.text}' is not supported. If you are attempting to use a "
                "custom object, be sure to append the '__c' after the entity name. Please "
                "reference your WSDL or the describe call for the appropriate names."
            )
            raise SoqlError("INVALID_TYPE", located(self.text, name_tok.pos, msg))
        self.entity = entity
        fields: list[str] = []
        for tok in select:
            name = self.field(tok).name
            if name in fields:
                raise self.fail(tok, f"duplicate field selected: {name}")
            fields.append(name)
        where = None
        if self.is_kw("WHERE"):
            self.advance()
            where = self.condition()
        order: list[OrderItem] = []
        if self.is_kw("ORDER"):
            self.advance()
            self.expect_kw("BY")
            order.append(self.order_item())
            while self.tok.kind == "punct" and self.tok.text == ",":
                self.advance()
                order.append(self.order_item())
        limit = self.int_clause("LIMIT")
        offset = self.int_clause("OFFSET")
        if self.tok.kind != "eof":
            raise self.fail()
        return Query(entity.name, tuple(fields), count_only, where, tuple(order), limit, offset)

    def select_list(self) -> tuple[bool, list[Token]]:
        if self.is_kw("COUNT") and self.tokens[self.i + 1].text == "(":
            self.advance()
            self.expect_punct("(")
            self.expect_punct(")")
            return True, []
        tokens = [self.advance()]
        if tokens[0].kind != "ident" or tokens[0].text.upper() == "FROM":
            raise self.fail(tokens[0])
        while self.tok.kind == "punct" and self.tok.text == ",":
            self.advance()
            if self.tok.kind != "ident":
                raise self.fail()
            tokens.append(self.advance())
        return False, tokens

    def int_clause(self, word: str) -> int | None:
        if not self.is_kw(word):
            return None
        self.advance()
        tok = self.advance()
        if tok.kind != "number" or not isinstance(tok.value, int) or tok.value < 0:
            raise self.fail(tok)
        return int(tok.value)

    def order_item(self) -> OrderItem:
        tok = self.advance()
        spec = self.field(tok)
        if not spec.sortable:
            msg = f"field '{spec.name}' can not be sorted in a query call"
            raise SoqlError("INVALID_FIELD", located(self.text, tok.pos, msg))
        descending = False
        if self.is_kw("ASC", "DESC"):
            descending = self.advance().text.upper() == "DESC"
        nulls_first = not descending
        if self.is_kw("NULLS"):
            self.advance()
            if not self.is_kw("FIRST", "LAST"):
                raise self.fail()
            nulls_first = self.advance().text.upper() == "FIRST"
        return OrderItem(spec.name, spec.type, descending, nulls_first)

    def condition(self) -> Condition:
        """``[NOT] term`` then a run of ``AND term`` or of ``OR term``, never both."""
        if self.is_kw("NOT"):
            self.advance()
            first: Condition = Junction("NOT", (self.term(),))
        else:
            first = self.term()
        if not self.is_kw("AND", "OR"):
            return first
        joiner = self.tok.text.upper()
        parts = [first]
        while self.is_kw("AND", "OR"):
            if self.tok.text.upper() != joiner:
                raise self.fail()  # Salesforce demands parentheses when AND and OR are mixed
            self.advance()
            parts.append(self.term())
        return Junction(joiner, tuple(parts))

    def term(self) -> Condition:
        if self.tok.kind == "punct" and self.tok.text == "(":
            self.advance()
            inner = self.condition()
            self.expect_punct(")")
            return inner
        field_tok = self.advance()
        spec = self.field(field_tok)
        if not spec.filterable:
            msg = f"field '{spec.name}' can not be filtered in a query call"
            raise SoqlError("INVALID_FIELD", located(self.text, field_tok.pos, msg))
        if self.is_kw("NOT", "IN"):
            negate = self.advance().text.upper() == "NOT"
            if negate:
                self.expect_kw("IN")
            self.expect_punct("(")
            values = [self.literal(spec)]
            while self.tok.kind == "punct" and self.tok.text == ",":
                self.advance()
                values.append(self.literal(spec))
            self.expect_punct(")")
            return Comparison(spec.name, spec.type, "NOT IN" if negate else "IN", tuple(values))
        if self.is_kw("LIKE"):
            self.advance()
            tok = self.tok
            if tok.kind != "string" or spec.type not in TEXT_TYPES | ID_TYPES:
                raise self.fail(tok, f"invalid operator on field '{spec.name}': LIKE")
            self.advance()
            return Comparison(spec.name, spec.type, "LIKE", like_regex(tok.text[1:-1]))
        if self.tok.kind != "op":
            raise self.fail()
        op = self.advance().text
        return Comparison(spec.name, spec.type, "!=" if op == "<>" else op, self.literal(spec))

    def literal(self, spec: FieldLike) -> Any:
        """One literal, checked against the field type the way Salesforce checks it."""
        tok = self.advance()
        word = tok.text.upper() if tok.kind == "ident" else ""
        if word == "NULL":
            return None
        if tok.kind in ("op", "punct", "eof") or (
            tok.kind == "ident" and word not in ("TRUE", "FALSE")
        ):
            raise self.fail(tok)
        ftype = spec.type
        if ftype in TEXT_TYPES or ftype in ID_TYPES:
            if tok.kind != "string":
                raise self.type_error(tok, spec, "string", quoted=True)
            if ftype in ID_TYPES and not ID_RE.match(tok.value):
                raise SoqlError(
                    "INVALID_QUERY_FILTER_OPERATOR",
                    located(self.text, tok.pos, f"invalid ID field: {tok.value}"),
                )
            return tok.value
        if ftype in NUMBER_TYPES and tok.kind == "number":
            return tok.value
        if ftype == "boolean" and word in ("TRUE", "FALSE"):
            return word == "TRUE"
        if (ftype, tok.kind) in (("date", "date"), ("datetime", "datetime")):
            return tok.value
        expected = _TYPE_WORDS.get(ftype, "dateTime" if ftype == "datetime" else "double")
        raise self.type_error(tok, spec, expected, quoted=False)

    def type_error(self, tok: Token, spec: FieldLike, expected: str, *, quoted: bool) -> SoqlError:
        how = "should be enclosed in quotes" if quoted else "should not be enclosed in quotes"
        msg = f"value of filter criterion for field '{spec.name}' must be of type {expected} and "
        msg += how
        return SoqlError("INVALID_FIELD", located(self.text, tok.pos, msg))


def parse(text: str, entities: Mapping[str, Entity]) -> Query:
    """Parse and type-check ``text`` against ``entities`` (keyed by lower-cased entity name)."""
    return _Parser(text, entities).query()
