"""Settings from ``SYNCLEDGER_*`` variables: defaults, parsing, one-line errors, secrecy.

Every test passes ``environ=`` so the real process environment never leaks in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from adapters.settings import (
    API_SCOPES,
    ApiKeys,
    IntercomCredentials,
    Settings,
    SettingsError,
    env_name,
    load_settings,
    redact_url,
)

SECRET = "s3cr3t-DO-NOT-PRINT"
ORG15 = "00D000000000001"
ORG18 = "00D000000000001EAA"


def error_for(environ: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.fixture
def no_syncledger_variables(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The process environment without any SYNCLEDGER_* variable (for ``environ=None``)."""
    for name in list(os.environ):
        if name.upper().startswith("SYNCLEDGER_"):
            monkeypatch.delenv(name)
    return monkeypatch


def settings(**variables: str) -> Settings:
    return load_settings({f"SYNCLEDGER_{name.upper()}": value for name, value in variables.items()})


# --- defaults and parsing ---------------------------------------------------------------------


def test_defaults_with_an_empty_environment() -> None:
    s = load_settings({})
    assert s.database_url == "sqlite:///syncledger.db"
    assert s.salesforce_instance_url is None
    assert s.salesforce_session_id is None
    assert s.salesforce_username is None
    assert s.salesforce_password is None
    assert s.salesforce_security_token is None
    assert s.salesforce_domain == "login"
    assert s.salesforce_login_url is None
    assert s.salesforce_daily_api_allocation is None
    assert s.intercom_base_url == "https://api.intercom.io"
    assert s.intercom_token is None
    assert s.intercom_client_secret is None
    assert s.poll_interval_seconds == 300
    assert s.config_file is None
    assert s.host == "127.0.0.1"
    assert s.port == 8000
    assert s.write_batch_size == 200
    assert s.api_keys is None
    assert s.replay_allowed_orgs == ()
    assert s.salesforce_auth() is None


def test_every_variable_is_parsed() -> None:
    s = load_settings(
        {
            "SYNCLEDGER_DATABASE_URL": "postgresql+psycopg://app@db:5432/ledger",
            "SYNCLEDGER_SALESFORCE_USERNAME": " sync@acme.example ",
            "SYNCLEDGER_SALESFORCE_PASSWORD": "pw",
            "SYNCLEDGER_SALESFORCE_SECURITY_TOKEN": "tok",
            "SYNCLEDGER_SALESFORCE_DOMAIN": "acme.my",
            "SYNCLEDGER_SALESFORCE_LOGIN_URL": "http://127.0.0.1:8701",
            "SYNCLEDGER_SALESFORCE_DAILY_API_ALLOCATION": "25000",
            "SYNCLEDGER_INTERCOM_BASE_URL": "https://api.eu.intercom.io/",
            "SYNCLEDGER_INTERCOM_TOKEN": "ic-token",
            "SYNCLEDGER_INTERCOM_CLIENT_SECRET": "ic-secret",
            "SYNCLEDGER_POLL_INTERVAL_SECONDS": "2.5",
            "SYNCLEDGER_CONFIG_FILE": "conf/sync.toml",
            "SYNCLEDGER_HOST": "0.0.0.0",
            "SYNCLEDGER_PORT": "9001",
            "SYNCLEDGER_WRITE_BATCH_SIZE": "50",
            "SYNCLEDGER_API_KEYS": "k1=audit:read",
            "SYNCLEDGER_REPLAY_ALLOWED_ORGS": f"{ORG15}, {ORG18}",
        }
    )
    assert s.database_url == "postgresql+psycopg://app@db:5432/ledger"
    assert s.salesforce_username == "sync@acme.example"
    assert s.salesforce_password == SecretStr("pw")
    assert s.salesforce_security_token == SecretStr("tok")
    assert s.salesforce_domain == "acme.my"
    assert s.salesforce_login_url == "http://127.0.0.1:8701"
    assert s.salesforce_daily_api_allocation == 25000
    assert s.intercom_base_url == "https://api.eu.intercom.io"
    assert s.intercom_token == SecretStr("ic-token")
    assert s.intercom_client_secret == SecretStr("ic-secret")
    assert s.poll_interval_seconds == 2.5
    assert s.config_file == Path("conf/sync.toml")
    assert s.host == "0.0.0.0"
    assert s.port == 9001
    assert s.write_batch_size == 50
    assert s.api_keys is not None
    assert dict(s.api_keys) == {"k1": frozenset({"audit:read"})}
    assert s.replay_allowed_orgs == (ORG15, ORG18)
    assert s.salesforce_auth() == "password"


