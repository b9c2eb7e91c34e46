"""The dashboard's webhook secret forms (SPEC 9) through Flask's test client, on SQLite
and PostgreSQL: rotating with an overlap (a generated secret shown once, after a
redirect), "previous secret valid until …", removal asked first, bad input shown by
its field and changing nothing. In a real browser: tests/e2e/test_dashboard_secret.py."""

from __future__ import annotations

import re

import pytest

from domain.actors import OPERATOR
from tests.conftest import history
from tests.integration.test_dashboard import field_errors, page, signed_in

__all__ = ["page", "signed_in"]  # fixtures

URL = "https://example.com/hook"
SECRET = "the current secret"
REVEALED = re.compile(r">(whsec_[\w+/=]+)</textarea>")


@pytest.fixture
def configured(application, org):
    application.configure_webhook(org.id, URL, SECRET, True, OPERATOR)


def test_rotate_generates_a_secret_shown_once_and_says_until_when_the_old_one_works(
    signed_in, application, org, configured
):
    before = signed_in.get("/webhook").get_data(as_text=True)
    assert "Rotate secret" in before and 'id="previous-secret"' not in before

    response = signed_in.post("/webhook/secret/rotate", {"overlap_hours": "24"})

    assert response.status_code == 302  # Post/Redirect/Get: a reload rotates nothing
    shown = signed_in.get("/webhook").get_data(as_text=True)
    secret = REVEALED.search(shown).group(1)
    webhook = application.get_webhook(org.id)
    assert (webhook.secret, webhook.previous_secret) == (secret, SECRET)
    assert "Secret rotated. The previous secret stays valid until" in shown
    expires = webhook.previous_secret_expires_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert re.search(
        rf'id="previous-secret">Previous secret valid until <time[^>]*>{expires}', shown
    )
    again = signed_in.get("/webhook").get_data(as_text=True)
    assert secret not in again and "Previous secret valid until" in again
    assert [e for e in application.event_history(org.id) if e["type"] == "WebhookSecretRotated"]


def test_rotate_to_a_given_secret_without_overlap(signed_in, application, org, configured):
    response = signed_in.post(
        "/webhook/secret/rotate", {"secret": "my next secret", "overlap_hours": "0"}
    )

    assert response.status_code == 302
    shown = signed_in.get("/webhook").get_data(as_text=True)
    assert "Only the new secret signs deliveries." in shown
    assert REVEALED.search(shown) is None and "my next secret" not in shown
    assert 'id="previous-secret"' not in shown
    webhook = application.get_webhook(org.id)
    assert (webhook.secret, webhook.previous_secret) == ("my next secret", None)


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"overlap_hours": "forever"}, "overlap_hours"),
        ({"overlap_hours": "169"}, "overlap_hours"),
        ({"overlap_hours": "-1"}, "overlap_hours"),
        ({"secret": SECRET, "overlap_hours": "24"}, "rotate-secret"),
        ({"secret": "x" * 257, "overlap_hours": "24"}, "rotate-secret"),
    ],
)
def test_a_bad_rotation_is_shown_by_its_field_and_changes_nothing(
    signed_in, application, org, configured, form, field
):
    before = history(application)

    response = signed_in.post("/webhook/secret/rotate", form)

    assert response.status_code == 200
    assert field_errors(response)[field]
    assert history(application) == before


def test_removing_the_secret_asks_first(signed_in, application, org, configured):
    assert signed_in.post("/webhook/secret", {"action": "remove"}).status_code == 302
    assert application.get_webhook(org.id).secret == SECRET
    confirm = signed_in.get("/webhook/secret/remove")
    assert "Remove the signing secret?" in confirm.get_data(as_text=True)

    signed_in.post("/webhook/secret/remove")

    assert application.get_webhook(org.id).secret is None
    # Without a secret there is nothing to confirm: the page goes back to the webhook.
    assert signed_in.get("/webhook/secret/remove").status_code == 302
