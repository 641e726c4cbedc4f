"""Replay missed events: every stored event of a type a webhook subscribes to, since a time, that it has no Sent
and no pending message for, sent again as new messages, oldest first.

The web request (or the CLI) only stores a Replay row and puts one queue entry on the `replays` queue; the
`replay_missed_events` actor makes the messages in batches, each committed on its own and handed to dispatch
like an event's, and keeps at most AHEAD_BATCHES batches pending ahead of the webhook's sends, so a 100,000-event
replay neither holds a long lock nor makes the webhook's new events wait behind all of it. Every step is
idempotent: the Replay row remembers how far it got, and the database refuses a second pending message for an
event. Each batch locks its webhook's row first, so two replays of one webhook make their batches one after the
other and each sees what the other committed: without it, on PostgreSQL, a copy made, sent and no longer pending
while the other's INSERT ran on an older snapshot was made twice.
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from flask import current_app
from sqlalchemy import func, select

from ..database import dialect_name
from ..extensions import actor, db, queue_redis
from ..models import Message, MessageStatus, Replay, ReplayStatus, Webhook, WebhookSubscription, utcnow
from . import replay_statements as statements
from .counters import REPLAYED_MISSED_EVENTS, add_to_counter
from .dispatch import request_batches

logger = logging.getLogger(__name__)

REPLAY_QUEUE = "replays"
# A batch is one INSERT and one commit: short enough not to hold SQLite's write lock for long.
BATCH_SIZE = {"postgresql": 1000, "sqlite": 500}
# A replay's first batch is small, so its first messages are in the log (and on their way) at once.
FIRST_BATCH_SIZE = 100
AHEAD_BATCHES = 2
RUN_SECONDS = 5.0  # a run then hands over to a new queue entry, leaving its worker thread to others
# How soon a run whose webhook still owes AHEAD_BATCHES batches looks again: 200 ms while the webhook's sends
# make progress, doubling while they do not (a failing endpoint's retries), up to 5 s.
WAIT_MILLISECONDS = 200
MAX_WAIT_MILLISECONDS = 5000
ALIVE_PREFIX = "webhooks:replay-alive:"
LOCK_PREFIX = "webhooks:lock:replay:"
ALIVE_MARGIN_MILLISECONDS = 30_000
DEFAULT_LOOKBACK = timedelta(hours=24)
# A Since this much before the retention window's start is taken as its start: the edge the dialog offered
# moves on while the dialog is open.
EDGE_GRACE = timedelta(minutes=15)


class ReplayError(ValueError):
    """A replay was refused: the message says why, in words for the administrator."""


def retention_start(now: datetime) -> datetime:
    """The oldest time the activity log still keeps events for."""
    return now - timedelta(days=current_app.config["WEBHOOKS_LOG_RETENTION_DAYS"])


def check_since(since: datetime, now: datetime | None = None) -> datetime:
    """A replay's start time if it is within the retention window, else ReplayError naming the allowed range."""
    now = now or utcnow()
    earliest = retention_start(now)
    if since > now:
        raise ReplayError(f"Since is in the future ({since:%Y-%m-%d %H:%M} UTC): choose a time before now.")
    if earliest - EDGE_GRACE <= since < earliest:
        return earliest  # the window's edge as the dialog offered it, which has moved on while it was open
    if since < earliest:
        days = current_app.config["WEBHOOKS_LOG_RETENTION_DAYS"]
        raise ReplayError(f"Since must be within the last {days} days, the events the log keeps: "
                          f"choose {earliest:%Y-%m-%d %H:%M} UTC or later.")
    return since


def failure_streak_start(webhook_id: int) -> datetime | None:
    """When the webhook's latest run of failures began: its oldest Failed message since the last Sent one
    before its latest Failed message (tests left out); None when it has no Failed message."""
    delivered = (Message.webhook_id == webhook_id, Message.is_test.is_(False))
    latest_failed = db.session.scalar(select(func.max(Message.id)).where(
        *delivered, Message.status == MessageStatus.FAILED))
    if latest_failed is None:
        return None
    last_sent = db.session.scalar(select(func.max(Message.id)).where(
        *delivered, Message.status == MessageStatus.SENT, Message.id < latest_failed)) or 0
    return db.session.scalar(select(func.min(Message.created_at)).where(
        *delivered, Message.status == MessageStatus.FAILED, Message.id > last_sent))


