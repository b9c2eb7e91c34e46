"""The organization's webhook: configure (PUT), change (PATCH), delete."""

from __future__ import annotations

import pytest

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
