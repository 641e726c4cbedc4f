"""Delivery actors: send a webhook's due messages as a batch, or one message's attempt; put due messages back."""

import logging
import random
from datetime import datetime

import redis
from flask import current_app

from webhooks_app.extensions import db
from webhooks_app.models import utcnow
from webhooks_app.queue import actor
from webhooks_app.services.attempts import Outcome
from webhooks_app.services.claims import backlog_lease_seconds, mark_due_messages
from webhooks_app.services.delivery import deliver_backlog, deliver_message
from webhooks_app.services.endpoint_slots import SendSlots

logger = logging.getLogger(__name__)

DELIVERY_QUEUE = "deliveries"
DEFER_MILLISECONDS = 250
MAX_DEFER_MILLISECONDS = 5000
SWEEP_BATCH = 1000
BACKLOG_REQUEST_PREFIX = "webhooks:backlog-requested:"
# A request outlives its batch's wait in the queue; if it expires first, the worst is a second batch
# that finds nothing to send.
BACKLOG_REQUEST_MILLISECONDS = 30_000


def endpoint_slots() -> SendSlots:
    """The per-webhook and per-host concurrency caps, backed by the broker's Redis (built once per app)."""
    slots = current_app.extensions.get("send_slots")
    if slots is None:
        config = current_app.config
        client = current_app.extensions["dramatiq_broker"].client
        slots = SendSlots(client, config["WEBHOOKS_MAX_SENDS_PER_WEBHOOK"], config["WEBHOOKS_MAX_SENDS_PER_HOST"],
                          backlog_lease_seconds())
        current_app.extensions["send_slots"] = slots
    return slots


@actor(queue_name=DELIVERY_QUEUE, max_retries=0, time_limit=120_000)
def deliver(message_id: int, deferrals: int = 0) -> None:
    """Make the next attempt of one message; the database decides whether one is owed."""
    if deliver_message(message_id, endpoint_slots()) == Outcome.DEFERRED:
        # The endpoint already has its share of sends in flight: try again later, leaving this
        # thread free for other endpoints.
        deliver.send_with_options(args=(message_id, deferrals + 1), delay=defer_delay_milliseconds(deferrals))


@actor(queue_name=DELIVERY_QUEUE, max_retries=0, time_limit=120_000)
def deliver_webhook_backlog(webhook_id: int, deferrals: int = 0) -> None:
    """Send a batch of one webhook's due messages; ask for another while some remain."""
    # Forget the request before claiming: a message committed after this point asks for a new batch.
    current_app.extensions["dramatiq_broker"].client.delete(backlog_request_key(webhook_id))
    # A full batch asks for the next one before sending, so a long backlog is worked on by several
    # batches at once, as many as the endpoint's send slots admit.
    outcome = deliver_backlog(webhook_id, endpoint_slots(),
                              on_full_batch=lambda: request_backlog_delivery([webhook_id]))
    if outcome.deferred:
        defer_backlog_delivery(webhook_id, deferrals)
    elif outcome.more:
        request_backlog_delivery([webhook_id])
    schedule_retries(webhook_id, outcome.retries_due)


def schedule_retries(webhook_id: int, due_times: tuple[datetime, ...]) -> None:
    """Put a batch for the webhook on the queue with Dramatiq's delay, due when its scheduled retries are.

    The database stays the truth: if this delayed entry is lost (Redis down or flushed), the sweeper sends
    the retries once they are overdue by WEBHOOKS_REQUEUE_AFTER_SECONDS.
    """
    if not due_times:
        return
    now = utcnow()
    try:
        for due in due_times:
            delay = max(0, int((due - now).total_seconds() * 1000))
            deliver_webhook_backlog.send_with_options(args=(webhook_id,), delay=delay)
    except redis.RedisError as error:
        logger.error("Redis unavailable: retries of webhook %s wait for the sweeper (%s)", webhook_id, error)


def defer_backlog_delivery(webhook_id: int, deferrals: int) -> None:
    """Ask for the webhook's batch again after a backoff, unless a batch is already on its way for it.

    The request key is held through the delay, so a webhook whose endpoint is full has at most one
    batch waiting, however many events arrive meanwhile.
    """
    delay = defer_delay_milliseconds(deferrals)
    client = current_app.extensions["dramatiq_broker"].client
    if client.set(backlog_request_key(webhook_id), 1, nx=True, px=delay + BACKLOG_REQUEST_MILLISECONDS):
        deliver_webhook_backlog.send_with_options(args=(webhook_id, deferrals + 1), delay=delay)


def backlog_request_key(webhook_id: int) -> str:
    return f"{BACKLOG_REQUEST_PREFIX}{webhook_id}"


def request_backlog_delivery(webhook_ids: list[int]) -> bool:
    """Enqueue a batch for each webhook that has none waiting in the queue; False (logged) when Redis is down.

    Called after the new messages are committed. A batch already waiting will see them, because it
    forgets its request before it claims; the sweeper sends whatever a lost request leaves behind.
    """
    try:
        broker = current_app.extensions["dramatiq_broker"]
        pipeline = broker.client.pipeline(transaction=False)
        for webhook_id in webhook_ids:
            pipeline.set(backlog_request_key(webhook_id), 1, nx=True, px=BACKLOG_REQUEST_MILLISECONDS)
        requested = [webhook_id for webhook_id, new in zip(webhook_ids, pipeline.execute(), strict=True) if new]
        broker.enqueue_many([deliver_webhook_backlog.message(webhook_id) for webhook_id in requested])
    except redis.RedisError as error:
        logger.error("Redis unavailable: messages for %d webhook(s) wait in the database (%s)",
                     len(webhook_ids), error)
        return False
    return True


def defer_delay_milliseconds(deferrals: int) -> int:
    """250 ms, then doubling up to 5 s, with jitter: a hung endpoint's backlog waits without churning the queue."""
    delay = min(DEFER_MILLISECONDS * 2 ** min(deferrals, 16), MAX_DEFER_MILLISECONDS)
    return int(delay * random.uniform(0.8, 1.2))


def enqueue_messages(message_ids: list[int]) -> bool:
    """Put committed messages on the queue; False (logged) when Redis is down: the sweeper sends them later."""
    try:
        broker = current_app.extensions["dramatiq_broker"]
        broker.enqueue_many([deliver.message(message_id) for message_id in message_ids])
    except redis.RedisError as error:
        logger.error("Redis unavailable: %d webhook message(s) wait in the database (%s)", len(message_ids), error)
        return False
    return True


def requeue_due_messages() -> int:
    """Ask again for the sending of every message that is due and neither in flight nor waiting; returns how many.

    A webhook's messages are asked for as one batch; test messages, and those of deleted webhooks,
    one by one.
    """
    total = 0
    while True:
        due = mark_due_messages(SWEEP_BATCH, current_app.config["WEBHOOKS_REQUEUE_AFTER_SECONDS"])
        db.session.commit()
        if not due:
            return total
        webhook_ids = sorted({message.webhook_id for message in due if message.webhook_id and not message.is_test})
        singles = [message.id for message in due if not message.webhook_id or message.is_test]
        if not (request_backlog_delivery(webhook_ids) and enqueue_messages(singles)):
            return total
        total += len(due)
        if len(due) < SWEEP_BATCH:
            return total
