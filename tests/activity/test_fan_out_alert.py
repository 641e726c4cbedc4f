"""The alert for batches whose messages the worker has not made (it is down or far behind), on the Webhooks page and
the log pages, brought and cleared by their live polls."""

from datetime import timedelta

from factories import make_webhook
from markup import parse, select_one, text_of
from sqlalchemy import update

from webhooks_app.extensions import db
from webhooks_app.models import FanOut, utcnow
from webhooks_app.services.batch_intake import store_batch, validate_batch
from webhooks_app.services.fan_out import fan_out_messages

BASE = "/system/integrations/api"
HTMX = {"HX-Request": "true"}


def accept_batch(app, events: int, age: timedelta) -> int:
    """A batch accepted `age` ago whose fan-out no worker has run; its id."""
    with app.app_context():
        accepted = store_batch(validate_batch([{"type": "asset.create", "assetId": n, "userId": 1}
                                               for n in range(1, events + 1)]), "local")
        db.session.execute(update(FanOut).values(created_at=utcnow() - age))
        db.session.commit()
        return accepted[0].fan_out_id


def run_fan_out(app, fan_out_id: int) -> None:
    with app.app_context():
        fan_out_messages(fan_out_id)
        db.session.commit()


def test_no_alert_while_the_worker_keeps_up(app, admin_client):
    """A batch accepted a moment ago (younger than WEBHOOKS_REQUEUE_AFTER_SECONDS) shows no alert."""
    with app.app_context():
        make_webhook()
        db.session.commit()
    accept_batch(app, 3, timedelta(seconds=0))
    for path in ("/webhooks", "/activity"):
        assert text_of(select_one(admin_client.get(BASE + path), "#fan-out-alert")) == ""


def test_late_batches_show_the_alert_with_their_events_on_the_webhooks_and_log_pages(app, admin_client):
    """Batches older than WEBHOOKS_REQUEUE_AFTER_SECONDS with no messages made: the Webhooks page, a webhook's log and
    All activity say how many events wait and ask to check the worker."""
    with app.app_context():
        webhook_id = make_webhook()
        db.session.commit()
    accept_batch(app, 500, timedelta(minutes=5))
    accept_batch(app, 500, timedelta(minutes=4))
    accept_batch(app, 3, timedelta(minutes=2))
    for path in ("/webhooks", f"/webhooks/{webhook_id}/log", "/activity"):
        alert = text_of(select_one(admin_client.get(BASE + path), "#fan-out-alert [role=alert]"))
        assert "Events waiting for the worker." in alert and "1,003 events accepted in batches" in alert, path
        assert "Check that the worker process is running" in alert


def test_the_webhooks_page_poll_brings_and_clears_the_alert(app, admin_client):
    """The open Webhooks page's poll brings the alert out of band once a batch is late, and clears it once the
    worker has made the batch's messages."""
    with app.app_context():
        make_webhook()
        db.session.commit()
    poll = select_one(admin_client.get(f"{BASE}/webhooks"), "#webhooks-live")["hx-get"]
    assert admin_client.get(poll, headers=HTMX).status_code == 204
    fan_out_id = accept_batch(app, 2, timedelta(minutes=3))
    late = parse(admin_client.get(poll, headers=HTMX))
    alert = select_one(late, "#fan-out-alert")
    assert alert["hx-swap-oob"] == "true" and "2 events accepted in batches" in text_of(alert)
    poll = select_one(late, "#webhooks-live")["hx-get"]
    assert admin_client.get(poll, headers=HTMX).status_code == 204
    run_fan_out(app, fan_out_id)
    cleared = parse(admin_client.get(poll, headers=HTMX))
    assert text_of(select_one(cleared, "#fan-out-alert")) == ""


def test_the_log_poll_brings_and_clears_the_alert(app, admin_client):
    """An open log page's poll brings the alert once a batch is late and clears it once its messages are made."""
    with app.app_context():
        webhook_id = make_webhook()
        db.session.commit()
    poller = select_one(admin_client.get(f"{BASE}/webhooks/{webhook_id}/log"), "#log-poller")["hx-get"]
    assert admin_client.get(poller, headers=HTMX).status_code == 204
    fan_out_id = accept_batch(app, 1, timedelta(minutes=3))
    late = parse(admin_client.get(poller, headers=HTMX))
    assert "1 event accepted in batches since" in text_of(select_one(late, "#fan-out-alert"))
    run_fan_out(app, fan_out_id)
    cleared = parse(admin_client.get(select_one(late, "#log-poller")["hx-get"], headers=HTMX))
    assert text_of(select_one(cleared, "#fan-out-alert")) == ""
