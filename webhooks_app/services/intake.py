"""Intake: validate an event, store it and fan it out to subscribed webhooks; emit_event commits and dispatches.

The first step of the delivery path (intake → dispatch → send → record).
"""

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import insert

from ..database import dialect_name, retry_once_on_disconnect, session_in_transaction
from ..direct_sql import direct
from ..events import EVENTS_BY_NAME
from ..extensions import db
from ..models import Message, MessageStatus, utcnow
from . import intake_statements as statements
from .dispatch import request_batches
from .fan_out import awaited_fan_out, request_fan_outs

FOLDER_CHANGE_FIELDS = frozenset({"parent", "name", "description", "path", "visibility", "portalImage", "modifiedBy"})
USER_CHANGE_FIELDS = frozenset({
    "firstName", "middleName", "lastName", "password", "email", "phone1", "phone2", "phone3", "phone4",
    "organization", "expirationDate", "userLevel", "notify",
})
CHANGE_FIELDS = {"folder.update": FOLDER_CHANGE_FIELDS, "user.update": USER_CHANGE_FIELDS}
ASSET_SOURCES = ("upload", "reimport", "resync")
COMMON_KEYS = frozenset({"type", "userId", "eventId", "eventTime"})
MAX_ID = 2**53 - 1  # the largest integer a JavaScript receiver reads exactly
MAX_EVENT_BYTES = 64 * 1024

# An eventId is unique per sender, its scope: each API token, the local intake (emit_event and the
# `emit` command) and the Test button; events stored before scopes existed are "legacy".
LOCAL_SCOPE = "local"
TEST_SCOPE = "test"


def token_scope(token_id: int) -> str:
    """The scope of the eventIds an API token sends."""
    return f"token:{token_id}"


class IntakeError(ValueError):
    """An event was refused; status is the HTTP answer (400 wrong type, 409 eventId reused, 422 unknown or missing)."""

    def __init__(self, status: int, field_name: str, message: str):
        super().__init__(message)
        self.status = status
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class ValidEvent:
    """A checked event: its type, the `event` payload of its messages, whether it triggers, and its digest."""

    event_type: str
    payload: dict
    triggers: bool
    digest: str

    @property
    def event_uuid(self) -> str:
        return self.payload["eventId"]


@dataclass
class AcceptedEvent:
    event_uuid: str
    message_ids: list[int] = field(default_factory=list)  # empty while its fan-out waits for the worker
    duplicate: bool = False
    webhook_ids: list[int] = field(default_factory=list)  # of its messages, made or owed by a fan-out
    fan_out_id: int | None = None  # the FanOut that will make its messages (events of a batch)

    @property
    def messages(self) -> int:
        """The messages it is sent as: one per webhook (made, or owed by its fan-out)."""
        return len(self.webhook_ids)


def subject_keys(event_type: str) -> tuple[str, ...]:
    """The ids that name what an event is about: assetId, folderId or targetUserId."""
    if event_type == "asset.addToFolder":
        return ("assetId", "folderId")
    return {"asset": ("assetId",), "folder": ("folderId",), "user": ("targetUserId",)}[event_type.split(".")[0]]


def event_subject(event_type: str, payload: dict) -> int | None:
    """The id an event is about (assetId, folderId or targetUserId; the asset of asset.addToFolder), or None."""
    kind = event_type.split(".")[0]
    if kind not in {"asset", "folder", "user"}:
        return None
    value = payload.get(subject_keys(event_type)[0])
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _positive_id(data: dict, key: str) -> int:
    if key not in data:
        raise IntakeError(422, key, f"{key} is required for this event type")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise IntakeError(400, key, f"{key} must be a positive integer of at most {MAX_ID}")
    return value


def _event_uuid(data: dict) -> str:
    if "eventId" not in data:
        return str(uuid.uuid4())
    value = data["eventId"]
    try:
        if not isinstance(value, str):
            raise ValueError
        return str(uuid.UUID(value))
    except ValueError:
        raise IntakeError(400, "eventId", "eventId must be a UUID string") from None


def _event_time(data: dict) -> int:
    if "eventTime" not in data:
        return int(time.time())
    value = data["eventTime"]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise IntakeError(400, "eventTime", "eventTime must be epoch seconds (a non-negative integer)")
    return value


def _triggers(event_type: str, data: dict) -> bool:
    """Apply the document's rules: reimports and resyncs, and unlisted changes, trigger nothing."""
    if "source" in data:
        if event_type != "asset.create":
            raise IntakeError(422, "source", "source is only accepted on asset.create")
        if not isinstance(data["source"], str):
            raise IntakeError(400, "source", "source must be a string")
        if data["source"] not in ASSET_SOURCES:
            raise IntakeError(422, "source", f"source must be one of {', '.join(ASSET_SOURCES)}")
        if data["source"] != "upload":
            return False
    if "changed" in data:
        if event_type not in CHANGE_FIELDS:
            raise IntakeError(422, "changed", "changed is only accepted on folder.update and user.update")
        changed = data["changed"]
        if not isinstance(changed, list) or not all(isinstance(name, str) for name in changed):
            raise IntakeError(400, "changed", "changed must be a list of field names")
        return bool(CHANGE_FIELDS[event_type] & set(changed))
    return True


