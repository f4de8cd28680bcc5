"""The service's settings, read from ``SYNCLEDGER_*`` environment variables.

:func:`load_settings` reads the variables below (from ``os.environ``, or from a mapping passed in
tests) and returns a frozen :class:`Settings`; a bad value raises :class:`SettingsError`, whose
message is one line naming every bad variable, e.g.
``SYNCLEDGER_POLL_INTERVAL_SECONDS: must be a number greater than 0 (got 'abc')``.
Variable names are case-insensitive, an empty variable counts as unset, no ``.env`` file is
read, and other variables (including unknown ``SYNCLEDGER_*`` ones) are ignored. Secret values
are held as :class:`~pydantic.SecretStr` (or :class:`ApiKeys`) and never appear in ``repr``,
``str`` or error messages; the password in a database URL is masked in ``repr`` and errors.

| Variable | Default | Meaning |
|---|---|---|
| `SYNCLEDGER_DATABASE_URL` | `sqlite:///syncledger.db` | Ledger database: `sqlite:///path.db`, `postgresql://…`, `postgresql+psycopg://…` or `memory://`. The default is a SQLite file in the working directory. |
| `SYNCLEDGER_SALESFORCE_INSTANCE_URL` | unset | Session login: the org's `http(s)://` instance URL (with `SYNCLEDGER_SALESFORCE_SESSION_ID`). |
| `SYNCLEDGER_SALESFORCE_SESSION_ID` | unset | Session login: a session id or OAuth access token. Secret. |
| `SYNCLEDGER_SALESFORCE_USERNAME` | unset | Password login: the integration user's username (with `SYNCLEDGER_SALESFORCE_PASSWORD`). |
| `SYNCLEDGER_SALESFORCE_PASSWORD` | unset | Password login: that user's password. Secret. |
| `SYNCLEDGER_SALESFORCE_SECURITY_TOKEN` | unset (empty) | Password login: the user's security token; leave unset when the org trusts the caller's IP range. Secret. |
| `SYNCLEDGER_SALESFORCE_DOMAIN` | `login` | Password login: log in at `https://{domain}.salesforce.com` (`login`, `test` for sandboxes, or a My Domain such as `acme.my`). |
| `SYNCLEDGER_SALESFORCE_LOGIN_URL` | unset | Password login: an `http(s)://host:port` that replaces the login host, e.g. a local Salesforce simulator. |
| `SYNCLEDGER_SALESFORCE_DAILY_API_ALLOCATION` | unset | This integration's share of the org's daily API calls (an integer > 0); unset means the org's whole daily limit as Salesforce reports it. |
| `SYNCLEDGER_INTERCOM_BASE_URL` | `https://api.intercom.io` | Intercom REST API base URL (`http(s)://`; another region or a simulator). |
| `SYNCLEDGER_INTERCOM_TOKEN` | unset | Intercom access token. Secret. |
| `SYNCLEDGER_INTERCOM_CLIENT_SECRET` | unset | Intercom app client secret, which signs webhooks. Secret. |
| `SYNCLEDGER_POLL_INTERVAL_SECONDS` | `300` | Seconds between sync cycles; a number > 0 (fractions allowed). |
| `SYNCLEDGER_CONFIG_FILE` | unset | Path to the sync configuration file (TOML) `serve` applies at start when `--config` is not given. |
| `SYNCLEDGER_HOST` | `127.0.0.1` | Address the HTTP API listens on. |
| `SYNCLEDGER_PORT` | `8000` | Port the HTTP API listens on (1–65535). |
| `SYNCLEDGER_WRITE_BATCH_SIZE` | `200` | Records per Salesforce write batch (1–200). |
| `SYNCLEDGER_API_KEYS` | unset | HTTP API keys and their scopes: comma-separated `KEY=scope+scope` entries, e.g. `k1=audit:read,k2=audit:read+sync:operate+replay:execute`. Scopes: `audit:read`, `sync:operate`, `replay:execute`. Secret. |
| `SYNCLEDGER_INTERCOM_RECONCILE_SECONDS` | `10800` | Seconds between reconciliations with Intercom (on start, then this often): companies changed without a webhook reaching the service are synced. A number > 0. |
| `SYNCLEDGER_LOG_FORMAT` | unset | `json` or `text`; unset means JSON when stderr is not a terminal, text when it is. |
| `SYNCLEDGER_LOG_LEVEL` | `INFO` | The least severe log records written: `DEBUG`, `INFO`, `WARNING` or `ERROR`. |
| `SYNCLEDGER_REPLAY_ALLOWED_ORGS` | unset | Comma-separated Salesforce org Ids (15 or 18 letters and digits) that replays may target. |

Salesforce is configured in one of two modes (see :meth:`Settings.salesforce_auth`): *session*
(instance URL + session id) or *password* (username + password, optionally security token,
domain and login URL). Configuring neither is fine until something needs Salesforce; a half
configured mode, or both modes at once, is a :class:`SettingsError` from ``salesforce_auth()``.
"""  # noqa: E501

