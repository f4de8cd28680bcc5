"""The partner SOAP ``login`` call of the Salesforce simulator (``POST /services/Soap/u/NN.N``).

simple-salesforce's ``SalesforceLogin`` posts a SOAP envelope with ``<login><username>`` and
``<password>`` (the password with the security token appended) and reads ``sessionId`` and
``serverUrl`` from the answer, or ``sf:exceptionCode`` / ``sf:exceptionMessage`` from a SOAP fault
sent with a non-200 status. The simulator answers:

- the configured username (case-insensitive, like Salesforce usernames) and exactly
  ``password + security_token``: 200 ``loginResponse`` whose ``sessionId`` is a session of
  :mod:`.salesforce_sessions` (the simulator's bearer token unless sessions expire) and whose
  ``serverUrl`` is ``https://<Host of the request>/services/Soap/u/NN.N/<org id>``;
- anything else, or no username or password configured: 500 ``INVALID_LOGIN`` fault with
  Salesforce's text;
- a body that is not a SOAP ``login`` envelope: 500 ``soapenv:Client`` fault.

Logins need no bearer token and, as on Salesforce, do not count against the daily API usage; they
show up as ``login`` / ``login_failed`` events in ``/_sim/counters`` (outside ``total``).
"""

from __future__ import annotations

import re
import secrets
import xml.etree.ElementTree as ET

from fastapi import Request
from starlette.responses import Response

from adapters.simulators.salesforce_calls import SimulatorSettings
from adapters.simulators.salesforce_sessions import Sessions
from adapters.simulators.salesforce_state import SalesforceState
from adapters.simulators.salesforce_values import make_id

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
PARTNER = "urn:partner.soap.sforce.com"
FAULT = "urn:fault.partner.soap.sforce.com"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

INVALID_LOGIN_MESSAGE = "Invalid username, password, security token; or user locked out."
SESSION_SECONDS = 7200

# simple-salesforce finds the fault fields by their literal qualified names (``sf:exceptionCode``),
# so the prefixes matter; registering them only names these namespaces on output.
ET.register_namespace("soapenv", SOAP_ENV)
ET.register_namespace("sf", FAULT)
ET.register_namespace("xsi", XSI)

_XML_MEDIA_TYPE = "text/xml;charset=UTF-8"
_VERSION = re.compile(r"\d+\.\d")


def _envelope(payload: ET.Element) -> ET.Element:
    envelope = ET.Element(f"{{{SOAP_ENV}}}Envelope")
    ET.SubElement(envelope, f"{{{SOAP_ENV}}}Body").append(payload)
    return envelope


def _xml_response(status: int, envelope: ET.Element, default_namespace: str | None) -> Response:
    body = ET.tostring(
        envelope, encoding="utf-8", xml_declaration=True, default_namespace=default_namespace
    )
    return Response(body, status_code=status, media_type=_XML_MEDIA_TYPE)


def _text(parent: ET.Element, tag: str, value: str) -> None:
    ET.SubElement(parent, tag).text = value


def soap_fault(
    fault_code: str, message: str, *, exception_code: str | None = None, fault_type: str = ""
) -> Response:
    """A 500 SOAP fault; with ``exception_code`` it carries an ``sf:{fault_type}`` detail.

    As on Salesforce, ``faultstring`` is ``"{exception_code}: {message}"`` and
    ``sf:exceptionMessage`` is ``message`` alone.
    """
    fault = ET.Element(f"{{{SOAP_ENV}}}Fault")
    _text(fault, "faultcode", fault_code)
    _text(fault, "faultstring", f"{exception_code}: {message}" if exception_code else message)
    if exception_code is not None:
        detail = ET.SubElement(fault, "detail")
        typed = {f"{{{XSI}}}type": f"sf:{fault_type}"}
        sf_fault = ET.SubElement(detail, f"{{{FAULT}}}{fault_type}", typed)
        _text(sf_fault, f"{{{FAULT}}}exceptionCode", exception_code)
        _text(sf_fault, f"{{{FAULT}}}exceptionMessage", message)
    return _xml_response(500, _envelope(fault), None)


