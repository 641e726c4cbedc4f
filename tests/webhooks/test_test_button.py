"""The Test button: a WEBHOOK_TEST message sent at once, its answer shown, logged, never disabling."""

import re

from sqlalchemy import select

from webhooks_app.extensions import db
from webhooks_app.models import Attempt, Message, MessageStatus, Webhook

BASE = "/system/integrations/api/webhooks"


def create(admin_client, url: str) -> tuple[int, str]:
    response = admin_client.post(
        f"{BASE}/new", headers={"HX-Request": "true"},
        data={"name": "Receiver", "url": url, "events": ["asset.create"], "enabled": "y",
              "csrf_token": admin_client.csrf_token},
    )
    body = response.get_data(as_text=True)
    webhook_id = int(re.search(r'/webhooks/(\d+)/test"', body).group(1))
    return webhook_id, body


def test_create_dialog_offers_test_and_done(admin_client, receiver):
    """After Create, the secret dialog has a Test button next to Done."""
    _, body = create(admin_client, receiver.url("/ok"))
    assert ">Test</button>" in body and ">Done</a>" in body


def test_test_sends_webhook_test_and_shows_the_answer(app, admin_client, receiver):
    """Test POSTs a WEBHOOK_TEST message now and shows the status code and time; the message is logged Sent."""
    webhook_id, _ = create(admin_client, receiver.url("/ok"))
    response = admin_client.post(
        f"{BASE}/{webhook_id}/test", data={"csrf_token": admin_client.csrf_token},
        headers={"HX-Request": "true", "HX-Target": f"test-result-{webhook_id}"},
    )
    body = response.get_data(as_text=True)
    assert re.search(r"answered HTTP 204 in \d+ ms", body)
    (delivery,) = receiver.received
    payload = delivery.json()
    assert payload["event"]["systemEventType"] == "WEBHOOK_TEST"
    assert payload["subscriptionId"] == webhook_id
    with app.app_context():
        message = db.session.scalars(select(Message)).one()
        assert (message.event_type, message.is_test, message.status) == ("webhook.test", True, MessageStatus.SENT)


def test_failed_test_shows_the_error_and_does_not_count_toward_disabling(app, admin_client, receiver):
    """A test answered with 500 is shown as such, fails once without retries, and leaves the webhook enabled."""
    webhook_id, _ = create(admin_client, receiver.url("/status/500"))
    body = admin_client.post(
        f"{BASE}/{webhook_id}/test", data={"csrf_token": admin_client.csrf_token}, headers={"HX-Request": "true"},
    ).get_data(as_text=True)
    assert '<dialog id="webhook-test-dialog"' in body and "answered HTTP 500" in body
    assert "does not count toward disabling" in body
    with app.app_context():
        message = db.session.scalars(select(Message)).one()
        assert message.status == MessageStatus.FAILED and message.next_attempt_at is None
        assert db.session.scalar(select(db.func.count()).select_from(Attempt)) == 1
        assert db.session.get(Webhook, webhook_id).enabled is True


def test_test_needs_csrf(app, admin_client, receiver):
    """Test without the CSRF token sends nothing."""
    webhook_id, _ = create(admin_client, receiver.url("/ok"))
    response = admin_client.post(f"{BASE}/{webhook_id}/test", headers={"HX-Request": "true"})
    assert response.status_code == 400 and receiver.received == []