def _digest(event_type: str, subjects: dict, user_id: int, data: dict) -> str:
    """SHA-256 of the event's validated input in a canonical form: what makes a repeat the same event.

    Key order, whitespace, the eventId's spelling, the order of `changed` and a default `source` do not
    count. An omitted eventTime stays omitted (it means "when first accepted"), so a repeat that omits it
    matches however late it comes, and never matches one that names an eventTime.
    """
    canonical = {
        "type": event_type, **subjects, "userId": user_id, "eventTime": data.get("eventTime"),
        "source": data.get("source", "upload") if event_type == "asset.create" else None,
        "changed": sorted(set(data["changed"])) if "changed" in data else None,
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def validate_event(data) -> ValidEvent:
    """Check an event; a missing eventId is generated here, so storing it again (a retry) is idempotent."""
    if not isinstance(data, dict):
        raise IntakeError(400, "body", "the body must be a JSON object")
    if "type" not in data:
        raise IntakeError(422, "type", "type is required")
    event_type = data["type"]
    if not isinstance(event_type, str):
        raise IntakeError(400, "type", "type must be a string")
    if event_type not in EVENTS_BY_NAME:
        raise IntakeError(422, "type", f"unknown event type {event_type[:64]!r}")
    keys = subject_keys(event_type)
    allowed = COMMON_KEYS | set(keys) | {"source", "changed"}
    for key in data:
        if key not in allowed:
            raise IntakeError(422, str(key)[:64], f"{str(key)[:64]} is not a field of {event_type} events")
    payload = {key: _positive_id(data, key) for key in keys}
    user_id = _positive_id(data, "userId")
    event_uuid = _event_uuid(data)
    event_time = _event_time(data)
    triggers = _triggers(event_type, data)
    digest = _digest(event_type, payload, user_id, data)
    payload.update({
        "systemEventType": EVENTS_BY_NAME[event_type].system_event_type,
        "eventId": event_uuid,
        "eventTime": event_time,
        "userId": user_id,
    })
    return ValidEvent(event_type, payload, triggers, digest)


def stored_repeat(event: ValidEvent, scope: str) -> AcceptedEvent | None:
    """The first acceptance of this eventId from this sender, or None; 409 when it was a different event."""
    rows = db.session.connection().execute(statements.stored_event(), {
        "stored_event_uuid": event.event_uuid, "stored_scope": scope}).all()
    if not rows:
        return None
    if rows[0].body_digest != event.digest:
        raise IntakeError(409, "eventId", f"eventId {event.event_uuid} was already used for a different event; "
                                          "send a new eventId, or repeat the first event exactly")
    sent = [row for row in rows if row.message_id is not None]
    webhook_ids = {row.webhook_id for row in sent if row.webhook_id is not None}
    # A batch's event may await its fan-out, with some messages made meanwhile (by a replay): it owes both.
    fan_out_id, owed = awaited_fan_out(rows[0].id, event.event_type) or (None, [])
    return AcceptedEvent(event.event_uuid, [row.message_id for row in sent], duplicate=True,
                         webhook_ids=sorted(webhook_ids | set(owed)), fan_out_id=fan_out_id)


def store_event(event_uuid: str, event_type: str, payload: dict, scope: str, digest: str | None = None) -> int | None:
    """Insert an event row unless its sender stored its eventId already; returns its id, or None for a repeat.

    `ON CONFLICT DO NOTHING` settles a repeat in the same statement, also against a concurrent request
    with the same eventId, so a new event costs no look-up first.
    """
    return db.session.connection().execute(statements.store_event(dialect_name()), {
        "new_event_uuid": event_uuid, "new_scope": scope, "new_body_digest": digest, "new_event_type": event_type,
        "new_payload": payload, "new_subject_id": event_subject(event_type, payload), "new_created_at": utcnow(),
    }).scalar_one_or_none()


def create_messages(event_id: int, event_type: str, webhook_ids: list[int], is_test: bool = False) -> list[int]:
    """One Queued message per webhook for this event, due now, in one INSERT; returns their ids."""
    if not webhook_ids:
        return []
    now = utcnow()
    shared = {"event_id": event_id, "event_type": event_type, "is_test": is_test, "status": MessageStatus.QUEUED,
              "attempts_made": 0, "next_attempt_at": now, "enqueued_at": now, "created_at": now, "updated_at": now}
    if dialect_name() == "postgresql":
        parameters = {"webhook_ids": webhook_ids, **{f"shared_{name}": value for name, value in shared.items()}}
        return sorted(db.session.connection().execute(statements.messages_from_array(), parameters).scalars())
    rows = [{"message_uuid": str(uuid.uuid4()), "webhook_id": webhook_id, **shared} for webhook_id in webhook_ids]
    return list(db.session.scalars(insert(Message).returning(Message.id, sort_by_parameter_order=True), rows))


def _in_session(statement, values: dict) -> list:
    return db.session.connection().execute(statement, values).all()


def store_with_messages(event: ValidEvent, scope: str, run=_in_session) -> AcceptedEvent | None:
    """Store the event and one Queued message per enabled subscribed webhook; None when its sender stored its
    eventId already. One statement on PostgreSQL, two on SQLite; the messages' UUIDs are made by the database.

    `run` executes a statement: in the session by default (callers commit), or direct_sql's.
    """
    now = utcnow()
    parameters = {
        "new_event_uuid": event.event_uuid, "new_scope": scope, "new_body_digest": event.digest,
        "new_event_type": event.event_type, "new_payload": event.payload,
        "new_subject_id": event_subject(event.event_type, event.payload), "new_created_at": now,
        "subscribed_type": event.event_type, "shared_event_type": event.event_type, "shared_is_test": False,
        "shared_status": MessageStatus.QUEUED, "shared_attempts_made": 0, "shared_next_attempt_at": now,
        "shared_enqueued_at": now, "shared_created_at": now, "shared_updated_at": now,
    }
    if dialect_name() == "postgresql":
        rows = run(statements.event_with_messages(), parameters)
        if not rows:
            return None
        rows = [row for row in rows if row.message_id is not None]
    else:
        stored = run(statements.store_event("sqlite"), parameters)
        if not stored:
            return None
        rows = run(statements.messages_for_subscribers(), {**parameters, "message_event_id": stored[0].id})
    return AcceptedEvent(event.event_uuid, sorted(row.message_id for row in rows),
                         webhook_ids=sorted(row.webhook_id for row in rows))


def _store_directly(event: ValidEvent, scope: str) -> AcceptedEvent | None:
    """store_with_messages on a connection of its own, committed when it returns (see direct_sql)."""
    with direct(write=True) as run:
        return store_with_messages(event, scope, run)


def store_valid_event(event: ValidEvent, scope: str, store=store_with_messages) -> AcceptedEvent:
    """Store a validated event with one Queued message per enabled subscribed webhook.

    Sending the same event with the same eventId again returns the first acceptance and creates nothing;
    a different event with an eventId its sender used already is refused with 409.
    """
    if not event.triggers:
        return stored_repeat(event, scope) or AcceptedEvent(event.event_uuid)
    for _ in range(2):
        accepted = store(event, scope)
        if accepted is not None:
            return accepted
        repeat = stored_repeat(event, scope)
        if repeat is not None:
            return repeat
        # The event it repeated was pruned between the two statements: store this one after all.
    raise RuntimeError(f"eventId {event.event_uuid} conflicts with an event that cannot be found")


def accept_event(data, scope: str = LOCAL_SCOPE) -> AcceptedEvent:
    """Validate and store an event from this sender (see store_valid_event); callers commit."""
    return store_valid_event(validate_event(data), scope)


def emit_event(data: dict, scope: str = LOCAL_SCOPE) -> AcceptedEvent:
    """Validate and store an event with its messages, commit, then ask for their sending (raises IntakeError).

    The one intake for host apps, the API and the CLI. `scope` is the sender whose eventIds must be unique:
    "local" for host apps and the CLI. A connection found dead, even at COMMIT, is replaced and the store
    retried once: the eventId (a generated one too) stays the same, so a retry never stores the event twice.
    """
    event = validate_event(data)
    attempts = []

    def store_and_commit() -> AcceptedEvent:
        attempts.append(len(attempts) + 1)
        # Unless the caller's session has work of its own in progress, the event and its messages are stored
        # and committed by the direct store (a repeat's look-up is the session's, ended by its commit).
        direct_store = _store_directly if not session_in_transaction() else store_with_messages
        stored = store_valid_event(event, scope, store=direct_store)
        if db.session.registry.has():
            db.session.commit()
        return stored

    accepted = retry_once_on_disconnect(store_and_commit, "event intake")
    ask_for_sending([accepted], retried=len(attempts) > 1)
    return accepted


def ask_for_sending(accepted: list[AcceptedEvent], retried: bool) -> None:
    """Request batches for the webhooks of newly stored events, or their fan-outs (after the commit). A repeat's
    were asked for when it was first accepted, unless the store was retried: then a "repeat" may be this very
    event, committed just before the connection died."""
    asked = [event for event in accepted if not event.duplicate or retried]
    fan_out_ids = sorted({event.fan_out_id for event in asked if event.fan_out_id is not None})
    webhook_ids = sorted({webhook_id for event in asked if event.fan_out_id is None
                          for webhook_id in event.webhook_ids})
    if fan_out_ids:
        request_fan_outs(fan_out_ids)
    if webhook_ids:
        request_batches(webhook_ids)
