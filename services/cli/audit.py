"""`tenzo audit verify`: check an exported history, or the event store, against the
history's hash chain (docs/audit.md)."""

from __future__ import annotations

import sys
from typing import IO

import click

from contracts.audit_chain import verify


@click.group()
def audit() -> None:
    """Verify the event history's hash chain."""


@audit.command("verify")
@click.argument("source", type=click.File("r", encoding="utf-8"), required=False)
@click.option("--head", "head", metavar="HASH", help="An earlier head that must be in it.")
@click.option(
    "--partial", is_flag=True, help="The export starts after a position, not at the start."
)
@click.option(
    "--store", is_flag=True, help="Check the event store (TENZO_DATABASE_URL), not a file."
)
def verify_command(source: IO[str] | None, head: str | None, partial: bool, store: bool) -> None:
    """Verify an exported NDJSON history (FILE, or - for standard input), or with
    --store the event store itself; name the first item altered, removed, inserted or
    reordered, and exit with status 1 if there is one."""
    if store == (source is not None):
        raise click.UsageError("Give either FILE (- for standard input) or --store.")
    if store:
        _verify_store(head)
        return
    assert source is not None
    verdict = verify(source, head, partial=partial)
    click.echo(str(verdict))
    if head is not None and verdict.ok:
        click.echo(f"Head {head} is in this history.")
    if not verdict.ok:
        sys.exit(1)


def _verify_store(head: str | None) -> None:
    from services.bootstrap import build_application
    from services.infrastructure.audit_store import check_store
    from services.settings import Settings

    application = build_application(Settings.from_env())
    try:
        found = check_store(application, head)
    finally:
        application.close()
    for mismatch in found.mismatches or []:
        click.echo(str(mismatch))
    failed = bool(found.mismatches) or found.head_found is False
    if found.head_found is False:
        click.echo(f"Head {head} is not in the stored chain: the history was rewritten.")
    summary = f"{found.checked} stored events checked up to position {found.reached}"
    click.echo(
        f"FAILED: {len(found.mismatches or [])} mismatches; {summary}"
        if failed
        else f"OK: {summary}"
    )
    if failed:
        sys.exit(1)
