"""What a log page shows: its webhook, Status, event type, time range and search, as SQL conditions on messages.

Every combination is served by an index: the search finds its few messages through the message or event
indexes; the time range becomes a lower bound on the message id (ids grow with creation time), so pages and
the Oldest page start at the range's first message instead of scanning the rows before it.
"""

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import false, func, or_, select

from ..database import dialect_name
from ..extensions import db
from ..models import Event, Message, MessageStatus

MAX_SUBJECT_ID = 2**53 - 1
STATUS_FILTERS = {"sent": MessageStatus.SENT, "queued": MessageStatus.QUEUED,
                  "scheduled_retry": MessageStatus.SCHEDULED_RETRY, "failed": MessageStatus.FAILED}
TIME_RANGES = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
               "30d": timedelta(days=30)}


# A search finds at most this many messages (the newest): an id that thousands of events are about is a broad search.
MAX_FOUND = 2000


class SearchNotUnderstood(ValueError):
    """The search text is neither a UUID nor an id."""


@dataclass(frozen=True)
class Search:
    """A messageId or eventId (a UUID), or the id of the asset, folder or user an event is about."""

    uuid: str | None = None
    subject_id: int | None = None

    @classmethod
    def parse(cls, text: str | None) -> "Search | None":
        text = (text or "").strip()
        if not text:
            return None
        if text.isascii() and text.isdigit():
            number = int(text)
            if 0 < number <= MAX_SUBJECT_ID:
                return cls(subject_id=number)
            raise SearchNotUnderstood(f"{text[:40]} is not an id (ids are 1 to {MAX_SUBJECT_ID}).")
        try:
            return cls(uuid=str(uuid.UUID(text)))
        except ValueError:
            raise SearchNotUnderstood(
                "Search for a messageId or eventId (a UUID such as 0c218a59-8d6c-4c20-b5fe-372f75162d13) "
                "or for an asset, folder or user id (a number).") from None

    def condition(self):
        """The search as one condition (for the live poll's few new rows)."""
        if self.uuid is not None:
            events = select(Event.id).where(Event.event_uuid == self.uuid)
            return or_(Message.message_uuid == self.uuid, Message.event_id.in_(events))
        events = select(Event.id).where(Event.subject_id == self.subject_id)
        if dialect_name() == "postgresql":
            # As `IN (…)` PostgreSQL may walk the log backwards by id for a subject's few messages (0.8 s on a million
            # messages when the subject has thousands of events but few messages); `= ANY(ARRAY(…))` looks its
            # events' messages up by event (5 ms). SQLite looks them up by event either way.
            return Message.event_id == func.any(func.array(events.scalar_subquery()))
        return Message.event_id.in_(events)

    def message_ids(self, conditions=()) -> tuple[list[int], bool]:
        """The ids of the messages found that meet `conditions` (a page's webhook, status and event type), the newest
        MAX_FOUND of them, each way by its own index (of the newest MAX_FOUND events found); and whether the cap
        left some out."""
        if self.uuid is not None:
            by_message = select(Message.id).where(Message.message_uuid == self.uuid, *conditions)
            events = select(Event.id).where(Event.event_uuid == self.uuid)
        else:
            by_message = None
            events = select(Event.id).where(Event.subject_id == self.subject_id)
        event_ids = list(db.session.scalars(events.order_by(Event.id.desc()).limit(MAX_FOUND + 1)))
        older_events, event_ids = len(event_ids) > MAX_FOUND, event_ids[:MAX_FOUND]
        found = set(db.session.scalars(by_message)) if by_message is not None else set()
        if event_ids:
            found.update(db.session.scalars(select(Message.id).where(Message.event_id.in_(event_ids), *conditions)))
        capped = len(found) > MAX_FOUND
        if older_events and not capped:  # do the events past the cap have a message this page would show?
            older = select(Message.id).where(Message.event_id.in_(events.where(Event.id < event_ids[-1])), *conditions)
            capped = db.session.scalar(older.limit(1)) is not None
        return sorted(found, reverse=True)[:MAX_FOUND], capped


@dataclass(frozen=True)
class LogFilter:
    webhook_id: int | None = None
    status: str | None = None
    event_type: str | None = None
    search: Search | None = None
    first_id: int | None = None  # the time range as the id of its first message; 0: nothing is in range
    found_ids: tuple[int, ...] | None = None  # the search's messages, looked up once for a page
    search_capped: bool = False  # the search found more than MAX_FOUND: the oldest are not shown

    def with_search_resolved(self) -> "LogFilter":
        """The same filter with the search's messages looked up (a short id list the pages' queries use)."""
        if self.search is None:
            return self
        narrowing = replace(self, search=None).conditions()  # the cap counts only what the page shows
        found, capped = self.search.message_ids(narrowing)
        return replace(self, found_ids=tuple(found), search_capped=capped)

    def conditions(self) -> list:
        conditions = []
        if self.webhook_id is not None:
            conditions.append(Message.webhook_id == self.webhook_id)
        if self.status:
            conditions.append(Message.status == STATUS_FILTERS[self.status])
        if self.event_type:
            conditions.append(Message.event_type == self.event_type)
        if self.found_ids is not None:
            conditions.append(Message.id.in_(self.found_ids) if self.found_ids else false())
        elif self.search is not None:
            conditions.append(self.search.condition())
        if self.first_id is not None:
            conditions.append(Message.id >= self.first_id if self.first_id else false())
        return conditions

    @property
    def narrowed(self) -> bool:
        """True when anything beyond the webhook limits what is shown."""
        return bool(self.status or self.event_type or self.search or self.first_id is not None)


def first_message_id_since(since: datetime) -> int:
    """The id of the first message created at or after `since` (by the created_at index), or 0 for none."""
    found = db.session.scalar(select(Message.id).where(Message.created_at >= since)
                              .order_by(Message.created_at).limit(1))
    return found or 0
