"""Dispatch: put owed messages on the queue, and claim them when a worker takes the queue entry.

The second step of the delivery path (intake → dispatch → send → record). The database is the truth about
what is owed and when; Redis only carries "send this now". Each half of the protocol sits next to its pair:
a request for a webhook's batch (one `SET NX` key per webhook) and the batch that forgets it before it
claims; a deferral and the slot it waited for; a retry put on the queue with Dramatiq's delay and the
sweeper that sends whatever a lost queue entry left behind.
"""

import functools
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from flask import current_app
from sqlalchemy import or_, select, update

from ..database import autocommit_single_statement, retry_once_on_disconnect
from ..extensions import actor, db, queue_redis
from ..models import Message, MessageStatus, Webhook, utcnow
from . import delivery_statements as statements
from .delivery_statements import ClaimedMessage
from .record import Outcome, record_batch
from .send import BATCH_SECONDS, BatchOutcome, send_claimed, unsendable_reason
from .send_slots import BUSY_NOT_SLOW_SECONDS, WAIT_SECONDS, SendSlots, slot_keys

logger = logging.getLogger(__name__)

DELIVERY_QUEUE = "deliveries"
BATCH_SIZE = 50
# A batch waits this long for a busy webhook's slot while the batches there are young, instead of
# stepping aside: the others finish within BATCH_SECONDS, and stepping aside costs a queue round.
SLOT_WAIT_SECONDS = 0.5
DEFER_MILLISECONDS = 250
MAX_DEFER_MILLISECONDS = 5000
SWEEP_BATCH = 1000
BATCH_REQUEST_PREFIX = "webhooks:backlog-requested:"
# A request outlives its batch's wait in the queue; if it expires first, the worst is a second batch
# that finds nothing to send.
BATCH_REQUEST_MILLISECONDS = 30_000
# Each queue entry is its own Redis round trip: a fan-out to more webhooks than this is handed to a worker as
# one entry per RELAY_CHUNK webhooks, so the intake answers at once however many webhooks an event has.
RELAY_ABOVE = 8
RELAY_CHUNK = 500


# --- the queue entries ------------------------------------------------------------------------------------


@actor(queue_name=DELIVERY_QUEUE, max_retries=0, time_limit=120_000)
def deliver_webhook_backlog(webhook_id: int, deferrals: int = 0) -> None:
    """Send a batch of one webhook's due messages; ask for another while some remain."""
    # Forget the request before claiming: a message committed after this point asks for a new batch.
    queue_redis().delete(batch_request_key(webhook_id))
    # A full batch asks for the next one before sending, so a long backlog is worked on by several
    # batches at once, as many as the webhook's send slots admit.
    outcome = deliver_backlog(webhook_id, send_slots(), on_full_batch=lambda: request_batches([webhook_id]))
    if outcome.deferred:
        defer_batch(webhook_id, deferrals)
    elif outcome.more:
        request_batches([webhook_id])
    schedule_retries(webhook_id, outcome.retries_due)


@actor(queue_name=DELIVERY_QUEUE, max_retries=0, time_limit=120_000)
def deliver(message_id: int, deferrals: int = 0) -> None:
    """Make the next attempt of one message (a test, a deleted webhook's leftover); the database decides."""
    if deliver_message(message_id, send_slots()) == Outcome.DEFERRED:
        # The webhook already has its share of sends in flight: try again later, leaving this thread
        # free for other webhooks.
        deliver.send_with_options(args=(message_id, deferrals + 1), delay=defer_delay_milliseconds(deferrals))


@actor(queue_name=DELIVERY_QUEUE, max_retries=0, time_limit=60_000)
def enqueue_batches(webhook_ids: list[int]) -> None:
    """Put one batch entry per webhook on the queue (webhooks whose request keys are already set)."""
    for webhook_id in webhook_ids:
        deliver_webhook_backlog.send(webhook_id)


def batch_request_key(webhook_id: int) -> str:
    return f"{BATCH_REQUEST_PREFIX}{webhook_id}"


# SET NX of each request key in one command: the intake calls this for every event.
REQUEST_SCRIPT = """
local new = {}
for index, key in ipairs(KEYS) do
    if redis.call('SET', key, 1, 'NX', 'PX', ARGV[1]) then new[#new + 1] = index end
end
return new
"""


@functools.cache
def _request_script(client: redis.Redis):
    return client.register_script(REQUEST_SCRIPT)


def request_batches(webhook_ids: list[int]) -> bool:
    """Enqueue a batch for each webhook that has none waiting; False (logged) when Redis is down.

    Called after the new messages are committed. A batch already waiting will see them, because it
    forgets its request before it claims; the sweeper sends whatever a lost request leaves behind.
    """
    if not webhook_ids:
        return True
    try:
        new = _request_script(queue_redis())(keys=[batch_request_key(webhook_id) for webhook_id in webhook_ids],
                                             args=[BATCH_REQUEST_MILLISECONDS])
        requested = [webhook_ids[int(index) - 1] for index in new]
        if len(requested) > RELAY_ABOVE:
            for start in range(0, len(requested), RELAY_CHUNK):
                enqueue_batches.send(requested[start:start + RELAY_CHUNK])
        else:
            enqueue_batches(requested)
    except redis.RedisError as error:
        logger.error("Redis unavailable: messages for %d webhook(s) wait in the database (%s)",
                     len(webhook_ids), error)
        return False
    return True