def test_session_mode_variables() -> None:
    s = settings(
        salesforce_instance_url="https://acme.my.salesforce.com/", salesforce_session_id="00D!x"
    )
    assert s.salesforce_instance_url == "https://acme.my.salesforce.com"
    assert s.salesforce_session_id is not None
    assert s.salesforce_session_id.get_secret_value() == "00D!x"
    assert s.salesforce_auth() == "session"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///syncledger.db",
        "sqlite:////var/lib/syncledger/ledger.db",
        "postgresql://user:pw@localhost:5432/ledger",
        "postgresql+psycopg://user@localhost/ledger?schema=sync",
        "memory://",
    ],
)
def test_accepted_database_urls(url: str) -> None:
    assert settings(database_url=url).database_url == url


def test_names_are_case_insensitive_and_others_ignored() -> None:
    s = load_settings(
        {
            "syncledger_port": "8100",
            "SyncLedger_Host": "::1",
            "SYNCLEDGER_UNKNOWN_THING": "whatever",
            "PORT": "1",
            "DATABASE_URL": "mysql://nope",
        }
    )
    assert (s.port, s.host, s.database_url) == (8100, "::1", "sqlite:///syncledger.db")


def test_the_exact_upper_case_name_wins_over_other_spellings() -> None:
    s = load_settings({"syncledger_port": "1111", "SYNCLEDGER_PORT": "2222"})
    assert s.port == 2222


def test_empty_values_count_as_unset() -> None:
    s = load_settings(
        {
            "SYNCLEDGER_DATABASE_URL": "",
            "SYNCLEDGER_PORT": "",
            "SYNCLEDGER_API_KEYS": "",
            "SYNCLEDGER_SALESFORCE_SESSION_ID": "",
            "SYNCLEDGER_REPLAY_ALLOWED_ORGS": "",
        }
    )
    assert s.database_url == "sqlite:///syncledger.db"
    assert s.port == 8000
    assert s.api_keys is None
    assert s.salesforce_auth() is None
    assert s.replay_allowed_orgs == ()


def test_bounds_are_inclusive() -> None:
    assert settings(port="1").port == 1
    assert settings(port="65535").port == 65535
    assert settings(write_batch_size="1").write_batch_size == 1
    assert settings(write_batch_size="200").write_batch_size == 200
    assert settings(poll_interval_seconds="0.1").poll_interval_seconds == 0.1
    assert settings(salesforce_daily_api_allocation="1").salesforce_daily_api_allocation == 1


def test_settings_are_frozen() -> None:
    s = load_settings({})
    with pytest.raises(ValueError, match="frozen"):
        s.port = 1


def test_environ_none_reads_the_process_environment(
    no_syncledger_variables: pytest.MonkeyPatch,
) -> None:
    no_syncledger_variables.setenv("SYNCLEDGER_WRITE_BATCH_SIZE", "17")
    assert load_settings().write_batch_size == 17
    # ...while an explicit mapping ignores it.
    assert load_settings({}).write_batch_size == 200


def test_constructor_arguments_take_precedence_and_are_checked_too(
    no_syncledger_variables: pytest.MonkeyPatch,
) -> None:
    no_syncledger_variables.setenv("SYNCLEDGER_PORT", "1234")
    arguments: dict[str, Any] = {
        "port": 9999,
        "api_keys": {"k": ["audit:read"]},
        "replay_allowed_orgs": [ORG18],
    }
    s = Settings(**arguments)
    assert s.port == 9999
    assert s.api_keys is not None
    assert dict(s.api_keys) == {"k": frozenset({"audit:read"})}
    assert s.replay_allowed_orgs == (ORG18,)


