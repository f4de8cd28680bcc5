"""Username/password/security-token login: simple-salesforce's SOAP login against the simulator.

The simulator runs over real HTTP; the client is the real simple-salesforce, built by
``connect_with_password(..., login_url=...)``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import requests

from adapters.salesforce.errors import SalesforceAuthError, SalesforceUnavailable
from adapters.salesforce.login import HttpRewriteSession, connect_with_password
from adapters.simulators.salesforce import SalesforceState, create_salesforce_app
from adapters.simulators.server import BackgroundServer, free_port, serving

USERNAME = "integration@syncledger.example"
PASSWORD = "s3cret-Pa55"
TOKEN = "AbCdEfGhIjKlMnOpQrStUv12"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
PARTNER = "urn:partner.soap.sforce.com"
FAULT = "urn:fault.partner.soap.sforce.com"
INVALID_LOGIN_TEXT = "Invalid username, password, security token; or user locked out."
ENV_NAMES = (
    "SYNCLEDGER_SALESFORCE_USERNAME",
    "SYNCLEDGER_SALESFORCE_PASSWORD",
    "SYNCLEDGER_SALESFORCE_SECURITY_TOKEN",
)


class Sim:
    """One simulator on loopback with a seeded Account."""

    def __init__(self, stack: ExitStack, **options: Any) -> None:
        self.stack = stack
        self.state = SalesforceState()
        self.account_id = self.state.create_account({"Name": "Login Co", "AccountNumber": "L-1"})
        self.app = create_salesforce_app(self.state, **options)
        self.server: BackgroundServer = stack.enter_context(serving(self.app))

    def login(self, username: str, password: str, token: str, **options: Any) -> Any:
        """``connect_with_password`` against this simulator; the client closes with it."""
        sf = connect_with_password(username, password, token, login_url=self.server.url, **options)
        self.stack.callback(sf.session.close)
        return sf

    def events(self) -> dict[str, int]:
        return dict(self.state.counters)


@pytest.fixture
def make_sim() -> Iterator[Callable[..., Sim]]:
    with ExitStack() as stack:
        yield lambda **options: Sim(stack, **options)


@pytest.fixture
def sim(make_sim: Callable[..., Sim]) -> Sim:
    return make_sim(username=USERNAME, password=PASSWORD, security_token=TOKEN, token="tok-123")


def login_envelope(username: str, password: str) -> bytes:
    """A partner ``login`` request as simple-salesforce builds it (values XML-escaped)."""
    envelope = ET.Element(f"{{{SOAP_ENV}}}Envelope")
    login = ET.SubElement(ET.SubElement(envelope, f"{{{SOAP_ENV}}}Body"), f"{{{PARTNER}}}login")
    ET.SubElement(login, f"{{{PARTNER}}}username").text = username
    ET.SubElement(login, f"{{{PARTNER}}}password").text = password
    body: bytes = ET.tostring(envelope, encoding="utf-8", xml_declaration=True)
    return body


def post_login(url: str, body: bytes, version: str = "62.0") -> requests.Response:
    headers = {"content-type": "text/xml", "charset": "UTF-8", "SOAPAction": "login"}
    return requests.post(f"{url}/services/Soap/u/{version}", data=body, headers=headers, timeout=10)


# -- end to end through simple-salesforce ---------------------------------------------------------


def test_password_login_then_soql_query_and_describe(sim: Sim) -> None:
    sf = sim.login(USERNAME, PASSWORD, TOKEN)
    assert sf.session_id == "tok-123"
    assert sf.sf_instance == f"127.0.0.1:{sim.server.port}"
    assert sf.auth_type == "password"

    result = sf.query("SELECT Id, Name, AccountNumber FROM Account WHERE AccountNumber = 'L-1'")
    assert result["totalSize"] == 1
    assert result["records"][0]["Id"] == sim.account_id
    assert result["records"][0]["Name"] == "Login Co"

    describe = sf.Account.describe()
    assert describe["name"] == "Account"
    assert {"Id", "Name", "AccountNumber"} <= {f["name"] for f in describe["fields"]}
    events = sim.events()
    assert events["login"] == 1 and "login_failed" not in events
    assert events["query"] == 1 and events["describe"] == 1


def test_login_is_not_counted_against_daily_api_usage(sim: Sim) -> None:
    assert sim.state.meter.usage() == 0
    sf = sim.login(USERNAME, PASSWORD, TOKEN)
    assert sim.state.meter.usage() == 0
    assert sim.events()["total"] == 0
    sf.query("SELECT Id FROM Account")
    assert sim.state.meter.usage() == 1
    assert sf.api_usage["api-usage"].used == 1


def test_wrong_password_raises_salesforce_auth_error(sim: Sim) -> None:
    with pytest.raises(SalesforceAuthError) as caught:
        sim.login(USERNAME, "wrong", TOKEN)
    error = caught.value
    assert error.code == "INVALID_LOGIN"
    assert INVALID_LOGIN_TEXT in str(error)
    assert all(name in str(error) for name in ENV_NAMES)
    assert error.__cause__ is None and error.__suppress_context__  # no simple_salesforce chain
    assert sim.events()["login_failed"] == 1 and "login" not in sim.events()


@pytest.mark.parametrize(
    ("username", "password", "token"),
    [
        (USERNAME, PASSWORD, ""),  # password only: the token is missing
        (USERNAME, PASSWORD + TOKEN, TOKEN),  # the token twice
        (USERNAME, PASSWORD, TOKEN[:-1]),
        ("someone.else@syncledger.example", PASSWORD, TOKEN),
        (USERNAME, "", TOKEN),  # the token alone
    ],
    ids=["no-token", "token-twice", "short-token", "other-user", "token-only"],
)
def test_bad_credentials_are_refused(sim: Sim, username: str, password: str, token: str) -> None:
    with pytest.raises(SalesforceAuthError, match="INVALID_LOGIN"):
        sim.login(username, password, token)
    assert sim.state.meter.usage() == 0


def test_username_is_case_insensitive_and_xml_specials_round_trip(
    make_sim: Callable[..., Sim],
) -> None:
    password = "a<b>&c\"d'e"  # simple-salesforce escapes username and password (not the token)
    sim = make_sim(username="O'Brien&Co@x.example", password=password, security_token="Tok9")
    sf = sim.login("o'brien&co@X.EXAMPLE", password, "Tok9")
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 1


def test_simulator_without_username_refuses_every_login(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim()
    with pytest.raises(SalesforceAuthError, match="INVALID_LOGIN"):
        sim.login("anyone@x.example", "sim-token", "")
    with pytest.raises(SalesforceAuthError, match="INVALID_LOGIN"):
        sim.login("", "", "")


def test_expired_session_logs_in_again_through_the_rewriting_session(sim: Sim) -> None:
    sf = sim.login(USERNAME, PASSWORD, TOKEN)
    sim.app.state.settings.token = "rotated"  # the old session id is now refused with 401
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 1
    assert sf.session_id == "rotated"
    assert sim.events()["login"] == 2


def test_unreachable_login_url_raises_salesforce_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SalesforceUnavailable, match="login failed"):
        connect_with_password(USERNAME, PASSWORD, TOKEN, login_url=url, timeout=5)


def test_login_url_must_be_scheme_and_host() -> None:
    with pytest.raises(ValueError, match="login_url"):
        connect_with_password(USERNAME, PASSWORD, TOKEN, login_url="127.0.0.1:8999")
    with pytest.raises(ValueError, match="login_url"):
        connect_with_password(USERNAME, PASSWORD, TOKEN, login_url="http://h:1/some/path")


def test_rewrite_session_matches_prefixes_only_at_a_url_boundary() -> None:
    session = HttpRewriteSession(
        "https://login.salesforce.com",
        "http://127.0.0.1:80",
        rewrites=[("https://127.0.0.1:80", "http://127.0.0.1:80")],
    )
    with session:
        assert session.rewrite("https://login.salesforce.com/services/Soap/u/62.0") == (
            "http://127.0.0.1:80/services/Soap/u/62.0"
        )
        assert session.rewrite("https://127.0.0.1:80/services/data/v62.0/query?q=x") == (
            "http://127.0.0.1:80/services/data/v62.0/query?q=x"
        )
        assert session.rewrite("https://127.0.0.1:8000/x") == "https://127.0.0.1:8000/x"
        assert session.rewrite("https://login.salesforce.com.example/x") == (
            "https://login.salesforce.com.example/x"
        )


# -- the SOAP endpoint itself ---------------------------------------------------------------------


def test_soap_fault_for_wrong_credentials_carries_invalid_login(sim: Sim) -> None:
    response = post_login(sim.server.url, login_envelope(USERNAME, PASSWORD + "nope"))
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/xml")
    assert "Sforce-Limit-Info" not in response.headers
    root = ET.fromstring(response.content)
    fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None
    assert fault.findtext("faultcode") == "sf:INVALID_LOGIN"
    assert fault.findtext("faultstring") == f"INVALID_LOGIN: {INVALID_LOGIN_TEXT}"
    detail = fault.find(f"detail/{{{FAULT}}}LoginFault")
    assert detail is not None
    assert detail.findtext(f"{{{FAULT}}}exceptionCode") == "INVALID_LOGIN"
    assert detail.findtext(f"{{{FAULT}}}exceptionMessage") == INVALID_LOGIN_TEXT
    # simple-salesforce looks the fields up by their literal prefixed names
    assert b"<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>" in response.content


def test_soap_login_response_names_session_and_server_url_of_the_request_host(sim: Sim) -> None:
    response = post_login(sim.server.url, login_envelope(USERNAME, PASSWORD + TOKEN), "61.0")
    assert response.status_code == 200
    result = ET.fromstring(response.content).find(
        f"{{{SOAP_ENV}}}Body/{{{PARTNER}}}loginResponse/{{{PARTNER}}}result"
    )
    assert result is not None
    assert result.findtext(f"{{{PARTNER}}}sessionId") == "tok-123"
    server_url = f"https://127.0.0.1:{sim.server.port}/services/Soap/u/61.0/00D000000000001"
    assert result.findtext(f"{{{PARTNER}}}serverUrl") == server_url
    assert result.findtext(f"{{{PARTNER}}}passwordExpired") == "false"
    # the session id is the bearer token of the REST API
    limits = requests.get(
        f"{sim.server.url}/services/data/v62.0/limits",
        headers={"Authorization": "Bearer tok-123"},
        timeout=10,
    )
    assert limits.status_code == 200


def test_soap_login_rejects_malformed_bodies_and_unknown_versions(sim: Sim) -> None:
    for body in (b"not xml", b"<a/>", login_envelope(USERNAME, PASSWORD).replace(b"login", b"x")):
        response = post_login(sim.server.url, body)
        assert response.status_code == 500
        assert ET.fromstring(response.content).find(f".//{{{SOAP_ENV}}}Fault") is not None
    response = post_login(sim.server.url, login_envelope(USERNAME, PASSWORD + TOKEN), "99.0")
    assert response.status_code == 500
    assert b"<sf:exceptionCode>UNSUPPORTED_API_VERSION</sf:exceptionCode>" in response.content
    assert sim.state.meter.usage() == 0


def test_username_needs_a_password() -> None:
    with pytest.raises(ValueError, match="password"):
        create_salesforce_app(username=USERNAME)


# -- the command line -----------------------------------------------------------------------------


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"simulator exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("simulator did not start")


def test_cli_flags_enable_password_login() -> None:
    port = free_port()
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable,
        "-m",
        "adapters.simulators.salesforce",
        f"--port={port}",
        "--token=cli-token",
        f"--username={USERNAME}",
        f"--password={PASSWORD}",
        f"--security-token={TOKEN}",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_port(port, process)
        url = f"http://127.0.0.1:{port}"
        sf = connect_with_password(USERNAME, PASSWORD, TOKEN, login_url=url, timeout=10)
        try:
            assert sf.session_id == "cli-token"
            assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 0
        finally:
            sf.session.close()
        with pytest.raises(SalesforceAuthError):
            connect_with_password(USERNAME, PASSWORD, "", login_url=url, timeout=10)
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
