"""Fan-out of a batch: the request stores the events and one FanOut row; the worker makes their messages.

A batch of 500 events to 10 webhooks is 5,000 message rows, each with a dozen index entries: made in the
request, they were most of its time. Svix and Convoy store the event and let a worker create the deliveries;
so does this. The FanOut row is the truth until the messages exist: the actor makes them a chunk at a time,
taking each chunk's events off the row in the chunk's transaction (and the row itself after the last), and the
scheduler sends the actor again for a row whose queue entry was lost.
"""

import functools
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Boolean, DateTime, Integer, String, and_, bindparam, exists, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..database import dialect_name, retry_once_on_disconnect
from ..extensions import actor, db
from ..models import PENDING_CONDITION, Event, FanOut, MessageStatus, utcnow
from . import intake_statements as statements
from .dispatch import DELIVERY_QUEUE, request_batches, send_each

messages = statements.messages
webhooks = statements.webhooks
MESSAGE_COLUMNS = {
    "message_uuid": String, "webhook_id": Integer, "event_id": Integer, "event_type": String, "is_test": Boolean,
    "status": String, "attempts_made": Integer, "next_attempt_at": DateTime, "enqueued_at": DateTime,
    "created_at": DateTime, "updated_at": DateTime,
}
SWEEP_LIMIT = 1000
# Messages made per transaction (whole events): a batch of 500 events to 1,000 webhooks is 500,000 rows, which
# in one transaction would hold SQLite's write lock, and so the intake, for half a minute.
CHUNK_MESSAGES = 5000


# --- in the request ------------------------------------------------------------------------------------------


def plan_fan_out(event_ids: dict[int, str], subscribers: dict[str, list[int]], identities: dict[str, str],
                 accepted_at: datetime) -> int | None:
    """Store the fan-out of events just stored at `accepted_at` ({id: event type}) to the webhooks subscribed to each
    type (`identities`: those webhooks' webhook_identities), in the caller's transaction; its id, or None when no
    event has a subscriber."""
    owed = sorted(event_id for event_id, event_type in event_ids.items() if subscribers.get(event_type))
    if not owed:
        return None
    used_types = {event_ids[event_id] for event_id in owed}
    used = {name: subscribers[name] for name in sorted(used_types)}
    fan_out = FanOut(event_ids=owed, subscribers=used,
                     webhooks_created={str(w): identities[str(w)] for ids in used.values() for w in ids},
                     first_event_id=owed[0], last_event_id=owed[-1], created_at=accepted_at, enqueued_at=accepted_at)
    db.session.add(fan_out)
    db.session.flush()
    return fan_out.id


def awaited_fan_out(event_id: int, event_type: str) -> tuple[int, list[int]] | None:
    """The fan-out a stored event awaits and the webhooks it will have messages for; None when it awaits none."""
    rows = db.session.execute(select(FanOut.id, FanOut.event_ids, FanOut.subscribers).where(
        FanOut.first_event_id <= event_id, FanOut.last_event_id >= event_id)).all()
    for fan_out_id, event_ids, subscribers in rows:
        if event_id in event_ids:
            return fan_out_id, sorted(subscribers.get(event_type, []))
    return None


def request_fan_outs(fan_out_ids: list[int]) -> bool:
    """Put committed fan-outs on the queue; False (logged) when Redis is down: the sweeper sends them."""
    return send_each(make_fan_out_messages, fan_out_ids, "fan-out(s)")


# --- in the worker -------------------------------------------------------------------------------------------


@actor(queue_name=DELIVERY_QUEUE, max_retries=0, time_limit=120_000)
def make_fan_out_messages(fan_out_id: int) -> None:
    """Make a fan-out's messages a chunk at a time, committing each and asking for its sending (idempotent: what
    is made is taken off the fan-out, and a finished fan-out is gone)."""
    remaining = True
    while remaining:
        webhook_ids: set[int] = set()
        remaining = retry_once_on_disconnect(functools.partial(_make_chunk, fan_out_id, webhook_ids),
                                             "making a batch's messages")
        request_batches(sorted(webhook_ids))


