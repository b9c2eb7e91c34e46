"""What the routes of one API process share: settings, applications, adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from domain.application import DeveloperTools
from services.api.usage import UsageCounter
from services.settings import Settings


@dataclass
class Services:
    settings: Settings
    tools: DeveloperTools
    usage: UsageCounter
    extras: dict[str, Any] = field(default_factory=dict)
    # Whether /readyz has declared the broker's exchange and queues (once is enough:
    # they are durable; later probes only check that the broker answers).
    broker_prepared: bool = False


def services() -> Services:
    found: Services = current_app.extensions["tenzo"]
    return found
