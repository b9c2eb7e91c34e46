"""Whether the encryption key can read the event store (SPEC 11).

A process given another key than the one its store was written with used to start,
report ready, and answer every request that loads an aggregate with 500 "Invalid
cipher tag". Decrypting the newest stored event says so at once: when a process
builds its application (services/bootstrap.py) and on every ``/readyz``.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.application import Application

from services.settings import ConfigurationError


class EncryptionKeyMismatch(ConfigurationError):
    """The encryption key cannot decrypt the events already in the event store."""


def check_encryption_key(app: Application[Any]) -> None:
    """Decrypt the newest stored event with the application's cipher; raise
    EncryptionKeyMismatch when that fails. An empty store passes with any key.

    Costs two indexed reads and one AES-GCM decryption of a few hundred bytes: cheap
    enough for every readiness probe. Errors reaching the store propagate as they are.
    """
    cipher = app.mapper.cipher
    newest = app.recorder.max_notification_id()
    if cipher is None or not newest:
        return
    notifications = app.recorder.select_notifications(start=newest, limit=1)
    if not notifications:
        return
    try:
        cipher.decrypt(notifications[0].state)
    except ValueError as error:  # "Invalid cipher tag", "Damaged cipher text: …"
        raise EncryptionKeyMismatch(
            f"TENZO_ENCRYPTION_KEY cannot read the existing event store (the newest "
            f"event, at position {notifications[0].id}, does not decrypt: {error}): is "
            "it the key this store was written with? In embedded mode, without "
            "TENZO_ENCRYPTION_KEY, the key is the file encryption.key beside the "
            "SQLite file."
        ) from None
