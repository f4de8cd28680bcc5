"""How ``SYNCLEDGER_*`` variables are read, named and parsed.

The plumbing under :mod:`adapters.settings` (which re-exports the public names): the raw
source pydantic-settings reads (a mapping, names case-insensitive, empty values unset, no JSON
decoding), :func:`env_name`, :func:`redact_url`, and the value parsers the field validators share.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

__all__ = [
    "ENV_PREFIX",
    "EnvironSource",
    "env_name",
    "parse_http_url",
    "parse_int",
    "reading",
    "redact_url",
    "strip",
]

ENV_PREFIX = "SYNCLEDGER_"


def env_name(field_name: str) -> str:
    """The variable of a :class:`Settings` field, e.g. ``port`` → ``SYNCLEDGER_PORT``."""
    return ENV_PREFIX + field_name.upper()


def redact_url(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part (if any) replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, host_and_path = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host_and_path}"


# The mapping load_settings(environ=...) reads instead of os.environ, in the current context.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("syncledger_environ", default=None)


@contextmanager
def reading(environ: Mapping[str, str] | None) -> Iterator[None]:
    token = _ENVIRON.set(environ)
    try:
        yield
    finally:
        _ENVIRON.reset(token)


class EnvironSource(PydanticBaseSettingsSource):
    """``SYNCLEDGER_<FIELD>`` values from a mapping, as raw strings: names case-insensitive,
    empty values unset, no JSON decoding (the field validators parse every value)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._exact = environ
        self._folded = {key.lower(): value for key, value in environ.items()}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        name = env_name(field_name)
        value = self._exact.get(name)
        if value is None:
            value = self._folded.get(name.lower())
        return (value or None), field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, field_name)
            if value is not None:
                values[key] = value
        return values


def parse_int(value: Any, low: int, high: int | None, what: str) -> Any:
    if isinstance(value, bool):
        raise ValueError(what)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValueError(what) from None
    if isinstance(value, int) and (value < low or (high is not None and value > high)):
        raise ValueError(what)
    return value


def parse_http_url(value: Any, *, origin_only: bool = False) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    scheme, sep, rest = text.partition("://")
    host = rest.split("/", 1)[0]
    if scheme.lower() not in ("http", "https") or not sep or not host or " " in text:
        raise ValueError(
            "must be http(s)://host[:port]" if origin_only else "must be an http(s):// URL"
        )
    if origin_only and rest.rstrip("/") != host:
        raise ValueError("must be http(s)://host[:port], without a path")
    return text.rstrip("/")


def strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def environ_source(settings_cls: type[BaseSettings]) -> EnvironSource:
    """The source over the mapping :func:`reading` set, or ``os.environ``."""
    environ = _ENVIRON.get()
    return EnvironSource(settings_cls, os.environ if environ is None else environ)
