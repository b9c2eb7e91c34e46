"""The organization's webhook: configure (PUT), change (PATCH), delete."""

from __future__ import annotations

import pytest

from domain.errors import InvalidInput, InvalidWebhookUrl, NotFound
from tests.support.applications import position, recorded_since, records_nothing

URL = "https://93.184.215.14/webhooks/tenzo"  # an address literal: no DNS lookup
SECRET = "whsec-" + "s" * 32


def test_configure_creates_then_replaces_the_webhook(tools, org):
    before = position(tools)

    webhook, created = tools.configure_webhook(org.id, URL, None, False, org.admin)

    assert created and recorded_since(tools, before) == ["Webhook.Configured"]
    assert (webhook.url, webhook.secret, webhook.enabled) == (URL, None, False)
    before = position(tools)
    webhook, created = tools.configure_webhook(org.id, URL + "/v2", SECRET, True, org.admin)
    assert not created and recorded_since(tools, before) == ["Webhook.Replaced"]
    shown = tools.get_webhook(org.id)
    assert (shown.url, shown.secret, shown.enabled) == (URL + "/v2", SECRET, True)


def test_change_records_one_event_per_changed_field_and_none_for_no_change(tools, org):
    tools.configure_webhook(org.id, URL, None, False, org.admin)
    before = position(tools)

    tools.change_webhook(org.id, org.admin, url=URL + "/b", secret=SECRET, enabled=True)

    assert recorded_since(tools, before) == [
        "Webhook.UrlChanged",
        "Webhook.SecretChanged",
        "Webhook.Enabled",
    ]
    with records_nothing(tools):
        tools.change_webhook(org.id, org.admin, url=URL + "/b", secret=SECRET, enabled=True)
        tools.change_webhook(org.id, org.admin)


def test_a_secret_of_none_removes_it_and_an_omitted_one_keeps_it(tools, org):
    tools.configure_webhook(org.id, URL, SECRET, True, org.admin)

    assert tools.change_webhook(org.id, org.admin, enabled=False).secret == SECRET
    before = position(tools)
    assert tools.change_webhook(org.id, org.admin, secret=None).secret_set is False
    assert recorded_since(tools, before) == ["Webhook.SecretChanged"]


def test_a_deleted_webhook_is_gone_until_configured_again(tools, org):
    first, _ = tools.configure_webhook(org.id, URL, SECRET, True, org.admin)
    before = position(tools)

    tools.delete_webhook(org.id, org.admin)

    assert recorded_since(tools, before) == ["Webhook.Deleted"]
    with records_nothing(tools):
        with pytest.raises(NotFound):
            tools.get_webhook(org.id)
        with pytest.raises(NotFound):
            tools.delete_webhook(org.id, org.admin)
        with pytest.raises(NotFound):
            tools.change_webhook(org.id, org.admin, enabled=True)
    again, created = tools.configure_webhook(org.id, URL, None, False, org.admin)
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
def test_a_refused_url_changes_nothing(tools, org, url):
    with records_nothing(tools), pytest.raises(InvalidWebhookUrl):
        tools.configure_webhook(org.id, url, None, True, org.admin)
    tools.configure_webhook(org.id, URL, None, True, org.admin)
    with records_nothing(tools), pytest.raises(InvalidWebhookUrl):
        tools.change_webhook(org.id, org.admin, url=url)
    assert tools.get_webhook(org.id).url == URL


@pytest.mark.parametrize("secret", ["", "x" * 257])
def test_a_bad_secret_changes_nothing(tools, org, secret):
    with records_nothing(tools), pytest.raises(InvalidInput) as refused:
        tools.configure_webhook(org.id, URL, secret, True, org.admin)
    assert refused.value.field == "secret"
    tools.configure_webhook(org.id, URL, None, True, org.admin)
    with records_nothing(tools), pytest.raises(InvalidInput):
        tools.change_webhook(org.id, org.admin, secret=secret)


def test_each_organization_has_its_own_webhook(tools, org, other_org):
    tools.configure_webhook(org.id, URL, None, True, org.admin)

    with pytest.raises(NotFound):
        tools.get_webhook(other_org.id)
    theirs, created = tools.configure_webhook(other_org.id, URL, None, False, other_org.admin)
    assert created and theirs.id != tools.get_webhook(org.id).id
