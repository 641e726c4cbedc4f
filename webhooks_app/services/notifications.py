"""Tell administrators about an outage: a warning while a webhook's deliveries keep failing, and a notice when
it is disabled automatically. Each is stored (an OwedNotification row) in the delivery's transaction, emailed by
an actor with its own retries, enqueued after that commit, and finished by the actor; the scheduler puts back on
the queue one whose queue entry was lost (Redis down when it was decided, or restarted empty meanwhile). Without
MAIL_URL only logged."""

import logging
import smtplib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import redis
from dramatiq import Retry
from flask import current_app, url_for
from sqlalchemy import func, select, update

from ..extensions import actor, db
from ..models import Attempt, Message, MessageStatus, OwedNotification, Webhook, utcnow
from .failure_causes import likely_cause
from .mail import MailRefused, describe, mail_configured, recipients, send_mail

logger = logging.getLogger(__name__)

NOTIFICATION_QUEUE = "notifications"
WARNING = "warning"
DISABLED = "disabled"
# With MAIL_RETRY_SECONDS' first wait (30 s) doubling up to an hour: about 8 hours of tries in all.
MAIL_MAX_RETRIES = 12
MAIL_MAX_BACKOFF_MILLISECONDS = 3_600_000
# How long the sweep leaves a stored notification to its queue entry: a minute after it is decided, and once the
# actor has started, longer than the actor's longest wait between two tries.
ENQUEUE_LEASE = timedelta(minutes=1)
TRYING_LEASE = timedelta(milliseconds=MAIL_MAX_BACKOFF_MILLISECONDS) + timedelta(minutes=10)
SWEEP_LIMIT = 100
# A notification still unsent this long after it was decided (the mail server has refused or been down
# through every try since) is given up, logged, instead of being queued for another round of tries.
GIVE_UP_AFTER = timedelta(days=2)


@dataclass(frozen=True)
class Notification:
    """An email owed once the delivery transaction that decided it commits."""

    kind: str
    webhook_id: int
    message_id: int | None = None


def new_queue_token() -> str:
    return str(uuid.uuid4())


def store_notifications(notifications: list[Notification]) -> list[tuple[int, str]]:
    """Store the notifications a delivery's transaction decided (callers commit); returns (id, queue token) pairs."""
    if not notifications:  # nearly every batch: no flush on the delivery's hot path
        return []
    now = utcnow()
    rows = [OwedNotification(kind=notification.kind, webhook_id=notification.webhook_id,
                             message_id=notification.message_id, created_at=now, next_enqueue_at=now + ENQUEUE_LEASE,
                             queue_token=new_queue_token())
            for notification in notifications]
    db.session.add_all(rows)
    db.session.flush()
    return [(row.id, row.queue_token) for row in rows]


def enqueue_notifications(owed: list[tuple[int, str]]) -> None:
    """Put committed notifications on the queue; with Redis down the scheduler does it once Redis answers."""
    backoff = int(current_app.config["MAIL_RETRY_SECONDS"] * 1000)
    for owed_id, queue_token in owed:
        try:
            send_notification.send_with_options(args=(owed_id, queue_token), min_backoff=backoff)
        except redis.RedisError as error:
            logger.error("Redis unavailable: notification %s is emailed when it answers (%s)", owed_id, error)


def requeue_owed_notifications() -> int:
    """The scheduler's check: put back on the queue every stored notification whose lease has run out (its queue
    entry was lost, or never made), giving up those decided more than GIVE_UP_AFTER ago; returns how many.

    Looks first, so a run that finds nothing writes nothing (no write lock taken on SQLite).
    """
    now = utcnow()
    unsent = list(db.session.execute(
        select(OwedNotification.id, OwedNotification.created_at)
        .where(OwedNotification.finished_at.is_(None), OwedNotification.next_enqueue_at <= now)
        .order_by(OwedNotification.id).limit(SWEEP_LIMIT)))
    stale = [row.id for row in unsent if row.created_at < now - GIVE_UP_AFTER]
    due = [row.id for row in unsent if row.created_at >= now - GIVE_UP_AFTER]
    if stale:
        db.session.execute(update(OwedNotification).where(OwedNotification.id.in_(stale)).values(finished_at=now)
                           .execution_options(synchronize_session=False))
        logger.error("Gave up %d notification email(s) still unsent %s after they were decided (see the worker's "
                     "earlier errors)", len(stale), GIVE_UP_AFTER)
    requeued = []
    for owed_id in due:
        # Each with a new token, and only if still unclaimed: an actor that took it meanwhile keeps it.
        token = new_queue_token()
        taken = db.session.execute(
            update(OwedNotification)
            .where(OwedNotification.id == owed_id, OwedNotification.finished_at.is_(None),
                   OwedNotification.next_enqueue_at <= now)
            .values(next_enqueue_at=now + ENQUEUE_LEASE, queue_token=token)
            .execution_options(synchronize_session=False)).rowcount
        if taken:
            requeued.append((owed_id, token))
    db.session.commit()
    enqueue_notifications(requeued)
    return len(requeued)