def invalid_login() -> Response:
    """Salesforce's answer to wrong credentials (also to a locked-out user)."""
    return soap_fault(
        "sf:INVALID_LOGIN",
        INVALID_LOGIN_MESSAGE,
        exception_code="INVALID_LOGIN",
        fault_type="LoginFault",
    )


def _credentials(body: bytes) -> tuple[str, str] | None:
    """(username, password) of a SOAP ``login`` envelope, or None if it is not one."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    login = root.find(f"{{{SOAP_ENV}}}Body/{{{PARTNER}}}login")
    if root.tag != f"{{{SOAP_ENV}}}Envelope" or login is None:
        return None
    username = login.findtext(f"{{{PARTNER}}}username")
    password = login.findtext(f"{{{PARTNER}}}password")
    if username is None or password is None:
        return None
    return username, password


def _accepted(settings: SimulatorSettings, username: str, password: str) -> bool:
    if settings.username is None or not settings.password:
        return False
    expected = (settings.password + settings.security_token).encode()
    same_user = secrets.compare_digest(
        username.strip().casefold().encode(), settings.username.casefold().encode()
    )
    same_password = secrets.compare_digest(password.encode(), expected)
    return same_user and same_password


def _login_response(
    settings: SimulatorSettings, sessions: Sessions, host: str, version: str, username: str
) -> Response:
    org15 = settings.org_id[:15]
    user_id = make_id("005", 1)
    result = ET.Element(f"{{{PARTNER}}}result")
    _text(
        result,
        f"{{{PARTNER}}}metadataServerUrl",
        f"https://{host}/services/Soap/m/{version}/{org15}",
    )
    _text(result, f"{{{PARTNER}}}passwordExpired", "false")
    _text(result, f"{{{PARTNER}}}sandbox", "true" if settings.sandbox else "false")
    _text(result, f"{{{PARTNER}}}serverUrl", f"https://{host}/services/Soap/u/{version}/{org15}")
    _text(result, f"{{{PARTNER}}}sessionId", sessions.issue())
    _text(result, f"{{{PARTNER}}}userId", user_id)
    info = ET.SubElement(result, f"{{{PARTNER}}}userInfo")
    _text(info, f"{{{PARTNER}}}organizationId", settings.org_id)
    _text(info, f"{{{PARTNER}}}organizationName", "Simulated Org")
    _text(info, f"{{{PARTNER}}}sessionSecondsValid", str(sessions.seconds_valid(SESSION_SECONDS)))
    _text(info, f"{{{PARTNER}}}userId", user_id)
    _text(info, f"{{{PARTNER}}}userName", username.strip())
    response = ET.Element(f"{{{PARTNER}}}loginResponse")
    response.append(result)
    return _xml_response(200, _envelope(response), PARTNER)


async def soap_login(request: Request) -> Response:
    """``POST /services/Soap/u/{version}``: the partner API ``login`` call; never metered."""
    state: SalesforceState = request.app.state.salesforce
    settings: SimulatorSettings = request.app.state.settings
    version = str(request.path_params["version"])
    if not _VERSION.fullmatch(version) or float(version) > float(settings.api_version):
        return soap_fault(
            "sf:UNSUPPORTED_API_VERSION",
            f"Invalid Api version specified on URL: {version}",
            exception_code="UNSUPPORTED_API_VERSION",
            fault_type="UnexpectedErrorFault",
        )
    credentials = _credentials(await request.body())
    if credentials is None:
        return soap_fault("soapenv:Client", "Expected a SOAP Envelope with a partner login call")
    username, password = credentials
    if not _accepted(settings, username, password):
        state.meter.note("login_failed")
        return invalid_login()
    state.meter.note("login")
    sessions: Sessions = request.app.state.sessions
    return _login_response(settings, sessions, request.url.netloc, version, username)
