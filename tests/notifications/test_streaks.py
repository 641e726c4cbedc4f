"""Failure streaks on the real database: one warning per streak however many worker threads record third
failures at once, no warning when a success came between a message's failures, and the estimate of when a
webhook will be disabled."""

import threading
from datetime import datetime, timedelta

from sqlalchemy import select, update

from webhooks_app.extensions import db
from webhooks_app.models import Message, Webhook, utcnow
from webhooks_app.services.dispatch import claim_message
from webhooks_app.services.intake import accept_event
from webhooks_app.services.notifications import NOTIFICATION_QUEUE, disable_estimate
from webhooks_app.services.record import attempt_record, record_batch
from webhooks_app.services.transport import SendResult
from webhooks_app.services.webhooks import WebhookFields, create_webhook

FAILED = SendResult(False, 5, 500, error_kind="http_status", error_detail="HTTP 500")
SUCCEEDED = SendResult(True, 5, 204)


def webhook_with_messages(count: int) -> tuple[int, list[int]]:
    webhook, _ = create_webhook(WebhookFields("Endpoint", "https://127.0.0.1:9/hook", ("asset.create",), True))
    for asset_id in range(1, count + 1):
        accept_event({"type": "asset.create", "assetId": asset_id, "userId": 1})
    db.session.commit()
    return webhook.id, list(db.session.scalars(select(Message.id).order_by(Message.id)))


def attempt(message_id: int, number: int, result: SendResult):
    """Claim a message as a batch would (made due first) and decide its attempt `number`."""
    db.session.execute(update(Message).where(Message.id == message_id)
                       .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    claimed = claim_message(message_id)
    db.session.commit()
    return attempt_record(claimed, number, utcnow(), result)


def queued_notifications(redis_server) -> int:
    return redis_server.client().llen(f"dramatiq:{NOTIFICATION_QUEUE}")


def test_third_failures_recorded_at_once_in_many_threads_claim_one_warning(app, app_context, fresh_redis):
    """Eight messages' third failures are recorded by eight threads at the same moment: the conditional UPDATE lets
    exactly one claim the warning, so one notification is queued."""
    webhook_id, message_ids = webhook_with_messages(8)
    for number in (1, 2):
        for message_id in message_ids:
            record_batch([attempt(message_id, number, FAILED)])
    assert queued_notifications(fresh_redis) == 0
    thirds = [attempt(message_id, 3, FAILED) for message_id in message_ids]
    start = threading.Barrier(len(thirds))
    errors = []

    def record(record_of_one):
        with app.app_context():
            try:
                start.wait()
                record_batch([record_of_one])
            except Exception as error:  # noqa: BLE001 - reported by the assertion below
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=record, args=(one,)) for one in thirds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert queued_notifications(fresh_redis) == 1
    db.session.expire_all()
    assert db.session.get(Webhook, webhook_id).warned_at is not None


def test_no_warning_when_a_success_came_between_a_messages_failures(app, app_context, fresh_redis):
    """A fails twice, B succeeds (the streak ends), A fails a third time: no warning, since the webhook delivered
    after A's failures began. C then fails three times in the new streak: one warning."""
    webhook_id, (a, b, c) = webhook_with_messages(3)
    record_batch([attempt(a, 1, FAILED)])
    record_batch([attempt(a, 2, FAILED)])
    record_batch([attempt(b, 1, SUCCEEDED)])
    db.session.expire_all()
    assert db.session.get(Webhook, webhook_id).failure_streak_started_at is None
    record_batch([attempt(a, 3, FAILED)])
    db.session.expire_all()
    webhook = db.session.get(Webhook, webhook_id)
    assert webhook.failure_streak_started_at is not None and webhook.warned_at is None
    assert queued_notifications(fresh_redis) == 0
    for number in (1, 2, 3):
        record_batch([attempt(c, number, FAILED)])
    assert queued_notifications(fresh_redis) == 1


def test_disable_estimate_follows_the_ladder(app, app_context):
    """With the document's ladder, a message that failed its third attempt and is due at T disables the webhook at
    T + 12 h + 24 h if every attempt fails; the earliest pending message decides."""
    app.config["WEBHOOKS_RETRY_DELAYS"], ladder = (300, 1800, 1800, 43200, 86400), app.config["WEBHOOKS_RETRY_DELAYS"]
    try:
        webhook_id, (first, second) = webhook_with_messages(2)
        due = datetime(2030, 1, 1, 12, 0)
        db.session.execute(update(Message).where(Message.id == first)
                           .values(status="scheduled_retry", attempts_made=3, next_attempt_at=due))
        db.session.execute(update(Message).where(Message.id == second)
                           .values(status="scheduled_retry", attempts_made=1, next_attempt_at=due))
        db.session.commit()
        assert disable_estimate(webhook_id) == due + timedelta(hours=36)
    finally:
        app.config["WEBHOOKS_RETRY_DELAYS"] = ladder


def test_a_streak_shows_in_metrics_and_re_enabling_starts_afresh(app, app_context, client, fresh_redis):
    """/metrics counts enabled webhooks in a failure streak (webhooks_failing); enabling a disabled webhook again
    clears its streak and warning, so failures after the fix are a new streak with a warning of their own."""
    from webhooks_app.services.webhooks import set_webhook_enabled

    app.config["WEBHOOKS_METRICS_PUBLIC"] = True
    try:
        webhook_id, (message_id,) = webhook_with_messages(1)
        for number in (1, 2, 3):
            record_batch([attempt(message_id, number, FAILED)])
        assert "webhooks_failing 1.0" in client.get("/metrics").get_data(as_text=True)
        set_webhook_enabled(webhook_id, False)
        db.session.commit()
        assert "webhooks_failing 0.0" in client.get("/metrics").get_data(as_text=True)
        set_webhook_enabled(webhook_id, True)
        db.session.commit()
        webhook = db.session.get(Webhook, webhook_id)
        assert (webhook.failure_streak_started_at, webhook.warned_at) == (None, None)
    finally:
        app.config["WEBHOOKS_METRICS_PUBLIC"] = False