def finish(owed_id: int) -> None:
    db.session.execute(update(OwedNotification).where(OwedNotification.id == owed_id)
                       .values(finished_at=utcnow()).execution_options(synchronize_session=False))
    db.session.commit()


def claim(owed_id: int, queue_token: str | None) -> bool:
    """Take a stored notification for this queue entry (its retries included) for TRYING_LEASE; False when it is
    finished or the sweep gave it to a newer entry."""
    return bool(db.session.execute(
        update(OwedNotification)
        .where(OwedNotification.id == owed_id, OwedNotification.finished_at.is_(None),
               OwedNotification.queue_token.is_(None) if queue_token is None
               else OwedNotification.queue_token == queue_token)
        .values(next_enqueue_at=utcnow() + TRYING_LEASE)
        .execution_options(synchronize_session=False)).rowcount)


@actor(queue_name=NOTIFICATION_QUEUE, max_retries=MAIL_MAX_RETRIES, time_limit=90_000,
       max_backoff=MAIL_MAX_BACKOFF_MILLISECONDS)
def send_notification(owed_id: int, queue_token: str | None = None) -> None:
    """Email (or log) one stored notification, once; a mail server that is down or answers 4xx is tried again.

    Only the queue entry holding the row's token sends it, so two entries (the sweep put one back while the
    first was still waiting) never send two emails.
    """
    if not claim(owed_id, queue_token):
        db.session.commit()
        return
    owed = db.session.get(OwedNotification, owed_id)
    kind, webhook_id, message_id = owed.kind, owed.webhook_id, owed.message_id
    composed = compose(kind, webhook_id, message_id)
    db.session.commit()  # end the transaction before the network
    if composed is not None:
        email_or_log(kind, webhook_id, *composed)
    finish(owed_id)


def email_or_log(kind: str, webhook_id: int, subject: str, body: str) -> None:
    """Send the email (or log why it cannot be); raises Retry while the mail server is unavailable."""
    if not mail_configured():
        logger.warning("Email is not configured (MAIL_URL): notification not sent: %s\n%s", subject, body)
        return
    to = recipients()
    db.session.commit()
    if not to:
        logger.warning("No administrator or WEBHOOKS_NOTIFY_EMAILS address to email: %s", subject)
        return
    try:
        refused = send_mail(subject, body, to)
    except MailRefused as error:
        logger.error("The mail server refused the %s notification of webhook %s for good: %s", kind, webhook_id, error)
        return
    except (OSError, smtplib.SMTPException) as error:
        logger.warning("The %s notification of webhook %s could not be emailed yet (%s); it will be tried again",
                       kind, webhook_id, describe(error))
        raise Retry(f"mail server unavailable: {describe(error)}") from error
    if refused:
        logger.error("The mail server refused some recipients of the %s notification of webhook %s: %s", kind,
                     webhook_id, ", ".join(refused))
    logger.info("Emailed the %s notification of webhook %s to %d recipient(s)", kind, webhook_id,
                len(to) - len(refused))


def compose(kind: str, webhook_id: int, message_id: int | None) -> tuple[str, str] | None:
    """The subject and body of a notification, or None when it no longer applies (logged)."""
    webhook = db.session.get(Webhook, webhook_id)
    if webhook is None:
        logger.info("Webhook %s was deleted: its %s notification is dropped", webhook_id, kind)
        return None
    if kind == WARNING:
        # A warning is moot once deliveries succeed again, or once the webhook is disabled (that has its own email).
        if webhook.warned_at is None or not webhook.enabled:
            logger.info("The warning for webhook %s no longer applies (%s): not sent", webhook_id,
                        "it is disabled" if not webhook.enabled else "deliveries succeeded again")
            return None
        return warning_text(webhook, last_attempt(message_id))
    if webhook.enabled:
        logger.info("Webhook %s was enabled again before its disabled notification went out: not sent", webhook_id)
        return None
    return disabled_text(webhook)


