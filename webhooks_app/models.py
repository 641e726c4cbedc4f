"""Database models: administrators, their sessions, sign-in attempts, webhooks, events, messages and replays."""

from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserSession(db.Model):
    """A signed-in browser: its cookie carries a random token, stored here only as a SHA-256 hash.

    Deleting the row signs that browser out (sign-out, a password change, the user's removal).
    """

    __tablename__ = "user_sessions"
    __table_args__ = (Index("ix_user_sessions_user", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginAttempt(db.Model):
    """One sign-in attempt; failures in a recent window lock the email out for a while."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_email_time", "email", "attempted_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    remote_address: Mapped[str | None] = mapped_column(String(64))
    succeeded: Mapped[bool] = mapped_column(default=False)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)


class Webhook(db.Model):
    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(String(2048))
    enabled: Mapped[bool] = mapped_column(default=True)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    # A reset secret with an overlap: the replaced secret still signs deliveries until it expires.
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None]
    # The current failure streak: the first failed attempt since the last success (None: no failures
    # since), and when its one warning email was claimed (services/streaks.py).
    failure_streak_started_at: Mapped[datetime | None]
    warned_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    subscriptions: Mapped[list["WebhookSubscription"]] = relationship(
        back_populates="webhook",
        cascade="all, delete-orphan",
        order_by="WebhookSubscription.event_type",
        lazy="selectin",
    )

    @property
    def event_types(self) -> list[str]:
        """In name order, as the database returns them, also right after a change added some."""
        return sorted(subscription.event_type for subscription in self.subscriptions)


class WebhookSubscription(db.Model):
    """A webhook's subscription to one event type; indexed by type for fan-out."""

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (Index("ix_webhook_subscriptions_event_type", "event_type", "webhook_id"),)

    webhook_id: Mapped[int] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), primary_key=True
    )
    event_type: Mapped[str] = mapped_column(String(64), primary_key=True)

    webhook: Mapped[Webhook] = relationship(back_populates="subscriptions")