def default_since(webhook: Webhook, now: datetime | None = None) -> datetime:
    """Where the dialog's Since starts: when the webhook was disabled or its failures began (the earlier),
    else 24 hours ago (not before the webhook existed); always within the retention window."""
    now = now or utcnow()
    moments = [moment for moment in (failure_streak_start(webhook.id),
                                     None if webhook.enabled else webhook.disabled_at) if moment is not None]
    since = min(moments) if moments else max(now - DEFAULT_LOOKBACK, webhook.created_at)
    earliest = retention_start(now)
    # To the minute, as the dialog's datetime-local input shows it; up, not down, at the retention window's edge.
    since = min(max(since, earliest), now).replace(second=0, microsecond=0)
    return since + timedelta(minutes=1) if since < earliest else since


def subscribed_types(webhook_id: int) -> list[str]:
    return list(db.session.scalars(select(WebhookSubscription.event_type)
                                   .where(WebhookSubscription.webhook_id == webhook_id)))


def missed_event_count(webhook_id: int, since: datetime) -> int:
    """The dry run: how many events a replay since `since` would send now."""
    types = subscribed_types(webhook_id)
    if not types:
        return 0
    return db.session.execute(statements.missed_count(),
                              {"since": since, "event_types": types, "webhook_id": webhook_id}).scalar_one()


def create_replay(webhook_id: int, since: datetime, requested_by: str, now: datetime | None = None) -> Replay:
    """Store a replay of the webhook's missed events since `since` (up to the newest event now); callers commit,
    then call start_replay. Refused with ReplayError for a disabled webhook or a time outside the retention."""
    now = now or utcnow()
    webhook = db.session.get(Webhook, webhook_id)
    if webhook is None:
        raise ReplayError(f"Webhook {webhook_id} does not exist; it may have been deleted.")
    if not webhook.enabled:
        raise ReplayError(f"Webhook “{webhook.name}” is disabled: enable it first, or its replayed messages "
                          "would end Failed unsent.")
    check_since(since, now)
    first = db.session.execute(statements.first_event_id(), {"since": since}).scalar()
    last = db.session.execute(statements.last_event_id()).scalar()
    replay = Replay(webhook_id=webhook_id, since=since, requested_by=requested_by[:254], created_at=now,
                    updated_at=now, cursor_event_id=(first or 1) - 1, last_event_id=last or 0,
                    status=ReplayStatus.RUNNING if first is not None else ReplayStatus.DONE,
                    finished_at=None if first is not None else now)
    db.session.add(replay)
    db.session.flush()
    return replay


def alive_key(replay_id: int) -> str:
    return f"{ALIVE_PREFIX}{replay_id}"


def start_replay(replay_id: int) -> bool:
    """Put a committed replay on the queue; False (logged) when Redis is down: the scheduler starts it later."""
    try:
        queue_redis().set(alive_key(replay_id), 1, px=ALIVE_MARGIN_MILLISECONDS)
        replay_missed_events.send(replay_id)
    except redis.RedisError as error:
        logger.error("Redis unavailable: replay %s starts when it answers (%s)", replay_id, error)
        return False
    return True


@dataclass(frozen=True)
class RunOutcome:
    """What one run of a replay did; `again_after_ms` says when to continue (None: finished, or not ours)."""

    created: int = 0
    again_after_ms: int | None = None
    waits: int = 0  # looks in a row at a webhook whose owed messages did not go down
    owed: int | None = None  # what the webhook owed at the last look, when the run waits for it


def _stop(replay: Replay, reason: str, now: datetime) -> None:
    replay.status, replay.stop_reason, replay.finished_at, replay.updated_at = ReplayStatus.STOPPED, reason, now, now


def replay_batch(replay: Replay, event_types: list[str], batch_size: int, now: datetime) -> tuple[int, bool]:
    """Make the messages of the replay's next batch of missed events and move its cursor; callers commit.

    Returns (messages made, whether the replay is finished).
    """
    parameters = {"webhook_id": replay.webhook_id, "event_types": event_types, "since": replay.since}
    event_ids = list(db.session.execute(statements.missed_batch(), {
        **parameters, "cursor": replay.cursor_event_id, "last_event_id": replay.last_event_id,
        "limit": batch_size}).scalars())
    created = 0
    if event_ids:
        created = len(db.session.execute(statements.replay_messages(dialect_name()), {
            **parameters, "event_ids": event_ids, "replay_id": replay.id, "is_test": False,
            "status": MessageStatus.QUEUED, "attempts_made": 0,
            "now_due": now, "now_enqueued": now, "now_created": now, "now_updated": now}).all())
        replay.cursor_event_id = event_ids[-1]
        replay.messages_created += created
        add_to_counter(REPLAYED_MISSED_EVENTS, created)
    finished = len(event_ids) < batch_size
    if finished:
        replay.status, replay.finished_at = ReplayStatus.DONE, now
    replay.updated_at = now
    return created, finished


