"""Health at a glance: each webhook's last delivery attempt and its success rate over the last 24 hours."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from ..extensions import db
from ..models import Attempt, Webhook, utcnow

WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Health:
    last_attempt: Attempt | None
    attempts_24h: int
    succeeded_24h: int

    @property
    def success_rate(self) -> int | None:
        """Whole percent of the last 24 hours' attempts that succeeded (None without attempts)."""
        if not self.attempts_24h:
            return None
        return int(100 * self.succeeded_24h / self.attempts_24h)


def webhook_health(now: datetime | None = None) -> dict[int, Health]:
    """Every webhook's health, read from the attempts index per webhook (two statements, however many rows)."""
    since = (now or utcnow()) - WINDOW

    def per_webhook(*conditions):
        return (select(func.count()).select_from(Attempt)
                .where(Attempt.webhook_id == Webhook.id, Attempt.started_at >= since, *conditions)
                .correlate(Webhook).scalar_subquery())

    last_id = (select(Attempt.id).where(Attempt.webhook_id == Webhook.id).order_by(Attempt.started_at.desc())
               .limit(1).correlate(Webhook).scalar_subquery())
    succeeded = per_webhook(Attempt.succeeded.is_(True))
    rows = db.session.execute(select(Webhook.id, per_webhook(), succeeded, last_id)).all()
    last_ids = [row[3] for row in rows if row[3] is not None]
    attempts = {}
    if last_ids:
        attempts = {a.id: a for a in db.session.scalars(select(Attempt).where(Attempt.id.in_(last_ids)))}
    return {webhook_id: Health(attempts.get(attempt_id), total, succeeded)
            for webhook_id, total, succeeded, attempt_id in rows}


def latest_attempt_id() -> int | None:
    """The newest recorded attempt of any webhook: the Webhooks page's health changes when this does.

    Its id, not its start: an attempt is recorded when it ends, so one that timed out may be recorded after another
    that started later.
    """
    return db.session.scalar(select(func.max(Attempt.id)))
