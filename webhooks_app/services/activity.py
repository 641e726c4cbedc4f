"""The activity log: keyset pages of messages, their details, per-status counts and hourly outcomes."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import joinedload, selectinload

from ..database import dialect_name
from ..extensions import db
from ..models import Attempt, Event, Message, MessageStatus, Webhook, utcnow

PAGE_SIZE = 50
STATUS_FILTERS = {"sent": MessageStatus.SENT, "queued": MessageStatus.QUEUED,
                  "scheduled_retry": MessageStatus.SCHEDULED_RETRY, "failed": MessageStatus.FAILED}


@dataclass
class LogPage:
    messages: list[Message]
    newer_cursor: int | None  # pass as ?after= to see newer rows
    older_cursor: int | None  # pass as ?before= to see older rows
    is_newest: bool


def _filtered(webhook_id: int | None, status: str | None):
    query = select(Message)
    if webhook_id is not None:
        query = query.where(Message.webhook_id == webhook_id)
    if status:
        query = query.where(Message.status == STATUS_FILTERS[status])
    return query


def log_page(webhook_id: int | None, status: str | None = None, before: int | None = None,
             after: int | None = None, oldest: bool = False, page_size: int = PAGE_SIZE) -> LogPage:
    """One page of messages, newest first, found by keyset (message id) and never by OFFSET."""
    query = _filtered(webhook_id, status)
    if after is not None or oldest:
        if after is not None:
            query = query.where(Message.id > after)
        rows = list(db.session.scalars(query.order_by(Message.id.asc()).limit(page_size + 1)))
        has_newer = len(rows) > page_size
        rows = list(reversed(rows[:page_size]))
        has_older = bool(rows) and _exists_older(webhook_id, status, rows[-1].id)
    else:
        if before is not None:
            query = query.where(Message.id < before)
        rows = list(db.session.scalars(query.order_by(Message.id.desc()).limit(page_size + 1)))
        has_older = len(rows) > page_size
        rows = rows[:page_size]
        has_newer = before is not None and bool(rows) and _exists_newer(webhook_id, status, rows[0].id)
    return LogPage(
        messages=rows,
        newer_cursor=rows[0].id if rows and has_newer else None,
        older_cursor=rows[-1].id if rows and has_older else None,
        is_newest=not has_newer,
    )


def _exists_older(webhook_id, status, message_id) -> bool:
    query = _filtered(webhook_id, status).where(Message.id < message_id).limit(1)
    return db.session.scalar(query.with_only_columns(Message.id)) is not None


def _exists_newer(webhook_id, status, message_id) -> bool:
    query = _filtered(webhook_id, status).where(Message.id > message_id).limit(1)
    return db.session.scalar(query.with_only_columns(Message.id)) is not None


def message_detail(message_id: int) -> Message | None:
    """A message with its event and attempts, or None."""
    return db.session.get(Message, message_id)


def payload_as_sent(message: Message) -> dict:
    """The body of the message's last send (or next one), with the secret masked."""
    last = message.attempts[-1] if message.attempts else None
    return {
        "event": message.event.payload if message.event else None,
        "token": "•••••••• (secret hidden)",
        "messageTime": int((last.started_at if last else message.created_at).replace(tzinfo=UTC).timestamp()),
        "messageId": message.message_uuid,
        "subscriptionId": message.webhook_id,
    }


ERROR_LABELS = {
    "timeout": "Timed out", "refused": "Connection refused", "dns": "DNS failure", "tls": "TLS error",
    "redirect": "Redirect", "http_status": "HTTP error", "forbidden_address": "Blocked address",
    "connection": "Connection error",
}


def status_counts(webhook_id: int | None, since: datetime) -> dict[str, int]:
    """Messages created since `since`, counted by status (one filtered count per status, no GROUP BY)."""
    columns = [func.count().filter(Message.status == status) for status in MessageStatus.LABELS]
    query = select(*columns).where(Message.created_at >= since)
    if webhook_id is not None:
        query = query.where(Message.webhook_id == webhook_id)
    return dict(zip(MessageStatus.LABELS, db.session.execute(query).one(), strict=True))


@dataclass
class HourBucket:
    start: datetime
    succeeded: int = 0
    failed: int = 0


