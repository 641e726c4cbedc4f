"""Health at a glance on the Webhooks page: each webhook's last delivery and its 24-hour success rate, live."""

from datetime import timedelta

from factories import make_message, make_webhook
from markup import select_one, text_of

from webhooks_app.extensions import db
from webhooks_app.models import MessageStatus

BASE = "/system/integrations/api/webhooks"


def test_each_row_shows_the_last_delivery_and_the_24_hour_success_rate(app, admin_client):
    """A webhook with 3 successful and 1 failed attempt in the last day (and an older failure, outside the window)
    shows its latest result and "75% of 4 attempts succeeded"; one without deliveries says so."""
    ok, failed = (True, 204, None, ""), (False, 500, "http_status", "")
    with app.app_context():
        busy = make_webhook("Busy")
        idle = make_webhook("Idle")
        make_message(busy, MessageStatus.FAILED, age=timedelta(days=2), attempts=[failed])
        make_message(busy, MessageStatus.SENT, age=timedelta(hours=5), attempts=[failed, ok])
        make_message(busy, MessageStatus.SENT, age=timedelta(hours=2), attempts=[ok])
        make_message(busy, MessageStatus.SENT, age=timedelta(minutes=1), attempts=[ok])
        db.session.commit()
    page = admin_client.get(BASE)
    health = select_one(page, f"#webhook-row-{busy} td.health")
    assert text_of(select_one(health, ".last-delivery span.status")) == "HTTP 204"
    assert text_of(select_one(health, ".rate")) == "75% of 4 attempts succeeded"
    assert text_of(select_one(page, f"#webhook-row-{idle} td.health")) == "No deliveries yet"


def test_the_live_poll_redraws_the_table_when_a_new_attempt_is_recorded(app, admin_client):
    """The open page's poll answers 204 while nothing changes, and the table (with the new health) once a delivery
    attempt is recorded, even though no webhook itself changed."""
    with app.app_context():
        webhook_id = make_webhook("Watched")
        db.session.commit()
    poller = select_one(admin_client.get(BASE), "#webhooks-live")["hx-get"]
    assert admin_client.get(poller, headers={"HX-Request": "true"}).status_code == 204
    with app.app_context():
        make_message(webhook_id, MessageStatus.SENT, attempts=[(True, 204, None, "")])
        db.session.commit()
    redrawn = admin_client.get(poller, headers={"HX-Request": "true"})
    assert redrawn.status_code == 200
    assert text_of(select_one(redrawn, f"#webhook-row-{webhook_id} td.health .rate")) == "100% of 1 attempt succeeded"


def test_a_webhook_disabled_by_failures_is_told_from_one_switched_off(app, admin_client):
    """Only the webhook disabled by failures (it has a disabled_reason) gets the red `failed` switch, described by
    its reason line; one an administrator switched off is plainly off."""
    with app.app_context():
        manual = make_webhook("Manual")
        automatic = make_webhook("Automatic")
        db.session.commit()
    admin_client.post(f"{BASE}/{manual}/toggle", data={"enabled": "0", "csrf_token": admin_client.csrf_token})
    with app.app_context():
        from webhooks_app.models import Webhook
        hook = db.session.get(Webhook, automatic)
        hook.enabled, hook.disabled_reason = False, "All 6 delivery attempts of a message failed."
        db.session.commit()
    page = admin_client.get(BASE)
    manual_switch = select_one(page, f"#webhook-status-{manual}")
    automatic_switch = select_one(page, f"#webhook-status-{automatic}")
    assert "failed" not in manual_switch["class"] and "off" in manual_switch["class"]
    assert "failed" in automatic_switch["class"]
    assert automatic_switch["aria-describedby"] == f"webhook-reason-{automatic}"
    assert text_of(select_one(page, f"#webhook-reason-{automatic}")) == "Disabled automatically after failures"


def test_an_open_page_redraws_when_another_admin_changes_only_a_webhooks_events(app, admin_client):
    """The Webhooks page's live poll answers 204 while nothing changed, and the new table once another administrator
    has changed only a webhook's events (the change is to its subscriptions' rows, not its own)."""
    with app.app_context():
        webhook_id = make_webhook()
        db.session.commit()
        db.session.remove()
    page = admin_client.get(BASE)
    live_url = select_one(page, "[data-live-poll]")["hx-get"]
    assert admin_client.get(live_url, headers={"HX-Request": "true"}).status_code == 204
    edited = admin_client.post(f"{BASE}/{webhook_id}/edit", headers={"HX-Request": "true"}, data={
        "csrf_token": admin_client.csrf_token, "name": "Receiver", "url": "https://hooks.example.com/x",
        "events": ["asset.create", "user.create"], "enabled": "y"})
    assert edited.status_code == 200, edited.get_data(as_text=True)
    redrawn = admin_client.get(live_url, headers={"HX-Request": "true"})
    assert redrawn.status_code == 200 and "user.create" in redrawn.get_data(as_text=True)


def test_an_attempt_recorded_after_a_later_one_still_redraws_the_page(app, admin_client):
    """An attempt is recorded when it ends: one that timed out (started 10 s ago) recorded after another that started
    1 s ago still changes what the open page's live poll sees, so the health column shows it."""
    with app.app_context():
        quick = make_webhook("Quick")
        slow = make_webhook("Slow")
        make_message(quick, MessageStatus.SENT, age=timedelta(seconds=1), attempts=[(True, 204, None, "")])
        db.session.commit()
        db.session.remove()
    live_url = select_one(admin_client.get(BASE), "[data-live-poll]")["hx-get"]
    assert admin_client.get(live_url, headers={"HX-Request": "true"}).status_code == 204
    with app.app_context():
        make_message(slow, MessageStatus.SCHEDULED_RETRY, age=timedelta(seconds=10),
                     attempts=[(False, None, "timeout", "no complete answer within 10 s")])
        db.session.commit()
        db.session.remove()
    redrawn = admin_client.get(live_url, headers={"HX-Request": "true"})
    assert redrawn.status_code == 200
    assert "0% of 1 attempt succeeded" in text_of(select_one(redrawn, f"#webhook-row-{slow} td.health"))