def last_attempt(message_id: int | None) -> Attempt | None:
    if message_id is None:
        return None
    return db.session.scalar(select(Attempt).where(Attempt.message_id == message_id)
                             .order_by(Attempt.number.desc()).limit(1))


def endpoint_host(url: str) -> str:
    """The endpoint's host (and port), never its path or query, which may carry credentials."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port and port != 443 else host


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "an unknown time"


def link(endpoint: str, **values) -> str:
    """An absolute link under WEBHOOKS_PUBLIC_URL; without it the path, and how to get a full link."""
    base = current_app.config.get("WEBHOOKS_PUBLIC_URL")
    if base:
        with current_app.test_request_context(base_url=base):
            return url_for(endpoint, _external=True, **values)
    with current_app.test_request_context():
        return f"{url_for(endpoint, **values)} (set WEBHOOKS_PUBLIC_URL for a full link)"


def disable_estimate(webhook_id: int) -> datetime | None:
    """When the webhook is disabled if every attempt keeps failing: the earliest end of a pending message's ladder."""
    delays = current_app.config["WEBHOOKS_RETRY_DELAYS"]
    rows = db.session.execute(
        select(Message.attempts_made, func.min(Message.next_attempt_at))
        .where(Message.webhook_id == webhook_id, Message.status == MessageStatus.SCHEDULED_RETRY,
               Message.is_test.is_(False))
        .group_by(Message.attempts_made))
    ends = [due + timedelta(seconds=sum(delays[made:])) for made, due in rows if due is not None]
    return min(ends) if ends else None


def warning_text(webhook: Webhook, attempt: Attempt | None) -> tuple[str, str]:
    estimate = disable_estimate(webhook.id)
    cause = likely_cause(attempt.error_kind, attempt.status_code) if attempt else likely_cause(None)
    last_error = (attempt.error_detail or "the delivery failed") if attempt else "unknown"
    subject = f"Webhook “{webhook.name}” is failing: it will be disabled if nothing changes"
    body = "\n".join([
        f"Deliveries of the webhook “{webhook.name}” (endpoint host {endpoint_host(webhook.url)}) have been failing "
        f"since {when(webhook.failure_streak_started_at)}, with no successful delivery since.",
        "A message has now failed its third attempt.",
        "",
        cause,
        f"Last error: {last_error}.",
        "",
        (f"If nothing changes, the webhook will be disabled at about {when(estimate)}, when a message uses up "
         "its last retry." if estimate else
         "If nothing changes, the webhook will be disabled when a message uses up its last retry."),
        "Fix the endpoint before then: the retries will deliver the waiting messages. This is the only warning "
        "for this run of failures.",
        "",
        f"Activity log: {link('activity.webhook_log', webhook_id=webhook.id)}",
    ])
    return subject, body + "\n"


def disabled_text(webhook: Webhook) -> tuple[str, str]:
    subject = f"Webhook “{webhook.name}” was disabled"
    since = webhook.failure_streak_started_at
    body = "\n".join([
        f"The webhook “{webhook.name}” (endpoint host {endpoint_host(webhook.url)}) was disabled automatically "
        f"at {when(webhook.disabled_at)}. No more messages are sent to it until it is enabled again.",
        "",
        webhook.disabled_reason or "Its deliveries failed.",
        "",
        "What to do:",
        "1. Fix the endpoint (or the webhook's endpoint URL: Edit in its action menu).",
        "2. Check the fix: Test in the webhook's action menu sends a test message even while the webhook is "
        "disabled, and shows the endpoint's answer.",
        "3. Enable the webhook again with its Status toggle.",
        "4. Send what it missed: Replay missed events… in its action menu sends the events it missed since a time"
        + (f" (its failures began at {when(since)})." if since else "."),
        "",
        f"Webhooks page: {link('webhooks.index')}",
        f"Activity log: {link('activity.webhook_log', webhook_id=webhook.id)}",
    ])
    return subject, body + "\n"