from __future__ import annotations

import hmac
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

from pydantic import GetCoreSchemaHandler, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import core_schema
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ledger.errors import SyncLedgerError

__all__ = [
    "API_SCOPES",
    "ENV_PREFIX",
    "ApiKeys",
    "IntercomCredentials",
    "SalesforceAuthMode",
    "Settings",
    "SettingsError",
    "env_name",
    "load_settings",
    "redact_url",
]

ENV_PREFIX = "SYNCLEDGER_"
API_SCOPES: tuple[str, ...] = ("audit:read", "sync:operate", "replay:execute")
"""The scopes an API key can grant, as written in ``SYNCLEDGER_API_KEYS``."""

SalesforceAuthMode = Literal["session", "password"]

# Fields whose values are secret: their values never appear in messages.
_SECRET_FIELDS = frozenset(
    {
        "salesforce_session_id",
        "salesforce_password",
        "salesforce_security_token",
        "intercom_token",
        "intercom_client_secret",
        "api_keys",
    }
)
_DATABASE_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+psycopg://", "memory://")
_ORG_ID_RE = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_API_KEY_RE = re.compile(r"[!-~]+")  # printable ASCII, no spaces
_DOMAIN_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_GOT_LIMIT = 80


def env_name(field_name: str) -> str:
    """The variable of a :class:`Settings` field, e.g. ``port`` → ``SYNCLEDGER_PORT``."""
    return ENV_PREFIX + field_name.upper()


class SettingsError(SyncLedgerError):
    """Settings that cannot be used; ``str()`` is one line naming each bad variable.

    Give either the line itself (``SettingsError("SYNCLEDGER_PORT: must be ...")``) or
    ``(variable, message)`` pairs, which are joined with ``"; "``. ``problems`` holds the pairs,
    e.g. ``("SYNCLEDGER_PORT", "must be an integer from 1 to 65535 (got '0')")``.
    """

    def __init__(self, problems: str | Iterable[tuple[str, str]]) -> None:
        if isinstance(problems, str):
            variable, sep, message = problems.partition(": ")
            pairs: tuple[tuple[str, str], ...] = (
                ((variable, message),) if sep else (("", problems),)
            )
        else:
            pairs = tuple(problems)
        self.problems = pairs
        super().__init__(
            "; ".join(
                _one_line(f"{variable}: {message}" if variable else message)
                for variable, message in pairs
            )
        )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def redact_url(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part (if any) replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, host_and_path = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host_and_path}"


class ApiKeys(Mapping[str, frozenset[str]]):
    """API key → the scopes it grants. ``repr``/``str`` show only how many keys there are.

    Look a presented key up with :meth:`scopes_for` (constant-time comparison) rather than
    ``keys[presented]``.
    """

    __slots__ = ("_scopes",)

    def __init__(self, scopes: Mapping[str, Iterable[str]]) -> None:
        self._scopes: dict[str, frozenset[str]] = {}
        for number, (key, granted) in enumerate(scopes.items(), start=1):
            names = frozenset(granted)
            if not names:
                raise ValueError(f"entry {number} grants no scopes")
            unknown = sorted(names.difference(API_SCOPES))
            if unknown:
                raise ValueError(
                    f"entry {number} has unknown scope {unknown[0]!r} "
                    f"(valid scopes: {', '.join(API_SCOPES)})"
                )
            self._scopes[key] = names

    @classmethod
    def parse(cls, text: str) -> ApiKeys:
        """Parse ``KEY=scope+scope,KEY=scope``; errors name entries by number, never by key.

        A key is printable ASCII without spaces or commas; it may contain ``=`` (base64), since
        the scopes start after the last ``=``.
        """
        scopes: dict[str, frozenset[str]] = {}
        for number, entry in enumerate(text.split(","), start=1):
            key, sep, granted = entry.strip().rpartition("=")
            if not sep or not key:
                raise ValueError(f"entry {number} is not KEY=scope+scope")
            if not _API_KEY_RE.fullmatch(key):
                raise ValueError(f"entry {number} has a key with spaces or non-ASCII characters")
            if key in scopes:
                raise ValueError(f"entry {number} repeats the key of an earlier entry")
            names = [name.strip() for name in granted.split("+")]
            if not all(names):
                raise ValueError(f"entry {number} is not KEY=scope+scope")
            unknown = [name for name in names if name not in API_SCOPES]
            if unknown:
                raise ValueError(
                    f"entry {number} has unknown scope {unknown[0]!r} "
                    f"(valid scopes: {', '.join(API_SCOPES)})"
                )
            scopes[key] = frozenset(names)
        return cls(scopes)

    def scopes_for(self, presented: str) -> frozenset[str]:
        """The scopes of ``presented`` (empty when it is no key), compared in constant time."""
        candidate = presented.encode("utf-8", "surrogatepass")
        found: frozenset[str] = frozenset()
        for key, granted in self._scopes.items():
            if hmac.compare_digest(candidate, key.encode()):
                found = granted
        return found

    def __getitem__(self, key: str) -> frozenset[str]:
        return self._scopes[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._scopes)

    def __len__(self) -> int:
        return len(self._scopes)

    def __repr__(self) -> str:
        count = len(self._scopes)
        return f"ApiKeys(<{count} key{'' if count == 1 else 's'}>)"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source_type: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.is_instance_schema(cls)


