"""The ways syncledger logs in to Salesforce, and which one a set of variables configures.

| mode | how | needs | may add |
|---|---|---|---|
| ``session`` | a session id (or access token) as given; cannot renew | ``INSTANCE_URL``, ``SESSION_ID`` | — |
| ``password`` | partner SOAP ``login`` | ``USERNAME``, ``PASSWORD`` | ``SECURITY_TOKEN``, ``LOGIN_URL`` |
| ``jwt`` | OAuth 2.0 JWT bearer flow | ``CONSUMER_KEY``, ``PRIVATE_KEY_FILE``, ``USERNAME`` | ``LOGIN_URL`` |
| ``client_credentials`` | OAuth 2.0 client credentials flow | ``CONSUMER_KEY``, ``CONSUMER_SECRET`` | ``LOGIN_URL`` |

(each name after ``SYNCLEDGER_SALESFORCE_``; ``DOMAIN`` goes with every mode but ``session``).
Pure functions over variable names: :mod:`adapters.settings` asks :func:`configured_mode` and
turns its problems into a ``SettingsError``; :func:`read_private_key` checks a key file with
the standard library only, so the settings never load ``cryptography``.
"""  # noqa: E501

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "MODES",
    "VARIABLE_PREFIX",
    "LoginMode",
    "SalesforceAuthMode",
    "configured_mode",
    "read_private_key",
    "variable",
]

SalesforceAuthMode = Literal["session", "password", "jwt", "client_credentials"]
VARIABLE_PREFIX = "SYNCLEDGER_SALESFORCE_"
MAX_KEY_FILE_BYTES = 64 * 1024  # an RSA key of 16384 bits is under 13 KiB of PEM

Problems = list[tuple[str, str]]


def variable(name: str) -> str:
    """The environment variable of a login setting, e.g. ``USERNAME`` →
    ``SYNCLEDGER_SALESFORCE_USERNAME``."""
    return VARIABLE_PREFIX + name


@dataclass(frozen=True)
class LoginMode:
    """One way to log in: its name, how messages call it, the settings it needs and allows."""

    name: SalesforceAuthMode
    label: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return self.required + self.optional

    def summary(self) -> str:
        """``password (USERNAME and PASSWORD)``."""
        *head, last = self.required
        return f"{self.label} ({', '.join(head)} and {last})"


#: In order of preference when the variables set could belong to several (USERNAME alone is
#: taken as a half-configured password login, as before the OAuth flows existed).
MODES: tuple[LoginMode, ...] = (
    LoginMode("session", "session", ("INSTANCE_URL", "SESSION_ID")),
    LoginMode("password", "password", ("USERNAME", "PASSWORD"), ("SECURITY_TOKEN", "LOGIN_URL")),
    LoginMode(
        "jwt", "JWT bearer", ("CONSUMER_KEY", "PRIVATE_KEY_FILE", "USERNAME"), ("LOGIN_URL",)
    ),
    LoginMode(
        "client_credentials",
        "client credentials",
        ("CONSUMER_KEY", "CONSUMER_SECRET"),
        ("LOGIN_URL",),
    ),
)
#: The order variables are named in messages.
ORDER = (
    "INSTANCE_URL",
    "SESSION_ID",
    "USERNAME",
    "PASSWORD",
    "SECURITY_TOKEN",
    "CONSUMER_KEY",
    "PRIVATE_KEY_FILE",
    "CONSUMER_SECRET",
    "LOGIN_URL",
)
#: Variables only one mode uses: the best ones to name when two modes are mixed.
_DISTINCTIVE = frozenset(name for name in ORDER if sum(name in mode.names for mode in MODES) == 1)


