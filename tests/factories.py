"""Rows as the delivery pipeline leaves them, for tests of the pages that read them."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from webhooks_app.extensions import db
from webhooks_app.models import Attempt, Event, Message, MessageStatus, utcnow
from webhooks_app.services.webhooks import WebhookFields, create_webhook


def make_webhook(name="Receiver") -> int:
    webhook, _ = create_webhook(WebhookFields(name, "https://hooks.example.com/x", ("asset.create",), True))
    db.session.flush()
    return webhook.id


def make_event(event_type="asset.create", *, age=timedelta(0), asset_id: int = 1) -> Event:
    """A stored event as the intake leaves it (its eventId a real UUID), created `age` ago."""
    event_uuid = str(uuid.uuid4())
    event = Event(event_uuid=event_uuid, event_type=event_type, created_at=utcnow() - age, scope="local",
                  payload={"assetId": asset_id, "systemEventType": event_type.upper().replace(".", "_"),
                           "eventId": event_uuid, "eventTime": 1, "userId": 1})
    db.session.add(event)
    db.session.flush()
    return event


def make_message(webhook_id: int, status: str, *, age=timedelta(0), attempts=(), event_type="asset.create",
                 event: Event | None = None) -> int:
    """A message row as the pipeline leaves it, with attempts (succeeded, status_code, error_kind, excerpt); for a
    new event unless `event` is given."""
    created = utcnow() - age
    if event is None:
        event = Event(event_uuid=str(uuid.uuid4()), event_type=event_type, created_at=created,
                      payload={"assetId": 1, "systemEventType": "ASSET_CREATE", "eventId": "e", "eventTime": 1,
                               "userId": 1})
    message = Message(message_uuid=str(uuid.uuid4()), webhook_id=webhook_id, event=event,
                      event_type=event_type, status=status, attempts_made=len(attempts), created_at=created,
                      updated_at=created, next_attempt_at=created + timedelta(minutes=5)
                      if status in MessageStatus.PENDING else None)
    db.session.add(message)
    db.session.flush()
    for number, (succeeded, code, kind, excerpt) in enumerate(attempts, start=1):
        db.session.add(Attempt(message_id=message.id, webhook_id=webhook_id, number=number, started_at=created,
                               duration_ms=12, succeeded=succeeded, status_code=code, error_kind=kind,
                               error_detail=f"HTTP {code}" if code else kind, response_excerpt=excerpt))
    db.session.flush()
    return message.id


FAILED_ATTEMPT = [(False, 500, "http_status", "")]


@dataclass
class History:
    """A webhook's last hours: what a replay must send (missed) and what it must leave alone."""

    webhook_id: int
    missed: list[str]  # eventIds, oldest first: failed 5 h ago, failed 90 min ago, none (disabled), none (other type)
    failed_messages: dict[str, int]  # eventId -> its Failed message
    left_alone: list[str]  # eventIds: Sent, pending, not subscribed
    streak_started: datetime


def build_history(app, url: str) -> History:
    """A webhook (asset.create and asset.delete) that missed four events in its last hours, among others."""
    with app.app_context():
        webhook, _ = create_webhook(WebhookFields("Recovering", url, ("asset.create", "asset.delete"), True))
        webhook.created_at = utcnow() - timedelta(days=3)
        w = webhook.id
        old_failure = make_event(age=timedelta(hours=5), asset_id=1)
        old_failed = make_message(w, MessageStatus.FAILED, age=timedelta(hours=5), event=old_failure,
                                  attempts=FAILED_ATTEMPT)
        sent = make_event(age=timedelta(hours=2), asset_id=2)
        make_message(w, MessageStatus.SENT, age=timedelta(hours=2), event=sent, attempts=[(True, 204, None, "")])
        failure = make_event(age=timedelta(minutes=90), asset_id=3)
        failed = make_message(w, MessageStatus.FAILED, age=timedelta(minutes=90), event=failure,
                              attempts=FAILED_ATTEMPT)
        while_disabled = make_event(age=timedelta(minutes=60), asset_id=4)
        unsubscribed = make_event("folder.create", age=timedelta(minutes=50))
        pending = make_event(age=timedelta(minutes=40), asset_id=5)
        pending_message = make_message(w, MessageStatus.SCHEDULED_RETRY, age=timedelta(minutes=40), event=pending,
                                       attempts=FAILED_ATTEMPT)
        db.session.get(Message, pending_message).next_attempt_at = utcnow() + timedelta(days=1)
        other_type = make_event("asset.delete", age=timedelta(minutes=30), asset_id=6)
        streak_started = failure.created_at
        db.session.commit()
        return History(
            w, [old_failure.event_uuid, failure.event_uuid, while_disabled.event_uuid, other_type.event_uuid],
            {old_failure.event_uuid: old_failed, failure.event_uuid: failed},
            [sent.event_uuid, pending.event_uuid, unsubscribed.event_uuid], streak_started)
