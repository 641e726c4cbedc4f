"""Send again: a Sent or Failed message's event goes to its webhook once more, as a new message (a new messageId,
the same event and eventId) through the normal pipeline; the original message is left as it was."""

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..database import dialect_name
from ..extensions import db
from ..models import PENDING_CONDITION, Message, MessageStatus, Webhook, utcnow
from .counters import REPLAYED_SEND_AGAIN, add_to_counter

messages = Message.__table__


class SendAgainRefused(ValueError):
    """The message cannot be sent again; the text says why."""


@dataclass(frozen=True)
class SentAgain:
    """The new message (or the copy already pending, when `already_pending`)."""

    message_id: int
    message_uuid: str
    webhook_id: int
    already_pending: bool = False


def send_again_problem(message: Message, webhook: Webhook | None) -> str | None:
    """Why this message cannot be sent again now, in words for the administrator; None when it can."""
    if message.status not in MessageStatus.FINAL:
        return (f"Only a Sent or Failed message can be sent again; this one is "
                f"{MessageStatus.LABELS[message.status]}.")
    if message.is_test:
        return "A test message is not sent again: use Test on the Webhooks page for a new one."
    if webhook is None:
        return "Its webhook was deleted."
    if not webhook.enabled:
        return f"Its webhook “{webhook.name}” is disabled: enable it to send messages again."
    if message.event_id is None:
        return "Its event is no longer stored."
    return None


def send_again(message_id: int) -> SentAgain:
    """Queue a new message for the same event and webhook, repeating `message_id`; callers commit, then dispatch.

    A copy of the event already pending for the webhook (an earlier Send again, a replay, a retry) is returned
    instead of a second one: the database keeps one pending message per webhook and event.
    """
    original = db.session.get(Message, message_id)
    if original is None:
        raise SendAgainRefused(f"Message {message_id} is no longer in the log.")
    webhook = db.session.get(Webhook, original.webhook_id) if original.webhook_id is not None else None
    problem = send_again_problem(original, webhook)
    if problem:
        raise SendAgainRefused(problem)
    insert_for_dialect = postgresql_insert if dialect_name() == "postgresql" else sqlite_insert
    # Twice: the pending copy that refused the first INSERT may have finished before it could be read.
    for _ in range(2):
        now = utcnow()
        row = {"message_uuid": str(uuid.uuid4()), "webhook_id": webhook.id, "event_id": original.event_id,
               "event_type": original.event_type, "is_test": False, "status": MessageStatus.QUEUED,
               "attempts_made": 0, "next_attempt_at": now, "enqueued_at": now, "created_at": now, "updated_at": now,
               "replay_of_id": original.id, "replay_of_uuid": original.message_uuid}
        statement = (insert_for_dialect(messages).values(row)
                     .on_conflict_do_nothing(index_elements=[messages.c.webhook_id, messages.c.event_id],
                                             index_where=PENDING_CONDITION)
                     .returning(messages.c.id))
        new_id = db.session.execute(statement).scalar()
        if new_id is not None:
            add_to_counter(REPLAYED_SEND_AGAIN, 1)
            return SentAgain(new_id, row["message_uuid"], webhook.id)
        pending = db.session.execute(select(Message.id, Message.message_uuid).where(
            Message.webhook_id == webhook.id, Message.event_id == original.event_id,
            Message.status.in_(MessageStatus.PENDING))).first()
        if pending is not None:
            return SentAgain(pending.id, pending.message_uuid, webhook.id, already_pending=True)
    raise SendAgainRefused("The event's messages changed while it was being sent again: try again.")


def sent_again_as(message_id: int) -> list[Message]:
    """The messages made by sending this one again, oldest first."""
    return list(db.session.scalars(select(Message).where(Message.replay_of_id == message_id).order_by(Message.id)))