class ApiToken(db.Model):
    """A bearer token for the API; only its SHA-256 is stored. `scopes` is space-separated (events:write, …)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[str] = mapped_column(String(255), server_default="events:write")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()


class ApiAuditEntry(db.Model):
    """One management call made with an API token: who, what, when and how it ended."""

    __tablename__ = "api_audit_log"
    __table_args__ = (Index("ix_api_audit_log_created", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id", ondelete="SET NULL"))
    token_name: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(2048))
    status: Mapped[int]
    summary: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Event(db.Model):
    """A system event accepted by the intake; its payload is the `event` object of every message.

    The eventId is unique per sender (`scope`: "token:<id>", "local" for emit_event and the CLI, "test"
    for the Test button, "legacy" for events stored before eventIds were scoped), and `body_digest`
    tells a repeat of the same event from a different event reusing the eventId.
    """

    __tablename__ = "events"
    # eventId first: the index also finds an event by its eventId alone.
    __table_args__ = (UniqueConstraint("event_uuid", "scope", name="uq_events_event_uuid_scope"),
                      Index("ix_events_created", "created_at"), Index("ix_events_subject", "subject_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    event_uuid: Mapped[str] = mapped_column(String(36))
    scope: Mapped[str] = mapped_column(String(32), server_default="legacy")
    body_digest: Mapped[str | None] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(db.JSON)
    # What the event is about (its assetId, folderId or targetUserId), for the log's search.
    subject_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MessageStatus:
    QUEUED = "queued"
    SCHEDULED_RETRY = "scheduled_retry"
    SENT = "sent"
    FAILED = "failed"

    PENDING = (QUEUED, SCHEDULED_RETRY)
    FINAL = (SENT, FAILED)
    LABELS = {SENT: "Sent", QUEUED: "Queued", SCHEDULED_RETRY: "Scheduled retry", FAILED: "Failed"}


PENDING_CONDITION = text("status IN ('queued', 'scheduled_retry')")


class FanOut(db.Model):
    """Events a batch stored whose messages are yet to be made: the worker makes them (services/fan_out.py).

    `subscribers` holds, per event type, the enabled webhooks subscribed when the batch was accepted, so the
    messages go where a single event's would have; the row is deleted in the transaction that makes them.
    """

    __tablename__ = "fan_outs"
    __table_args__ = (Index("ix_fan_outs_enqueued", "enqueued_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_ids: Mapped[list] = mapped_column(db.JSON)
    subscribers: Mapped[dict] = mapped_column(db.JSON)
    # {webhook id: its created_at}: a webhook deleted meanwhile whose id SQLite gave to a new one gets nothing.
    webhooks_created: Mapped[dict] = mapped_column(db.JSON)
    # The batch's smallest and largest event ids: the prune keeps every event between them until it is done.
    first_event_id: Mapped[int]
    last_event_id: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When its queue entry was last sent: the sweeper sends another once this is WEBHOOKS_REQUEUE_AFTER_SECONDS old.
    enqueued_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReplayStatus:
    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"


class Replay(db.Model):
    """A replay of a webhook's missed events since a time, made in batches by a worker (services/replay.py).

    `cursor_event_id` is the last event it has looked at, so a run that stops half-way resumes there;
    `last_event_id` the newest event when it was asked for (later ones reach the webhook as usual).
    """

    __tablename__ = "replays"
    __table_args__ = (Index("ix_replays_webhook", "webhook_id", "id"), Index("ix_replays_status", "status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    since: Mapped[datetime]
    requested_by: Mapped[str] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(20), default=ReplayStatus.RUNNING)
    cursor_event_id: Mapped[int] = mapped_column(default=0)
    last_event_id: Mapped[int] = mapped_column(default=0)
    messages_created: Mapped[int] = mapped_column(default=0)
    stop_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class OwedNotification(db.Model):
    """An email owed to the administrators (a warning, a Disabled notice), stored in the transaction that decided
    it and finished by the mail actor; the scheduler puts back on the queue one whose queue entry was lost."""

    __tablename__ = "owed_notifications"
    __table_args__ = (Index("ix_owed_notifications_due", "finished_at", "next_enqueue_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Until then the sweep leaves it to its queue entry (or to the actor's retries, once one has started).
    next_enqueue_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    # The one queue entry that may send it: an entry the sweep has since replaced finds another token and ends.
    queue_token: Mapped[str | None] = mapped_column(String(36))


class MetricCounter(db.Model):
    """A counter that only grows (webhooks_replayed_total), kept in the database so every process reports it."""

    __tablename__ = "metric_counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class Message(db.Model):
    """One event owed to one webhook: the database is the truth about what is owed and when."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_due", "status", "next_attempt_at"),
        Index("ix_messages_webhook_created", "webhook_id", "id"),
        Index("ix_messages_event", "event_id"),
        Index("ix_messages_webhook_status_id", "webhook_id", "status", "id"),
        Index("ix_messages_webhook_status_due", "webhook_id", "status", "next_attempt_at"),
        Index("ix_messages_status_id", "status", "id"),
        Index("ix_messages_webhook_created_status", "webhook_id", "created_at", "status"),
        Index("ix_messages_created", "created_at", "status"),
        # The log's event type filter, on one webhook's log and on All activity.
        Index("ix_messages_webhook_type_id", "webhook_id", "event_type", "id"),
        Index("ix_messages_type_id", "event_type", "id"),
        # At most one pending message per webhook and event: a replay or Send again never queues a second copy.
        Index("uq_messages_pending_webhook_event", "webhook_id", "event_id", unique=True,
              postgresql_where=PENDING_CONDITION, sqlite_where=PENDING_CONDITION),
        Index("ix_messages_replay_of", "replay_of_id", postgresql_where=text("replay_of_id IS NOT NULL"),
              sqlite_where=text("replay_of_id IS NOT NULL")),
        Index("ix_messages_replay", "replay_id", postgresql_where=text("replay_id IS NOT NULL"),
              sqlite_where=text("replay_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_uuid: Mapped[str] = mapped_column(String(36), unique=True)
    webhook_id: Mapped[int | None] = mapped_column(ForeignKey("webhooks.id", ondelete="SET NULL"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(64))
    is_test: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(20), default=MessageStatus.QUEUED)
    attempts_made: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    claimed_until: Mapped[datetime | None]
    enqueued_at: Mapped[datetime | None]
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A replay (Send again, or Replay missed events) names the message it repeats (kept as text too: the
    # original may be pruned first) and the replay that made it.
    replay_of_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    replay_of_uuid: Mapped[str | None] = mapped_column(String(36))
    replay_id: Mapped[int | None] = mapped_column(ForeignKey("replays.id", ondelete="SET NULL"))

    event: Mapped[Event | None] = relationship()
    replay: Mapped[Replay | None] = relationship()
    attempts: Mapped[list["Attempt"]] = relationship(
        back_populates="message", cascade="all, delete-orphan", order_by="Attempt.number",
        passive_deletes=True,
    )


class Attempt(db.Model):
    """One try at sending a message: when, how long, and what came back."""

    __tablename__ = "attempts"
    __table_args__ = (
        # Unique: recording an attempt again (after a lost connection) inserts nothing.
        Index("ix_attempts_message", "message_id", "number", unique=True),
        # Covering (succeeded included) so the hourly chart reads the index alone.
        Index("ix_attempts_webhook_started_outcome", "webhook_id", "started_at", "succeeded"),
        Index("ix_attempts_started_outcome", "started_at", "succeeded"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    webhook_id: Mapped[int | None] = mapped_column(ForeignKey("webhooks.id", ondelete="SET NULL"))
    number: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    duration_ms: Mapped[int]
    succeeded: Mapped[bool]
    status_code: Mapped[int | None]
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error_detail: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    # JSON objects: the headers sent (signature included, never the secret) and the answer's (capped).
    request_headers: Mapped[str | None] = mapped_column(Text)
    response_headers: Mapped[str | None] = mapped_column(Text)

    message: Mapped[Message] = relationship(back_populates="attempts")
