"""Prometheus metrics computed from the database (the truth) and Redis (the queue), per scrape."""

from datetime import timedelta

import redis
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily
from sqlalchemy import case, func, select

from ..extensions import db, queue_redis
from ..models import Attempt, FanOut, Message, MessageStatus, Webhook, utcnow
from .counters import REPLAYED_MISSED_EVENTS, REPLAYED_SEND_AGAIN, counter_values

DURATION_BUCKETS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000)


class WebhooksCollector:
    """Collects every metric at scrape time: nothing is kept in process memory between scrapes."""

    def collect(self):
        yield from self._messages()
        yield from self._webhooks()
        yield from self._attempts()
        yield from self._replays()
        yield from self._queues()

    def _messages(self):
        by_status = GaugeMetricFamily("webhooks_messages", "Messages in the activity log by status.",
                                      labels=["status"])
        counts = dict(db.session.execute(select(Message.status, func.count()).group_by(Message.status)).all())
        for status in MessageStatus.LABELS:
            by_status.add_metric([status], counts.get(status, 0))
        yield by_status
        due = db.session.scalar(select(func.count()).select_from(Message).where(
            Message.status.in_(MessageStatus.PENDING), Message.next_attempt_at <= utcnow()))
        yield GaugeMetricFamily("webhooks_messages_due", "Messages whose next attempt is due now (backlog).",
                                value=due)
        waiting, oldest = db.session.execute(select(func.count(), func.min(FanOut.created_at))).one()
        yield GaugeMetricFamily("webhooks_fan_outs_waiting", "Accepted batches whose messages the worker has yet to "
                                "make.", value=waiting)
        yield GaugeMetricFamily("webhooks_fan_out_oldest_seconds", "Age of the oldest batch still waiting for its "
                                "messages (0 when none waits).",
                                value=(utcnow() - oldest).total_seconds() if oldest else 0)

    def _webhooks(self):
        family = GaugeMetricFamily("webhooks_webhooks", "Webhooks by state.", labels=["state"])
        rows = dict(db.session.execute(select(Webhook.enabled, func.count()).group_by(Webhook.enabled)).all())
        family.add_metric(["enabled"], rows.get(True, 0))
        family.add_metric(["disabled"], rows.get(False, 0))
        yield family
        failing = db.session.scalar(select(func.count()).select_from(Webhook).where(
            Webhook.enabled.is_(True), Webhook.failure_streak_started_at.is_not(None)))
        yield GaugeMetricFamily("webhooks_failing", "Enabled webhooks whose deliveries have failed since their last "
                                "success (a failure streak: warned after a message's third failed attempt).",
                                value=failing)

    def _attempts(self):
        since = utcnow() - timedelta(hours=1)
        columns = [func.count(), func.coalesce(func.sum(Attempt.duration_ms), 0),
                   func.coalesce(func.sum(case((Attempt.succeeded.is_(True), 1), else_=0)), 0)]
        columns += [func.coalesce(func.sum(case((Attempt.duration_ms <= bound, 1), else_=0)), 0)
                    for bound in DURATION_BUCKETS_MS]
        total, duration_sum, succeeded, *cumulative = db.session.execute(
            select(*columns).where(Attempt.started_at >= since)).one()
        outcomes = GaugeMetricFamily("webhooks_attempts_last_hour", "Delivery attempts in the last hour.",
                                     labels=["outcome"])
        outcomes.add_metric(["succeeded"], succeeded)
        outcomes.add_metric(["failed"], total - succeeded)
        yield outcomes
        buckets = [(str(bound / 1000), count) for bound, count in zip(DURATION_BUCKETS_MS, cumulative, strict=True)]
        buckets.append(("+Inf", total))
        yield GaugeHistogramMetricFamily(
            "webhooks_attempt_duration_seconds_last_hour", "Duration of delivery attempts in the last hour.",
            buckets=buckets, gsum_value=duration_sum / 1000,
        )

    def _replays(self):
        # A counter stored in the database, added to in the transaction that made the messages: it only grows
        # (pruning the log does not lower it) and every web process reports the same value.
        family = CounterMetricFamily("webhooks_replayed", "Messages made by replaying an event, by origin.",
                                     labels=["origin"])
        values = counter_values(REPLAYED_SEND_AGAIN, REPLAYED_MISSED_EVENTS)
        family.add_metric(["send_again"], values[REPLAYED_SEND_AGAIN])
        family.add_metric(["replay_missed_events"], values[REPLAYED_MISSED_EVENTS])
        yield family

    def _queues(self):
        # Dramatiq's Redis keys are its own business: the backlog is read from the database
        # (webhooks_messages_due), and Redis is only asked whether it answers.
        up = GaugeMetricFamily("webhooks_redis_up", "1 when Redis answers, else 0.")
        try:
            up.add_metric([], 1 if queue_redis().ping() else 0)
        except redis.RedisError:
            up.add_metric([], 0)
        yield up
