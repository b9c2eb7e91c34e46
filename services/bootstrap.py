"""The composition root: builds every long-lived object from Settings, once, and hands
each its collaborators through its constructor."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

import psycopg

from domain.application import DeveloperTools
from domain.webhook_urls import WebhookUrlPolicy
from services.dispatcher.payloads import test_event_body
from services.dispatcher.retry import RetryPolicy
from services.infrastructure.catalog import Catalog
from services.infrastructure.encryption_check import check_encryption_key
from services.infrastructure.event_versions import has_newer_events_probe
from services.infrastructure.personal_data import PersonalDataKeys
from services.infrastructure.stored_aggregates import StoredAggregates
from services.infrastructure.webhook_health import AutoDisable
from services.settings import Settings

# Each process's own parts are imported by the function that builds them, so a process
# loads (and exports the metrics of: services/infrastructure/metrics.py) only its own.
if TYPE_CHECKING:
    from services.api.context import ApiServices
    from services.dispatcher.dispatcher import Dispatcher
    from services.relay.relay import Relay


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
            catalog=lambda app: Catalog(
                app,
                wait_seconds=settings.catalog_wait_seconds,
                on_failing=AutoDisable(app, settings.auto_disable_rule),
                personal_data=app.personal_data,  # type: ignore[attr-defined]
            ),
            personal_data=PersonalDataKeys,
            many_aggregates=StoredAggregates,
            newer_events_probe=has_newer_events_probe,
            render_test_event=test_event_body,
            retry=RetryPolicy(settings.retry_schedule),
        )
        try:
            check_encryption_key(app)
        except Exception:
            app.close()
            raise
    return app


def build_api(settings: Settings, application: DeveloperTools | None = None) -> ApiServices:
    """The API's services; ``application`` lets a process share one application with others."""
    from services.api.context import ApiServices
    from services.api.idempotency import IdempotencyStore
    from services.api.rate_limit import TokenBuckets
    from services.api.usage import UsageCounter

    application = application or build_application(settings)
    return ApiServices(
        settings=settings,
        application=application,
        usage=UsageCounter(application),
        idempotency=IdempotencyStore(application),
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


# -- the dispatcher and the relay ---------------------------------------------------------


def package_version() -> str:
    """This package's version, for the webhook User-Agent (SPEC 7)."""

    try:
        return version("tenzo-devtools")
    except PackageNotFoundError:
        return "0"


def build_dispatcher(
    settings: Settings,
    application: DeveloperTools,
    *,
    drain_seconds: float = 10.0,
    defer_seconds: float = 30.0,
) -> Dispatcher:
    """The dispatcher (`tenzo dispatcher`, a thread of `tenzo serve`) and its parts.

    ``drain_seconds``: how long attempts in progress may finish when it stops;
    ``defer_seconds``: how long a slow organization's surplus messages wait aside.
    """
    from services.dispatcher.committer import Committer
    from services.dispatcher.dead_letters import DeadLetters
    from services.dispatcher.delivery_runner import DeliveryRunner
    from services.dispatcher.dispatcher import Dispatcher
    from services.dispatcher.fair_pool import FairPool
    from services.dispatcher.in_flight import FinishedJobs, InFlight
    from services.dispatcher.new_deliveries import NewDeliveries
    from services.dispatcher.projection import DispatchProjection
    from services.dispatcher.receiving import MessageReceiver
    from services.dispatcher.sender import DeliveryPolicy, WebhookSender
    from services.dispatcher.sweeper import StalledDeliveries, delivery_log

    sender = WebhookSender(
        DeliveryPolicy(
            timeout=settings.webhook_timeout,
            allow_private_networks=settings.webhook_allow_private_networks,
            ca_bundle=settings.webhook_ca_bundle,
        )
    )
    projection = DispatchProjection(application)
    committer = Committer(application)
    pool = FairPool(settings.dispatcher_workers, settings.dispatcher_per_org_concurrency)
    finished = FinishedJobs()
    runner = DeliveryRunner(
        application,
        projection,
        sender,
        committer,
        pool,
        application.retry,
        package_version(),
        on_done=finished.put,
    )
    dead_letters = DeadLetters(settings.broker_url)
    in_flight = InFlight(runner, finished, dead_letters)
    receiver = MessageReceiver(
        projection,
        runner,
        pool,
        in_flight,
        NewDeliveries(projection),
        dead_letters,
        defer_seconds=defer_seconds,
    )
    return Dispatcher(
        settings=settings,
        application=application,
        projection=projection,
        sender=sender,
        committer=committer,
        pool=pool,
        runner=runner,
        in_flight=in_flight,
        receiver=receiver,
        dead_letters=dead_letters,
        stalled=StalledDeliveries(delivery_log(application), runner.load, application.retry),
        drain_seconds=drain_seconds,
    )


def build_relay(
    settings: Settings,
    application: DeveloperTools,
    *,
    name: str = "relay",
    batch_size: int = 500,
    poll_interval: float = 0.1,
) -> Relay:
    """The relay (`tenzo relay`, a thread of `tenzo serve`), following the log from its
    saved position (row ``name`` of tenzo_relay_position)."""
    from services.infrastructure.positions import RELAY_TABLE, Position
    from services.relay.relay import Relay

    return Relay(
        application,
        settings.broker_url,
        Position(application, RELAY_TABLE, name),
        batch_size=batch_size,
        poll_interval=poll_interval,
    )
