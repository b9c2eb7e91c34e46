"""`tenzo deliveries recover`: redeliver an organization's failed deliveries (SPEC 10)."""

from __future__ import annotations

import json
import sys
from uuid import UUID

import click
from marshmallow import ValidationError

from contracts.delivery_schemas import RecoverSchema
from domain.actors import OPERATOR
from domain.errors import Conflict, NotFound
from services.bootstrap import build_application
from services.settings import Settings


@click.group()
def deliveries() -> None:
    """Webhook deliveries."""


@deliveries.command("recover")
@click.option("--org", "org_id", required=True, type=click.UUID, help="The organization's id.")
@click.option("--since", required=True, help="ISO-8601: failed deliveries created at or after it.")
@click.option("--until", default=None, help="ISO-8601: created before it (default: now).")
def recover(org_id: UUID, since: str, until: str | None) -> None:
    """Redeliver every failed delivery of the organization created in the window, each
    as a new run with the same X-Webhook-Id, with a progress bar; print {"count": N}.

    The dispatchers send them through their per-organization fair pool, so other
    organizations' deliveries are not held up."""
    given = {"since": since} | ({"until": until} if until else {})
    try:  # the rules of POST /admin/v1/deliveries/recover
        window = RecoverSchema().load(given)
    except ValidationError as error:
        problems = "; ".join(
            f"--{name}: {' '.join(str(m) for m in messages)}"
            for name, messages in error.normalized_messages().items()
        )
        raise click.UsageError(problems) from None
    application = build_application(Settings.from_env())
    try:
        application.get_organization(org_id)
        ids = application.failed_delivery_ids(org_id, window["since"], window.get("until"))
        # On stderr: stdout carries the JSON answer only.
        with click.progressbar(length=len(ids), label="Redelivering", file=sys.stderr) as bar:
            count = application.recover_deliveries(org_id, ids, OPERATOR, progress=bar.update)
    except NotFound as error:
        raise click.ClickException(f"no such {error}") from None
    except Conflict as error:
        raise click.ClickException(str(error)) from None
    finally:
        application.close()
    click.echo(json.dumps({"count": count}))