def run_replay(replay_id: int, waits: int = 0, last_owed: int | None = None) -> RunOutcome:
    """Make batches of a replay's messages for up to RUN_SECONDS, committing and dispatching each; one run per
    replay at a time (a Redis lock): a second one finds it taken and leaves the replay to the first."""
    lock = queue_redis().lock(f"{LOCK_PREFIX}{replay_id}", timeout=RUN_SECONDS + 60, blocking=False)
    if not lock.acquire(blocking=False):
        return RunOutcome()
    created = 0
    try:
        stop_after = time.monotonic() + RUN_SECONDS
        batch_size = BATCH_SIZE[dialect_name()]
        while True:
            queue_redis().set(alive_key(replay_id), 1, px=int(RUN_SECONDS * 1000) + ALIVE_MARGIN_MILLISECONDS)
            now = utcnow()
            replay = db.session.get(Replay, replay_id)
            if replay is None or replay.status != ReplayStatus.RUNNING:
                db.session.commit()
                return RunOutcome(created)
            webhook = db.session.get(Webhook, replay.webhook_id, with_for_update=True)
            if webhook is None or not webhook.enabled:
                _stop(replay, f"Stopped: the webhook was disabled after {replay.messages_created} messages.", now)
                db.session.commit()
                return RunOutcome(created)
            owed = db.session.execute(statements.pending_ahead(), {
                "webhook_id": replay.webhook_id, "cap": AHEAD_BATCHES * batch_size}).scalar_one()
            if owed + batch_size > AHEAD_BATCHES * batch_size:
                db.session.commit()
                waits = 0 if created or last_owed is None or owed < last_owed else waits + 1
                wait = min(WAIT_MILLISECONDS * 2 ** min(waits, 8), MAX_WAIT_MILLISECONDS)
                return RunOutcome(created, again_after_ms=wait, waits=waits, owed=owed)
            size = batch_size if replay.messages_created else min(batch_size, FIRST_BATCH_SIZE)
            made, finished = replay_batch(replay, subscribed_types(replay.webhook_id), size, now)
            db.session.commit()
            created += made
            if made:
                request_batches([replay.webhook_id])
            if finished:
                logger.info("replay %s of webhook %s done: %d messages", replay_id, replay.webhook_id,
                            replay.messages_created)
                return RunOutcome(created)
            if time.monotonic() > stop_after:
                return RunOutcome(created, again_after_ms=0)
    finally:
        db.session.rollback()
        try:
            lock.release()
        except redis.exceptions.LockError:
            logger.warning("replay %s: its run lock expired before the run ended", replay_id)


@actor(queue_name=REPLAY_QUEUE, max_retries=5, time_limit=120_000)
def replay_missed_events(replay_id: int, waits: int = 0, last_owed: int | None = None) -> None:
    """Make the next batches of a replay's messages, then come back for more while some are left (idempotent)."""
    outcome = run_replay(replay_id, waits, last_owed)
    if outcome.again_after_ms is not None:
        queue_redis().set(alive_key(replay_id), 1, px=outcome.again_after_ms + ALIVE_MARGIN_MILLISECONDS)
        replay_missed_events.send_with_options(args=(replay_id, outcome.waits, outcome.owed),
                                               delay=outcome.again_after_ms)


def resume_replays() -> int:
    """The scheduler's check: put back on the queue every running replay nobody is working on (its queue entry
    was lost, or Redis was down when it was asked for); returns how many."""
    running = list(db.session.scalars(select(Replay.id).where(Replay.status == ReplayStatus.RUNNING)))
    db.session.commit()
    resumed = 0
    try:
        for replay_id in running:
            if queue_redis().set(alive_key(replay_id), 1, nx=True, px=ALIVE_MARGIN_MILLISECONDS):
                replay_missed_events.send(replay_id)
                resumed += 1
    except redis.RedisError as error:
        logger.error("Redis unavailable: %d running replay(s) wait for it (%s)", len(running), error)
    return resumed
