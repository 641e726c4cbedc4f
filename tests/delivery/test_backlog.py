"""Batch delivery of a webhook's due messages: one claim, the sends in order, one write, one queue entry per webhook."""

import threading
import time
from datetime import timedelta

from sqlalchemy import select, update

from webhooks_app.extensions import db
from webhooks_app.models import Attempt, Message, MessageStatus, Webhook, utcnow
from webhooks_app.services import send
from webhooks_app.services.dispatch import claim_backlog, deliver_backlog
from webhooks_app.services.intake import accept_event
from webhooks_app.services.send_slots import SendSlots, slot_keys
from webhooks_app.services.webhooks import WebhookFields, create_webhook


def add_webhook(url: str) -> int:
    webhook, _ = create_webhook(WebhookFields("Endpoint", url, ("asset.create",), True))
    db.session.commit()
    return webhook.id


def owe(count: int) -> list[int]:
    """`count` committed events, each owed to every subscribed webhook; returns the message ids."""
    message_ids = []
    for asset_id in range(1, count + 1):
        message_ids += accept_event({"type": "asset.create", "assetId": asset_id, "userId": 1}).message_ids
        db.session.commit()
    return message_ids


def statuses(webhook_id: int) -> list[str]:
    db.session.expire_all()
    return list(db.session.scalars(select(Message.status).where(Message.webhook_id == webhook_id)
                                   .order_by(Message.id)))


def test_a_batch_sends_every_due_message_of_the_webhook_in_order(app_context, receiver):
    """Five due messages go out oldest first, each with its own attempt row, and end Sent."""
    webhook_id = add_webhook(receiver.url("/ok/batch"))
    owe(5)
    outcome = deliver_backlog(webhook_id)
    assert (outcome.sent, outcome.failed, outcome.more) == (5, 0, False)
    assert [delivery.json()["event"]["assetId"] for delivery in receiver.received] == [1, 2, 3, 4, 5]
    assert statuses(webhook_id) == [MessageStatus.SENT] * 5
    attempts = db.session.scalars(select(Attempt).order_by(Attempt.message_id)).all()
    assert [(attempt.number, attempt.succeeded, attempt.status_code) for attempt in attempts] == [(1, True, 204)] * 5


def test_a_batch_leaves_other_webhooks_future_retries_and_test_messages_alone(app_context, receiver):
    """Only this webhook's due, non-test messages are claimed."""
    webhook_id = add_webhook(receiver.url("/ok/mine"))
    other_id = add_webhook(receiver.url("/ok/other"))
    first, _, second, _ = owe(2)
    later = utcnow() + timedelta(hours=1)
    db.session.execute(update(Message).where(Message.id == second)
                       .values(status=MessageStatus.SCHEDULED_RETRY, next_attempt_at=later))
    db.session.execute(update(Message).where(Message.id == first).values(is_test=True))
    db.session.commit()
    assert deliver_backlog(webhook_id).sent == 0
    assert receiver.received == []
    assert statuses(webhook_id) == [MessageStatus.QUEUED, MessageStatus.SCHEDULED_RETRY]
    assert statuses(other_id) == [MessageStatus.QUEUED, MessageStatus.QUEUED]


def test_failures_in_a_batch_are_recorded_one_by_one(app, app_context, receiver):
    """An endpoint answering 500 gets every message of the batch tried once, each put on the retry ladder."""
    webhook_id = add_webhook(receiver.url("/status/500"))
    owe(3)
    outcome = deliver_backlog(webhook_id)
    assert (outcome.sent, outcome.count("retry_scheduled"), outcome.failed) == (0, 3, 0)
    assert statuses(webhook_id) == [MessageStatus.SCHEDULED_RETRY] * 3
    assert len(receiver.received) == 3
    with_retries = list(db.session.scalars(select(Message.next_attempt_at).where(Message.webhook_id == webhook_id)))
    # A delayed batch when the first of the three is due, and one when the last is.
    assert outcome.retries_due == tuple(sorted({min(with_retries), max(with_retries)}))


def test_a_full_batch_says_more_may_be_due(app_context, receiver):
    """With a batch of two and three messages owed, the first batch sends two and asks for another."""
    webhook_id = add_webhook(receiver.url("/ok"))
    owe(3)
    assert deliver_backlog(webhook_id, limit=2).more
    assert statuses(webhook_id) == [MessageStatus.SENT, MessageStatus.SENT, MessageStatus.QUEUED]
    assert not deliver_backlog(webhook_id, limit=2).more
    assert statuses(webhook_id) == [MessageStatus.SENT] * 3