# --- one-line errors naming the variable ------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DATABASE_URL", "mysql://db/x", "must be sqlite:///path.db"),
        ("DATABASE_URL", "ledger.db", "must be sqlite:///path.db"),
        ("DATABASE_URL", "sqlite://relative.db", "must be sqlite:///path.db"),
        ("DATABASE_URL", "postgresql://", "must be sqlite:///path.db"),
        ("SALESFORCE_INSTANCE_URL", "acme.my.salesforce.com", "must be an http(s):// URL"),
        ("SALESFORCE_INSTANCE_URL", "ftp://acme.example", "must be an http(s):// URL"),
        ("SALESFORCE_INSTANCE_URL", "https://", "must be an http(s):// URL"),
        ("SALESFORCE_LOGIN_URL", "localhost:8701", "must be http(s)://host[:port]"),
        ("SALESFORCE_LOGIN_URL", "http://localhost:8701/login", "without a path"),
        ("SALESFORCE_DOMAIN", "login.salesforce.com", "the part before .salesforce.com"),
        ("SALESFORCE_DOMAIN", "my domain", "host name part"),
        ("SALESFORCE_DAILY_API_ALLOCATION", "0", "whole number greater than 0"),
        ("SALESFORCE_DAILY_API_ALLOCATION", "-5", "whole number greater than 0"),
        ("SALESFORCE_DAILY_API_ALLOCATION", "1.5", "whole number greater than 0"),
        ("SALESFORCE_DAILY_API_ALLOCATION", "lots", "whole number greater than 0"),
        ("INTERCOM_BASE_URL", "api.intercom.io", "must be an http(s):// URL"),
        ("POLL_INTERVAL_SECONDS", "abc", "must be a number greater than 0"),
        ("POLL_INTERVAL_SECONDS", "0", "must be a number greater than 0"),
        ("POLL_INTERVAL_SECONDS", "-1", "must be a number greater than 0"),
        ("POLL_INTERVAL_SECONDS", "nan", "must be a number greater than 0"),
        ("POLL_INTERVAL_SECONDS", "inf", "must be a number greater than 0"),
        ("PORT", "0", "must be an integer from 1 to 65535"),
        ("PORT", "65536", "must be an integer from 1 to 65535"),
        ("PORT", "http", "must be an integer from 1 to 65535"),
        ("WRITE_BATCH_SIZE", "0", "must be an integer from 1 to 200"),
        ("WRITE_BATCH_SIZE", "201", "must be an integer from 1 to 200"),
        ("WRITE_BATCH_SIZE", "ten", "must be an integer from 1 to 200"),
        ("REPLAY_ALLOWED_ORGS", "00D123", "entry 1 is not a Salesforce org Id"),
        ("REPLAY_ALLOWED_ORGS", f"{ORG18},{ORG15}X", "entry 2 is not a Salesforce org Id"),
        ("REPLAY_ALLOWED_ORGS", f"{ORG18},", "entry 2 is not a Salesforce org Id"),
        ("REPLAY_ALLOWED_ORGS", "00D-00000000001", "entry 1 is not a Salesforce org Id"),
    ],
)
def test_bad_values_give_one_line_naming_the_variable(
    variable: str, value: str, expected: str
) -> None:
    message = error_for({f"SYNCLEDGER_{variable}": value})
    assert message.startswith(f"SYNCLEDGER_{variable}: ")
    assert expected in message
    assert message.endswith(f"(got {value!r})")


def test_the_documented_example_message() -> None:
    assert error_for({"SYNCLEDGER_POLL_INTERVAL_SECONDS": "abc"}) == (
        "SYNCLEDGER_POLL_INTERVAL_SECONDS: must be a number greater than 0 (got 'abc')"
    )