def hourly_outcomes(webhook_id: int | None, now: datetime | None = None, hours: int = 24) -> list[HourBucket]:
    """Delivery attempts per hour over the last `hours`, split into succeeded and failed (grouped in SQL)."""
    now = now or utcnow()
    first_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    buckets = [HourBucket(first_hour + timedelta(hours=index)) for index in range(hours)]
    hour = _hour_of(Attempt.started_at)
    query = (select(hour, Attempt.succeeded, func.count()).where(Attempt.started_at >= first_hour)
             .group_by(hour, Attempt.succeeded))
    if webhook_id is not None:
        query = query.where(Attempt.webhook_id == webhook_id)
    for started_hour, succeeded, count in db.session.execute(query):
        if isinstance(started_hour, str):
            started_hour = datetime.strptime(started_hour, "%Y-%m-%d %H")
        index = int((started_hour - first_hour).total_seconds() // 3600)
        if 0 <= index < hours:
            if succeeded:
                buckets[index].succeeded += count
            else:
                buckets[index].failed += count
    return buckets


def _hour_of(column):
    """The hour a timestamp falls in: a timestamp on PostgreSQL, 'YYYY-MM-DD HH' text on SQLite."""
    if dialect_name() == "sqlite":
        # SQLite stores datetimes as ISO text, so the first 13 characters name the hour.
        return func.substr(column, 1, 13)
    return func.date_trunc("hour", column)


@dataclass
class LogChanges:
    changed: list[Message]
    new: list[Message]


def log_changes(webhook_id: int | None, status: str | None, newest_id: int, pending_ids: list[int],
                since: datetime, include_new: bool) -> LogChanges:
    """What a live log page must redraw: its pending rows that moved on, and rows newer than it shows.

    One indexed query; with nothing in flight and nothing new it returns no rows.
    """
    conditions = []
    if pending_ids:
        conditions.append(Message.id.in_(pending_ids) & (Message.updated_at > since))
    if include_new:
        newer = Message.id > newest_id
        if webhook_id is not None:
            newer = newer & (Message.webhook_id == webhook_id)
        if status:
            newer = newer & (Message.status == STATUS_FILTERS[status])
        conditions.append(newer)
    if not conditions:
        return LogChanges([], [])
    rows = list(db.session.scalars(select(Message).where(or_(*conditions)).order_by(Message.id.desc())
                                   .limit(PAGE_SIZE)))
    pending = set(pending_ids)
    return LogChanges(changed=[m for m in rows if m.id in pending], new=[m for m in rows if m.id > newest_id])


def webhooks_fingerprint() -> str:
    """Changes whenever any webhook is added, removed or changed (one aggregate query)."""
    count, newest = db.session.execute(select(func.count(Webhook.id), func.max(Webhook.updated_at))).one()
    return f"{count}:{newest.isoformat() if newest else '-'}"


# --- the API's view of the log: filters and keyset pages (newest first, by message id) -----------------------------

@dataclass(frozen=True)
class MessageFilters:
    """Which messages to list; None leaves a filter out. `search` is a messageId or an eventId (UUID text)."""

    webhook_id: int | None = None
    status: str | None = None
    event_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: str | None = None


def filtered_messages(filters: MessageFilters):
    """A SELECT of the messages that pass every filter given."""
    query = select(Message)
    if filters.webhook_id is not None:
        query = query.where(Message.webhook_id == filters.webhook_id)
    if filters.status:
        query = query.where(Message.status == filters.status)
    if filters.event_type:
        query = query.where(Message.event_type == filters.event_type)
    if filters.since is not None:
        query = query.where(Message.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(Message.created_at < filters.until)
    if filters.search:
        events = select(Event.id).where(Event.event_uuid == filters.search)
        query = query.where(or_(Message.message_uuid == filters.search, Message.event_id.in_(events)))
    return query


def messages_before(filters: MessageFilters, before_id: int | None, limit: int) -> tuple[list[Message], bool]:
    """Up to `limit` messages, newest first, older than message `before_id` when given; and whether more remain."""
    query = filtered_messages(filters).options(joinedload(Message.event))
    if before_id is not None:
        query = query.where(Message.id < before_id)
    rows = list(db.session.scalars(query.order_by(Message.id.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def message_by_uuid(message_uuid: str) -> Message | None:
    """The message with this messageId (its event and attempts load with it), or None."""
    return db.session.scalars(select(Message).where(Message.message_uuid == message_uuid)
                              .options(joinedload(Message.event), selectinload(Message.attempts))).first()