def enqueue_messages(message_ids: list[int]) -> bool:
    """Put committed single messages on the queue; False (logged) when Redis is down: the sweeper sends them."""
    return send_each(deliver, message_ids, "webhook message(s)")


def send_each(queued_actor, row_ids: list[int], what: str) -> bool:
    """One queue entry of `queued_actor` per committed row; False (logged) when Redis is down (the rows wait in the
    database for their sweeper)."""
    try:
        for row_id in row_ids:
            queued_actor.send(row_id)
    except redis.RedisError as error:
        logger.error("Redis unavailable: %d %s wait in the database (%s)", len(row_ids), what, error)
        return False
    return True


def defer_batch(webhook_id: int, deferrals: int) -> None:
    """Ask for the webhook's batch again after a backoff, unless a batch is already on its way for it.

    The request key is held through the delay, so a webhook whose slots are full has at most one batch
    waiting, however many events arrive meanwhile.
    """
    delay = defer_delay_milliseconds(deferrals)
    if queue_redis().set(batch_request_key(webhook_id), 1, nx=True, px=delay + BATCH_REQUEST_MILLISECONDS):
        deliver_webhook_backlog.send_with_options(args=(webhook_id, deferrals + 1), delay=delay)


def defer_delay_milliseconds(deferrals: int) -> int:
    """250 ms, then doubling up to 5 s, with jitter: a hung endpoint's backlog waits without churning the queue."""
    delay = min(DEFER_MILLISECONDS * 2 ** min(deferrals, 16), MAX_DEFER_MILLISECONDS)
    return int(delay * random.uniform(0.8, 1.2))


def schedule_retries(webhook_id: int, due_times: tuple[datetime, ...]) -> None:
    """Put a batch for the webhook on the queue with Dramatiq's delay, due when its scheduled retries are.

    The database stays the truth: if this delayed entry is lost (Redis down or flushed), the sweeper sends
    the retries once they are overdue by WEBHOOKS_REQUEUE_AFTER_SECONDS.
    """
    now = utcnow()
    try:
        for due in due_times:
            delay = max(0, int((due - now).total_seconds() * 1000))
            deliver_webhook_backlog.send_with_options(args=(webhook_id,), delay=delay)
    except redis.RedisError as error:
        logger.error("Redis unavailable: retries of webhook %s wait for the sweeper (%s)", webhook_id, error)


def requeue_due_messages() -> int:
    """The sweeper: ask again for every message that is due and neither in flight nor waiting; returns how many.

    A webhook's messages are asked for as one batch; test messages, and those of deleted webhooks, one by one.
    """
    total = 0
    while True:
        due = mark_due_messages(SWEEP_BATCH, current_app.config["WEBHOOKS_REQUEUE_AFTER_SECONDS"])
        db.session.commit()
        if not due:
            return total
        webhook_ids = sorted({message.webhook_id for message in due if message.webhook_id and not message.is_test})
        singles = [message.id for message in due if not message.webhook_id or message.is_test]
        if not (request_batches(webhook_ids) and enqueue_messages(singles)):
            return total
        total += len(due)
        if len(due) < SWEEP_BATCH:
            return total


# --- the claims --------------------------------------------------------------------------------------------


def claim_lease_seconds() -> float:
    """How long a claim lasts: the send deadline plus a margin; a killed worker's claim expires after it."""
    config = current_app.config
    return config["WEBHOOKS_TIMEOUT_SECONDS"] + config["WEBHOOKS_CLAIM_MARGIN_SECONDS"]


def backlog_lease_seconds() -> float:
    """A batch's claims last one batch's sending time longer than a single message's."""
    return BATCH_SECONDS + claim_lease_seconds()


def send_slots() -> SendSlots:
    """The per-webhook and per-host send caps, backed by the queue's Redis (built once per app)."""
    slots = current_app.extensions.get("send_slots")
    if slots is None:
        config = current_app.config
        slots = SendSlots(queue_redis(), config["WEBHOOKS_MAX_SENDS_PER_WEBHOOK"],
                          config["WEBHOOKS_MAX_SENDS_PER_HOST"], backlog_lease_seconds())
        current_app.extensions["send_slots"] = slots
    return slots


def _claimed(rows) -> list[ClaimedMessage]:
    return sorted((ClaimedMessage(**row._mapping) for row in rows), key=lambda claimed: claimed.id)


def claim_message(message_id: int, now: datetime | None = None) -> ClaimedMessage | None:
    """Atomically take one due, unclaimed (or lease-expired) message; None when it is not ours to send."""
    now = now or utcnow()
    autocommit_single_statement()
    claimed = _claimed(db.session.connection().execute(statements.claim(), {
        "claim_id": message_id, "now": now, "lease_until": now + timedelta(seconds=claim_lease_seconds()),
    }))
    return claimed[0] if claimed else None


