"""Reset a webhook's secret, optionally keeping the replaced one valid for a while; callers commit.

During the overlap every delivery is signed with both secrets (Standard Webhooks: one `v1,` signature per
secret), so receivers can switch to the new secret at their own pace. The replaced secret stays encrypted
at rest and is removed from the database once it expires: by the next delivery that reads it, by any change
to the webhook, and by the scheduler's periodic clean-up.
"""

from datetime import datetime, timedelta

from sqlalchemy import select, update

from ..extensions import db
from ..models import Webhook, utcnow
from ..secrets_vault import decrypt_secret, encrypt_secret, generate_secret
from .webhooks import forget_previous_secret, get_webhook, previous_secret_valid_until

# (seconds, label) of the "Old secret stays valid" choices; 0 is the seed's behaviour and the default.
OVERLAP_CHOICES = ((0, "Stop at once"), (3600, "1 hour"), (86400, "24 hours"), (604800, "7 days"))
OVERLAP_SECONDS = frozenset(seconds for seconds, _ in OVERLAP_CHOICES)
OVERLAP_REFUSED = f"Choose how long the old secret stays valid: {', '.join(label for _, label in OVERLAP_CHOICES)}."


def reset_secret(webhook_id: int, overlap_seconds: int = 0, now: datetime | None = None) -> str:
    """Give a webhook a new secret; the old one stays valid for `overlap_seconds` (0: stops at once).

    Only the secret being replaced can overlap: one replaced earlier stops at once. Returns the new secret.
    """
    if overlap_seconds not in OVERLAP_SECONDS:
        raise ValueError(f"the old secret can stay valid for {', '.join(label for _, label in OVERLAP_CHOICES)}")
    now = now or utcnow()
    webhook = get_webhook(webhook_id)
    secret = generate_secret()
    if overlap_seconds:
        webhook.previous_secret_encrypted = webhook.secret_encrypted
        webhook.previous_secret_expires_at = now + timedelta(seconds=overlap_seconds)
    else:
        forget_previous_secret(webhook)
    webhook.secret_encrypted = encrypt_secret(secret)
    db.session.flush()
    return secret


def expire_previous_secret(webhook_id: int) -> bool:
    """End a replaced secret's overlap now (Expire now); False when there was none."""
    webhook = get_webhook(webhook_id)
    had_one = previous_secret_valid_until(webhook) is not None
    forget_previous_secret(webhook)
    db.session.flush()
    return had_one


def clear_expired_previous_secrets(webhook_ids: list[int] | None = None, now: datetime | None = None) -> int:
    """Remove every replaced secret whose overlap is over (of `webhook_ids`, or of all webhooks); returns how many.

    Looks first, so a run that finds nothing writes nothing (no write lock taken on SQLite).
    """
    now = now or utcnow()
    expired = Webhook.previous_secret_expires_at <= now
    query = select(Webhook.id).where(Webhook.previous_secret_encrypted.is_not(None), expired)
    if webhook_ids is not None:
        query = query.where(Webhook.id.in_(webhook_ids))
    ids = list(db.session.scalars(query))
    if not ids:
        return 0
    return db.session.execute(
        update(Webhook).where(Webhook.id.in_(ids), expired)
        .values(previous_secret_encrypted=None, previous_secret_expires_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount


def clear_expired_secrets_job() -> int:
    """The scheduler's periodic clean-up: remove expired replaced secrets and commit."""
    cleared = clear_expired_previous_secrets()
    db.session.commit()
    return cleared


def signing_secrets(secret_encrypted: str, previous_encrypted: str | None) -> list[str]:
    """The plaintext secrets a delivery is signed with: the current one, then the replaced one while valid."""
    secrets = [decrypt_secret(secret_encrypted)]
    if previous_encrypted is not None:
        secrets.append(decrypt_secret(previous_encrypted))
    return secrets
