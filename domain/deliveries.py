"""Use cases of webhook deliveries: scheduling, recording attempts, redelivery."""

from __future__ import annotations


class DeliveryUseCases:
    """Mixed into DeveloperTools: deliveries of events to an organization's webhook."""