def test_a_batch_stops_starting_sends_when_its_time_is_up(app_context, receiver, monkeypatch):
    """Past the batch's time, the claimed messages not yet sent are released for the next batch."""
    monkeypatch.setattr(send, "BATCH_SECONDS", 0)
    webhook_id = add_webhook(receiver.url("/ok"))
    owe(3)
    outcome = deliver_backlog(webhook_id)
    assert (outcome.sent, outcome.more) == (1, True)
    db.session.expire_all()
    claimed = db.session.scalars(select(Message.claimed_until).where(Message.webhook_id == webhook_id)).all()
    assert claimed == [None, None, None]
    assert statuses(webhook_id) == [MessageStatus.SENT, MessageStatus.QUEUED, MessageStatus.QUEUED]


def test_a_disabled_webhooks_due_messages_fail_unsent(app_context, receiver):
    """Messages still owed to a webhook disabled since are Failed with the reason, and nothing is sent."""
    webhook_id = add_webhook(receiver.url("/ok"))
    owe(2)
    db.session.execute(update(Webhook).where(Webhook.id == webhook_id).values(enabled=False))
    db.session.commit()
    assert deliver_backlog(webhook_id).failed == 2
    assert receiver.received == []
    reasons = db.session.scalars(select(Message.failure_reason).where(Message.webhook_id == webhook_id)).all()
    assert reasons == ["Not sent: its webhook is disabled when the attempt came due."] * 2


def test_a_busy_endpoint_defers_the_batch_before_claiming_anything(app_context, receiver, fresh_redis):
    """With every slot of the endpoint held by a slow send, the batch is deferred and no message is claimed."""
    slots = SendSlots(fresh_redis.client(), per_webhook=1, per_host=2, lease_seconds=30)
    webhook_id = add_webhook(receiver.url("/ok"))
    owe(2)
    keys = slot_keys(webhook_id, receiver.url("/ok"))
    assert slots.acquire(keys, "a slow send of this webhook", wait_seconds=0)
    fresh_redis.client().zadd(keys.webhook, {"a slow send of this webhook": time.time() + 25})
    outcome = deliver_backlog(webhook_id, slots)
    assert outcome.deferred and outcome.sent == 0
    db.session.expire_all()
    assert db.session.scalars(select(Message.claimed_until).where(Message.webhook_id == webhook_id)).all() == [None] * 2
    slots.release(keys, "a slow send of this webhook")
    assert deliver_backlog(webhook_id, slots).sent == 2
    assert fresh_redis.client().zcard(keys.webhook) == 0  # the batch gave its slot back
    assert fresh_redis.client().zcard(keys.host) == 0


