"""The SQL of replays: which stored events a webhook has missed, and their new messages, made in one statement.

An event is missed when it is of a type the webhook subscribes to and has no Sent and no pending (Queued or
Scheduled retry) message for the webhook: its messages failed, or it came while the webhook was disabled.
"""

import functools

from sqlalchemy import Boolean, DateTime, Integer, String, and_, bindparam, exists, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..models import PENDING_CONDITION, Event, Message, MessageStatus

events = Event.__table__
messages = Message.__table__
# Sent, Queued or Scheduled retry: a replay leaves such an event alone.
COVERED = (MessageStatus.SENT, *MessageStatus.PENDING)
# SQLite has no UUID function: a version-4 UUID from its random bytes.
SQLITE_UUID4 = ("lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || "
                "substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || "
                "substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))")


def _covered():
    """The event (events.c.id) already has a Sent or pending message for the webhook `webhook_id`."""
    return exists().where(messages.c.event_id == events.c.id, messages.c.webhook_id == bindparam("webhook_id"),
                          messages.c.status.in_(COVERED))


def _missed(since_parameter: str = "since"):
    return and_(events.c.created_at >= bindparam(since_parameter, type_=DateTime),
                events.c.event_type.in_(bindparam("event_types", expanding=True)), ~_covered())


@functools.cache
def missed_count():
    """How many events since `since` of `event_types` the webhook `webhook_id` has missed."""
    return select(func.count()).select_from(events).where(_missed())


@functools.cache
def first_event_id():
    """The smallest event id created at or after `since` (None without one): where a replay starts."""
    return select(func.min(events.c.id)).where(events.c.created_at >= bindparam("since", type_=DateTime))


@functools.cache
def last_event_id():
    """The newest event's id (None without events): where a replay stops."""
    return select(func.max(events.c.id))


@functools.cache
def missed_batch():
    """Up to `limit` missed event ids after `cursor` and at most `last_event_id`, oldest first."""
    return (select(events.c.id)
            .where(events.c.id > bindparam("cursor", type_=Integer), events.c.id <= bindparam("last_event_id"),
                   _missed())
            .order_by(events.c.id).limit(bindparam("limit")))


def _previous_message(column):
    """The webhook's latest earlier message for the event (the one a replay repeats), or NULL."""
    earlier = messages.alias("earlier")
    return (select(earlier.c[column.name]).where(earlier.c.event_id == events.c.id,
                                                 earlier.c.webhook_id == bindparam("webhook_id"))
            .order_by(earlier.c.id.desc()).limit(1).scalar_subquery())


@functools.cache
def replay_messages(dialect: str):
    """One Queued message per event of `event_ids` still missed, repeating its latest failed message if any.

    The still-missed check runs again inside the INSERT, and a pending message made meanwhile by someone else
    (another replay, Send again) makes the row a no-op through the one-pending-message-per-event index.
    """
    message_uuid = (func.gen_random_uuid().cast(String) if dialect == "postgresql"
                    else literal_column(SQLITE_UUID4, String))
    rows = (
        select(message_uuid, bindparam("webhook_id", type_=Integer), events.c.id, events.c.event_type,
               bindparam("is_test", type_=Boolean), bindparam("status", type_=String),
               bindparam("attempts_made", type_=Integer),
               *(bindparam(name, type_=DateTime) for name in ("now_due", "now_enqueued", "now_created", "now_updated")),
               bindparam("replay_id", type_=Integer), _previous_message(messages.c.id),
               _previous_message(messages.c.message_uuid))
        .where(events.c.id.in_(bindparam("event_ids", expanding=True)), ~_covered())
        .order_by(events.c.id)
    )
    columns = ["message_uuid", "webhook_id", "event_id", "event_type", "is_test", "status", "attempts_made",
               "next_attempt_at", "enqueued_at", "created_at", "updated_at", "replay_id", "replay_of_id",
               "replay_of_uuid"]
    insert_for_dialect = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return (insert_for_dialect(messages).from_select(columns, rows)
            .on_conflict_do_nothing(index_elements=[messages.c.webhook_id, messages.c.event_id],
                                    index_where=PENDING_CONDITION)
            .returning(messages.c.id))


@functools.cache
def pending_ahead():
    """How many pending (Queued or Scheduled retry) messages the webhook `webhook_id` has, counting at most `cap`."""
    ahead = (select(messages.c.id).where(messages.c.webhook_id == bindparam("webhook_id"),
                                         messages.c.status.in_(MessageStatus.PENDING))
             .limit(bindparam("cap")).subquery())
    return select(func.count()).select_from(ahead)
