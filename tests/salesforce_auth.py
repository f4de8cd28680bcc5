"""Test helpers for the Salesforce logins: RSA keys with self-signed certificates, a wall clock
that can be moved ahead, and one simulator configured for every flow."""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from adapters.simulators.salesforce import SalesforceState, create_salesforce_app
from adapters.simulators.server import BackgroundServer, serving

USERNAME = "integration@syncledger.example"
PASSWORD = "s3cret-Pa55"
SECURITY_TOKEN = "AbCdEfGhIjKlMnOpQrStUv12"
CONSUMER_KEY = "3MVG9syncledgerConsumerKey"
CONSUMER_SECRET = "C0nsumer-S3cret-9F8E7D6C5B4A"
SESSION_ID = "sim-token"
SESSION_TIMEOUT = 30.0  # short: moving the clock past it leaves JWT assertions (3 min) valid


@dataclass(frozen=True)
class KeyPair:
    """An RSA private key (PEM, PKCS#8) and a self-signed certificate of it (PEM)."""

    private_key: str
    certificate: bytes


@cache
def key_pair(name: str = "syncledger") -> KeyPair:
    """A 2048-bit RSA key and its certificate, made once per ``name`` per test run."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return KeyPair(pem.decode(), certificate.public_bytes(serialization.Encoding.PEM))


class WallClock:
    """``time.time()`` plus an offset that :meth:`advance` moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class AuthSim:
    """A simulator on loopback that accepts every login flow, with one seeded Account."""

    def __init__(self, stack: ExitStack, **options: Any) -> None:
        self.clock = WallClock()
        self.state = SalesforceState()
        self.account_id = self.state.create_account({"Name": "Auth Co", "AccountNumber": "A-1"})
        settings: dict[str, Any] = {
            "token": SESSION_ID,
            "username": USERNAME,
            "password": PASSWORD,
            "security_token": SECURITY_TOKEN,
            "consumer_key": CONSUMER_KEY,
            "consumer_secret": CONSUMER_SECRET,
            "jwt_certificate": key_pair().certificate,
            "session_timeout": SESSION_TIMEOUT,
            "clock": self.clock,
        }
        self.app = create_salesforce_app(self.state, **(settings | options))
        self.server: BackgroundServer = stack.enter_context(serving(self.app))

    @property
    def url(self) -> str:
        return self.server.url

    def logins(self) -> tuple[int, int]:
        """(logins granted, logins refused) so far, every flow together."""
        counters = self.state.counters
        return counters.get("login", 0), counters.get("login_failed", 0)

    def expire_sessions(self) -> None:
        """Move the simulator's clock past the session timeout."""
        self.clock.advance(SESSION_TIMEOUT + 1)