def test_concurrent_claims_take_disjoint_messages(app, app_context, receiver):
    """Two batches claiming at once split the backlog: no message is claimed twice, none is left out."""
    webhook_id = add_webhook(receiver.url("/ok"))
    owed = owe(40)
    start = threading.Barrier(2)
    claims = []

    def claim():
        with app.app_context():
            start.wait()
            claims.append([message.id for message in claim_backlog(webhook_id, limit=25)])
            db.session.commit()

    threads = [threading.Thread(target=claim) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    first, second = claims
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(owed)


def test_one_batch_is_queued_per_webhook_until_it_starts(app_context, receiver, fresh_redis):
    """Messages for a webhook whose batch is still queued add no entry; once the batch starts, new ones do."""
    from webhooks_app.services.dispatch import deliver_webhook_backlog, request_batches

    webhook_id = add_webhook(receiver.url("/ok"))
    other_id = add_webhook(receiver.url("/ok/other"))
    owe(2)
    client = fresh_redis.client()
    assert request_batches([webhook_id, other_id]) and request_batches([webhook_id])
    assert client.llen("dramatiq:deliveries") == 2
    deliver_webhook_backlog(webhook_id)  # what the worker runs for the first entry
    assert statuses(webhook_id) == [MessageStatus.SENT] * 2
    owe(1)
    assert request_batches([webhook_id, other_id])
    assert client.llen("dramatiq:deliveries") == 3  # only the started batch's webhook got a new entry


def queued_entries(count: int) -> list:
    """Take `count` entries off the deliveries queue through the broker's consumer, and check none is left."""
    from webhooks_app.extensions import task_queue

    consumer = task_queue.broker.consume("deliveries", prefetch=count + 1, timeout=200)
    try:
        entries = [next(consumer) for _ in range(count)]
        assert next(consumer) is None, "more entries than expected"
        for entry in entries:
            consumer.ack(entry)
    finally:
        consumer.close()
    return [(entry.actor_name, entry.args) for entry in entries]


def test_a_large_fan_out_is_one_queue_entry_that_a_worker_expands(app_context, fresh_redis):
    """An event for twelve webhooks costs the intake one queue entry; the worker turns it into one batch each."""
    from webhooks_app.services.dispatch import RELAY_ABOVE, enqueue_batches, request_batches

    webhook_ids = list(range(1, RELAY_ABOVE + 5))
    assert request_batches(webhook_ids)
    assert queued_entries(1) == [("enqueue_batches", (webhook_ids,))]
    enqueue_batches(webhook_ids)  # what the worker runs for that entry
    assert queued_entries(len(webhook_ids)) == [("deliver_webhook_backlog", (hook,)) for hook in webhook_ids]
    assert request_batches(webhook_ids[:3]) and queued_entries(0) == []  # their batches are still waiting


def test_the_sweeper_asks_for_one_batch_per_webhook_and_sends_test_messages_singly(app_context, receiver,
                                                                                   fresh_redis):
    """Due messages the queue lost come back as one batch entry per webhook, plus one entry per test message."""
    import json

    from webhooks_app.services.dispatch import requeue_due_messages
    from webhooks_app.services.test_messages import create_test_message

    webhook_id = add_webhook(receiver.url("/ok"))
    owe(3)
    test_message_id = create_test_message(webhook_id, user_id=1)
    db.session.execute(update(Message).values(enqueued_at=None))  # as if Redis had lost their entries
    db.session.commit()
    assert requeue_due_messages() == 4
    entries = [json.loads(body) for body in fresh_redis.client().hvals("dramatiq:deliveries.msgs")]
    assert sorted((entry["actor_name"], entry["args"]) for entry in entries) == [
        ("deliver", [test_message_id]), ("deliver_webhook_backlog", [webhook_id])]
    assert requeue_due_messages() == 0  # marked: not asked for again before WEBHOOKS_REQUEUE_AFTER_SECONDS


def test_a_full_batch_asks_for_the_next_one_before_it_sends(app_context, receiver):
    """With more owed than one batch holds, the next batch is asked for before the first send goes out."""
    webhook_id = add_webhook(receiver.url("/ok"))
    owe(3)
    sends_when_asked = []
    deliver_backlog(webhook_id, limit=2, on_full_batch=lambda: sends_when_asked.append(len(receiver.received)))
    assert sends_when_asked == [0]
    deliver_backlog(webhook_id, limit=2, on_full_batch=lambda: sends_when_asked.append(len(receiver.received)))
    assert sends_when_asked == [0]  # the last message alone is not a full batch


def test_a_deferred_webhook_has_one_batch_waiting_however_often_it_is_deferred(app_context, receiver, fresh_redis):
    """Batches deferred by a full endpoint, and events arriving meanwhile, leave one delayed entry per webhook."""
    from webhooks_app.services.dispatch import (
        defer_batch,
        deliver_webhook_backlog,
        request_batches,
        send_slots,
    )

    webhook_id = add_webhook(receiver.url("/ok"))
    owe(2)
    slots = send_slots()
    keys = slot_keys(webhook_id, receiver.url("/ok"))
    assert slots.lease_seconds > 1.5
    for holder in range(slots.limits[0]):  # every slot of the webhook held by a batch that started 1.5 s ago
        fresh_redis.client().zadd(keys.webhook, {f"slow batch {holder}": time.time() + slots.lease_seconds - 1.5})
    deliver_webhook_backlog(webhook_id)  # finds the endpoint full: steps aside with a delay
    client = fresh_redis.client()
    defer_batch(webhook_id, 0)  # another of its batches, already running, steps aside too
    assert request_batches([webhook_id])  # and an event arrives
    assert client.llen("dramatiq:deliveries") == 0
    assert client.hlen("dramatiq:deliveries.DQ.msgs") == 1
    assert statuses(webhook_id) == [MessageStatus.QUEUED] * 2


def test_a_send_that_raises_mid_batch_is_a_failed_attempt_and_the_batch_goes_on(app_context, receiver, monkeypatch):
    """A third send that raises something unexpected is a recorded failed attempt on the ladder; the rest are sent."""
    webhook_id = add_webhook(receiver.url("/ok"))
    owe(4)
    real_send = send.send_prepared
    calls = []

    def send_then_break(prepared):
        calls.append(prepared.message_id)
        if len(calls) == 3:
            raise RuntimeError("a bug in the send path")
        return real_send(prepared)

    monkeypatch.setattr(send, "send_prepared", send_then_break)
    outcome = deliver_backlog(webhook_id)
    assert (outcome.sent, outcome.count("retry_scheduled")) == (3, 1)
    assert statuses(webhook_id) == [MessageStatus.SENT] * 2 + [MessageStatus.SCHEDULED_RETRY, MessageStatus.SENT]
    assert db.session.scalars(select(Message.claimed_until).where(Message.webhook_id == webhook_id)).all() == [None] * 4
    broken = db.session.scalars(select(Attempt).where(Attempt.succeeded.is_(False))).one()
    assert broken.error_kind == "unexpected" and "RuntimeError" in broken.error_detail
    assert len(receiver.received) == 3
