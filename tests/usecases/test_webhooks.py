"""The organization's webhook: configure (PUT), change (PATCH), delete."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from domain.actors import DISPATCHER
from domain.errors import InvalidInput, InvalidWebhookUrl, NotFound
from tests.support.applications import position, recorded_since, records_nothing

URL = "https://93.184.215.14/webhooks/tenzo"  # an address literal: no DNS lookup
SECRET = "whsec-" + "s" * 32


def test_configure_creates_then_replaces_the_webhook(application, org):
    before = position(application)

    webhook, created = application.configure_webhook(org.id, URL, None, False, org.admin)

    assert created and recorded_since(application, before) == ["Webhook.Configured"]
    assert (webhook.url, webhook.secret, webhook.enabled) == (URL, None, False)
    before = position(application)
    webhook, created = application.configure_webhook(org.id, URL + "/v2", SECRET, True, org.admin)
    assert not created and recorded_since(application, before) == ["Webhook.Replaced"]
    shown = application.get_webhook(org.id)
    assert (shown.url, shown.secret, shown.enabled) == (URL + "/v2", SECRET, True)


def test_change_records_one_event_per_changed_field_and_none_for_no_change(application, org):
    application.configure_webhook(org.id, URL, None, False, org.admin)
    before = position(application)

    application.change_webhook(org.id, org.admin, url=URL + "/b", secret=SECRET, enabled=True)

    assert recorded_since(application, before) == [
        "Webhook.UrlChanged",
        "Webhook.SecretChanged",
        "Webhook.Enabled",
    ]
    with records_nothing(application):
        application.change_webhook(org.id, org.admin, url=URL + "/b", secret=SECRET, enabled=True)
        application.change_webhook(org.id, org.admin)


def test_a_secret_of_none_removes_it_and_an_omitted_one_keeps_it(application, org):
    application.configure_webhook(org.id, URL, SECRET, True, org.admin)

    assert application.change_webhook(org.id, org.admin, enabled=False).secret == SECRET
    before = position(application)
    assert application.change_webhook(org.id, org.admin, secret=None).secret_set is False
    assert recorded_since(application, before) == ["Webhook.SecretChanged"]


def test_a_deleted_webhook_is_gone_until_configured_again(application, org):
    first, _ = application.configure_webhook(org.id, URL, SECRET, True, org.admin)
    before = position(application)

    application.delete_webhook(org.id, org.admin)

    assert recorded_since(application, before) == ["Webhook.Deleted"]
    with records_nothing(application):
        with pytest.raises(NotFound):
            application.get_webhook(org.id)
        with pytest.raises(NotFound):
            application.delete_webhook(org.id, org.admin)
        with pytest.raises(NotFound):
            application.change_webhook(org.id, org.admin, enabled=True)
    again, created = application.configure_webhook(org.id, URL, None, False, org.admin)
    assert created and again.id == first.id  # the same aggregate continues
    assert again.secret is None and again.configured_on > first.configured_on


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14/",
        "https://10.0.0.1/",
        "https://[::1]/",
        "https://user:pw@93.184.215.14/",
    ],
)
def test_a_refused_url_changes_nothing(application, org, url):
    with records_nothing(application), pytest.raises(InvalidWebhookUrl):
        application.configure_webhook(org.id, url, None, True, org.admin)
    application.configure_webhook(org.id, URL, None, True, org.admin)
    with records_nothing(application), pytest.raises(InvalidWebhookUrl):
        application.change_webhook(org.id, org.admin, url=url)
    assert application.get_webhook(org.id).url == URL


@pytest.mark.parametrize("secret", ["", "x" * 257])
def test_a_bad_secret_changes_nothing(application, org, secret):
    with records_nothing(application), pytest.raises(InvalidInput) as refused:
        application.configure_webhook(org.id, URL, secret, True, org.admin)
    assert refused.value.field == "secret"
    application.configure_webhook(org.id, URL, None, True, org.admin)
    with records_nothing(application), pytest.raises(InvalidInput):
        application.change_webhook(org.id, org.admin, secret=secret)


def test_each_organization_has_its_own_webhook(application, org, other_org):
    application.configure_webhook(org.id, URL, None, True, org.admin)

    with pytest.raises(NotFound):
        application.get_webhook(other_org.id)
    theirs, created = application.configure_webhook(other_org.id, URL, None, False, other_org.admin)
    assert created and theirs.id != application.get_webhook(org.id).id


# -- rotating the secret with an overlap (SPEC 9) ---------------------------------------


def test_rotation_keeps_the_previous_secret_for_the_overlap(application, org):
    application.configure_webhook(org.id, URL, SECRET, True, org.admin)
    before = position(application)

    webhook, generated, expires_at = application.rotate_webhook_secret(
        org.id, org.admin, secret="new-" + SECRET, overlap_hours=24
    )

    assert generated is None and recorded_since(application, before) == ["Webhook.SecretRotated"]
    stored = application.get_webhook(org.id)
    assert (stored.secret, stored.previous_secret) == ("new-" + SECRET, SECRET)
    assert expires_at == stored.previous_secret_expires_at
    hours = (expires_at - application.clock()).total_seconds() / 3600
    assert 23.99 < hours <= 24
    assert stored.previous_secret_valid(application.clock())
    assert not stored.previous_secret_valid(expires_at)


def test_rotation_without_a_secret_generates_a_whsec_one(application, org):
    application.configure_webhook(org.id, URL, SECRET, True, org.admin)

    webhook, generated, _ = application.rotate_webhook_secret(org.id, org.admin)

    assert generated is not None and generated.startswith("whsec_")
    assert len(base64.b64decode(generated.removeprefix("whsec_"))) == 32
    assert application.get_webhook(org.id).secret == generated
    _, again, _ = application.rotate_webhook_secret(org.id, org.admin)
    assert again != generated


def test_an_overlap_of_zero_keeps_no_previous_secret(application, org):
    application.configure_webhook(org.id, URL, SECRET, True, org.admin)

    webhook, _, expires_at = application.rotate_webhook_secret(
        org.id, org.admin, secret="next", overlap_hours=0
    )

    assert expires_at is not None and expires_at <= application.clock()
    assert (webhook.previous_secret, webhook.previous_secret_expires_at) == (None, None)


def test_rotating_when_no_secret_is_set_just_sets_one(application, org):
    application.configure_webhook(org.id, URL, None, True, org.admin)

    webhook, _, expires_at = application.rotate_webhook_secret(org.id, org.admin, secret="first")

    assert (webhook.secret, webhook.previous_secret, expires_at) == ("first", None, None)


def test_a_second_rotation_drops_the_oldest_secret(application, org):
    application.configure_webhook(org.id, URL, "one", True, org.admin)
    application.rotate_webhook_secret(org.id, org.admin, secret="two")

    webhook, _, _ = application.rotate_webhook_secret(org.id, org.admin, secret="three")

    assert (webhook.secret, webhook.previous_secret) == ("three", "two")


@pytest.mark.parametrize("change", ["patch", "remove", "put", "delete"])
def test_any_other_secret_change_ends_the_overlap(application, org, change):
    application.configure_webhook(org.id, URL, "one", True, org.admin)
    application.rotate_webhook_secret(org.id, org.admin, secret="two")

    if change == "patch":
        application.change_webhook(org.id, org.admin, secret="three")
    elif change == "remove":
        application.change_webhook(org.id, org.admin, secret=None)
    elif change == "put":
        application.configure_webhook(org.id, URL, "three", True, org.admin)
    else:
        application.delete_webhook(org.id, org.admin)
        application.configure_webhook(org.id, URL, "three", True, org.admin)

    webhook = application.get_webhook(org.id)
    assert (webhook.previous_secret, webhook.previous_secret_expires_at) == (None, None)


def test_the_previous_secret_is_forgotten_once_the_overlap_ended(application, org):
    application.configure_webhook(org.id, URL, "one", True, org.admin)
    application.rotate_webhook_secret(org.id, org.admin, secret="two", overlap_hours=1)

    with records_nothing(application):  # still inside the overlap
        assert not application.forget_expired_previous_secret(org.id, DISPATCHER)
    application.clock = lambda: datetime.now(UTC) + timedelta(hours=1, seconds=1)
    before = position(application)

    assert application.forget_expired_previous_secret(org.id, DISPATCHER)

    assert recorded_since(application, before) == ["Webhook.PreviousSecretForgotten"]
    webhook = application.get_webhook(org.id)
    assert (webhook.secret, webhook.previous_secret) == ("two", None)
    with records_nothing(application):  # forgotten once
        assert not application.forget_expired_previous_secret(org.id, DISPATCHER)
        assert not application.forget_expired_previous_secret(uuid4(), DISPATCHER)


@pytest.mark.parametrize(
    "arguments",
    [
        {"secret": ""},
        {"secret": "x" * 257},
        {"secret": "one"},  # the current secret
        {"overlap_hours": -1},
        {"overlap_hours": 169},
    ],
)
def test_a_bad_rotation_changes_nothing(application, org, arguments):
    application.configure_webhook(org.id, URL, "one", True, org.admin)

    with records_nothing(application), pytest.raises(InvalidInput) as refused:
        application.rotate_webhook_secret(org.id, org.admin, **arguments)

    assert refused.value.field == next(iter(arguments))
    assert application.get_webhook(org.id).secret == "one"


def test_rotating_without_a_webhook_is_not_found(application, org):
    with records_nothing(application), pytest.raises(NotFound):
        application.rotate_webhook_secret(org.id, org.admin)


def test_a_whsec_secret_not_in_base64_is_kept_as_before(application, org):
    """``whsec_`` and 43 URL-safe characters: as the dashboard generated secrets before
    they were Standard Webhooks base64. Setting one again still works (UTF-8 key)."""
    old_form = "whsec_" + "A-b_" * 10 + "xyz"
    webhook, _ = application.configure_webhook(org.id, URL, old_form, True, org.admin)
    assert webhook.secret == old_form
    webhook, _ = application.configure_webhook(
        org.id, URL, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", True, org.admin
    )
    assert webhook.secret == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
