"""``syncledger simulate intercom|salesforce``: serve a local simulator of either API.

``register(app)`` adds the ``simulate`` group to the ``syncledger`` app. The simulators and
uvicorn are imported inside the commands, so no other command loads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from adapters.cli.common import console, fail

group = typer.Typer(help="Run local simulators of the two APIs.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` group to ``app``."""
    app.add_typer(group, name="simulate")


@group.command("intercom")
def simulate_intercom(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")],
    token: Annotated[str, typer.Option(help="The bearer token clients must send.")] = "sim-token",
    webhook_url: Annotated[
        str | None, typer.Option(help="Post signed company notifications here.")
    ] = None,
    client_secret: Annotated[
        str | None, typer.Option(help="Sign webhooks with this app client secret.")
    ] = None,
    duplicate_webhooks: Annotated[bool, typer.Option(help="Deliver some webhooks twice.")] = False,
    shuffle_webhooks: Annotated[bool, typer.Option(help="Deliver webhooks out of order.")] = False,
    data: Annotated[
        Path | None, typer.Option(help="Seed companies and data attributes from a JSON file.")
    ] = None,
    fault_rate: Annotated[
        float, typer.Option(help="Fraction of API calls that fail with 429 or 503.")
    ] = 0.0,
) -> None:
    """Serve a simulated Intercom REST API (companies, data attributes, signed webhooks)."""
    # Imported here, not at the top: only this command needs uvicorn and the simulator.
    import uvicorn

    from adapters.simulators.intercom import IntercomState, create_intercom_app

    if client_secret is not None and webhook_url is None:
        fail("--client-secret signs webhooks: give --webhook-url too", 2)
    state = IntercomState()
    try:
        if data is not None:
            state.load_data(data)
        sim = create_intercom_app(
            state,
            token=token,
            webhook_url=webhook_url,
            client_secret=client_secret,
            duplicate_webhooks=duplicate_webhooks,
            shuffle_webhooks=shuffle_webhooks,
            fault_rate=fault_rate,
        )
    except ValueError as exc:
        fail(str(exc), 2)
    console().print(f"Intercom simulator on http://127.0.0.1:{port} (token {escape(token)})")
    uvicorn.run(sim, host="127.0.0.1", port=port, log_level="info")


@group.command("salesforce")
def simulate_salesforce(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")],
    token: Annotated[str, typer.Option(help="The session id clients must send.")] = "sim-token",
    sandbox: Annotated[bool, typer.Option(help="Report Organization.IsSandbox = true.")] = False,
    org_id: Annotated[str, typer.Option(help="The simulated org's Id.")] = "00D000000000001EAA",
    data: Annotated[Path | None, typer.Option(help="Seed accounts from a JSON file.")] = None,
    fault_rate: Annotated[
        float, typer.Option(help="Fraction of API calls that fail with 503 or UNABLE_TO_LOCK_ROW.")
    ] = 0.0,
    daily_limit: Annotated[int, typer.Option(help="Daily API request allocation.")] = 100_000,
    username: Annotated[
        str | None, typer.Option(help="Accept SOAP password logins for this user.")
    ] = None,
    password: Annotated[str | None, typer.Option(help="The user's password.")] = None,
    security_token: Annotated[
        str, typer.Option(help="Appended to the password at login, as Salesforce expects.")
    ] = "",
    consumer_key: Annotated[
        str | None, typer.Option(help="The connected app's consumer key (OAuth 2.0 logins).")
    ] = None,
    consumer_secret: Annotated[
        str | None, typer.Option(help="Accept client credentials logins with this secret.")
    ] = None,
    jwt_certificate: Annotated[
        Path | None,
        typer.Option(help="Accept JWT bearer logins for --username signed by this PEM cert's key."),
    ] = None,
    session_timeout: Annotated[
        float | None,
        typer.Option(min=0.001, help="Seconds idle after which a session answers 401."),
    ] = None,
) -> None:
    """Serve a simulated Salesforce REST API (Account and Organization, under /services/data/)."""
    # Imported here, not at the top: only this command needs uvicorn and the simulator.
    import uvicorn

    from adapters.simulators.salesforce import SalesforceState, create_salesforce_app, load_data

    if not 0.0 <= fault_rate <= 1.0:
        fail("--fault-rate must be between 0 and 1", 2)
    if username is not None and password is None and jwt_certificate is None:
        fail("--username needs --password (or --jwt-certificate)", 2)
    if (consumer_secret is not None or jwt_certificate is not None) and consumer_key is None:
        fail("--consumer-secret and --jwt-certificate need --consumer-key", 2)
    if jwt_certificate is not None and username is None:
        fail("--jwt-certificate needs --username (the user JWT bearer logins act as)", 2)
    try:
        certificate = jwt_certificate.read_bytes() if jwt_certificate is not None else None
    except OSError as exc:
        fail(f"cannot read {jwt_certificate}: {exc.strerror or type(exc).__name__}", 2)
    try:
        state = load_data(data) if data is not None else SalesforceState()
    except (OSError, ValueError, KeyError) as exc:
        fail(f"cannot load {data}: {exc}", 2)
    try:
        sim = create_salesforce_app(
            state,
            token=token,
            sandbox=sandbox,
            org_id=org_id,
            daily_limit=daily_limit,
            fault_rate=fault_rate,
            username=username,
            password=password,
            security_token=security_token,
            consumer_key=consumer_key,
            consumer_secret=consumer_secret,
            jwt_certificate=certificate,
            session_timeout=session_timeout,
        )
    except ValueError as exc:
        fail(str(exc), 2)
    console().print(
        f"Salesforce simulator on http://127.0.0.1:{port} (session id {escape(token)}, "
        f"org {escape(org_id)}{', sandbox' if sandbox else ''})"
    )
    uvicorn.run(sim, host="127.0.0.1", port=port, log_level="info")
