"""The service's settings, read from ``SYNCLEDGER_*`` environment variables.

(Over 400 lines on purpose: a quarter of it is the table of every variable below, the one
reference the README and ``config show`` follow; the code itself is under 300 lines.)

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
| `SYNCLEDGER_SALESFORCE_USERNAME` | unset | Password and JWT bearer logins: the integration user's username. |
| `SYNCLEDGER_SALESFORCE_PASSWORD` | unset | Password login: that user's password. Secret. |
| `SYNCLEDGER_SALESFORCE_SECURITY_TOKEN` | unset (empty) | Password login: the user's security token; leave unset when the org trusts the caller's IP range. Secret. |
| `SYNCLEDGER_SALESFORCE_CONSUMER_KEY` | unset | JWT bearer and client credentials logins: the connected app's consumer key. |
| `SYNCLEDGER_SALESFORCE_PRIVATE_KEY_FILE` | unset | JWT bearer login: a PEM file holding the RSA private key whose certificate the connected app has. Its contents are secret. |
| `SYNCLEDGER_SALESFORCE_CONSUMER_SECRET` | unset | Client credentials login: the connected app's consumer secret. Secret. |
| `SYNCLEDGER_SALESFORCE_DOMAIN` | `login` | Password and OAuth logins: log in at `https://{domain}.salesforce.com` (`login`, `test` for sandboxes, or a My Domain such as `acme.my`, which the client credentials flow needs). |
| `SYNCLEDGER_SALESFORCE_LOGIN_URL` | unset | Password and OAuth logins: an `http(s)://host:port` that replaces the login host, e.g. a local Salesforce simulator. |
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
| `SYNCLEDGER_METRICS_PUBLIC` | `false` | `true` lets Prometheus scrape `/metrics` without an API key (default: the `audit:read` scope). |
| `SYNCLEDGER_LOG_FORMAT` | unset | `json` or `text`; unset means JSON when stderr is not a terminal, text when it is. |
| `SYNCLEDGER_LOG_LEVEL` | `INFO` | The least severe log records written: `DEBUG`, `INFO`, `WARNING` or `ERROR`. |
| `SYNCLEDGER_REPLAY_ALLOWED_ORGS` | unset | Comma-separated Salesforce org Ids (15 or 18 letters and digits) that replays may target. |

Salesforce is configured in one of four modes (see :meth:`Settings.salesforce_auth` and the
table in :mod:`adapters.salesforce.modes`): *session* (instance URL + session id), *password*
(username + password, optionally security token), *jwt* (consumer key + private key file +
username) or *client_credentials* (consumer key + consumer secret); the last three may add the
domain and the login URL. Configuring none is fine until something needs Salesforce; a half
configured mode, or two modes at once, is a :class:`SettingsError` from ``salesforce_auth()``.
"""  # noqa: E501

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

from pydantic import SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from adapters.api_keys import API_SCOPES, ApiKeys
from adapters.environ import (
    ENV_PREFIX,
    env_name,
    environ_source,
    parse_http_url,
    parse_int,
    reading,
    redact_url,
    strip,
)
from adapters.salesforce.modes import SalesforceAuthMode, configured_mode, read_private_key
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

# Fields whose values are secret: their values never appear in messages.
_SECRET_FIELDS = frozenset(
    {
        "salesforce_session_id",
        "salesforce_password",
        "salesforce_security_token",
        "salesforce_consumer_secret",
        "intercom_token",
        "intercom_client_secret",
        "api_keys",
    }
)
# The fields that choose a Salesforce login mode (the domain goes with several, so it is not one).
_SALESFORCE_LOGIN_FIELDS = (
    "salesforce_instance_url",
    "salesforce_session_id",
    "salesforce_username",
    "salesforce_password",
    "salesforce_security_token",
    "salesforce_consumer_key",
    "salesforce_private_key_file",
    "salesforce_consumer_secret",
    "salesforce_login_url",
)
_DATABASE_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+psycopg://", "memory://")
_ORG_ID_RE = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_DOMAIN_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_GOT_LIMIT = 80


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


class IntercomCredentials(NamedTuple):
    """What the Intercom adapter and webhook receiver need (:meth:`Settings.require_intercom`)."""

    base_url: str
    token: SecretStr
    client_secret: SecretStr


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
    salesforce_consumer_key: str | None = None
    salesforce_consumer_secret: SecretStr | None = None
    salesforce_private_key_file: Path | None = None
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
    metrics_public: bool = False

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
        return init_settings, environ_source(settings_cls)

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
        return parse_http_url(value)

    @field_validator("salesforce_login_url", mode="before")
    @classmethod
    def _check_login_url(cls, value: Any) -> Any:
        return parse_http_url(value, origin_only=True)

    @field_validator(
        "salesforce_username",
        "salesforce_consumer_key",
        "salesforce_private_key_file",
        "host",
        "config_file",
        mode="before",
    )
    @classmethod
    def _check_text(cls, value: Any) -> Any:
        return strip(value)

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
        return parse_int(value, 1, None, "must be a whole number greater than 0")

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
        return parse_int(value, 1, 65535, "must be an integer from 1 to 65535")

    @field_validator("write_batch_size", mode="before")
    @classmethod
    def _check_batch_size(cls, value: Any) -> Any:
        return parse_int(value, 1, 200, "must be an integer from 1 to 200")

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
        """Which Salesforce login is configured: ``"session"``, ``"password"``, ``"jwt"``,
        ``"client_credentials"``, or None (none).

        Raises :class:`SettingsError` naming each missing variable when a mode is half
        configured, naming a variable of each mode when two are (partly) set, and naming
        ``SYNCLEDGER_SALESFORCE_DOMAIN`` when the client credentials flow would log in at
        ``login`` or ``test`` (Salesforce takes it only at a My Domain). The security token is
        optional (orgs that trust the caller's IP range need none).
        """
        prefix = "salesforce_"
        present = [
            name.removeprefix(prefix).upper()
            for name in _SALESFORCE_LOGIN_FIELDS
            if getattr(self, name) is not None
        ]
        mode, problems = configured_mode(present, domain=self.salesforce_domain)
        if problems:
            raise SettingsError(problems)
        return mode

    def salesforce_private_key(self) -> SecretStr:
        """The PEM private key in ``SYNCLEDGER_SALESFORCE_PRIVATE_KEY_FILE``, read now.

        :class:`SettingsError` (one line, naming the variable and the path, never the file's
        contents) when it is unset, missing, unreadable or holds no unencrypted PEM private key.
        """
        variable = env_name("salesforce_private_key_file")
        if self.salesforce_private_key_file is None:
            raise SettingsError(f"{variable}: must be set for the Salesforce JWT bearer login")
        try:
            return SecretStr(read_private_key(self.salesforce_private_key_file))
        except ValueError as exc:
            raise SettingsError([(variable, str(exc))]) from None

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
        with reading(environ):
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
