"""The intake's SQL, built once per process as Core statements with bound parameters (it runs on every event)."""

import functools

from sqlalchemy import Boolean, DateTime, Integer, String, bindparam, func, insert, select, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..models import Event, Message, Webhook, WebhookSubscription

events = Event.__table__
messages = Message.__table__
webhooks = Webhook.__table__
subscriptions = WebhookSubscription.__table__

SHARED_MESSAGE_COLUMNS = {
    "event_id": Integer, "event_type": String, "is_test": Boolean, "status": String, "attempts_made": Integer,
    "next_attempt_at": DateTime, "enqueued_at": DateTime, "created_at": DateTime, "updated_at": DateTime,
}


@functools.cache
def store_event(dialect: str):
    """Insert an event unless its sender stored its eventId already; returns its id, or no row for a repeat."""
    insert_for_dialect = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return (
        insert_for_dialect(events)
        .values(event_uuid=bindparam("new_event_uuid"), scope=bindparam("new_scope"),
                body_digest=bindparam("new_body_digest"), event_type=bindparam("new_event_type"),
                payload=bindparam("new_payload"), subject_id=bindparam("new_subject_id"),
                created_at=bindparam("new_created_at"))
        .on_conflict_do_nothing(index_elements=[events.c.event_uuid, events.c.scope])
        .returning(events.c.id)
    )


@functools.cache
def stored_event():
    """The event a sender stored with an eventId: one row per message (or one without), oldest message first."""
    return (
        select(events.c.id, events.c.body_digest, messages.c.id.label("message_id"), messages.c.webhook_id)
        .select_from(events.outerjoin(messages, messages.c.event_id == events.c.id))
        .where(events.c.event_uuid == bindparam("stored_event_uuid"), events.c.scope == bindparam("stored_scope"))
        .order_by(messages.c.id)
    )


@functools.cache
def messages_from_array():
    """PostgreSQL: one message per id of the `webhook_ids` array, with the UUIDs made by the server.

    A thousand-row VALUES list binds eleven thousand parameters; this binds a dozen, which makes a
    fan-out to 1,000 webhooks several times faster.
    """
    targets = (func.unnest(bindparam("webhook_ids", type_=ARRAY(Integer)))
               .table_valued("webhook_id").render_derived(name="targets"))
    shared = [bindparam(f"shared_{name}", type_=column_type) for name, column_type in SHARED_MESSAGE_COLUMNS.items()]
    rows = select(func.gen_random_uuid().cast(String), targets.c.webhook_id, *shared)
    columns = ["message_uuid", "webhook_id", *SHARED_MESSAGE_COLUMNS]
    return insert(messages).from_select(columns, rows).returning(messages.c.id)


def _subscriber_messages(event_id, new_event=None):
    """INSERT … SELECT of one message of event `event_id` (a column of `new_event`, if given) per enabled
    webhook subscribed to `subscribed_type`."""
    shared = [bindparam(f"shared_{name}", type_=column_type)
              for name, column_type in SHARED_MESSAGE_COLUMNS.items() if name != "event_id"]
    rows = select(func.gen_random_uuid().cast(String), webhooks.c.id, event_id, *shared)
    rows = rows.select_from(new_event).join(subscriptions, true()) if new_event is not None else rows.select_from(
        subscriptions)
    rows = (
        rows.join(webhooks, subscriptions.c.webhook_id == webhooks.c.id)
        .where(subscriptions.c.event_type == bindparam("subscribed_type"), webhooks.c.enabled.is_(True))
        .order_by(webhooks.c.id)
    )
    columns = ["message_uuid", "webhook_id", "event_id", *(name for name in SHARED_MESSAGE_COLUMNS
                                                           if name != "event_id")]
    return insert(messages).from_select(columns, rows)


@functools.cache
def messages_for_subscribers():
    """SQLite: the messages of a stored event (`message_event_id`); returns (message_id, webhook_id) rows."""
    return _subscriber_messages(bindparam("message_event_id", type_=Integer)).returning(
        messages.c.id.label("message_id"), messages.c.webhook_id)


@functools.cache
def event_with_messages():
    """PostgreSQL: the event and its messages in one statement (data-modifying CTEs), so it can run alone in
    autocommit: one round trip, atomic and durable when it returns.

    No row: its sender stored this eventId already. Otherwise one row per message (message_id NULL when no
    webhook is subscribed).
    """
    new_event = store_event("postgresql").cte("new_event")
    new_messages = _subscriber_messages(new_event.c.id, new_event).returning(messages.c.id, messages.c.webhook_id).cte(
        "new_messages")
    return (
        select(new_event.c.id.label("event_id"), new_messages.c.id.label("message_id"), new_messages.c.webhook_id)
        .select_from(new_event.outerjoin(new_messages, true()))
    )