def configured_mode(
    present: Collection[str], *, domain: str = "login"
) -> tuple[SalesforceAuthMode | None, Problems]:
    """The mode the variables in ``present`` (names after the prefix, ``DOMAIN`` left out)
    configure, and the problems that stop it: ``(None, [])`` when none is set.

    Problems are ``(variable, message)`` pairs, one line each, naming variables but never a
    value: each missing variable of a half-configured mode; two variables of two modes set
    together; ``DOMAIN`` ``login`` or ``test`` for the client credentials flow, which Salesforce
    takes only at a My Domain (unless ``LOGIN_URL`` names another login host).
    """
    given = [name for name in ORDER if name in present]
    if not given:
        return None, []
    candidates = [mode for mode in MODES if set(given) <= set(mode.names)]
    if not candidates:
        return None, [_mixed(given)]
    mode = candidates[0]
    missing = [name for name in mode.required if name not in given]
    if missing:
        because = f"{' and '.join(map(variable, given))} {'is' if len(given) == 1 else 'are'} set"
        problems = [
            (variable(name), f"must be set for the Salesforce {mode.label} login ({because})")
            for name in missing
        ]
        others = [_alternative(other, given) for other in candidates[1:]]
        if others:
            last, message = problems[-1]
            problems[-1] = (last, f"{message}; or set {', or '.join(others)}")
        return mode.name, problems
    my_domain_needed = mode.name == "client_credentials" and "LOGIN_URL" not in given
    if my_domain_needed and domain.lower() in ("login", "test"):
        message = (
            "must be the org's My Domain (such as acme.my) for the Salesforce client credentials "
            f"login; Salesforce does not accept that flow at {domain}.salesforce.com"
        )
        return mode.name, [(variable("DOMAIN"), message)]
    return mode.name, []


def _alternative(mode: LoginMode, given: list[str]) -> str:
    missing = [variable(name) for name in mode.required if name not in given]
    return f"{' and '.join(missing)} for the {mode.label} login"


def _mixed(given: list[str]) -> tuple[str, str]:
    """Two variables of two modes set together (the mode covering most of ``given`` first)."""
    first = max(MODES, key=lambda mode: sum(name in mode.names for name in given))
    stray = next(name for name in given if name not in first.names)
    second = next(mode for mode in MODES if stray in mode.names)
    own = [name for name in given if name in first.names and name not in second.names]
    named = next((name for name in own if name in _DISTINCTIVE), own[0])
    return (
        f"{variable(named)}, {variable(stray)}",
        f"configure one Salesforce login, either {first.summary()} or {second.summary()}, not both",
    )


_PEM_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL | re.ASCII
)
_NOT_KEYS = {
    "CERTIFICATE": "holds a certificate, not a private key: give the private key whose "
    "certificate the connected app has",
    "PUBLIC KEY": "holds a public key: give the private key",
    "RSA PUBLIC KEY": "holds a public key: give the private key",
    "ENCRYPTED PRIVATE KEY": "holds an encrypted private key: give it unencrypted "
    "(e.g. openssl pkey -in key.pem -out plain.pem)",
    "EC PRIVATE KEY": "holds an EC key: the JWT bearer flow signs with RS256, give an RSA key",
}


def read_private_key(path: Path) -> str:
    """The PEM private key block in ``path`` (``PRIVATE KEY`` or ``RSA PRIVATE KEY``).

    Raises ``ValueError`` with one line naming the path (never the file's contents) when the
    file is missing, unreadable, too large, not text, or holds no unencrypted PEM private key.
    Whether the key can sign RS256 is known at the first login.
    """
    try:
        with path.open("rb") as file:
            data = file.read(MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ValueError(f"no such file: {path}") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({exc.strerror or type(exc).__name__})") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ValueError(f"{path} is larger than {MAX_KEY_FILE_BYTES // 1024} KiB: not a PEM key")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a PEM private key (it is not text)") from None
    blocks = list(_PEM_BLOCK.finditer(text))
    keys = [b for b in blocks if b.group(1) in ("PRIVATE KEY", "RSA PRIVATE KEY")]
    if not keys:
        kinds = [b.group(1) for b in blocks if b.group(1) in _NOT_KEYS]
        reason = _NOT_KEYS[kinds[0]] if kinds else "is not a PEM private key"
        if not blocks:
            reason += " (no -----BEGIN PRIVATE KEY----- line)"
        raise ValueError(f"{path} {reason}")
    key = keys[0]
    body = key.group(2)
    if "Proc-Type:" in body and "ENCRYPTED" in body:  # an OpenSSL-encrypted RSA key
        raise ValueError(f"{path} {_NOT_KEYS['ENCRYPTED PRIVATE KEY']}")
    try:
        base64.b64decode("".join(body.split()), validate=True)
    except binascii.Error:
        raise ValueError(f"{path} is not a PEM private key (its base64 is damaged)") from None
    return key.group(0) + "\n"
