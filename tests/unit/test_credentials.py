"""Admin tokens and API keys (SPEC 4): format, randomness, checksum, hashing."""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain import credentials
from domain.actors import actor
from domain.api_keys import ApiKey
from domain.credentials import (
    ADMIN_TOKEN_PREFIX,
    API_KEY_PREFIX,
    BASE62,
    CHECKSUM_LENGTH,
    RANDOM_LENGTH,
    checksum,
    is_well_formed,
    mint,
)

PREFIXES = [API_KEY_PREFIX, ADMIN_TOKEN_PREFIX]
bodies = st.text(alphabet=BASE62, min_size=RANDOM_LENGTH, max_size=RANDOM_LENGTH)
prefixes = st.sampled_from(PREFIXES)


def credential(prefix: str, body: str) -> str:
    return prefix + body + checksum(prefix + body)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_a_minted_credential_has_the_prefix_random_part_and_checksum(prefix):
    minted = mint(prefix)
    pattern = rf"{prefix}[0-9A-Za-z]{{{RANDOM_LENGTH}}}[0-9A-Za-z]{{{CHECKSUM_LENGTH}}}"
    assert re.fullmatch(pattern, minted.plaintext)
    assert is_well_formed(minted.plaintext, prefix)
    assert minted.hint == f"{prefix}…{minted.plaintext[-4:]}"


def test_credentials_carry_at_least_128_bits_of_randomness():
    assert RANDOM_LENGTH * math.log2(len(BASE62)) >= 128
    minted = [mint(API_KEY_PREFIX).plaintext for _ in range(2000)]
    assert len(set(minted)) == len(minted)
    # Every character of the alphabet shows up in the random parts, spread evenly:
    # 60,000 draws, 968 expected per character.
    counts = Counter("".join(p[len(API_KEY_PREFIX) :][:RANDOM_LENGTH] for p in minted))
    assert set(counts) == set(BASE62)
    assert min(counts.values()) > 700 and max(counts.values()) < 1250


def test_an_api_key_is_not_an_admin_token_and_vice_versa():
    key = mint(API_KEY_PREFIX).plaintext
    token = mint(ADMIN_TOKEN_PREFIX).plaintext
    assert not is_well_formed(key, ADMIN_TOKEN_PREFIX)
    assert not is_well_formed(token, API_KEY_PREFIX)


@given(prefix=prefixes, body=bodies, data=st.data())
def test_checksum_rejects_every_single_character_typo(prefix, body, data):
    good = credential(prefix, body)
    assert is_well_formed(good, prefix)
    position = data.draw(st.integers(min_value=0, max_value=len(good) - 1), label="position")
    replacement = data.draw(
        st.characters(codec="utf-8").filter(lambda ch: ch != good[position]), label="char"
    )
    typo = good[:position] + replacement + good[position + 1 :]
    assert not is_well_formed(typo, prefix)


@given(prefix=prefixes, body=bodies)
def test_checksum_rejects_every_single_base62_substitution_exhaustively(prefix, body):
    good = credential(prefix, body)
    start = len(prefix)
    for position in range(start, len(good)):
        for replacement in BASE62:
            if replacement != good[position]:
                typo = good[:position] + replacement + good[position + 1 :]
                assert not is_well_formed(typo, prefix), (position, replacement)


@given(prefix=prefixes, body=bodies, data=st.data())
def test_checksum_rejects_swapped_neighbours(prefix, body, data):
    good = credential(prefix, body)
    i = data.draw(st.integers(min_value=len(prefix), max_value=len(good) - 2))
    swapped = good[:i] + good[i + 1] + good[i] + good[i + 2 :]
    if swapped != good:
        assert not is_well_formed(swapped, prefix)


@given(prefix=prefixes, body=bodies, data=st.data())
def test_truncated_or_extended_credentials_are_refused(prefix, body, data):
    good = credential(prefix, body)
    cut = data.draw(st.integers(min_value=0, max_value=len(good) - 1))
    assert not is_well_formed(good[:cut], prefix)
    assert not is_well_formed(good[cut:] if cut else good[1:], prefix)
    extra = data.draw(st.text(alphabet=BASE62, min_size=1, max_size=3))
    assert not is_well_formed(good + extra, prefix)


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        API_KEY_PREFIX,
        " " + mint(API_KEY_PREFIX).plaintext,
        mint(API_KEY_PREFIX).plaintext + "\n",
    ],
)
def test_odd_inputs_are_refused(candidate):
    assert not is_well_formed(candidate, API_KEY_PREFIX)


def test_only_a_hash_is_kept_and_it_identifies_the_credential():
    minted = mint(API_KEY_PREFIX)
    assert minted.hash == hashlib.sha256(minted.plaintext.encode()).hexdigest()
    assert minted.plaintext not in minted.hash
    assert credentials.hash_credential(minted.plaintext) == minted.hash
    assert credentials.same_hash(minted.hash, credentials.hash_credential(minted.plaintext))
    assert not credentials.same_hash(minted.hash, mint(API_KEY_PREFIX).hash)
    assert credentials.credential_id(minted.hash) == credentials.credential_id(minted.hash)

    key = ApiKey(
        org_id=credentials.credential_id("org"),
        name="ci",
        key_hash=minted.hash,
        key_hint=minted.hint,
        expires_at=None,
        actor=actor("system"),
    )
    assert key.id == credentials.credential_id(minted.hash)
    (created,) = key.collect_events()
    body = repr(vars(created)) + repr(vars(key))
    assert minted.plaintext not in body
    assert minted.plaintext[len(API_KEY_PREFIX) : -4] not in body
