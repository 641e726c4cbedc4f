"""/api/v1/messages and /api/v1/webhooks/{id}/messages: the activity log, filtered, in keyset pages; one message with
its attempts."""

import base64
import binascii
import re
from datetime import UTC, datetime

from flask import jsonify, request

from ..ids import MAX_DATABASE_ID
from ..services import activity
from ..services.api_tokens import WEBHOOKS_READ
from ..services.log_filters import Search, SearchNotUnderstood
from .auth import management
from .blueprint import bp
from .errors import ApiError
from .openapi import responses, spec
from .schemas import MessageDetail, MessagePage, MessageQuery
from .webhooks import iso, load

TAGS = ["messages"]
RESPONSE_BODY_LIMIT = 1024
CURSOR = re.compile(r"before:([0-9]{1,10})", re.ASCII)


def encode_cursor(message_id: int) -> str:
    """An opaque cursor for the page after message `message_id` (clients pass it back as they got it)."""
    return base64.urlsafe_b64encode(f"before:{message_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        text = ""
    match = CURSOR.fullmatch(text)
    if not match or not 1 <= int(match.group(1)) <= MAX_DATABASE_ID:
        raise ApiError(422, "cursor", "cursor is not one this API gave: pass the `next` of the previous page as is")
    return int(match.group(1))


def as_utc(moment: datetime | None, name: str) -> datetime | None:
    """A query's time as the naive UTC the database stores (a time without offset is UTC)."""
    if moment is None or moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise ApiError(422, name, f"{name} is out of range once converted to UTC") from None


def message_or_404(message_uuid):
    """The message with this messageId, or 404."""
    message = activity.message_by_uuid(str(message_uuid))
    if message is None:
        raise ApiError(404, "messageId", f"message {message_uuid} is not in the log (kept "
                                         "WEBHOOKS_LOG_RETENTION_DAYS days)")
    return message


def message_json(message) -> dict:
    return {
        "messageId": message.message_uuid, "webhookId": message.webhook_id,
        "eventId": message.event.event_uuid if message.event else None, "eventType": message.event_type,
        "test": message.is_test, "status": message.status, "attemptsMade": message.attempts_made,
        "nextAttemptAt": iso(message.next_attempt_at), "failureReason": message.failure_reason,
        "createdAt": iso(message.created_at), "updatedAt": iso(message.updated_at),
    }


def attempt_json(attempt) -> dict:
    body = attempt.response_excerpt
    return {
        "number": attempt.number, "startedAt": iso(attempt.started_at), "durationMs": attempt.duration_ms,
        "succeeded": attempt.succeeded, "statusCode": attempt.status_code, "errorKind": attempt.error_kind,
        "errorDetail": attempt.error_detail, "responseBody": body[:RESPONSE_BODY_LIMIT] if body else body,
    }


def log_search(text: str | None) -> Search | None:
    """The `search` parameter as the log's search; 422 naming it when it is neither a UUID nor an id."""
    try:
        return Search.parse(text)
    except SearchNotUnderstood as error:
        raise ApiError(422, "search", str(error)) from None


def message_page(webhook_id: int | None):
    """A page of the log as JSON, for the query's filters and cursor."""
    query = request.context.query
    filters = activity.MessageFilters(
        webhook_id=webhook_id, status=query.status, event_type=query.eventType,
        since=as_utc(query.since, "since"), until=as_utc(query.until, "until"),
        search=log_search(query.search),
    )
    before = decode_cursor(query.cursor) if query.cursor else None
    messages, more = activity.messages_before(filters, before, query.limit)
    return jsonify({"data": [message_json(message) for message in messages],
                    "next": encode_cursor(messages[-1].id) if more else None})


@bp.get("/messages")
@management(WEBHOOKS_READ)
@spec.validate(query=MessageQuery, resp=responses(422, HTTP_200=MessagePage), tags=TAGS)
def list_messages():
    """The activity log of every webhook, newest first, filtered; follow `next` for older pages."""
    return message_page(None)


@bp.get("/webhooks/<id:webhook_id>/messages")
@management(WEBHOOKS_READ)
@spec.validate(query=MessageQuery, resp=responses(404, 422, HTTP_200=MessagePage), tags=TAGS)
def list_webhook_messages(webhook_id: int):
    """A webhook's activity log, newest first, filtered; follow `next` for older pages."""
    load(webhook_id)
    return message_page(webhook_id)


@bp.get("/messages/<uuid:message_uuid>")
@management(WEBHOOKS_READ)
@spec.validate(resp=responses(404, HTTP_200=MessageDetail), tags=TAGS)
def read_message(message_uuid):
    """One message: the body as sent (secret masked) and every attempt (status, duration, error, 1 KiB of answer)."""
    message = message_or_404(message_uuid)
    body = {**message_json(message), "payload": activity.payload_as_sent(message),
            "attempts": [attempt_json(attempt) for attempt in message.attempts]}
    return jsonify(body)