def test_several_bad_variables_are_one_line_joined_by_semicolons() -> None:
    message = error_for(
        {
            "SYNCLEDGER_PORT": "0",
            "SYNCLEDGER_WRITE_BATCH_SIZE": "500",
            "SYNCLEDGER_POLL_INTERVAL_SECONDS": "soon",
        }
    )
    parts = message.split("; ")
    assert [part.split(":")[0] for part in parts] == [
        "SYNCLEDGER_POLL_INTERVAL_SECONDS",
        "SYNCLEDGER_PORT",
        "SYNCLEDGER_WRITE_BATCH_SIZE",
    ]


def test_problems_are_available_as_pairs() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"SYNCLEDGER_PORT": "0"})
    assert caught.value.problems == (
        ("SYNCLEDGER_PORT", "must be an integer from 1 to 65535 (got '0')"),
    )


def test_a_long_bad_value_is_shortened() -> None:
    message = error_for({"SYNCLEDGER_HOST": "h", "SYNCLEDGER_PORT": "9" * 500})
    assert len(message) < 200
    assert "…" in message


def test_settings_error_from_one_line() -> None:
    error = SettingsError("SYNCLEDGER_X: not set\n(really)")
    assert str(error) == "SYNCLEDGER_X: not set (really)"
    assert error.problems == (("SYNCLEDGER_X", "not set\n(really)"),)
    assert str(SettingsError("no variable here")) == "no variable here"


def test_env_name() -> None:
    assert env_name("poll_interval_seconds") == "SYNCLEDGER_POLL_INTERVAL_SECONDS"


# --- secrets ----------------------------------------------------------------------------------


def test_secrets_never_appear_in_repr_or_str() -> None:
    s = load_settings(
        {
            "SYNCLEDGER_SALESFORCE_SESSION_ID": f"session-{SECRET}",
            "SYNCLEDGER_SALESFORCE_INSTANCE_URL": "https://acme.my.salesforce.com",
            "SYNCLEDGER_INTERCOM_TOKEN": f"token-{SECRET}",
            "SYNCLEDGER_INTERCOM_CLIENT_SECRET": f"client-{SECRET}",
            "SYNCLEDGER_API_KEYS": f"key-{SECRET}=audit:read,other-{SECRET}=sync:operate",
            "SYNCLEDGER_DATABASE_URL": f"postgresql://app:{SECRET}@db/ledger",
        }
    )
    for text in (repr(s), str(s), repr(s.api_keys), str(s.api_keys), repr(s.require_intercom())):
        assert SECRET not in text
    assert "ApiKeys(<2 keys>)" in repr(s)
    assert "postgresql://app:***@db/ledger" in repr(s)
    # The value itself is untouched.
    assert s.database_url == f"postgresql://app:{SECRET}@db/ledger"


def test_password_login_secrets_never_appear_in_repr() -> None:
    s = settings(
        salesforce_username="u", salesforce_password=SECRET, salesforce_security_token=SECRET
    )
    assert SECRET not in repr(s)


def test_secrets_never_appear_in_error_messages() -> None:
    message = error_for(
        {
            "SYNCLEDGER_API_KEYS": f"{SECRET}=audit:write",
            "SYNCLEDGER_DATABASE_URL": f"mysql://app:{SECRET}@db/ledger",
            "SYNCLEDGER_INTERCOM_TOKEN": SECRET,
            "SYNCLEDGER_PORT": "0",
        }
    )
    assert SECRET not in message
    assert "SYNCLEDGER_API_KEYS: entry 1 has unknown scope 'audit:write'" in message
    assert "(got 'mysql://app:***@db/ledger')" in message


