"""Test on a disabled webhook (disabled by hand or automatically) sends the test message through the real worker
and shows the endpoint's answer; a test never enables the webhook, never counts toward disabling it, and never
starts, extends or ends a failure streak."""

from datetime import datetime

from conftest import wait_for
from markup import parse, select_one, text_of
from sqlalchemy import update

from webhooks_app.extensions import db
from webhooks_app.models import Webhook
from webhooks_app.services.failure_causes import GONE_REASON
from webhooks_app.services.intake import emit_event
from webhooks_app.services.webhooks import WebhookFields, create_webhook, update_webhook

BASE = "/system/integrations/api/webhooks"
HTMX = {"HX-Request": "true"}
STREAK = datetime(2030, 1, 1, 8, 0)
WARNED = datetime(2030, 1, 1, 8, 5)


def add_webhook(app, url: str, enabled: bool = True) -> int:
    with app.app_context():
        webhook, _ = create_webhook(WebhookFields("Receiver", url, ("asset.create",), enabled))
        db.session.commit()
        return webhook.id


def webhook_row(app, webhook_id: int) -> Webhook:
    with app.app_context():
        webhook = db.session.get(Webhook, webhook_id)
        db.session.expunge_all()
        return webhook


def press_test_and_wait(admin_client, webhook_id: int) -> str:
    """Press Test in the row menu's dialog and poll its result as htmx does; the dialog's text with the answer."""
    response = admin_client.post(f"{BASE}/{webhook_id}/test", data={"csrf_token": admin_client.csrf_token},
                                 headers={**HTMX, "HX-Target": "dialog-host"})
    assert response.status_code == 200, response.get_data(as_text=True)
    dialog = parse(response)
    url = select_one(dialog, "[data-test-message]")["hx-get"]

    def answered():
        polled = admin_client.get(url, headers={**HTMX, "HX-Target": f"test-result-{webhook_id}"})
        return parse(polled) if polled.status_code != 204 else None

    return text_of(dialog) + " " + text_of(wait_for(answered, timeout=30, message="the test's answer"))


def test_test_on_a_webhook_disabled_by_hand_is_sent_and_answered(app, admin_client, receiver, delivery_processes):
    """A webhook created disabled: Test reaches the endpoint and shows HTTP 204; the dialog says the webhook stays
    disabled; it is still disabled afterwards."""
    webhook_id = add_webhook(app, receiver.url("/ok"), enabled=False)
    shown = press_test_and_wait(admin_client, webhook_id)
    assert "This webhook is disabled: the test is sent anyway" in shown
    assert "answered HTTP 204" in shown
    (delivery,) = receiver.received
    assert delivery.json()["event"]["systemEventType"] == "WEBHOOK_TEST"
    assert webhook_row(app, webhook_id).enabled is False


def test_test_after_an_automatic_disable_checks_the_fix_and_never_re_enables(app, admin_client, receiver,
                                                                            delivery_processes):
    """Disabled by a 410 Gone, its URL fixed (still disabled): Test is sent to the fixed endpoint and answered; the
    webhook stays disabled with its reason, and its streak is untouched."""
    webhook_id = add_webhook(app, receiver.url("/status/410"))
    with app.app_context():
        emit_event({"type": "asset.create", "assetId": 1, "userId": 1})
    wait_for(lambda: webhook_row(app, webhook_id).disabled_reason == GONE_REASON, message="the 410 to disable it")
    with app.app_context():
        update_webhook(webhook_id, WebhookFields("Receiver", receiver.url("/ok"), ("asset.create",), False))
        db.session.commit()
    before = webhook_row(app, webhook_id)
    shown = press_test_and_wait(admin_client, webhook_id)
    assert "answered HTTP 204" in shown
    assert [d.path for d in receiver.received] == ["/status/410", "/ok"]
    after = webhook_row(app, webhook_id)
    assert (after.enabled, after.disabled_reason, after.disabled_at) == (False, GONE_REASON, before.disabled_at)
    assert (after.failure_streak_started_at, after.warned_at) == (before.failure_streak_started_at, before.warned_at)


def test_tests_never_start_extend_or_end_a_failure_streak(app, admin_client, receiver, delivery_processes):
    """A failing test on a webhook with no streak starts none (nor disables it); a succeeding test on a webhook in a
    streak neither ends it nor clears its warning."""
    failing = add_webhook(app, receiver.url("/status/500"))
    assert "answered HTTP 500" in press_test_and_wait(admin_client, failing)
    row = webhook_row(app, failing)
    assert (row.enabled, row.failure_streak_started_at, row.warned_at) == (True, None, None)

    in_streak = add_webhook(app, receiver.url("/ok"))
    with app.app_context():
        db.session.execute(update(Webhook).where(Webhook.id == in_streak)
                           .values(failure_streak_started_at=STREAK, warned_at=WARNED))
        db.session.commit()
    assert "answered HTTP 204" in press_test_and_wait(admin_client, in_streak)
    row = webhook_row(app, in_streak)
    assert (row.failure_streak_started_at, row.warned_at) == (STREAK, WARNED)
