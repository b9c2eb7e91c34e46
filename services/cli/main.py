"""The `tenzo` command line (click)."""

from __future__ import annotations

import errno
import json
import logging
import signal
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import click
from eventsourcing.persistence import Notification
from marshmallow import ValidationError

from contracts.admin import AdminTokenCreateSchema, OrganizationCreateSchema
from contracts.audit import audit_item
from contracts.json_text import is_storable
from domain.actors import OPERATOR, SYSTEM
from domain.errors import InvalidInput, NotFound
from services.bootstrap import build_api, build_application
from services.infrastructure.broker import broker_display
from services.infrastructure.log_redaction import RedactCredentials
from services.settings import ConfigurationError, Settings

log = logging.getLogger("tenzo")


class TenzoCommands(click.Group):
    """The commands; a configuration a command cannot run with (an invalid environment,
    a key that cannot read the store) is a message and exit status 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigurationError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=TenzoCommands)
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
def main(verbose: bool) -> None:
    """Tenzo Developer Tools: API keys, Public API and signed webhooks."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:  # no credential reaches a log line
        handler.addFilter(RedactCredentials())


@main.command()
def serve() -> None:
    """Run the API, the relay and the dispatcher in one process (embedded defaults)."""
    from services.api.app import create_app
    from services.api.embedded_server import EmbeddedServer
    from services.cli.process_commands import start_in_background

    settings = Settings.from_env()
    application = build_application(settings)
    api_services = build_api(settings, application)
    try:  # listen first: a port in use stops it before anything is created
        server = EmbeddedServer(create_app(api_services), settings.http_host, settings.http_port)
    except OSError as error:
        raise click.ClickException(_cannot_listen(settings, error)) from None
    if not application.has_organizations():
        organization, token = application.create_organization("Demo organization", SYSTEM)
        click.echo(f"Created the demo organization {organization.name!r} ({organization.id}).")
        click.echo(f"Admin token (shown once, keep it): {token}")
        click.echo(
            "Lost it? `tenzo orgs issue-admin-token "
            f"{organization.id}` issues another (README: Recovering a lost admin token)."
        )
    _prepare_broker(settings)
    stop_background = start_in_background(settings, application)  # relay and dispatcher

    def on_signal(signum: int, frame: Any) -> None:
        log.info("received signal %d; finishing the requests in progress", signum)
        server.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    host = settings.http_host if ":" not in settings.http_host else f"[{settings.http_host}]"
    click.echo(f"Dashboard: http://{host}:{server.port}/")
    click.echo(f"API docs:  http://{host}:{server.port}/docs")
    sys.stdout.flush()
    try:
        server.serve_until_stopped()
    finally:
        stop_background()
        api_services.close()  # the API key usage counted since the last flush
        application.close()  # stops the catalog's follower; closes the event store


@main.command()
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes")
def api(workers: int) -> None:
    """Run the HTTP API under gunicorn (production)."""
    from services.api.http_server import run_gunicorn

    settings = Settings.from_env()
    _check_port_free(settings)  # gunicorn would retry for 5 s, then say less
    build_application(settings).close()  # create the tables once, before the workers fork
    _prepare_broker(settings)
    run_gunicorn(
        "services.api.wsgi:create()", f"{settings.http_host}:{settings.http_port}", workers
    )