def test_validation_errors_from_the_constructor_hide_inputs(
    no_syncledger_variables: pytest.MonkeyPatch,
) -> None:
    arguments: dict[str, Any] = {"api_keys": f"{SECRET}=nope", "port": SECRET}
    with pytest.raises(ValueError) as caught:
        Settings(**arguments)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://h/db", "postgresql://h/db"),
        ("sqlite:///ledger.db", "sqlite:///ledger.db"),
        ("memory://", "memory://"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


# --- API keys ---------------------------------------------------------------------------------


def test_api_keys_parse_into_scopes() -> None:
    s = settings(api_keys="k1=audit:read, k2=audit:read+sync:operate+replay:execute")
    assert s.api_keys is not None
    assert dict(s.api_keys) == {
        "k1": frozenset({"audit:read"}),
        "k2": frozenset(API_SCOPES),
    }
    assert len(s.api_keys) == 2
    assert s.api_keys.scopes_for("k2") == frozenset(API_SCOPES)
    assert s.api_keys.scopes_for("k1") == frozenset({"audit:read"})
    assert s.api_keys.scopes_for("k3") == frozenset()
    assert s.api_keys.scopes_for("") == frozenset()
    assert s.api_keys.scopes_for("ünïcode") == frozenset()


def test_api_keys_may_contain_equals_signs() -> None:
    s = settings(api_keys="bXlrZXk==audit:read")
    assert s.api_keys is not None
    assert dict(s.api_keys) == {"bXlrZXk=": frozenset({"audit:read"})}


def test_api_key_repr_counts_keys() -> None:
    assert repr(ApiKeys({"only": ["audit:read"]})) == "ApiKeys(<1 key>)"
    assert repr(ApiKeys({})) == "ApiKeys(<0 keys>)"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("k1", "entry 1 is not KEY=scope+scope"),
        ("=audit:read", "entry 1 is not KEY=scope+scope"),
        ("k1=audit:read,k2", "entry 2 is not KEY=scope+scope"),
        ("k1=audit:read,,k3=audit:read", "entry 2 is not KEY=scope+scope"),
        ("k1=audit:read,", "entry 2 is not KEY=scope+scope"),
        ("k1=", "entry 1 is not KEY=scope+scope"),
        ("k1=audit:read++sync:operate", "entry 1 is not KEY=scope+scope"),
        ("my key=audit:read", "entry 1 has a key with spaces or non-ASCII characters"),
        ("k1=audit:read,k1=sync:operate", "entry 2 repeats the key of an earlier entry"),
        ("k1=audit:read,k2=audit:write", "entry 2 has unknown scope 'audit:write'"),
        ("k1=admin", "entry 1 has unknown scope 'admin'"),
    ],
)
def test_bad_api_keys(value: str, expected: str) -> None:
    message = error_for({"SYNCLEDGER_API_KEYS": value})
    assert message.startswith(f"SYNCLEDGER_API_KEYS: {expected}")
    assert "got" not in message
    for key in ("k1", "k2", "k3", "my key", "k1="):
        assert key not in message


def test_unknown_scope_lists_the_valid_ones() -> None:
    message = error_for({"SYNCLEDGER_API_KEYS": "k=sync:read"})
    assert message == (
        "SYNCLEDGER_API_KEYS: entry 1 has unknown scope 'sync:read' "
        "(valid scopes: audit:read, sync:operate, replay:execute)"
    )


def test_api_keys_from_a_mapping_are_checked() -> None:
    with pytest.raises(ValueError, match="entry 1 grants no scopes"):
        ApiKeys({"k": []})
    with pytest.raises(ValueError, match="unknown scope 'root'"):
        ApiKeys({"k": ["root"]})


# --- Salesforce login modes -------------------------------------------------------------------


def test_password_mode_without_security_token() -> None:
    assert settings(salesforce_username="u", salesforce_password="p").salesforce_auth() == (
        "password"
    )


