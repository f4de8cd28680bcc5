"""Sessions that expire and logins that renew them: the simulator's ``session_timeout`` over real
HTTP, and the adapter logging in again with each flow (the real simple-salesforce)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from adapters.bootstrap import salesforce_accounts
from adapters.salesforce.client import SalesforceAccounts
from adapters.salesforce.errors import SalesforceAuthError
from adapters.salesforce.login import (
    ClientCredentialsLogin,
    Credentials,
    JwtBearerLogin,
    PasswordLogin,
    SalesforceConnector,
)
from adapters.settings import SettingsError, load_settings
from tests.salesforce_auth import (
    CONSUMER_KEY,
    CONSUMER_SECRET,
    PASSWORD,
    SECURITY_TOKEN,
    SESSION_ID,
    SESSION_TIMEOUT,
    USERNAME,
    AuthSim,
    WallClock,
    key_pair,
)

EXPIRED = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
FLOWS: dict[str, Credentials] = {
    "password": PasswordLogin(USERNAME, PASSWORD, SECURITY_TOKEN),
    "JWT bearer": JwtBearerLogin(CONSUMER_KEY, USERNAME, key_pair().private_key),
    "client credentials": ClientCredentialsLogin(CONSUMER_KEY, CONSUMER_SECRET),
}
SECRETS = (PASSWORD, SECURITY_TOKEN, CONSUMER_SECRET, "PRIVATE KEY")


@pytest.fixture
def make_sim() -> Iterator[Callable[..., AuthSim]]:
    with ExitStack() as stack:
        yield lambda **options: AuthSim(stack, **options)


@pytest.fixture
def sim(make_sim: Callable[..., AuthSim]) -> AuthSim:
    return make_sim()


def limits(sim: AuthSim, session_id: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {session_id}"}
    return requests.get(f"{sim.url}/services/data/v62.0/limits", headers=headers, timeout=10)


def adapter(sim: AuthSim, credentials: Credentials) -> SalesforceAccounts:
    login = SalesforceConnector(credentials, login_url=sim.url)
    return SalesforceAccounts(login=login, fields=["Name"], identifier_field="AccountNumber")


def renewals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "syncledger" and "session renewed" in r.getMessage()
    ]


# -- the simulator's sessions ----------------------------------------------------------------------


def test_an_idle_session_expires_with_salesforces_401(sim: AuthSim) -> None:
    assert limits(sim, SESSION_ID).status_code == 200
    sim.clock.advance(SESSION_TIMEOUT - 1)
    assert limits(sim, SESSION_ID).status_code == 200  # a call restarts the idle time
    sim.clock.advance(SESSION_TIMEOUT - 1)
    assert limits(sim, SESSION_ID).status_code == 200
    sim.expire_sessions()
    expired = limits(sim, SESSION_ID)
    assert expired.status_code == 401
    assert expired.json() == EXPIRED
    sim.clock.advance(-10 * SESSION_TIMEOUT)
    assert limits(sim, SESSION_ID).status_code == 401  # gone for good


def test_every_login_opens_its_own_session(sim: AuthSim) -> None:
    envelope = (
        '<?xml version="1.0" encoding="utf-8"?><env:Envelope '
        'xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body>'
        '<n1:login xmlns:n1="urn:partner.soap.sforce.com">'
        f"<n1:username>{USERNAME}</n1:username><n1:password>{PASSWORD}{SECURITY_TOKEN}"
        "</n1:password></n1:login></env:Body></env:Envelope>"
    )
    soap = requests.post(
        f"{sim.url}/services/Soap/u/62.0",
        data=envelope,
        headers={"content-type": "text/xml", "SOAPAction": "login"},
        timeout=10,
    )
    assert soap.status_code == 200
    assert b"<sessionSecondsValid>30</sessionSecondsValid>" in soap.content
    sessions: set[str] = set()
    for flow in FLOWS:
        for _ in range(2):
            connector = SalesforceConnector(FLOWS[flow], login_url=sim.url)
            sessions.add(connector.connect().session_id)
            connector.close()
    assert len(sessions) == 6 and SESSION_ID not in sessions
    assert all(limits(sim, session).status_code == 200 for session in sessions)


def test_without_a_timeout_sessions_never_expire(make_sim: Callable[..., AuthSim]) -> None:
    sim = make_sim(session_timeout=None)
    connector = SalesforceConnector(FLOWS["JWT bearer"], login_url=sim.url)
    assert connector.connect().session_id == SESSION_ID
    connector.close()
    sim.clock.advance(100 * 24 * 3600)
    assert limits(sim, SESSION_ID).status_code == 200


# -- renewal ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("flow", list(FLOWS))
def test_a_read_after_the_session_expired_renews_it_once_and_logs_it(
    sim: AuthSim, flow: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="syncledger")
    with adapter(sim, FLOWS[flow]) as accounts:
        first = accounts.poll(None)
        assert sim.logins() == (1, 0)
        sim.expire_sessions()
        again = accounts.poll(first.watermark)  # query, then getDeleted on the new session
        assert [c.salesforce_id for c in again.changes] == [sim.account_id]
        assert sim.logins() == (2, 0)
        [line] = renewals(caplog)
        assert line == (
            "Salesforce session renewed: GET query was refused (401 INVALID_SESSION_ID); "
            f"logged in again with the {flow} flow"
        )
        assert accounts.lookup("AccountNumber", ["A-1"])[0].salesforce_id == sim.account_id
        assert sim.logins() == (2, 0)  # the new session lasts
    assert not any(secret in caplog.text for secret in SECRETS)


def test_a_session_refused_right_after_a_new_login_is_an_auth_error(
    make_sim: Callable[..., AuthSim], caplog: pytest.LogCaptureFixture
) -> None:
    class Leaping(WallClock):
        """Every reading is a session timeout later: no session outlives one call."""

        def __call__(self) -> float:
            self.advance(SESSION_TIMEOUT + 1)
            return super().__call__()

    sim = make_sim(clock=Leaping())
    caplog.set_level(logging.INFO, logger="syncledger")
    with adapter(sim, FLOWS["password"]) as accounts, pytest.raises(SalesforceAuthError) as caught:
        accounts.describe()
    assert str(caught.value) == (
        "GET sobjects/Account/describe: Salesforce refused the session (INVALID_SESSION_ID: "
        "Session expired or invalid) right after a new password login; check the integration "
        "user's access"
    )
    assert sim.logins() == (2, 0)  # the first login and one renewal, no more
    assert len(renewals(caplog)) == 1


def test_a_renewal_the_org_refuses_is_a_one_line_auth_error(sim: AuthSim) -> None:
    with adapter(sim, FLOWS["password"]) as accounts:
        accounts.describe()
        sim.app.state.settings.password = "changed by an admin"
        sim.expire_sessions()
        with pytest.raises(SalesforceAuthError) as caught:
            accounts.poll(None)
    assert caught.value.code == "INVALID_LOGIN"
    assert "\n" not in str(caught.value) and PASSWORD not in str(caught.value)
    assert sim.logins() == (1, 1)


def test_a_bare_session_id_cannot_be_renewed(
    sim: AuthSim, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="syncledger")
    with SalesforceAccounts(
        sim.url, SESSION_ID, fields=["Name"], identifier_field="AccountNumber"
    ) as accounts:
        assert len(accounts.poll(None).changes) == 1
        sim.expire_sessions()
        with pytest.raises(SalesforceAuthError) as caught:
            accounts.poll(None)
    assert caught.value.status == 401 and caught.value.code == "INVALID_SESSION_ID"
    assert str(caught.value) == (
        "Salesforce refused the session; check SYNCLEDGER_SALESFORCE_SESSION_ID"
    )
    assert sim.logins() == (0, 0) and not renewals(caplog)


# -- the composition root --------------------------------------------------------------------------


def environ(sim: AuthSim, flow: str, tmp_path: Path) -> dict[str, str]:
    prefix = "SYNCLEDGER_SALESFORCE_"
    variables: dict[str, dict[str, str]] = {
        "session": {"INSTANCE_URL": sim.url, "SESSION_ID": SESSION_ID},
        "password": {"USERNAME": USERNAME, "PASSWORD": PASSWORD, "SECURITY_TOKEN": SECURITY_TOKEN},
        "jwt": {
            "CONSUMER_KEY": CONSUMER_KEY,
            "PRIVATE_KEY_FILE": str(tmp_path / "key.pem"),
            "USERNAME": USERNAME,
        },
        "client_credentials": {"CONSUMER_KEY": CONSUMER_KEY, "CONSUMER_SECRET": CONSUMER_SECRET},
    }
    (tmp_path / "key.pem").write_text(key_pair().private_key, encoding="ascii")
    chosen = variables[flow] | ({} if flow == "session" else {"LOGIN_URL": sim.url})
    return {prefix + name: value for name, value in chosen.items()}


@pytest.mark.parametrize("flow", ["session", "password", "jwt", "client_credentials"])
def test_bootstrap_builds_the_adapter_for_every_flow(
    sim: AuthSim, flow: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="syncledger")
    settings = load_settings(environ(sim, flow, tmp_path))
    assert settings.salesforce_auth() == flow
    accounts = salesforce_accounts(settings)
    try:
        assert [f.name for f in accounts.describe() if f.name == "AccountNumber"]
        if flow != "session":
            sim.expire_sessions()
            assert len(accounts.poll(None).changes) == 1
            assert len(renewals(caplog)) == 1
    finally:
        accounts.close()
    assert sim.logins() == ((0, 0) if flow == "session" else (2, 0))


def test_bootstrap_refuses_a_missing_key_file_in_one_line(sim: AuthSim, tmp_path: Path) -> None:
    variables = environ(sim, "jwt", tmp_path)
    variables["SYNCLEDGER_SALESFORCE_PRIVATE_KEY_FILE"] = str(tmp_path / "gone.pem")
    with pytest.raises(SettingsError) as caught:
        salesforce_accounts(load_settings(variables))
    assert str(caught.value) == (
        f"SYNCLEDGER_SALESFORCE_PRIVATE_KEY_FILE: no such file: {tmp_path / 'gone.pem'}"
    )
    assert sim.logins() == (0, 0)
