"""The one place that reads configuration: the environment, into a Settings object."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from domain.deliveries import RetrySchedule
from domain.webhook_health import AutoDisableRule

IN_MEMORY_DATABASE_URL = "sqlite:///:memory:"


class ConfigurationError(Exception):
    """The environment does not describe a runnable configuration."""


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _delays(value: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError as error:
        raise ConfigurationError(f"TENZO_WEBHOOK_RETRY_DELAYS: {error}") from None
    if not delays or any(delay < 0 for delay in delays):
        raise ConfigurationError("TENZO_WEBHOOK_RETRY_DELAYS needs one or more delays >= 0")
    return delays


def _optional_seconds(env: Mapping[str, str], name: str) -> float | None:
    value = env.get(name)
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds (got {value!r})") from None
    if seconds <= 0:
        raise ConfigurationError(f"{name} must be more than 0 seconds")
    return seconds


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if not value:
        return default
    try:
        count = int(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number (got {value!r})") from None
    if count < 1:
        raise ConfigurationError(f"{name} must be 1 or more")
    return count


def _hours(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name)
    if not value:
        return default
    try:
        hours = float(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of hours (got {value!r})") from None
    if hours < 0:
        raise ConfigurationError(f"{name} must be 0 or more hours")
    return hours


def _cpu_choice(value: str | None) -> str:
    choice = (value or "none").strip().lower()
    if choice in {"auto", "none"} or (choice.isdigit() and choice.isascii()):
        return choice
    raise ConfigurationError(
        f"TENZO_DISPATCHER_CPU must be auto, none or a CPU number (got {value!r})"
    )


@dataclass(frozen=True)
class Settings:
    """How a process is configured. ``database_url`` is ``sqlite:///relative/path``,
    ``sqlite:////absolute/path``, ``postgresql://user:password@host:port/dbname``, or
    ``sqlite:///:memory:`` — an in-memory SQLite database, for tests: each application
    built from these settings gets a database of its own that ends when it closes (so
    no other process shares it), and with no encryption key one is made up for it.
    """

    database_url: str = "sqlite:///var/tenzo.sqlite3"
    broker_url: str = "filesystem://var/broker"
    operator_token: str | None = None
    encryption_key: str = field(default="", repr=False)
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    webhook_timeout: float = 30.0
    webhook_retry_delays: tuple[float, ...] = (0.0, 2.0, 4.0)
    webhook_allow_private_networks: bool = False
    webhook_ca_bundle: str | None = None
    # Auto-disable (SPEC 10): after this many failed deliveries in a row, the first of
    # them older than this many hours.
    webhook_disable_after_failures: int = 100
    webhook_disable_after_hours: float = 72.0
    rate_limit_per_second: float = 1000.0
    rate_limit_burst: int = 2000
    # The dispatcher (docs/dispatcher.md): worker threads, messages held unacknowledged,
    # concurrent attempts per organization, and the port of /metrics in `tenzo relay`
    # and `tenzo dispatcher` (0: none; `tenzo serve` and `tenzo api` serve /metrics).
    dispatcher_workers: int = 256
    dispatcher_prefetch: int = 1000
    dispatcher_per_org_concurrency: int = 8
    # Seconds a pending delivery's next step may be overdue before any dispatcher
    # resumes it (its own died or lost it); None: the webhook timeout + 30 s.
    dispatcher_stalled_after: float | None = None
    # The CPU a dispatcher's threads run on (services/infrastructure/cpu_affinity.py):
    # "none" (free), "auto" (one no other dispatcher sharing the claims has claimed), or
    # a CPU number.
    dispatcher_cpu: str = "none"
    metrics_port: int = 0
    # How long a read waits for the catalog to reach its organization's newest write
    # before it answers 503 (docs/architecture.md, "The catalog").
    catalog_wait_seconds: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = cls()
        database_url = env.get("TENZO_DATABASE_URL") or defaults.database_url
        catalog_wait_seconds = _optional_seconds(env, "TENZO_CATALOG_WAIT_SECONDS")
        settings = cls(
            database_url=database_url,
            broker_url=env.get("TENZO_BROKER_URL") or defaults.broker_url,
            operator_token=env.get("TENZO_OPERATOR_TOKEN") or None,
            encryption_key=env.get("TENZO_ENCRYPTION_KEY", ""),
            http_host=env.get("TENZO_HTTP_HOST") or defaults.http_host,
            http_port=int(env.get("TENZO_HTTP_PORT") or defaults.http_port),
            webhook_timeout=float(env.get("TENZO_WEBHOOK_TIMEOUT") or defaults.webhook_timeout),
            webhook_retry_delays=_delays(env.get("TENZO_WEBHOOK_RETRY_DELAYS") or "0,2,4"),
            webhook_allow_private_networks=_flag(env.get("TENZO_WEBHOOK_ALLOW_PRIVATE_NETWORKS")),
            webhook_ca_bundle=env.get("TENZO_WEBHOOK_CA_BUNDLE") or None,
            webhook_disable_after_failures=_count(
                env, "TENZO_WEBHOOK_DISABLE_AFTER_FAILURES", defaults.webhook_disable_after_failures
            ),
            webhook_disable_after_hours=_hours(
                env, "TENZO_WEBHOOK_DISABLE_AFTER_HOURS", defaults.webhook_disable_after_hours
            ),
            rate_limit_per_second=float(
                env.get("TENZO_RATE_LIMIT_PER_SECOND") or defaults.rate_limit_per_second
            ),
            rate_limit_burst=int(env.get("TENZO_RATE_LIMIT_BURST") or defaults.rate_limit_burst),
            dispatcher_workers=int(env.get("TENZO_DISPATCHER_WORKERS") or 256),
            dispatcher_prefetch=int(env.get("TENZO_DISPATCHER_PREFETCH") or 1000),
            dispatcher_per_org_concurrency=int(
                env.get("TENZO_DISPATCHER_PER_ORG_CONCURRENCY") or 8
            ),
            dispatcher_stalled_after=_optional_seconds(env, "TENZO_DISPATCHER_STALLED_AFTER"),
            dispatcher_cpu=_cpu_choice(env.get("TENZO_DISPATCHER_CPU")),
            metrics_port=int(env.get("TENZO_METRICS_PORT") or 0),
            catalog_wait_seconds=defaults.catalog_wait_seconds
            if catalog_wait_seconds is None
            else catalog_wait_seconds,
        )
        return settings.with_encryption_key()

    # -- derived -----------------------------------------------------------------------

    @property
    def retry_schedule(self) -> RetrySchedule:
        stalled_after = self.dispatcher_stalled_after
        if stalled_after is None:
            stalled_after = self.webhook_timeout + 30.0
        return RetrySchedule(self.webhook_retry_delays, stalled_after)

    @property
    def auto_disable_rule(self) -> AutoDisableRule:
        return AutoDisableRule(
            self.webhook_disable_after_failures, self.webhook_disable_after_hours
        )

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite:")

    @property
    def in_memory(self) -> bool:
        """``sqlite:///:memory:``: an SQLite database in this process's memory (tests)."""
        return self.database_url == IN_MEMORY_DATABASE_URL

    @property
    def sqlite_path(self) -> Path:
        # sqlite:///relative/path or sqlite:////absolute/path
        return Path(self.database_url.removeprefix("sqlite:").removeprefix("//").removeprefix("/"))

    @property
    def is_embedded(self) -> bool:
        return self.uses_sqlite and self.broker_url.startswith("filesystem:")

    @property
    def data_dir(self) -> Path:
        """Where embedded mode keeps its files (``var/`` by default)."""
        return self.sqlite_path.parent if self.uses_sqlite else Path("var")

    def with_encryption_key(self) -> Settings:
        """Check the encryption key, or in embedded mode generate one once into var/."""
        key = self.encryption_key
        if not key and self.in_memory:
            key = base64.b64encode(secrets.token_bytes(32)).decode()  # nothing outlives it
        if not key:
            if not self.is_embedded:
                raise ConfigurationError(
                    "TENZO_ENCRYPTION_KEY is required outside embedded mode "
                    "(base64 of 32 random bytes: `openssl rand -base64 32`)"
                )
            key = _embedded_key(self.data_dir / "encryption.key")
        try:
            raw = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) not in (16, 24, 32):
            raise ConfigurationError(
                "TENZO_ENCRYPTION_KEY must be base64 of 16, 24 or 32 bytes "
                "(`openssl rand -base64 32`)"
            )
        return _replace(self, encryption_key=key)

    def eventsourcing_env(self) -> dict[str, str]:
        """The environment of the eventsourcing Application: persistence and cipher.

        In memory, each call names a new database (see the class docstring)."""
        env = {
            # AES-GCM from `cryptography`: the same stored format as eventsourcing.cipher's
            # PyCryptodome one, about 25 times faster per event (docs/dispatcher.md).
            "CIPHER_TOPIC": "services.infrastructure.cipher:EventCipher",
            "CIPHER_KEY": self.encryption_key,
            "COMPRESSOR_TOPIC": "services.infrastructure.compression:SmallEventCompressor",
            # Candidates' personal fields sealed under keys of their own (SPEC 12).
            "MAPPER_TOPIC": "services.infrastructure.personal_data:SealingMapper",
            "CREATE_TABLE": "true",
        }
        if self.in_memory:
            env |= {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                # Shared cache: every connection of the application's pool (and so the
                # catalog's tables) sees the one database; a unique name per application.
                "SQLITE_DBNAME": f"file:tenzo-{uuid.uuid4().hex}?mode=memory&cache=shared",
            }
        elif self.uses_sqlite:
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            env |= {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(self.sqlite_path),
                "SQLITE_LOCK_TIMEOUT": "10",
            }
        elif self.database_url.startswith(("postgresql:", "postgres:")):
            url = urlsplit(self.database_url)
            env |= {
                "PERSISTENCE_MODULE": "eventsourcing.postgres",
                # eventsourcing's recorder, inserting events in binary (cheaper to send).
                "APPLICATION_RECORDER_TOPIC": (
                    "services.infrastructure.postgres_events:BinaryInsertRecorder"
                ),
                "POSTGRES_DBNAME": url.path.lstrip("/") or "postgres",
                "POSTGRES_HOST": url.hostname or "127.0.0.1",
                "POSTGRES_PORT": str(url.port or 5432),
                "POSTGRES_USER": unquote(url.username or "postgres"),
                "POSTGRES_PASSWORD": unquote(url.password or ""),
                "POSTGRES_POOL_SIZE": "10",
                "POSTGRES_MAX_OVERFLOW": "20",
                "POSTGRES_CONNECT_TIMEOUT": "10",
                "POSTGRES_LOCK_TIMEOUT": "10",
            }
        else:
            raise ConfigurationError(
                f"TENZO_DATABASE_URL must start with sqlite:/// or postgresql:// "
                f"(got {self.database_url.split(':', 1)[0]}:…)"
            )
        return env


def _embedded_key(path: Path) -> str:
    """Read the embedded key, creating it once with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as file:
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        file.write(key + "\n")
    return key


def _replace(settings: Settings, **changes: object) -> Settings:
    from dataclasses import replace

    return replace(settings, **changes)  # type: ignore[arg-type]
