"""The `tenzo` commands of the relay and the dispatcher, and their receiver/producer helpers.

Registered on the main group in services/cli/main.py.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from contracts.broker import InvalidMessage
from contracts.signing import verify
from domain.application import DeveloperTools
from services.infrastructure.broker import broker_display
from services.settings import Settings

log = logging.getLogger("tenzo")


def start_in_background(settings: Settings, application: DeveloperTools) -> Callable[[], None]:
    """Start the relay and the dispatcher as threads (`tenzo serve`); return a stopper."""
    from services.bootstrap import build_dispatcher, build_relay

    stop = threading.Event()
    relay = build_relay(settings, application)
    dispatcher = build_dispatcher(settings, application)
    threads = [
        threading.Thread(target=relay.run, args=(stop,), name="tenzo-relay", daemon=True),
        threading.Thread(target=dispatcher.run, args=(stop,), name="tenzo-dispatcher", daemon=True),
    ]
    for thread in threads:
        thread.start()

    def stopper() -> None:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)

    return stopper


def _run_until_signalled(settings: Settings, target: Callable[[threading.Event], None]) -> None:
    """Run ``target(stop)`` in this process until SIGTERM or Ctrl-C, then stop it cleanly."""
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        log.info("received signal %d; stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.http_host)
        log.info("metrics on http://%s:%d/metrics", settings.http_host, settings.metrics_port)
    target(stop)


@click.command()
def relay() -> None:
    """Relay every domain event from the event store to the broker (exchange tenzo.events)."""
    from services.bootstrap import build_application, build_relay

    settings = Settings.from_env()
    application = build_application(settings)
    try:
        _run_until_signalled(settings, build_relay(settings, application).run)
    finally:
        application.close()


@click.command()
def dispatcher() -> None:
    """Consume interview.completed and relayed events; deliver signed webhooks."""
    from services.bootstrap import build_application, build_dispatcher
    from services.infrastructure.cpu_affinity import confine_to_one_cpu

    settings = Settings.from_env()
    # Before any thread starts; a claim's lock stays open until the process ends.
    confine_to_one_cpu(settings.dispatcher_cpu)
    application = build_application(settings)
    try:
        _run_until_signalled(settings, build_dispatcher(settings, application).run)
    finally:
        application.close()


@click.command("publish-interview")
@click.argument("source", type=click.File("rb"), default="-")
def publish_interview(source: Any) -> None:
    """Validate an interview.completed message (a JSON file, or - for stdin) and publish
    it to TENZO_BROKER_URL: exchange tenzo.events, routing key interview.completed."""
    from services.cli.publish import publish_interview as publish

    settings = Settings.from_env()
    body = source.read()
    try:
        message = publish(settings.broker_url, body)
    except InvalidMessage as invalid:
        raise click.ClickException(str(invalid)) from None
    click.echo(
        f"Published interview.completed {message['event_id']} for organization "
        f"{message['org_id']} to {broker_display(settings.broker_url)}."
    )


SECRET_ENV = "TENZO_WEBHOOK_SECRET"


@click.command("verify-signature")
@click.option(
    "--secret",
    envvar=SECRET_ENV,
    show_envvar=True,
    help="The webhook secret. Other users of the machine can read it in the process "
    "list: prefer the environment variable or --secret-file.",
)
@click.option(
    "--secret-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file holding the webhook secret (a final line break is not part of it).",
)
@click.option(
    "--signature",
    required=True,
    help="The X-Webhook-Signature header (sha256=<hex>), or the webhook-signature header "
    "(one or more space-separated v1,<base64>: two during a secret rotation's overlap, "
    "either secret verifies), which also needs --webhook-id and --timestamp.",
)
@click.option("--webhook-id", help="The webhook-id header (with a webhook-signature).")
@click.option(
    "--timestamp", help="The webhook-timestamp header, unix seconds (with a webhook-signature)."
)
@click.argument("body", type=click.File("rb"), default="-")
@click.pass_context
def verify_signature(
    ctx: click.Context,
    secret: str | None,
    secret_file: Path | None,
    signature: str,
    webhook_id: str | None,
    timestamp: str | None,
    body: Any,
) -> None:
    """Check a webhook body (a file of the raw bytes, or - for stdin) against its
    X-Webhook-Signature or its Standard Webhooks webhook-signature. Prints "valid"
    (exit 0) or "invalid" (exit 1).

    The secret comes from exactly one of TENZO_WEBHOOK_SECRET, --secret-file PATH and
    --secret; a whsec_<base64> secret is keyed with its decoded bytes, as the Standard
    Webhooks and Svix libraries do. The timestamp's age is not checked."""
    secret = _webhook_secret(ctx, secret, secret_file)
    standard = signature.strip().startswith("v1,")
    if standard and (webhook_id is None or timestamp is None):
        raise click.UsageError(
            "A webhook-signature (v1,…) covers the webhook-id and webhook-timestamp "
            "headers too: give them as --webhook-id and --timestamp."
        )
    if verify(secret, body.read(), signature, msg_id=webhook_id, timestamp=timestamp):
        click.echo("valid")
        return
    click.echo("invalid")
    sys.exit(1)


def _webhook_secret(ctx: click.Context, given: str | None, secret_file: Path | None) -> str:
    """The secret of verify-signature, from the one source given; a usage error otherwise."""
    option = next(param for param in ctx.command.params if param.name == "secret")
    sources = [
        name
        for name, present in (
            ("--secret", ctx.get_parameter_source("secret") is ParameterSource.COMMANDLINE),
            (SECRET_ENV, bool(option.resolve_envvar_value(ctx))),
            ("--secret-file", secret_file is not None),
        )
        if present
    ]
    if not sources:
        raise click.UsageError(
            f"Give the webhook secret in the environment ({SECRET_ENV}=…), in a file "
            "(--secret-file PATH) or, visible in the process list, as --secret S."
        )
    if len(sources) > 1:
        raise click.UsageError(
            f"The webhook secret is given more than once ({', '.join(sources)}): give it once."
        )
    secret = given if secret_file is None else _read_secret(secret_file)
    if not secret:
        raise click.UsageError(f"The webhook secret from {sources[0]} is empty.")
    return secret


def _read_secret(path: Path) -> str:
    """A secret file's text, without a final line break (``echo`` and editors add one)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise click.BadParameter(str(error), param_hint="--secret-file") from None
    return text.removesuffix("\n").removesuffix("\r")


@click.group()
def projections() -> None:
    """The dispatcher's projection (webhooks, jobs, candidates)."""


@projections.command("rebuild")
@click.option(
    "--restart",
    is_flag=True,
    help="Start again from the first event, even if an interrupted rebuild could resume.",
)
def rebuild(restart: bool) -> None:
    """Rebuild the dispatcher's projection from the event store (streamed in batches;
    an interrupted rebuild resumes where it stopped)."""
    from services.bootstrap import build_application
    from services.dispatcher.projection import DispatchProjection

    settings = Settings.from_env()
    application = build_application(settings)
    projection = DispatchProjection(application)
    total = application.recorder.max_notification_id() or 0
    try:
        with click.progressbar(length=total, label="Reading events") as bar:
            newest = projection.rebuild(
                progress=bar.update,
                restart=restart,
                waiting=lambda: click.echo("Another rebuild is under way: waiting for its end."),
            )
    finally:
        application.close()
    click.echo(f"Projection rebuilt up to position {newest}.")


COMMANDS = [relay, dispatcher, publish_interview, verify_signature, projections]
