"""Connections to the message broker named by TENZO_BROKER_URL (RabbitMQ or embedded)."""

from __future__ import annotations

from pathlib import Path

from kombu import Connection, Exchange

EVENTS_EXCHANGE = Exchange("tenzo.events", type="topic", durable=True)


def broker_connection(url: str, *, confirm_publish: bool = False) -> Connection:
    """A kombu connection; ``filesystem://<folder>`` is the embedded broker in a folder.

    ``confirm_publish`` makes every publish on RabbitMQ wait for the broker's
    confirmation (the embedded broker has written the file when publish returns).
    """
    if url.startswith("filesystem://"):
        folder = Path(url.removeprefix("filesystem://") or "var/broker")
        queue, processed, control = folder / "queue", folder / "processed", folder / "control"
        for path in (queue, processed, control):
            path.mkdir(parents=True, exist_ok=True)
        return Connection(
            "filesystem://",
            transport_options={
                "data_folder_in": str(queue),
                "data_folder_out": str(queue),
                "processed_folder": str(processed),
                "store_processed": False,
                "control_folder": str(control),
                "polling_interval": 0.05,  # the default 1 s would add up to 1 s per hop
            },
        )
    return Connection(
        url,
        connect_timeout=5,
        heartbeat=30,
        transport_options={"confirm_publish": True} if confirm_publish else {},
    )


def broker_reachable(url: str, timeout: float = 2.0) -> bool:
    try:
        with broker_connection(url) as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False
