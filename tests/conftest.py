"""Shared fixtures: real event stores (SQLite, PostgreSQL), the real broker, the API.

Tests that need PostgreSQL or RabbitMQ use the servers named by TENZO_TEST_POSTGRES_URL
and TENZO_TEST_AMQP_URL; when those are missing they skip locally and fail under CI=true.
Each PostgreSQL test gets a database of its own, dropped afterwards; RabbitMQ tests run
in a virtual host of their own, deleted afterwards.
"""

from __future__ import annotations

import base64
import functools
import os
import queue
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from domain.actors import OPERATOR, Actor
from domain.application import DeveloperTools
from services.bootstrap import build_api, build_application
from services.settings import Settings

POSTGRES_URL = os.environ.get(
    "TENZO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AMQP_URL = os.environ.get("TENZO_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
IN_CI = os.environ.get("CI", "").lower() == "true"
OPERATOR_TOKEN = "operator-" + uuid.uuid4().hex


def service_missing(what: str) -> None:
    """Skip on a developer machine, fail in CI, when a required service is missing."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not reachable")
    pytest.skip(f"{what} is not reachable")


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


class FreshDatabases:
    """Empty PostgreSQL databases, made ahead of the tests that take them and dropped
    after them, on a thread of its own: a test does not wait for ``CREATE DATABASE``
    (a checkpoint of the whole server) or ``DROP DATABASE``. Every test still gets a
    database nobody has used."""

    AHEAD = 2

    def __init__(self, admin: psycopg.Connection[Any]) -> None:
        self._admin = admin
        self._ready: queue.SimpleQueue[str | BaseException] = queue.SimpleQueue()
        self._work: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._failed_drops: list[str] = []
        for _ in range(self.AHEAD):
            self._work.put(self._create)
        self._thread = threading.Thread(target=self._run, name="fresh-databases", daemon=True)
        self._thread.start()

    def take(self) -> str:
        """The name of a new, empty database; another is made for the next test."""
        self._work.put(self._create)
        name = self._ready.get(timeout=120)
        if isinstance(name, BaseException):
            raise name
        return name

    def drop(self, name: str) -> None:
        self._work.put(functools.partial(self._drop, name))

    def close(self) -> None:
        """Drop every database made, used or not, once the thread has done its work."""
        self._work.put(None)
        self._thread.join()
        while not self._ready.empty():
            name = self._ready.get()
            if isinstance(name, str):
                self._drop(name)
        self._admin.close()
        assert not self._failed_drops, f"test databases not dropped: {self._failed_drops}"

    def _run(self) -> None:
        while (work := self._work.get()) is not None:
            work()

    def _create(self) -> None:
        name = f"tenzo_test_{uuid.uuid4().hex[:16]}"
        try:
            self._admin.execute(f'CREATE DATABASE "{name}" STRATEGY FILE_COPY')
        except psycopg.Error as error:  # raised by take()
            self._ready.put(error)
        else:
            self._ready.put(name)

    def _drop(self, name: str) -> None:
        try:
            self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.Error as error:  # reported when the session ends
            self._failed_drops.append(f"{name}: {error}")


@pytest.fixture(scope="session")
def fresh_databases() -> Iterator[FreshDatabases]:
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        service_missing(f"PostgreSQL at {POSTGRES_URL}")
    databases = FreshDatabases(admin)
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture
def postgres_url(fresh_databases: FreshDatabases) -> Iterator[str]:
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    name = fresh_databases.take()
    try:
        yield _with_database(POSTGRES_URL, name)
    finally:
        fresh_databases.drop(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/events.sqlite3"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(scope="session")
def encryption_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def settings_env(database_url: str, tmp_path: Any, encryption_key: str) -> dict[str, str]:
    """The environment a deployment would set, for Settings.from_env."""
    return {
        "TENZO_DATABASE_URL": database_url,
        "TENZO_BROKER_URL": f"filesystem://{tmp_path}/broker",
        "TENZO_OPERATOR_TOKEN": OPERATOR_TOKEN,
        "TENZO_ENCRYPTION_KEY": encryption_key,
        "TENZO_WEBHOOK_RETRY_DELAYS": "0,0.2,0.4",
        "TENZO_WEBHOOK_TIMEOUT": "5",
    }


@pytest.fixture
def settings(settings_env: dict[str, str]) -> Settings:
    return Settings.from_env(settings_env)


@pytest.fixture
def application(settings: Settings) -> Iterator[DeveloperTools]:
    app = build_application(settings)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def flask_app(settings: Settings, application: DeveloperTools) -> Iterator[Any]:
    """The API as a process builds it (services/bootstrap.py), closed after the test."""
    from services.api.app import create_app

    api_services = build_api(settings, application)
    try:
        yield create_app(api_services)
    finally:
        api_services.close()


@pytest.fixture
def client(flask_app: Any) -> Any:
    return flask_app.test_client()


@pytest.fixture
def operator_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


class Org:
    """An organization created for a test: its id, admin token (and headers bearing
    it) and the actor its admin is recorded as."""

    def __init__(self, application: DeveloperTools, name: str):
        organization, self.admin_token = application.create_organization(name, OPERATOR)
        self.id = organization.id
        self.headers = {"Authorization": f"Bearer {self.admin_token}"}
        self.admin: Actor = application.authenticate_admin(self.admin_token)[1]


@pytest.fixture
def org(application: DeveloperTools) -> Org:
    return Org(application, "Acme")


@pytest.fixture
def other_org(application: DeveloperTools) -> Org:
    return Org(application, "Globex")


def history(application: DeveloperTools) -> list[tuple[int, str, int]]:
    """Every stored event (position, aggregate id, version): to assert nothing changed."""
    notifications = application.recorder.select_notifications(start=1, limit=1_000_000)
    return [(n.id, str(n.originator_id), n.originator_version) for n in notifications]


# -- RabbitMQ -------------------------------------------------------------------------


def _rabbitmq_reachable(url: str) -> bool:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
        return True
    except Exception:  # noqa: BLE001
        return False


def _shared_vhost_url(url: str) -> str:
    """The URL as given, its default vhost in kombu's spelling (`//`) written so that pika
    (which reads `//` as the vhost "") finds it too."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/%2F")) if parts.path == "//" else url


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A virtual host of its own on the real RabbitMQ, for this test run (its default
    one where rabbitmqctl is missing or refuses: a remote broker, a user other than root)."""
    if not _rabbitmq_reachable(AMQP_URL):
        service_missing(f"RabbitMQ at {AMQP_URL}")
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl is None:
        yield _shared_vhost_url(AMQP_URL)  # a remote broker: share its vhost
        return
    vhost = f"tenzo-test-{uuid.uuid4().hex[:12]}"
    user = urlsplit(AMQP_URL).username or "guest"
    added = subprocess.run(
        [rabbitmqctl, "-q", "add_vhost", vhost], check=False, capture_output=True
    )
    if added.returncode != 0:  # rabbitmqctl needs root or the rabbitmq user
        yield _shared_vhost_url(AMQP_URL)
        return
    subprocess.run(
        [rabbitmqctl, "-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"], check=True
    )
    parts = urlsplit(AMQP_URL)
    try:
        yield urlunsplit(parts._replace(path="/" + vhost))
    finally:
        subprocess.run([rabbitmqctl, "-q", "delete_vhost", vhost], check=False)