@pytest.mark.parametrize(
    ("variables", "missing"),
    [
        ({"salesforce_instance_url": "https://a.my.salesforce.com"}, ["SESSION_ID"]),
        ({"salesforce_session_id": f"sid-{SECRET}"}, ["INSTANCE_URL"]),
        ({"salesforce_username": "user@acme.example"}, ["PASSWORD"]),
        ({"salesforce_password": f"pw-{SECRET}"}, ["USERNAME"]),
        (
            {"salesforce_username": "user@acme.example", "salesforce_security_token": SECRET},
            ["PASSWORD"],
        ),
        ({"salesforce_security_token": SECRET}, ["USERNAME", "PASSWORD"]),
        ({"salesforce_login_url": "http://127.0.0.1:8701"}, ["USERNAME", "PASSWORD"]),
    ],
)
def test_half_configured_salesforce_names_the_missing_variable(
    variables: dict[str, str], missing: list[str]
) -> None:
    s = settings(**variables)
    with pytest.raises(SettingsError) as caught:
        s.salesforce_auth()
    message = str(caught.value)
    assert "\n" not in message
    assert [variable for variable, _ in caught.value.problems] == [
        f"SYNCLEDGER_SALESFORCE_{name}" for name in missing
    ]
    assert message.startswith(f"SYNCLEDGER_SALESFORCE_{missing[0]}: must be set")
    for value in variables.values():
        assert value not in message


def test_both_salesforce_modes_at_once_is_an_error() -> None:
    s = settings(
        salesforce_instance_url="https://a.my.salesforce.com",
        salesforce_session_id=SECRET,
        salesforce_username="u",
        salesforce_password=SECRET,
    )
    with pytest.raises(SettingsError) as caught:
        s.salesforce_auth()
    message = str(caught.value)
    assert "SYNCLEDGER_SALESFORCE_INSTANCE_URL" in message
    assert "SYNCLEDGER_SALESFORCE_USERNAME" in message
    assert "not both" in message
    assert SECRET not in message


# --- Intercom ---------------------------------------------------------------------------------


def test_require_intercom_returns_the_credentials() -> None:
    s = settings(intercom_token="tok", intercom_client_secret="cs")
    credentials = s.require_intercom()
    assert credentials == IntercomCredentials(
        "https://api.intercom.io", SecretStr("tok"), SecretStr("cs")
    )
    assert credentials.token.get_secret_value() == "tok"


@pytest.mark.parametrize(
    ("variables", "missing"),
    [
        ({}, ["SYNCLEDGER_INTERCOM_TOKEN", "SYNCLEDGER_INTERCOM_CLIENT_SECRET"]),
        ({"intercom_client_secret": SECRET}, ["SYNCLEDGER_INTERCOM_TOKEN"]),
        ({"intercom_token": SECRET}, ["SYNCLEDGER_INTERCOM_CLIENT_SECRET"]),
    ],
)
def test_require_intercom_names_what_is_missing(
    variables: dict[str, str], missing: list[str]
) -> None:
    s = settings(**variables)
    with pytest.raises(SettingsError) as caught:
        s.require_intercom()
    assert [variable for variable, _ in caught.value.problems] == missing
    assert "\n" not in str(caught.value)
    assert SECRET not in str(caught.value)


def test_operations_settings_are_read_and_checked() -> None:
    s = load_settings(
        {
            "SYNCLEDGER_METRICS_PUBLIC": "true",
            "SYNCLEDGER_LOG_FORMAT": "TEXT",
            "SYNCLEDGER_LOG_LEVEL": "debug",
            "SYNCLEDGER_INTERCOM_RECONCILE_SECONDS": "60",
        }
    )
    assert (s.metrics_public, s.log_format, s.log_level) == (True, "text", "DEBUG")
    assert s.intercom_reconcile_seconds == 60.0
    defaults = load_settings({})
    assert (defaults.metrics_public, defaults.log_format, defaults.log_level) == (
        False,
        None,
        "INFO",
    )
    assert defaults.intercom_reconcile_seconds == 10800.0
    with pytest.raises(SettingsError, match="SYNCLEDGER_LOG_FORMAT: must be json or text"):
        load_settings({"SYNCLEDGER_LOG_FORMAT": "xml"})
    with pytest.raises(SettingsError, match="SYNCLEDGER_INTERCOM_RECONCILE_SECONDS"):
        load_settings({"SYNCLEDGER_INTERCOM_RECONCILE_SECONDS": "0"})