def claim_backlog(webhook_id: int, limit: int = BATCH_SIZE) -> list[ClaimedMessage]:
    """Claim up to `limit` due messages of a webhook, oldest due first, in one statement."""
    now = utcnow()
    autocommit_single_statement()
    return _claimed(db.session.connection().execute(statements.claim_backlog(), {
        "backlog_webhook_id": webhook_id, "backlog_limit": limit, "now": now,
        "lease_until": now + timedelta(seconds=backlog_lease_seconds()),
    }))


def webhook_url(webhook_id: int) -> str | None:
    """The webhook's URL, None when it was deleted."""
    autocommit_single_statement()
    url = db.session.scalar(select(Webhook.url).where(Webhook.id == webhook_id))
    db.session.commit()
    return url


def _with_slot(slots: SendSlots | None, webhook_id: int, url: str, wait_seconds: float, young_seconds: float,
               work: Callable[[], BatchOutcome], on_refused: Callable[[], BatchOutcome]) -> BatchOutcome:
    if slots is None:
        return work()
    keys, holder = slot_keys(webhook_id, url), str(uuid.uuid4())
    if not slots.acquire(keys, holder, wait_seconds=wait_seconds, young_seconds=young_seconds):
        return on_refused()
    try:
        return work()
    finally:
        slots.release(keys, holder)


def deliver_backlog(webhook_id: int, slots: SendSlots | None = None, limit: int = BATCH_SIZE,
                    on_full_batch: Callable[[], object] | None = None) -> BatchOutcome:
    """Send a webhook's due messages in order, holding one of its send slots; commits as it goes.

    The slot is taken before anything is claimed: a busy webhook defers the batch at the cost of one read,
    not of claiming and releasing its messages. `on_full_batch` runs after a claim that took `limit`
    messages, before the sends.
    """
    url = retry_once_on_disconnect(lambda: webhook_url(webhook_id), "reading a webhook's URL") if slots else None

    def claim_and_send() -> BatchOutcome:
        claimed = retry_once_on_disconnect(lambda: claim_backlog(webhook_id, limit), "claiming a batch")
        db.session.commit()  # never hold a transaction (or SQLite's write lock) across the network calls
        if not claimed:
            return BatchOutcome()
        full = len(claimed) == limit
        if on_full_batch and full:
            on_full_batch()
        return send_claimed(claimed, full)

    if url is None:
        return claim_and_send()
    return _with_slot(slots, webhook_id, url, SLOT_WAIT_SECONDS, BATCH_SECONDS + BUSY_NOT_SLOW_SECONDS,
                      claim_and_send, lambda: BatchOutcome(deferred=True, more=True))


def deliver_message(message_id: int, slots: SendSlots | None = None) -> Outcome:
    """Make one message's next attempt if it is due and nobody else holds it: a batch of one; commits."""
    claimed = retry_once_on_disconnect(lambda: claim_message(message_id), "claiming a message")
    db.session.commit()  # never hold a transaction (or SQLite's write lock) across the network call
    if claimed is None:
        return Outcome.NOT_DUE
    if unsendable_reason(claimed) or slots is None:
        return send_claimed([claimed], full=False).outcomes[claimed.id]

    def refused() -> BatchOutcome:
        # The caller puts it back on the queue with a delay: the sweeper need not.
        record_batch([], release_ids=[claimed.id], requeued=True)
        return BatchOutcome({claimed.id: Outcome.DEFERRED}, deferred=True)

    outcome = _with_slot(slots, claimed.webhook_id, claimed.url, WAIT_SECONDS, BUSY_NOT_SLOW_SECONDS,
                         lambda: send_claimed([claimed], full=False), refused)
    return outcome.outcomes[claimed.id]


@dataclass(frozen=True)
class DueMessage:
    """A message the sweeper found due and marked as enqueued."""

    id: int
    webhook_id: int | None
    is_test: bool


def mark_due_messages(limit: int, requeue_after_seconds: float, now: datetime | None = None) -> list[DueMessage]:
    """Mark and return messages that are due, not in flight, and not already waiting in the queue."""
    now = now or utcnow()
    stale = now - timedelta(seconds=requeue_after_seconds)
    candidates = list(db.session.scalars(
        select(Message.id)
        .where(
            Message.status.in_(MessageStatus.PENDING),
            Message.next_attempt_at <= now,
            or_(Message.claimed_until.is_(None), Message.claimed_until < now),
            or_(Message.enqueued_at.is_(None), Message.enqueued_at < stale),
        )
        .order_by(Message.next_attempt_at)
        .limit(limit)
    ))
    if not candidates:
        return []
    marked = db.session.execute(
        update(Message)
        .where(Message.id.in_(candidates), or_(Message.enqueued_at.is_(None), Message.enqueued_at < stale))
        .values(enqueued_at=now)
        .returning(Message.id, Message.webhook_id, Message.is_test)
        .execution_options(synchronize_session=False)
    )
    return sorted((DueMessage(*row) for row in marked), key=lambda message: message.id)
