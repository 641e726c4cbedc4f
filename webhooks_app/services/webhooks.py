"""Create, change, enable, delete webhooks and reset their secrets; callers commit."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from ..events import EVENT_NAMES
from ..extensions import db
from ..models import Webhook, WebhookSubscription, utcnow
from ..secrets_vault import encrypt_secret, generate_secret

NAME_MAX_LENGTH = 255


class WebhookNotFound(LookupError):
    """No webhook has that id."""


@dataclass(frozen=True)
class WebhookFields:
    name: str
    url: str
    event_types: tuple[str, ...]
    enabled: bool


def list_webhooks() -> list[Webhook]:
    """All webhooks, oldest first."""
    return list(db.session.scalars(select(Webhook).order_by(Webhook.id)))


def get_webhook(webhook_id: int) -> Webhook:
    """The webhook with this id, or WebhookNotFound."""
    webhook = db.session.get(Webhook, webhook_id)
    if webhook is None:
        raise WebhookNotFound(webhook_id)
    return webhook


def lock_webhook(webhook_id: int) -> Webhook:
    """The webhook read afresh and locked until the transaction ends (PostgreSQL; SQLite writers take turns)."""
    webhook = db.session.scalars(select(Webhook).where(Webhook.id == webhook_id).with_for_update()
                                 .execution_options(populate_existing=True)).first()
    if webhook is None:
        raise WebhookNotFound(webhook_id)
    return webhook


def _set_event_types(webhook: Webhook, event_types: tuple[str, ...]) -> None:
    unknown = set(event_types) - set(EVENT_NAMES)
    if unknown:
        raise ValueError(f"unknown event types: {', '.join(sorted(unknown))}")
    if not event_types:
        raise ValueError("a webhook needs at least one event")
    wanted = set(event_types)
    if webhook.id is not None and wanted != {s.event_type for s in webhook.subscriptions}:
        # Only the subscriptions' rows change: a new updated_at tells open pages and API clients it changed.
        webhook.updated_at = utcnow()
    webhook.subscriptions = [s for s in webhook.subscriptions if s.event_type in wanted]
    present = {s.event_type for s in webhook.subscriptions}
    for event_type in EVENT_NAMES:
        if event_type in wanted and event_type not in present:
            webhook.subscriptions.append(WebhookSubscription(event_type=event_type))


def _apply_enabled(webhook: Webhook, enabled: bool) -> None:
    if enabled and not webhook.enabled:
        webhook.disabled_reason = None
        webhook.disabled_at = None
        # Enabled again after a fix: failures from now on are a new streak, with a warning of their own.
        webhook.failure_streak_started_at = None
        webhook.warned_at = None
    elif not enabled and webhook.enabled:
        webhook.disabled_at = utcnow()
    webhook.enabled = enabled


def create_webhook(fields: WebhookFields) -> tuple[Webhook, str]:
    """Add a webhook; returns it and its plaintext secret, which is never retrievable again."""
    secret = generate_secret()
    webhook = Webhook(
        name=fields.name,
        url=fields.url,
        enabled=fields.enabled,
        secret_encrypted=encrypt_secret(secret),
        disabled_at=None if fields.enabled else utcnow(),
    )
    _set_event_types(webhook, fields.event_types)
    db.session.add(webhook)
    db.session.flush()
    return webhook, secret


def update_webhook(webhook_id: int, fields: WebhookFields) -> Webhook:
    """Change a webhook's name, URL, events and enabled state (a replaced secret whose overlap is over goes too)."""
    webhook = get_webhook(webhook_id)
    webhook.name = fields.name
    webhook.url = fields.url
    _set_event_types(webhook, fields.event_types)
    _apply_enabled(webhook, fields.enabled)
    forget_expired_previous_secret(webhook)
    db.session.flush()
    return webhook


def set_webhook_enabled(webhook_id: int, enabled: bool) -> Webhook:
    """Turn a webhook on or off; turning it on clears any automatic-disable reason (a replaced secret whose
    overlap is over goes too)."""
    webhook = get_webhook(webhook_id)
    _apply_enabled(webhook, enabled)
    forget_expired_previous_secret(webhook)
    db.session.flush()
    return webhook


def previous_secret_valid_until(webhook: Webhook, now: datetime | None = None) -> datetime | None:
    """When the webhook's replaced secret stops being valid; None when it has none (or it has expired)."""
    expires_at = webhook.previous_secret_expires_at
    if webhook.previous_secret_encrypted is None or expires_at is None or expires_at <= (now or utcnow()):
        return None
    return expires_at


def forget_previous_secret(webhook: Webhook) -> None:
    webhook.previous_secret_encrypted = None
    webhook.previous_secret_expires_at = None


def forget_expired_previous_secret(webhook: Webhook, now: datetime | None = None) -> None:
    """Remove the webhook's replaced secret from the row if its overlap is over (on any change to the webhook)."""
    if webhook.previous_secret_encrypted is not None and previous_secret_valid_until(webhook, now) is None:
        forget_previous_secret(webhook)


def delete_webhook(webhook_id: int) -> None:
    """Remove a webhook and its subscriptions."""
    db.session.delete(get_webhook(webhook_id))
    db.session.flush()