class IntercomCredentials(NamedTuple):
    """What the Intercom adapter and webhook receiver need (:meth:`Settings.require_intercom`)."""

    base_url: str
    token: SecretStr
    client_secret: SecretStr


# The mapping load_settings(environ=...) reads instead of os.environ, in the current context.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("syncledger_environ", default=None)


@contextmanager
def _reading(environ: Mapping[str, str] | None) -> Iterator[None]:
    token = _ENVIRON.set(environ)
    try:
        yield
    finally:
        _ENVIRON.reset(token)


class _EnvironSource(PydanticBaseSettingsSource):
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


def _parse_int(value: Any, low: int, high: int | None, what: str) -> Any:
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


def _parse_http_url(value: Any, *, origin_only: bool = False) -> Any:
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


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class Settings(BaseSettings):
    """The service's settings; see the module docstring for each variable.

    Build with :func:`load_settings` (``SettingsError`` on bad values). Fields are named after
    the variables without the ``SYNCLEDGER_`` prefix, lower-case (:func:`env_name` maps back).
    Instances are frozen.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=None,
        case_sensitive=False,
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
    )

    DEFAULT_DATABASE_URL: ClassVar[str] = "sqlite:///syncledger.db"

    database_url: str = DEFAULT_DATABASE_URL
    salesforce_instance_url: str | None = None
    salesforce_session_id: SecretStr | None = None
    salesforce_username: str | None = None
    salesforce_password: SecretStr | None = None
    salesforce_security_token: SecretStr | None = None
    salesforce_domain: str = "login"
    salesforce_login_url: str | None = None
    salesforce_daily_api_allocation: int | None = None
    intercom_base_url: str = "https://api.intercom.io"
    intercom_token: SecretStr | None = None
    intercom_client_secret: SecretStr | None = None
    poll_interval_seconds: float = 300.0
    config_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    write_batch_size: int = 200
    api_keys: ApiKeys | None = None
    replay_allowed_orgs: tuple[str, ...] = ()
    log_format: Literal["json", "text"] | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    intercom_reconcile_seconds: float = 10800.0

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Constructor arguments, then the environment (no .env file, no secrets directory)."""
        environ = _ENVIRON.get()
        return init_settings, _EnvironSource(
            settings_cls, os.environ if environ is None else environ
        )

    @field_validator("database_url", mode="before")
    @classmethod
    def _check_database_url(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            lowered = value.lower()
            if not lowered.startswith(_DATABASE_SCHEMES) or lowered in _DATABASE_SCHEMES[1:3]:
                raise ValueError(
                    "must be sqlite:///path.db, postgresql://…, postgresql+psycopg://… or memory://"
                )
        return value

    @field_validator("salesforce_instance_url", "intercom_base_url", mode="before")
    @classmethod
    def _check_url(cls, value: Any) -> Any:
        return _parse_http_url(value)

    @field_validator("salesforce_login_url", mode="before")
    @classmethod
    def _check_login_url(cls, value: Any) -> Any:
        return _parse_http_url(value, origin_only=True)

    @field_validator("salesforce_username", "host", "config_file", mode="before")
    @classmethod
    def _check_text(cls, value: Any) -> Any:
        return _strip(value)

    @field_validator("salesforce_domain", mode="before")
    @classmethod
    def _check_domain(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if value.lower().endswith(".salesforce.com"):
                raise ValueError(
                    "must be the part before .salesforce.com (login, test or a My Domain "
                    "such as acme.my)"
                )
            if not _DOMAIN_RE.fullmatch(value):
                raise ValueError("must be a host name part such as login, test or acme.my")
        return value

    @field_validator("salesforce_daily_api_allocation", mode="before")
    @classmethod
    def _check_allocation(cls, value: Any) -> Any:
        return _parse_int(value, 1, None, "must be a whole number greater than 0")

    @field_validator("poll_interval_seconds", "intercom_reconcile_seconds", mode="before")
    @classmethod
    def _check_poll_interval(cls, value: Any) -> Any:
        what = "must be a number greater than 0"
        if isinstance(value, bool):
            raise ValueError(what)
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ValueError(what) from None
        if isinstance(value, int | float) and not (math.isfinite(value) and value > 0):
            raise ValueError(what)
        return value

    @field_validator("port", mode="before")
    @classmethod
    def _check_port(cls, value: Any) -> Any:
        return _parse_int(value, 1, 65535, "must be an integer from 1 to 65535")

    @field_validator("write_batch_size", mode="before")
    @classmethod
    def _check_batch_size(cls, value: Any) -> Any:
        return _parse_int(value, 1, 200, "must be an integer from 1 to 200")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _check_api_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return ApiKeys.parse(value)
        if isinstance(value, Mapping) and not isinstance(value, ApiKeys):
            return ApiKeys(value)
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _check_log_format(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            if value not in ("json", "text"):
                raise ValueError("must be json or text")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _check_log_level(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().upper()
            if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
                raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value

    @field_validator("replay_allowed_orgs", mode="before")
    @classmethod
    def _check_orgs(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            orgs: list[str] = []
            for number, item in enumerate(value, start=1):
                org = item.strip() if isinstance(item, str) else item
                if not isinstance(org, str) or not _ORG_ID_RE.fullmatch(org):
                    raise ValueError(
                        f"entry {number} is not a Salesforce org Id (15 or 18 letters and digits)"
                    )
                orgs.append(org)
            return tuple(orgs)
        return value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            if name == "database_url" and isinstance(value, str):
                yield name, redact_url(value)
            else:
                yield name, value

    def salesforce_auth(self) -> SalesforceAuthMode | None:
        """Which Salesforce login is configured: ``"session"``, ``"password"``, or None (none).

        Raises :class:`SettingsError` naming each missing variable when a mode is half
        configured (session: instance URL and session id; password: username and password), and
        naming a variable of each mode when both are (partly) set. The security token is
        optional (orgs that trust the caller's IP range need none).
        """
        session = {
            "salesforce_instance_url": self.salesforce_instance_url is not None,
            "salesforce_session_id": self.salesforce_session_id is not None,
        }
        password = {
            "salesforce_username": self.salesforce_username is not None,
            "salesforce_password": self.salesforce_password is not None,
            "salesforce_security_token": self.salesforce_security_token is not None,
            "salesforce_login_url": self.salesforce_login_url is not None,
        }
        session_set = [env_name(name) for name, present in session.items() if present]
        password_set = [env_name(name) for name, present in password.items() if present]
        if session_set and password_set:
            raise SettingsError(
                [
                    (
                        f"{session_set[0]}, {password_set[0]}",
                        "configure one Salesforce login, either session (INSTANCE_URL and "
                        "SESSION_ID) or password (USERNAME and PASSWORD), not both",
                    )
                ]
            )
        mode: SalesforceAuthMode
        if session_set:
            mode, given, required = "session", session_set, session
        elif password_set:
            mode, given = "password", password_set
            required = {
                name: password[name] for name in ("salesforce_username", "salesforce_password")
            }
        else:
            return None
        missing = [env_name(name) for name, present in required.items() if not present]
        if missing:
            because = f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} set"
            raise SettingsError(
                (variable, f"must be set for the Salesforce {mode} login ({because})")
                for variable in missing
            )
        return mode

    def require_intercom(self) -> IntercomCredentials:
        """The Intercom base URL, token and client secret; :class:`SettingsError` names each of
        ``SYNCLEDGER_INTERCOM_TOKEN`` and ``SYNCLEDGER_INTERCOM_CLIENT_SECRET`` that is unset."""
        token, secret = self.intercom_token, self.intercom_client_secret
        if token is None or secret is None:
            reasons = {
                "intercom_token": "must be set to talk to Intercom",
                "intercom_client_secret": "must be set to verify Intercom webhooks",
            }
            raise SettingsError(
                (env_name(name), reason)
                for name, reason in reasons.items()
                if getattr(self, name) is None
            )
        return IntercomCredentials(self.intercom_base_url, token, secret)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings from ``environ`` (default ``os.environ``); :class:`SettingsError` if bad."""
    try:
        with _reading(environ):
            return Settings()
    except ValidationError as exc:
        raise SettingsError(_problems(exc)) from None


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        variable = env_name(field) if field else ENV_PREFIX.rstrip("_")
        ctx = error.get("ctx") or {}
        if error["type"] == "value_error" and "error" in ctx:
            message = str(ctx["error"])
        else:
            message = error["msg"]
        value = error.get("input")
        if field not in _SECRET_FIELDS and isinstance(value, str):
            shown = redact_url(value) if field == "database_url" else value
            if len(shown) > _GOT_LIMIT:
                shown = shown[: _GOT_LIMIT - 1] + "…"
            message = f"{message} (got {shown!r})"
        problems.append((variable, message))
    return problems
