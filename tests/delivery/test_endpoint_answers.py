"""What an endpoint's answer asks for (Standard Webhooks' sender rules): 410 Gone disables the webhook at once,
and a 429 or 503 with Retry-After delays the next attempt, capped at 24 h, with bad values ignored."""

import time
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from urllib.parse import quote

import pytest
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, DeliveryProcesses, delivery_environment, mail_environment, make_user
from markup import parse, text_of
from servers import wait_for
from sqlalchemy import select

from webhooks_app.extensions import db
from webhooks_app.models import Attempt, Message, MessageStatus, Webhook, utcnow
from webhooks_app.services.dispatch import deliver_backlog
from webhooks_app.services.failure_causes import GONE_REASON
from webhooks_app.services.intake import accept_event, emit_event
from webhooks_app.services.webhooks import WebhookFields, create_webhook


def add_webhook(app, url: str) -> int:
    with app.app_context():
        webhook, _ = create_webhook(WebhookFields("Endpoint", url, ("asset.create",), True))
        db.session.commit()
        return webhook.id


def emit(app, count: int) -> None:
    with app.app_context():
        for asset_id in range(1, count + 1):
            emit_event({"type": "asset.create", "assetId": asset_id, "userId": 1})


def attempts_of(app, message_number: int = 0) -> list[Attempt]:
    with app.app_context():
        message_id = list(db.session.scalars(select(Message.id).order_by(Message.id)))[message_number]
        rows = list(db.session.scalars(select(Attempt).where(Attempt.message_id == message_id)
                                       .order_by(Attempt.number)))
        db.session.expunge_all()
        return rows


def test_410_gone_disables_at_once_fails_the_rest_unsent_and_emails(app, fresh_redis, certificates, receiver,
                                                                    smtp_server):
    """The first 410 answer disables the webhook with the documented cause; the batch's other messages end Failed
    unsent (the endpoint gets one request); one Disabled email says why, and no warning comes."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    webhook_id = add_webhook(app, receiver.url("/status/410"))
    emit(app, 3)  # waiting in the queue: the worker's one batch takes all three
    processes = DeliveryProcesses(delivery_environment(fresh_redis.url, certificates,
                                                       **mail_environment(smtp_server.url, certificates)))
    try:
        (mail,) = smtp_server.wait_for_mail(1)
    finally:
        processes.stop()
    assert "was disabled" in mail.subject and GONE_REASON in mail.body
    assert len(receiver.received) == 1
    with app.app_context():
        webhook = db.session.get(Webhook, webhook_id)
        assert webhook.enabled is False and webhook.disabled_reason == GONE_REASON
        first, *rest = db.session.scalars(select(Message).order_by(Message.id))
        assert (first.status, first.attempts_made, first.failure_reason) == (MessageStatus.FAILED, 1, GONE_REASON)
        assert [(m.status, m.attempts_made) for m in rest] == [(MessageStatus.FAILED, 0)] * 2
        assert all("webhook is disabled" in m.failure_reason for m in rest)
    assert smtp_server.received == [mail]


@pytest.mark.parametrize("status", [503, 429])
def test_retry_after_seconds_delays_the_next_attempt_and_the_details_say_so(app, admin_client, receiver,
                                                                            delivery_processes, status):
    """With a 1 s ladder, a 503 or 429 answering `Retry-After: 3` gets its next attempt no earlier than 3 s later,
    still one rung; the log's attempt details say the endpoint asked to wait."""
    add_webhook(app, receiver.url(f"/retry-after/{status}/3"))
    emit(app, 1)
    wait_for(lambda: len(attempts_of(app)) >= 2, timeout=30, message="the second attempt")
    first, second = attempts_of(app)[:2]
    assert (second.started_at - first.started_at).total_seconds() >= 3
    assert "the endpoint asked to wait 3 s (Retry-After): the next attempt is no earlier than that" in \
        first.error_detail
    details = parse(admin_client.get(f"/system/integrations/api/activity/messages/{first.message_id}"))
    assert "asked to wait 3 s (Retry-After)" in text_of(details)


def test_retry_after_as_an_http_date(app, receiver, delivery_processes):
    """An HTTP date some seconds ahead delays the next attempt until then (to the second), past the 1 s ladder."""
    wait_for(lambda: "ready for action" in delivery_processes.worker.output(), message="the worker to start")
    until = int(time.time()) + 5
    add_webhook(app, receiver.url("/retry-after/503/" + quote(formatdate(until, usegmt=True))))
    emit(app, 1)
    wait_for(lambda: len(attempts_of(app)) >= 2, timeout=30, message="the second attempt")
    first, second = attempts_of(app)[:2]
    moment = datetime.fromtimestamp(until, UTC).replace(tzinfo=None)
    assert (moment - first.started_at).total_seconds() > 2  # the ladder alone would have tried earlier
    assert second.started_at >= moment
    assert "(Retry-After)" in first.error_detail


@pytest.mark.parametrize(("value", "wait_seconds", "detail"), [
    ("604800", 24 * 3600, "asked to wait 168 h (Retry-After), capped at 24 h"),
    ("soon", 1, None),
    ("-30", 1, None),
    ("1.5", 1, None),
    ("9" * 80, 1, None),
    ("Thu, 32 Foo 2026 99:00:00 GMT", 1, None),
])
def test_retry_after_is_capped_and_bad_values_are_ignored(app, app_context, receiver, value, wait_seconds, detail):
    """Header values are untrusted: a week waits the 24 h cap; words, negatives, fractions, huge or broken dates
    are ignored and the ladder's 1 s applies, with nothing said about Retry-After."""
    webhook, _ = create_webhook(WebhookFields("Endpoint", receiver.url("/retry-after/503/" + quote(value)),
                                              ("asset.create",), True))
    accept_event({"type": "asset.create", "assetId": 1, "userId": 1})
    db.session.commit()
    before = utcnow()
    assert deliver_backlog(webhook.id).count("retry_scheduled") == 1
    message = db.session.scalars(select(Message)).one()
    wait = (message.next_attempt_at - before).total_seconds()
    assert wait_seconds - 1 <= wait <= wait_seconds + 5
    error_detail = db.session.scalars(select(Attempt.error_detail)).one()
    if detail:
        assert detail in error_detail
    else:
        assert error_detail == "HTTP 503"


def test_retry_after_shorter_than_the_ladder_keeps_the_ladder(app, app_context, receiver):
    """Retry-After never shortens the ladder: 1 s asked against a 300 s rung waits 300 s, and the details say so."""
    app.config["WEBHOOKS_RETRY_DELAYS"], ladder = (300, 300, 300, 300, 300), app.config["WEBHOOKS_RETRY_DELAYS"]
    try:
        webhook, _ = create_webhook(WebhookFields("Endpoint", receiver.url("/retry-after/429/1"),
                                                  ("asset.create",), True))
        accept_event({"type": "asset.create", "assetId": 1, "userId": 1})
        db.session.commit()
        deliver_backlog(webhook.id)
        message = db.session.scalars(select(Message)).one()
        assert message.next_attempt_at - utcnow() > timedelta(seconds=290)
        assert "within the retry ladder's wait of 5 min" in db.session.scalars(select(Attempt.error_detail)).one()
    finally:
        app.config["WEBHOOKS_RETRY_DELAYS"] = ladder
