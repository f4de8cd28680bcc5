"""Which Salesforce login the settings configure: exactly one complete mode, else one line
naming the variables; the JWT bearer flow's private key file, checked without showing it."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.salesforce.modes import configured_mode, read_private_key
from adapters.settings import Settings, SettingsError, load_settings
from tests.salesforce_auth import key_pair

SECRET = "s3cr3t-DO-NOT-PRINT"
PREFIX = "SYNCLEDGER_SALESFORCE_"


def settings(**variables: str) -> Settings:
    return load_settings({f"{PREFIX}{name.upper()}": value for name, value in variables.items()})


def problem_of(s: Settings) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        s.salesforce_auth()
    assert "\n" not in str(caught.value)
    assert SECRET not in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    ("variables", "mode"),
    [
        ({"instance_url": "https://a.my.salesforce.com", "session_id": SECRET}, "session"),
        ({"username": "u@x.example", "password": SECRET}, "password"),
        (
            {"username": "u@x.example", "password": SECRET, "security_token": SECRET},
            "password",
        ),
        (
            {"consumer_key": "3MVG9ck", "private_key_file": "/k.pem", "username": "u@x.example"},
            "jwt",
        ),
        (
            {
                "consumer_key": "3MVG9ck",
                "private_key_file": "/k.pem",
                "username": "u@x.example",
                "domain": "test",
                "login_url": "http://127.0.0.1:8999",
            },
            "jwt",
        ),
        (
            {"consumer_key": "3MVG9ck", "consumer_secret": SECRET, "domain": "acme.my"},
            "client_credentials",
        ),
        (
            {
                "consumer_key": "3MVG9ck",
                "consumer_secret": SECRET,
                "login_url": "http://127.0.0.1:8999",
            },
            "client_credentials",
        ),
    ],
)
def test_each_complete_mode_is_recognised(variables: dict[str, str], mode: str) -> None:
    assert settings(**variables).salesforce_auth() == mode


@pytest.mark.parametrize(
    ("variables", "missing"),
    [
        ({"consumer_key": "3MVG9ck", "username": "u@x.example"}, ["PRIVATE_KEY_FILE"]),
        ({"private_key_file": "/k.pem"}, ["CONSUMER_KEY", "USERNAME"]),
        ({"private_key_file": "/k.pem", "username": "u@x.example"}, ["CONSUMER_KEY"]),
        ({"consumer_secret": SECRET}, ["CONSUMER_KEY"]),
        ({"consumer_key": "3MVG9ck"}, ["PRIVATE_KEY_FILE", "USERNAME"]),
    ],
)
def test_a_half_configured_oauth_flow_names_what_is_missing(
    variables: dict[str, str], missing: list[str]
) -> None:
    error = problem_of(settings(**variables))
    assert [variable for variable, _ in error.problems] == [PREFIX + name for name in missing]
    assert str(error).startswith(f"{PREFIX}{missing[0]}: must be set for the Salesforce")


def test_a_consumer_key_alone_names_both_oauth_flows() -> None:
    message = str(problem_of(settings(consumer_key="3MVG9ck")))
    assert "JWT bearer login" in message
    assert f"or set {PREFIX}CONSUMER_SECRET for the client credentials login" in message


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        (
            {"username": "u", "password": SECRET, "consumer_key": "k", "consumer_secret": SECRET},
            ["PASSWORD", "CONSUMER_KEY"],
        ),
        (
            {"consumer_key": "k", "consumer_secret": SECRET, "private_key_file": "/k.pem"},
            ["PRIVATE_KEY_FILE", "CONSUMER_SECRET"],
        ),
        (
            {
                "consumer_key": "k",
                "private_key_file": "/k.pem",
                "username": "u",
                "password": SECRET,
            },
            ["PRIVATE_KEY_FILE", "PASSWORD"],
        ),
        (
            {"instance_url": "https://a.my.salesforce.com", "consumer_key": "k"},
            ["INSTANCE_URL", "CONSUMER_KEY"],
        ),
        (
            {"session_id": SECRET, "consumer_key": "k", "consumer_secret": SECRET},
            ["SESSION_ID", "CONSUMER_SECRET"],
        ),
    ],
)
def test_two_modes_at_once_name_a_variable_of_each(
    variables: dict[str, str], named: list[str]
) -> None:
    error = problem_of(settings(**variables))
    [(both, message)] = error.problems
    assert sorted(both.split(", ")) == sorted(PREFIX + name for name in named)
    assert message.startswith("configure one Salesforce login, either ")
    assert message.endswith(", not both")


@pytest.mark.parametrize("domain", ["login", "test", "LOGIN"])
def test_client_credentials_need_a_my_domain(domain: str) -> None:
    s = settings(consumer_key="k", consumer_secret=SECRET, domain=domain)
    error = problem_of(s)
    assert [variable for variable, _ in error.problems] == [f"{PREFIX}DOMAIN"]
    assert "My Domain" in str(error)


def test_the_consumer_secret_is_never_shown() -> None:
    s = settings(consumer_key="3MVG9ck", consumer_secret=SECRET, domain="acme.my")
    assert SECRET not in repr(s) and SECRET not in str(s)
    assert s.salesforce_consumer_secret is not None
    assert s.salesforce_consumer_secret.get_secret_value() == SECRET


def test_nothing_set_is_no_mode() -> None:
    assert configured_mode([]) == (None, [])
    assert settings(domain="acme.my").salesforce_auth() is None


# --- the private key file ---------------------------------------------------------------------


def test_the_private_key_is_read_as_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_text("a comment line\n" + key_pair().private_key, encoding="ascii")
    s = settings(consumer_key="k", username="u@x.example", private_key_file=str(path))
    key = s.salesforce_private_key()
    assert key.get_secret_value() == key_pair().private_key
    assert "PRIVATE KEY" not in repr(key) and "PRIVATE KEY" not in repr(s)


def _private_key_error(path: Path) -> str:
    s = settings(consumer_key="k", username="u@x.example", private_key_file=str(path))
    with pytest.raises(SettingsError) as caught:
        s.salesforce_private_key()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{PREFIX}PRIVATE_KEY_FILE: ")
    assert str(path) in message
    return message


def test_a_missing_key_file_is_one_line(tmp_path: Path) -> None:
    assert "no such file" in _private_key_error(tmp_path / "absent.pem")


def test_an_unreadable_key_file_is_one_line(tmp_path: Path) -> None:
    assert "cannot read" in _private_key_error(tmp_path)  # a directory


@pytest.mark.parametrize(
    ("contents", "reason"),
    [
        (b"just some text\n", "no -----BEGIN PRIVATE KEY----- line"),
        (b"\x00\xff binary", "not text"),
        (key_pair().certificate, "holds a certificate"),
        (
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
            "encrypted",
        ),
        (
            b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n"
            b"\nMIIB\n-----END RSA PRIVATE KEY-----\n",
            "encrypted",
        ),
        (b"-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\n", "RSA key"),
        (b"-----BEGIN PRIVATE KEY-----\nnot*base64!\n-----END PRIVATE KEY-----\n", "damaged"),
    ],
    ids=["text", "binary", "certificate", "pkcs8-encrypted", "openssl-encrypted", "ec", "base64"],
)
def test_a_key_file_without_a_usable_pem_key_is_one_line(
    tmp_path: Path, contents: bytes, reason: str
) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(contents)
    message = _private_key_error(path)
    assert reason in message
    assert "MII" not in message  # nothing of the file is shown


def test_a_huge_key_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(b"A" * 200_000)
    with pytest.raises(ValueError, match="larger than 64 KiB"):
        read_private_key(path)


def test_no_key_file_configured_names_the_variable() -> None:
    with pytest.raises(SettingsError, match=f"^{PREFIX}PRIVATE_KEY_FILE: must be set"):
        settings().salesforce_private_key()
