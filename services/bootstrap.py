"""The composition root: builds every long-lived object from Settings, once, and hands
each its collaborators through its constructor."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from domain.application import DeveloperTools
from domain.webhook_urls import WebhookUrlPolicy
from services.api.context import ApiServices
from services.api.idempotency import IdempotencyStore
from services.api.rate_limit import TokenBuckets
from services.api.usage import UsageCounter
from services.dispatcher.payloads import test_event_body
from services.infrastructure.catalog import Catalog
from services.infrastructure.encryption_check import check_encryption_key
from services.infrastructure.event_versions import has_newer_events_probe
from services.settings import Settings


def resolve_host(host: str) -> list[str]:
    """The IP addresses a host name resolves to (system resolver)."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def url_policy(settings: Settings) -> WebhookUrlPolicy:
    return WebhookUrlPolicy(
        resolve=resolve_host, allow_private_networks=settings.webhook_allow_private_networks
    )


SCHEMA_LOCK = 7243191  # a PostgreSQL advisory lock key, not used by another lock of ours


def build_application(settings: Settings) -> DeveloperTools:
    """The DeveloperTools application on the configured event store, with its catalog,
    its newer-events probe and its test-event renderer.

    Raises EncryptionKeyMismatch (a ConfigurationError) when the encryption key cannot
    read the events already stored: no process starts with a key that cannot read them.
    """
    with _one_schema_writer(settings):
        app = DeveloperTools(
            settings.eventsourcing_env(),
            url_policy=url_policy(settings),
            catalog=Catalog,
            newer_events_probe=has_newer_events_probe,
            render_test_event=test_event_body,
            retry_schedule=settings.retry_schedule,
        )
        try:
            check_encryption_key(app)
        except Exception:
            app.close()
            raise
    return app


def build_api(settings: Settings, tools: DeveloperTools | None = None) -> ApiServices:
    """The API's services; ``tools`` lets a process share one application with others."""
    tools = tools or build_application(settings)
    return ApiServices(
        settings=settings,
        tools=tools,
        usage=UsageCounter(tools),
        idempotency=IdempotencyStore(tools),
        rate_limit=TokenBuckets(settings.rate_limit_per_second, settings.rate_limit_burst),
    )


@contextmanager
def _one_schema_writer(settings: Settings) -> Iterator[None]:
    """On PostgreSQL, let one process at a time create the tables it needs.

    eventsourcing creates its tables with CREATE TABLE IF NOT EXISTS when an application
    starts; two processes doing that at once on a fresh database (the API, the relay and
    the dispatchers of a new deployment) can fail with "tuple concurrently updated".
    """
    if settings.uses_sqlite:
        yield
        return
    with psycopg.connect(settings.database_url, autocommit=True, connect_timeout=10) as lock:
        lock.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        yield  # closing the connection releases the lock


# -- dispatcher and relay ---
