"""How stored events (and personal fields' keys and tokens) are encrypted: AES-GCM."""

from __future__ import annotations

import ssl
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.cryptography import AESCipher

NONCE_BYTES = 12  # AES-GCM's 96-bit nonce
TAG_BYTES = 16


class EventCipher(AESCipher):
    """eventsourcing's AESCipher (from `cryptography`), and the same stored format: nonce,
    tag, ciphertext; either class reads what the other wrote (``decrypt`` is inherited).

    Two things differ, both for a busy dispatcher that encrypts three events per
    delivery on many threads. The random nonce comes from OpenSSL's generator
    (``ssl.RAND_bytes``: cryptographically strong, reseeded after a fork) in the
    process, where ``os.urandom`` makes a system call that lets go of the interpreter
    lock, which another thread then takes: about one lock hand-off in eight measured
    in the dispatcher (perf, docs/benchmarks.md). And the key's AESGCM object is made
    once, not per event.
    """

    def __init__(self, environment: Any):
        super().__init__(environment)
        self._aesgcm = AESGCM(self.key)

    def encrypt(self, plaintext: bytes) -> bytes:
        nonce = ssl.RAND_bytes(NONCE_BYTES)
        sealed = self._aesgcm.encrypt(nonce, plaintext, None)
        return nonce + sealed[-TAG_BYTES:] + sealed[:-TAG_BYTES]  # the tag first, as stored