def _make_chunk(fan_out_id: int, webhook_ids: set[int]) -> bool:
    """Make and commit the fan-out's next chunk, adding its webhooks to `webhook_ids`; whether events remain.

    The set outlives a retry: a COMMIT that went through as its connection died leaves the retry the next chunk,
    or nothing, and the first chunk's webhooks must still be asked for.
    """
    made, remaining = fan_out_messages(fan_out_id)
    webhook_ids.update(made)
    db.session.commit()
    return remaining


def fan_out_messages(fan_out_id: int) -> tuple[list[int], bool]:
    """Make one Queued message per event and webhook subscribed to its type (when accepted) that still exists, for
    the fan-out's next events up to about CHUNK_MESSAGES messages, and take those events off it (deleting it after
    its last); returns the webhooks' ids and whether events remain. Callers commit.

    A fan-out another worker holds, or has finished, is left alone. An event that already has a message for a
    webhook (a replay made one meanwhile) gets none more from here.
    """
    fan_out = db.session.scalars(select(FanOut).where(FanOut.id == fan_out_id)
                                 .with_for_update(skip_locked=True)).one_or_none()
    if fan_out is None:
        return [], False
    event_types = dict(db.session.execute(select(Event.id, Event.event_type)
                                          .where(Event.id.in_(fan_out.event_ids))).all())
    same = same_webhooks(fan_out.webhooks_created)
    targets, done = [], 0
    for event_id in fan_out.event_ids:
        event_type = event_types.get(event_id)
        owed = [webhook_id for webhook_id in fan_out.subscribers.get(event_type, []) if webhook_id in same]
        if targets and len(targets) + len(owed) > CHUNK_MESSAGES:
            break
        targets.extend((webhook_id, event_id, event_type) for webhook_id in owed)
        done += 1
    made = insert_messages(targets)
    remaining = fan_out.event_ids[done:]
    if remaining:
        fan_out.event_ids, fan_out.first_event_id = remaining, remaining[0]
    else:
        db.session.delete(fan_out)
    return made, bool(remaining)


def webhook_identities(webhook_ids) -> dict[str, str]:
    """{id: created_at} of webhooks: what tells a webhook from a later one given its id (SQLite reuses the largest
    id of a deleted row)."""
    rows = db.session.execute(select(webhooks.c.id, webhooks.c.created_at).where(webhooks.c.id.in_(webhook_ids)))
    return {str(webhook_id): identity(created_at) for webhook_id, created_at in rows}


def identity(created_at: datetime) -> str:
    """A webhook's identity beside its id: when it was created."""
    return created_at.isoformat()


def same_webhooks(identities: dict[str, str]) -> set[int]:
    """The ids of `identities` still held by the same webhooks (not deleted, nor replaced by one with its id)."""
    current = webhook_identities([int(webhook_id) for webhook_id in identities])
    return {int(webhook_id) for webhook_id, created in identities.items() if current.get(webhook_id) == created}


def _insert_for_dialect(dialect: str):
    return postgresql_insert if dialect == "postgresql" else sqlite_insert


def _messages_from(dialect: str, targets):
    """INSERT … SELECT of a Queued message per row of `targets` (webhook_id, event_id, event_type and, on SQLite,
    message_uuid) whose webhook still exists and has no message for the event yet; returns the webhooks' ids."""
    message_uuid = func.gen_random_uuid().cast(String) if dialect == "postgresql" else targets.c.message_uuid
    shared = [bindparam(f"shared_{name}", type_=column_type) for name, column_type in MESSAGE_COLUMNS.items()
              if name not in ("message_uuid", "webhook_id", "event_id", "event_type")]
    has_message = exists().where(messages.c.event_id == targets.c.event_id,
                                 messages.c.webhook_id == targets.c.webhook_id)
    rows = (select(message_uuid, targets.c.webhook_id, targets.c.event_id, targets.c.event_type, *shared)
            .select_from(targets.join(webhooks, webhooks.c.id == targets.c.webhook_id))
            .where(~has_message))
    return (_insert_for_dialect(dialect)(messages).from_select(list(MESSAGE_COLUMNS), rows)
            .on_conflict_do_nothing(index_elements=[messages.c.webhook_id, messages.c.event_id],
                                    index_where=PENDING_CONDITION)
            .returning(messages.c.webhook_id))


