"""The activity log: keyset pages of messages, their details, per-status counts and hourly outcomes."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import joinedload, selectinload

from ..database import dialect_name
from ..extensions import db
from ..models import Attempt, Message, MessageStatus, Webhook, utcnow
from .log_filters import LogFilter, Search

PAGE_SIZE = 50


@dataclass
class LogPage:
    messages: list[Message]
    newer_cursor: int | None  # pass as ?after= to see newer rows
    older_cursor: int | None  # pass as ?before= to see older rows
    is_newest: bool


def _filtered(log_filter: LogFilter):
    return select(Message).where(*log_filter.conditions())


def log_page(log_filter: LogFilter, before: int | None = None, after: int | None = None, oldest: bool = False,
             page_size: int = PAGE_SIZE) -> LogPage:
    """One page of messages, newest first, found by keyset (message id) and never by OFFSET."""
    query = _filtered(log_filter)
    if after is not None or oldest:
        if after is not None:
            query = query.where(Message.id > after)
        rows = list(db.session.scalars(query.order_by(Message.id.asc()).limit(page_size + 1)))
        has_newer = len(rows) > page_size
        rows = list(reversed(rows[:page_size]))
        has_older = bool(rows) and _exists(log_filter, Message.id < rows[-1].id)
    else:
        if before is not None:
            query = query.where(Message.id < before)
        rows = list(db.session.scalars(query.order_by(Message.id.desc()).limit(page_size + 1)))
        has_older = len(rows) > page_size
        rows = rows[:page_size]
        has_newer = before is not None and bool(rows) and _exists(log_filter, Message.id > rows[0].id)
    return LogPage(
        messages=rows,
        newer_cursor=rows[0].id if rows and has_newer else None,
        older_cursor=rows[-1].id if rows and has_older else None,
        is_newest=not has_newer,
    )


def _exists(log_filter: LogFilter, condition) -> bool:
    query = _filtered(log_filter).where(condition).limit(1)
    return db.session.scalar(query.with_only_columns(Message.id)) is not None


@dataclass(frozen=True)
class Ladder:
    total: int
    words: str


def _in_words(seconds: float) -> str:
    if seconds <= 0:
        return "due now"
    minutes = round(seconds / 60)
    if minutes < 1:
        return "next in under a minute"
    if minutes < 60:
        return f"next in {minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"next in {hours} h" + (f" {minutes} min" if minutes else "")
    return f"next in {hours // 24} d" + (f" {hours % 24} h" if hours % 24 else "")


def ladder(message: Message, retry_delays: tuple, now: datetime) -> Ladder:
    """Where a message is on the retry ladder, in words: "attempt 3 of 6 · next in 25 min"."""
    total = 1 if message.is_test else 1 + len(retry_delays)
    made = message.attempts_made
    if message.status == MessageStatus.SENT:
        words = f"Sent on attempt {made} of {total}"
    elif message.status == MessageStatus.FAILED:
        words = f"Failed after attempt {made} of {total}" if made else "Failed without an attempt"
    elif message.status == MessageStatus.SCHEDULED_RETRY and message.next_attempt_at is not None:
        words = f"Attempt {made} of {total} failed · {_in_words((message.next_attempt_at - now).total_seconds())}"
    else:
        words = f"Attempt {made + 1} of {total} · queued, waiting for a worker"
    return Ladder(total, words)


def message_detail(message_id: int) -> Message | None:
    """A message with its event and attempts, or None."""
    return db.session.get(Message, message_id)


def payload_as_sent(message: Message) -> dict:
    """The body of the message's last send (or next one), with the secret masked."""
    last = message.attempts[-1] if message.attempts else None
    sent_time = dict(header_pairs(last.request_headers)).get("webhook-timestamp") if last else None
    return {
        "event": message.event.payload if message.event else None,
        "token": "•••••••• (secret hidden)",
        "messageTime": int(sent_time) if sent_time and sent_time.isdigit() else
                       int((last.started_at if last else message.created_at).replace(tzinfo=UTC).timestamp()),
        "messageId": message.message_uuid,
        "subscriptionId": message.webhook_id,
    }


def header_pairs(stored: str | None) -> list[tuple[str, str]]:
    """Headers stored as a JSON object (or list of pairs) as (name, value) pairs; none when absent or unreadable."""
    if not stored:
        return []
    try:
        value = json.loads(stored)
    except ValueError:
        return []
    pairs = value.items() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [(str(pair[0]), str(pair[1])) for pair in pairs if isinstance(pair, (list, tuple)) and len(pair) == 2]


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


def log_changes(log_filter: LogFilter, newest_id: int, pending_ids: list[int], since: datetime,
                include_new: bool) -> LogChanges:
    """What a live log page must redraw: its pending rows that moved on, and rows newer than it shows.

    One indexed query; with nothing in flight and nothing new it returns no rows.
    """
    conditions = []
    if pending_ids:
        conditions.append(Message.id.in_(pending_ids) & (Message.updated_at > since))
    if include_new:
        conditions.append(and_(Message.id > newest_id, *log_filter.conditions()))
    if not conditions:
        return LogChanges([], [])
    rows = list(db.session.scalars(select(Message).where(or_(*conditions)).order_by(Message.id.desc())
                                   .limit(PAGE_SIZE)))
    pending = set(pending_ids)
    return LogChanges(changed=[m for m in rows if m.id in pending], new=[m for m in rows if m.id > newest_id])


def summary_fingerprint(webhook_id: int | None, now: datetime) -> str:
    """Changes whenever a webhook log's counts or hourly chart would: a new message, a new attempt, and every five
    minutes (an attempt is recorded when it ends, so one that timed out may be recorded with an earlier start than
    the newest; its redraw waits at most that long).

    Two index lookups (the newest message id and attempt start of the webhook). All activity counts every
    message of 30 days, so its summary is redrawn at most once a minute instead.
    """
    if webhook_id is None:
        return f"{now:%Y%m%d%H%M}"
    newest_message = select(func.max(Message.id))
    newest_attempt = select(func.max(Attempt.started_at))
    if webhook_id is not None:
        newest_message = newest_message.where(Message.webhook_id == webhook_id)
        newest_attempt = newest_attempt.where(Attempt.webhook_id == webhook_id)
    message_id, attempt_time = db.session.execute(
        select(newest_message.scalar_subquery(), newest_attempt.scalar_subquery())).one()
    attempt_text = attempt_time.isoformat() if isinstance(attempt_time, datetime) else str(attempt_time or "-")
    return f"{message_id or 0}.{attempt_text}.{now:%Y%m%d%H}{now.minute // 5}"


def webhooks_fingerprint() -> str:
    """Changes whenever any webhook is added, removed or changed (one aggregate query)."""
    count, newest = db.session.execute(select(func.count(Webhook.id), func.max(Webhook.updated_at))).one()
    return f"{count}:{newest.isoformat() if newest else '-'}"


# --- the API's view of the log: filters and keyset pages (newest first, by message id) -----------------------------

@dataclass(frozen=True)
class MessageFilters:
    """Which messages to list; None leaves a filter out. `search` is the log's: a messageId or eventId, or the id
    of the asset, folder or user an event is about."""

    webhook_id: int | None = None
    status: str | None = None
    event_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: Search | None = None


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
    if filters.search is not None:
        query = query.where(filters.search.condition())
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
