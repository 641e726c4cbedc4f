"""Batch intake: up to 500 events in one request, validated all or nothing and stored in one transaction with
a handful of statements (one look-up of the subscribers, one INSERT of the events, one of their fan-out); the
worker makes their messages (services/fan_out.py)."""

import functools
import json
from collections import defaultdict
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..database import dialect_name, retry_once_on_disconnect
from ..extensions import db
from ..models import utcnow
from . import intake_statements as statements
from .fan_out import identity, plan_fan_out
from .intake import (
    LOCAL_SCOPE,
    MAX_EVENT_BYTES,
    AcceptedEvent,
    IntakeError,
    ValidEvent,
    ask_for_sending,
    event_subject,
    stored_repeat,
    validate_event,
)

MAX_BATCH_EVENTS = 500


class BatchRefused(IntakeError):
    """Some events of a batch are bad, so none was stored; `problems` holds (index, error) of each, in order."""

    def __init__(self, problems: list[tuple[int, IntakeError]]):
        index, first = problems[0]
        others = len(problems) - 1
        more = f" ({others} more bad event{'s' if others > 1 else ''}: see invalid)" if others else ""
        super().__init__(first.status, f"[{index}].{first.field}",
                         f"event {index}: {first.message}{more}; no event of the batch was stored")
        self.problems = problems


def encoded_size(item) -> int:
    """An event's size as compact JSON in UTF-8: what a batch's events are held to, as a single event's body is."""
    return len(json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))


def validate_batch(items) -> list[ValidEvent]:
    """Check every event of a batch; raise BatchRefused naming each bad one by its index."""
    if not items:
        raise IntakeError(422, "body", "the batch holds no event")
    if len(items) > MAX_BATCH_EVENTS:
        raise IntakeError(413, "body", f"a batch holds at most {MAX_BATCH_EVENTS} events, not {len(items)}")
    problems, events, first_with = [], [], {}
    for index, item in enumerate(items):
        try:
            event = validate_event(item)
            # Every other field of a valid event is short; measuring each event would cost a batch 3 % more CPU.
            if "changed" in item and encoded_size(item) > MAX_EVENT_BYTES:
                raise IntakeError(413, "body", f"the event is larger than {MAX_EVENT_BYTES // 1024} KiB")
        except IntakeError as error:
            problems.append((index, error))
            continue
        earlier_index, earlier = first_with.setdefault(event.event_uuid, (index, event))
        if earlier.digest != event.digest:
            problems.append((index, IntakeError(409, "eventId", f"eventId {event.event_uuid} is also event "
                                                                f"{earlier_index} of this batch, a different event")))
        events.append(event)
    if problems:
        raise BatchRefused(problems)
    return events


def _subscribers(event_types: list[str]) -> tuple[dict[str, list[int]], dict[str, str]]:
    """The enabled webhooks subscribed to each event type, in id order, and their identities (fan_out's
    webhook_identities), in one query."""
    found, identities = defaultdict(list), {}
    if event_types:
        query = (select(statements.subscriptions.c.event_type, statements.webhooks.c.id,
                        statements.webhooks.c.created_at)
                 .join(statements.webhooks, statements.subscriptions.c.webhook_id == statements.webhooks.c.id)
                 .where(statements.subscriptions.c.event_type.in_(event_types),
                        statements.webhooks.c.enabled.is_(True))
                 .order_by(statements.webhooks.c.id))
        for event_type, webhook_id, created_at in db.session.connection().execute(query):
            found[event_type].append(webhook_id)
            identities[str(webhook_id)] = identity(created_at)
    return found, identities


@functools.cache
def _events_unless_stored(dialect: str):
    """INSERT of events, skipping each whose eventId its sender used before; returns the ids of those inserted."""
    insert_for_dialect = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return (insert_for_dialect(statements.events)
            .on_conflict_do_nothing(index_elements=[statements.events.c.event_uuid, statements.events.c.scope])
            .returning(statements.events.c.id, statements.events.c.event_uuid))


def _insert_events(events: list[ValidEvent], scope: str, now: datetime) -> dict[str, int]:
    """Insert the events whose eventId this sender has not used; returns {eventId: id} of those inserted."""
    statement = _events_unless_stored(dialect_name())
    rows = [{"event_uuid": e.event_uuid, "scope": scope, "body_digest": e.digest, "event_type": e.event_type,
             "payload": e.payload, "subject_id": event_subject(e.event_type, e.payload), "created_at": now}
            for e in events]
    return {event_uuid: event_id for event_id, event_uuid in db.session.connection().execute(statement, rows)}


def store_batch(events: list[ValidEvent], scope: str) -> list[AcceptedEvent]:
    """Store a validated batch's events and their fan-out (the worker makes the messages), one AcceptedEvent per
    event in order; callers commit.

    As for one event: a repeat (same eventId and body as before) answers its first acceptance and stores
    nothing; an eventId used before for a different event raises BatchRefused (409) naming its index.
    """
    firsts = {}
    for event in events:
        if event.triggers:
            firsts.setdefault(event.event_uuid, event)
    subscribers, identities = _subscribers(sorted({event.event_type for event in firsts.values()}))
    now = utcnow()
    inserted = _insert_events(list(firsts.values()), scope, now) if firsts else {}
    fan_out_id = plan_fan_out({event_id: firsts[event_uuid].event_type for event_uuid, event_id in inserted.items()},
                              subscribers, identities, accepted_at=now)
    accepted = []
    for index, event in enumerate(events):
        try:
            if not event.triggers:
                accepted.append(stored_repeat(event, scope) or AcceptedEvent(event.event_uuid))
            elif event.event_uuid in inserted:
                webhook_ids = subscribers[event.event_type]
                accepted.append(AcceptedEvent(event.event_uuid, webhook_ids=webhook_ids,
                                              fan_out_id=fan_out_id if webhook_ids else None))
            else:
                repeat = stored_repeat(event, scope)
                if repeat is None:  # pruned between the INSERT and this look-up: a rare retry makes it again
                    raise IntakeError(503, "eventId", f"eventId {event.event_uuid} was being pruned; retry")
                accepted.append(repeat)
        except IntakeError as error:
            raise BatchRefused([(index, error)]) from None
    return accepted


def emit_batch(items, scope: str = LOCAL_SCOPE) -> list[AcceptedEvent]:
    """Validate a batch (all or nothing), store it in one transaction, commit, then ask for the sending of what
    it stored; a refused batch is rolled back, so nothing of it is left in the session."""
    events = validate_batch(items)
    attempts = []

    def store_and_commit() -> list[AcceptedEvent]:
        attempts.append(len(attempts) + 1)
        try:
            stored = store_batch(events, scope)
        except IntakeError:
            db.session.rollback()
            raise
        db.session.commit()
        return stored

    accepted = retry_once_on_disconnect(store_and_commit, "batch intake")
    ask_for_sending(accepted, retried=len(attempts) > 1)
    return accepted


def messages_queued(accepted: list[AcceptedEvent]) -> int:
    """The messages of a batch's events, made or owed, each event counted once (an event sent twice in a batch has
    one set)."""
    return sum({event.event_uuid: event.messages for event in accepted}.values())