def _check_port_free(settings: Settings) -> None:
    """Refuse to start, naming the setting, when the API's address cannot be listened on."""
    try:
        address = socket.getaddrinfo(
            settings.http_host, settings.http_port, type=socket.SOCK_STREAM
        )[0]
        with socket.socket(address[0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
            probe.bind(address[4])
    except OSError as error:
        raise click.ClickException(_cannot_listen(settings, error)) from None


def _cannot_listen(settings: Settings, error: OSError) -> str:
    where = f"{settings.http_host}:{settings.http_port}"
    if error.errno == errno.EADDRINUSE:
        return (
            f"Port {settings.http_port} is already in use on {settings.http_host} (another "
            "`tenzo serve` or `tenzo api`?). Stop what listens there, or choose another port "
            "with TENZO_HTTP_PORT, e.g. `TENZO_HTTP_PORT=8081 make run`."
        )
    return (
        f"Cannot listen on {where}: {error.strerror or error}. "
        "Check TENZO_HTTP_HOST and TENZO_HTTP_PORT."
    )


def _prepare_broker(settings: Settings) -> None:
    """Declare the broker's exchange and queues before serving (see prepare_broker)."""
    from services.infrastructure.topology import prepare_broker

    if not prepare_broker(settings.broker_url):
        log.warning(
            "broker %s unreachable: serving anyway; /readyz says so until it is back",
            broker_display(settings.broker_url),
        )


@main.group()
def orgs() -> None:
    """Manage organizations."""


@orgs.command("create")
@click.argument("name")
def orgs_create(name: str) -> None:
    """Create an organization; print it as JSON with its admin token (shown once)."""
    if not is_storable(name):  # bytes that were not UTF-8 arrive as lone surrogates
        raise click.BadParameter("not UTF-8 text, or holds NUL", param_hint="NAME")
    try:  # the rules of POST /admin/v1/organizations, checked before anything is stored
        name = OrganizationCreateSchema().load({"name": name})["name"]
    except ValidationError as error:
        messages = error.messages_dict.get("name", [])
        raise click.BadParameter(" ".join(str(m) for m in messages), param_hint="NAME") from None
    application = build_application(Settings.from_env())
    try:
        organization, token = application.create_organization(name, OPERATOR)
    finally:
        application.close()  # stops the catalog's follower; closes the event store
    click.echo(
        json.dumps(
            {
                "id": str(organization.id),
                "name": organization.name,
                "created_at": organization.created_on.isoformat(),
                "admin_token": token,
            }
        )
    )


@orgs.command("list")
def orgs_list() -> None:
    """Print every organization as a JSON line: id, name, created_at, active admin tokens."""
    application = build_application(Settings.from_env())
    try:
        for organization in application.list_organizations():
            tokens = application.list_admin_tokens(organization.id)
            line = {
                "id": str(organization.id),
                "name": organization.name,
                "created_at": organization.created_on.isoformat(),
                "active_admin_tokens": sum(token.status == "active" for token in tokens),
            }
            click.echo(json.dumps(line))
    finally:
        application.close()


@orgs.command("issue-admin-token")
@click.argument("org_id", type=click.UUID)
@click.option(
    "--name",
    default="Issued by the operator",
    show_default=True,
    help="What the token is for (1 to 100 characters).",
)
def orgs_issue_admin_token(org_id: UUID, name: str) -> None:
    """Issue an admin token for an organization (to recover a lost one); print it as JSON,
    shown once. Revoke the lost token in the dashboard's Admin tokens tab afterwards."""
    if not is_storable(name):
        raise click.BadParameter("not UTF-8 text, or holds NUL", param_hint="--name")
    try:  # the rules of POST /admin/v1/organizations/{id}/admin-tokens
        name = AdminTokenCreateSchema().load({"name": name})["name"]
    except ValidationError as error:
        messages = error.messages_dict.get("name", [])
        raise click.BadParameter(" ".join(str(m) for m in messages), param_hint="--name") from None
    application = build_application(Settings.from_env())
    try:
        token, plaintext = application.issue_admin_token(org_id, name, OPERATOR)
    except NotFound:
        raise click.ClickException(f"No organization {org_id} (see `tenzo orgs list`).") from None
    except InvalidInput as error:
        raise click.BadParameter(str(error), param_hint="--name") from None
    finally:
        application.close()
    click.echo(
        json.dumps(
            {
                "id": str(token.id),
                "org_id": str(org_id),
                "name": token.name,
                "token_hint": token.token_hint,
                "created_at": token.created_on.isoformat(),
                "admin_token": plaintext,
            }
        )
    )


@main.command()
@click.option("--follow", is_flag=True, help="Keep printing new events as they happen.")
@click.option("--after", default=0, show_default=True, help="Start after this position.")
def events(follow: bool, after: int) -> None:
    """Print the event history of all organizations as JSON lines (secrets redacted)."""
    application = build_application(Settings.from_env())
    position = after
    while True:
        notifications: Sequence[Notification] = application.recorder.select_notifications(
            start=position + 1, limit=500
        )
        for notification in notifications:
            event = application.mapper.to_domain_event(notification)
            click.echo(json.dumps(audit_item(event, notification.id, personal=True)))
            position = notification.id
        sys.stdout.flush()
        if len(notifications) < 500:
            if not follow:
                return
            time.sleep(0.5)


def _register_dispatcher_commands() -> None:
    from services.cli.process_commands import COMMANDS

    for command in COMMANDS:
        main.add_command(command)
    from services.cli.audit import audit

    main.add_command(audit)


_register_dispatcher_commands()


def _register_delivery_commands() -> None:
    from services.cli.delivery_commands import deliveries

    main.add_command(deliveries)


_register_delivery_commands()
