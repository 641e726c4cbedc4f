"""Rows as the delivery pipeline leaves them, for tests of the pages that read them."""

import uuid
from datetime import timedelta

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
