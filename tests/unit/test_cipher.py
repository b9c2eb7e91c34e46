"""The event store's cipher keeps eventsourcing's AESCipher format both ways."""

from __future__ import annotations

import base64
import os

import pytest
from eventsourcing.cryptography import AESCipher
from eventsourcing.utils import Environment

from services.infrastructure.cipher import EventCipher


def env(key: bytes) -> Environment:
    return Environment(env={"CIPHER_KEY": base64.b64encode(key).decode()})


def test_either_cipher_reads_what_the_other_wrote():
    key = os.urandom(32)
    ours, theirs = EventCipher(env(key)), AESCipher(env(key))
    plaintext = b'{"status_code": 200, "summary": "Clear communicator"}'

    assert theirs.decrypt(ours.encrypt(plaintext)) == plaintext
    assert ours.decrypt(theirs.encrypt(plaintext)) == plaintext


def test_every_encryption_has_a_nonce_of_its_own_and_is_authenticated():
    cipher = EventCipher(env(os.urandom(32)))
    sealed = [cipher.encrypt(b"same plaintext") for _ in range(1000)]

    assert len({blob[:12] for blob in sealed}) == 1000
    tampered = bytearray(sealed[0])
    tampered[-1] ^= 1
    with pytest.raises(ValueError, match="Invalid cipher tag"):
        cipher.decrypt(bytes(tampered))
    wrong_key = EventCipher(env(os.urandom(32)))
    with pytest.raises(ValueError, match="Invalid cipher tag"):
        wrong_key.decrypt(sealed[0])
