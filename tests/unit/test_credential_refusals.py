"""Why a credential is refused (domain/credential_refusals.py): which mistake, hint only."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from domain import credential_refusals as refusals
from domain.credentials import ADMIN_TOKEN_PREFIX, API_KEY_PREFIX, BASE62, mint

KEY = mint(API_KEY_PREFIX).plaintext


def _message(presented: str, kind: refusals.Kind = refusals.API_KEY) -> str:
    refusal = refusals.malformed(presented, kind)
    assert refusal is not None
    return str(refusal)


def test_a_well_formed_key_is_not_refused_for_its_form():
    assert refusals.malformed(KEY, refusals.API_KEY) is None


def test_each_mistake_of_form_is_named():
    assert _message("").startswith("No API key was given")
    assert _message(mint(ADMIN_TOKEN_PREFIX).plaintext).startswith("That is an admin token")
    assert _message(KEY, refusals.ADMIN_TOKEN).startswith("That is an API key")
    assert _message("sk_live_abc").startswith("That is not a Tenzo API key")
    assert "is truncated: it has 44 characters, a complete one has 45" in _message(KEY[:-1])
    assert "is too long: it has 46 characters" in _message(KEY + "x")
    assert "has characters an API key never has" in _message(KEY[:-5] + "-" + KEY[-4:])
    flipped = KEY[:-1] + ("A" if KEY[-1] != "A" else "B")
    assert "fails its checksum" in _message(flipped)


def test_the_hint_is_shown_only_when_enough_was_given():
    assert f"{API_KEY_PREFIX}…{KEY[-5:-1]}" in _message(KEY[:-1])
    short = API_KEY_PREFIX + "abc"
    assert "abc" not in _message(short)


def test_unknown_is_one_sentence_for_every_key():
    assert str(refusals.unknown(refusals.API_KEY)) == str(refusals.unknown(refusals.API_KEY))
    assert refusals.unknown(refusals.API_KEY).reason == "unknown"


def test_expired_and_revoked_say_when():
    at = datetime(2027, 2, 1, tzinfo=UTC)
    expired = refusals.expired(refusals.API_KEY, "tenzo_pk_…a1B2", at)
    assert str(expired).startswith("The API key tenzo_pk_…a1B2 expired at 2027-02-01T00:00:00Z.")
    revoked = refusals.revoked(refusals.API_KEY, "tenzo_pk_…a1B2", at)
    assert "was revoked at 2027-02-01T00:00:00Z" in str(revoked)
    assert (expired.reason, revoked.reason) == ("expired", "revoked")


@given(
    st.text(alphabet=BASE62 + "-_.", min_size=16, max_size=80).filter(
        lambda text: any(ch.isdigit() for ch in text[:-4])
    )
)
def test_a_refusal_never_shows_more_than_the_last_four_characters(presented):
    refusal = refusals.malformed(API_KEY_PREFIX + presented, refusals.API_KEY)
    if refusal is not None:  # (a random text almost never has a valid checksum)
        assert presented[:-4] not in str(refusal)