@functools.cache
def _messages_from_arrays():
    """PostgreSQL: the targets are three parallel arrays (a dozen bound parameters for thousands of rows)."""
    targets = (func.unnest(bindparam("webhook_ids", type_=ARRAY(Integer)), bindparam("event_ids", type_=ARRAY(Integer)),
                           bindparam("event_types", type_=ARRAY(String)))
               .table_valued("webhook_id", "event_id", "event_type").render_derived(name="targets"))
    return _messages_from("postgresql", targets)


@functools.cache
def _messages_from_json():
    """SQLite: the targets are one JSON text of [message_uuid, webhook_id, event_id, event_type] rows.

    Binding 5,000 rows one by one costs SQLAlchemy far more than SQLite's insert: one JSON text is one parameter.
    """
    each = func.json_each(bindparam("targets", type_=String)).table_valued("value", name="each_target")
    columns = ("message_uuid", "webhook_id", "event_id", "event_type")
    targets = select(*(func.json_extract(each.c.value, f"$[{position}]").label(name)
                       for position, name in enumerate(columns))).subquery("targets")
    return _messages_from("sqlite", targets)


def insert_messages(targets: list[tuple[int, int, str]]) -> list[int]:
    """One Queued message per (webhook_id, event_id, event_type), due now; returns the ids of the webhooks that got
    one.

    Messages are dated now, not when their events were accepted: the log's time filters rely on ids rising with
    `created_at` (the event keeps its acceptance time).
    """
    if not targets:
        return []
    now = utcnow()
    shared = {"shared_is_test": False, "shared_status": MessageStatus.QUEUED, "shared_attempts_made": 0,
              "shared_next_attempt_at": now, "shared_enqueued_at": now, "shared_created_at": now,
              "shared_updated_at": now}
    connection = db.session.connection()
    if dialect_name() == "postgresql":
        webhook_ids, event_ids, event_types = (list(column) for column in zip(*targets, strict=True))
        result = connection.execute(_messages_from_arrays(), {
            "webhook_ids": webhook_ids, "event_ids": event_ids, "event_types": event_types, **shared})
    else:
        rows = json.dumps([[str(uuid.uuid4()), *target] for target in targets])
        result = connection.execute(_messages_from_json(), {"targets": rows, **shared})
    return sorted(set(result.scalars()))


# --- the sweeper ---------------------------------------------------------------------------------------------


def requeue_fan_outs(now: datetime | None = None) -> int:
    """The scheduler's check: send again every fan-out whose queue entry is older than
    WEBHOOKS_REQUEUE_AFTER_SECONDS (lost, or never sent: Redis was down); returns how many."""
    now = now or utcnow()
    stale = now - timedelta(seconds=current_app.config["WEBHOOKS_REQUEUE_AFTER_SECONDS"])
    due = list(db.session.execute(
        update(FanOut).where(FanOut.id.in_(select(FanOut.id).where(FanOut.enqueued_at < stale)
                                           .order_by(FanOut.id).limit(SWEEP_LIMIT)),
                             FanOut.enqueued_at < stale)
        .values(enqueued_at=now).returning(FanOut.id).execution_options(synchronize_session=False)).scalars())
    db.session.commit()
    if not due:
        return 0
    return len(due) if request_fan_outs(sorted(due)) else 0


@dataclass(frozen=True)
class LateFanOuts:
    """Accepted batches whose messages the worker has not made within WEBHOOKS_REQUEUE_AFTER_SECONDS."""

    events: int
    since: datetime

    @property
    def fingerprint(self) -> str:
        return f"{self.events}@{self.since:%Y%m%d%H%M%S}"


def late_fan_outs(now: datetime | None = None) -> LateFanOuts | None:
    """The events of fan-outs older than WEBHOOKS_REQUEUE_AFTER_SECONDS and the oldest's acceptance (the worker is
    down or far behind), or None."""
    stale = (now or utcnow()) - timedelta(seconds=current_app.config["WEBHOOKS_REQUEUE_AFTER_SECONDS"])
    events, since = db.session.execute(
        select(func.coalesce(func.sum(func.json_array_length(FanOut.event_ids)), 0), func.min(FanOut.created_at))
        .where(FanOut.created_at < stale)).one()
    return LateFanOuts(int(events), since) if since is not None else None


def awaiting_fan_out():
    """A condition on Event: the event is between a pending fan-out's first and last event (the prune keeps it)."""
    return exists().where(and_(FanOut.first_event_id <= Event.id, FanOut.last_event_id >= Event.id))
