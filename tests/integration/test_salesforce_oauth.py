"""The OAuth 2.0 logins (JWT bearer, client credentials): the real simple-salesforce against the
simulator's token endpoint over real HTTP, built by ``SalesforceConnector``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import jwt
import pytest
import requests

from adapters.salesforce.client import SalesforceAccounts
from adapters.salesforce.errors import SalesforceAuthError
from adapters.salesforce.login import (
    ClientCredentialsLogin,
    Credentials,
    JwtBearerLogin,
    SalesforceConnector,
)
from adapters.simulators.salesforce import create_salesforce_app
from tests.salesforce_auth import (
    CONSUMER_KEY,
    CONSUMER_SECRET,
    USERNAME,
    AuthSim,
    key_pair,
)

JWT = JwtBearerLogin(CONSUMER_KEY, USERNAME, key_pair().private_key)
CLIENT = ClientCredentialsLogin(CONSUMER_KEY, CONSUMER_SECRET)
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@pytest.fixture
def make_sim() -> Iterator[Callable[..., AuthSim]]:
    with ExitStack() as stack:
        yield lambda **options: AuthSim(stack, **options)


@pytest.fixture
def sim(make_sim: Callable[..., AuthSim]) -> AuthSim:
    return make_sim()


def connect(sim: AuthSim, credentials: Credentials, **options: Any) -> Any:
    connector = SalesforceConnector(credentials, login_url=sim.url, **options)
    try:
        return connector.connect()
    finally:
        connector.close()


def refusal(sim: AuthSim, credentials: Credentials, **options: Any) -> SalesforceAuthError:
    with pytest.raises(SalesforceAuthError) as caught:
        connect(sim, credentials, **options)
    error = caught.value
    message = str(error)
    assert "\n" not in message
    assert error.__cause__ is None and error.__suppress_context__
    for secret in (CONSUMER_SECRET, "PRIVATE KEY", key_pair().private_key[40:80]):
        assert secret not in message
    return error


def token(sim: AuthSim, **form: str) -> requests.Response:
    return requests.post(f"{sim.url}/services/oauth2/token", data=form, timeout=10)


def assertion(**claims: Any) -> str:
    defaults = {
        "iss": CONSUMER_KEY,
        "sub": USERNAME,
        "aud": "https://login.salesforce.com",
        "exp": int(time.time()) + 120,
    }
    return jwt.encode(defaults | claims, key_pair().private_key, algorithm="RS256")


# -- each flow logs in and reads ------------------------------------------------------------------


@pytest.mark.parametrize("credentials", [JWT, CLIENT], ids=["jwt", "client-credentials"])
def test_each_oauth_flow_logs_in_and_reads(sim: AuthSim, credentials: Credentials) -> None:
    login = SalesforceConnector(credentials, login_url=sim.url)
    with SalesforceAccounts(login=login, fields=["Name"], identifier_field="AccountNumber") as sf:
        [change] = sf.poll(None).changes
        assert change.salesforce_id == sim.account_id
        assert change.fields["Name"] == "Auth Co"
        assert sf.usage is not None and sf.usage.used == 2  # describe + query
    assert sim.logins() == (1, 0)
    assert sim.state.counters["total"] == 2  # logins are not API calls


def test_each_login_is_a_new_session(sim: AuthSim) -> None:
    first, second = connect(sim, JWT), connect(sim, CLIENT)
    assert first.session_id != second.session_id
    assert first.session_id.startswith("00D000000000001!")
    assert first.sf_instance == f"127.0.0.1:{sim.server.port}"


def test_jwt_bearer_to_a_sandbox_uses_the_test_audience(make_sim: Callable[..., AuthSim]) -> None:
    sandbox = make_sim(sandbox=True)
    sf = connect(sandbox, JWT, domain="test")
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 1
    assert "audience is invalid" in str(refusal(sandbox, JWT))  # login.salesforce.com


def test_jwt_bearer_at_a_my_domain(sim: AuthSim) -> None:
    assert connect(sim, JWT, domain="acme.my").session_id


# -- refusals are one line, naming what to check, never a secret ---------------------------------


def test_a_key_other_than_the_certificates_is_an_invalid_assertion(sim: AuthSim) -> None:
    other = JwtBearerLogin(CONSUMER_KEY, USERNAME, key_pair("someone else").private_key)
    error = refusal(sim, other)
    assert error.code == "invalid_grant"
    assert str(error).startswith(
        "Salesforce refused the JWT bearer login (invalid_grant: invalid assertion); check "
        "SYNCLEDGER_SALESFORCE_CONSUMER_KEY, SYNCLEDGER_SALESFORCE_PRIVATE_KEY_FILE, "
        "SYNCLEDGER_SALESFORCE_USERNAME and SYNCLEDGER_SALESFORCE_DOMAIN"
    )
    assert sim.logins() == (0, 1)


def test_a_wrong_audience_is_refused(sim: AuthSim) -> None:
    error = refusal(sim, JWT, domain="test")  # a production org: aud must be login
    assert "(invalid_grant: audience is invalid)" in str(error)


def test_an_expired_assertion_is_refused(sim: AuthSim) -> None:
    sim.clock.advance(181)  # simple-salesforce's assertion expires 3 minutes after it is made
    error = refusal(sim, JWT)
    assert "(invalid_grant: expired authorization code)" in str(error)
    assert "clock" in str(error)


def test_an_unknown_consumer_key_or_user_is_refused(sim: AuthSim) -> None:
    error = refusal(sim, JwtBearerLogin("3MVG9other", USERNAME, key_pair().private_key))
    assert "(invalid_client_id: client identifier invalid)" in str(error)
    error = refusal(sim, JwtBearerLogin(CONSUMER_KEY, "nobody@x.example", key_pair().private_key))
    assert "(invalid_grant: invalid assertion)" in str(error)


def test_a_wrong_consumer_secret_is_refused(sim: AuthSim) -> None:
    error = refusal(sim, ClientCredentialsLogin(CONSUMER_KEY, "not-the-secret"))
    assert error.code == "invalid_client"
    assert str(error) == (
        "Salesforce refused the client credentials login (invalid_client: invalid client "
        "credentials); check SYNCLEDGER_SALESFORCE_CONSUMER_KEY, "
        "SYNCLEDGER_SALESFORCE_CONSUMER_SECRET and SYNCLEDGER_SALESFORCE_DOMAIN"
    )


def test_client_credentials_need_the_app_to_have_them(make_sim: Callable[..., AuthSim]) -> None:
    sim = make_sim(consumer_secret=None)
    assert "no client credentials user enabled" in str(refusal(sim, CLIENT))


def test_a_key_jwt_cannot_sign_with_is_one_line(sim: AuthSim) -> None:
    broken = JwtBearerLogin(CONSUMER_KEY, USERNAME, "-----BEGIN PRIVATE KEY-----\nAAAA\n")
    error = refusal(sim, broken)
    assert str(error).startswith("cannot sign the JWT bearer assertion with the private key")
    assert sim.logins() == (0, 0)


def test_credentials_do_not_show_their_secrets() -> None:
    assert CONSUMER_SECRET not in repr(CLIENT)
    assert key_pair().private_key not in repr(JWT) and "PRIVATE" not in repr(JWT)


# -- the token endpoint itself ---------------------------------------------------------------------


def test_a_granted_token_has_salesforces_fields(sim: AuthSim) -> None:
    response = token(sim, grant_type=JWT_BEARER, assertion=assertion())
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {
        "access_token",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
        "signature",
    }
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == f"https://127.0.0.1:{sim.server.port}"
    assert re.fullmatch(
        rf"{sim.url.replace('http', 'https')}/id/00D000000000001EAA/005\w{{15}}", body["id"]
    )
    issued = int(body["issued_at"])
    assert abs(issued / 1000 - time.time()) < 60
    expected = hmac.new(
        CONSUMER_SECRET.encode(), (body["id"] + body["issued_at"]).encode(), hashlib.sha256
    ).digest()
    assert base64.b64decode(body["signature"]) == expected
    data = requests.get(
        f"{sim.url}/services/data/v62.0/limits",
        headers={"Authorization": f"Bearer {body['access_token']}"},
        timeout=10,
    )
    assert data.status_code == 200


def test_client_credentials_in_the_body_are_accepted(sim: AuthSim) -> None:
    response = token(
        sim, grant_type="client_credentials", client_id=CONSUMER_KEY, client_secret=CONSUMER_SECRET
    )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"


@pytest.mark.parametrize(
    ("form", "error", "description"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type", "grant type not supported"),
        ({"grant_type": JWT_BEARER}, "invalid_grant", "invalid assertion"),
        ({"grant_type": JWT_BEARER, "assertion": "a.b.c"}, "invalid_grant", "invalid assertion"),
        (
            {"grant_type": JWT_BEARER, "assertion": assertion(aud="https://example.com")},
            "invalid_grant",
            "audience is invalid",
        ),
        (
            {"grant_type": JWT_BEARER, "assertion": assertion(exp=int(time.time()) - 5)},
            "invalid_grant",
            "expired authorization code",
        ),
        (
            {"grant_type": JWT_BEARER, "assertion": assertion(exp=int(time.time()) + 3600)},
            "invalid_grant",
            "invalid assertion",
        ),
        (
            {"grant_type": JWT_BEARER, "assertion": assertion(exp="soon")},
            "invalid_grant",
            "invalid assertion",
        ),
        (
            {"grant_type": JWT_BEARER, "assertion": assertion(iss="someone")},
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            {"grant_type": "client_credentials", "client_id": CONSUMER_KEY},
            "invalid_client",
            "invalid client credentials",
        ),
    ],
    ids=[
        "grant",
        "no-assertion",
        "not-a-jwt",
        "aud",
        "expired",
        "exp-too-far",
        "exp-not-a-number",
        "iss",
        "no-secret",
    ],
)
def test_refusals_are_salesforces_400_bodies(
    sim: AuthSim, form: dict[str, str], error: str, description: str
) -> None:
    response = token(sim, **form)
    assert response.status_code == 400
    assert response.json() == {"error": error, "error_description": description}
    assert sim.logins() == (0, 1)


def test_an_hs256_assertion_is_refused(sim: AuthSim) -> None:
    forged = jwt.encode(
        {"iss": CONSUMER_KEY, "sub": USERNAME, "aud": "https://login.salesforce.com",
         "exp": int(time.time()) + 60},
        "a-shared-secret-of-32-bytes-or-more!",
        algorithm="HS256",
    )  # fmt: skip
    response = token(sim, grant_type=JWT_BEARER, assertion=forged)
    assert response.status_code == 400
    assert response.json()["error_description"] == "invalid assertion"


def test_the_simulator_checks_its_oauth_options() -> None:
    with pytest.raises(ValueError, match="consumer key"):
        create_salesforce_app(consumer_secret="s")
    with pytest.raises(ValueError, match="username"):
        create_salesforce_app(consumer_key="k", jwt_certificate=key_pair().certificate)
    with pytest.raises(ValueError, match=r"not a PEM X\.509 certificate"):
        create_salesforce_app(consumer_key="k", username="u", jwt_certificate=b"nonsense")
    with pytest.raises(ValueError, match="greater than 0"):
        create_salesforce_app(session_timeout=0)
