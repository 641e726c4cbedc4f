"""Retention: rows older than 30 days go, in batches; pending messages stay; two prunes never overlap."""

from datetime import timedelta

from factories import make_message, make_webhook
from sqlalchemy import func, select

from webhooks_app.extensions import db
from webhooks_app.models import Attempt, Event, Message, MessageStatus
from webhooks_app.services.retention import prune_log


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_prune_keeps_29_days_deletes_31_and_keeps_pending(app_context):
    """Finished messages at 31 days go with their attempts and events; 29-day rows and old pending ones stay."""
    webhook_id = make_webhook()
    recent = make_message(webhook_id, MessageStatus.SENT, age=timedelta(days=29), attempts=[(True, 204, None, "")])
    old_sent = make_message(webhook_id, MessageStatus.SENT, age=timedelta(days=31), attempts=[(True, 204, None, "")])
    old_failed = make_message(webhook_id, MessageStatus.FAILED, age=timedelta(days=31),
                              attempts=[(False, 500, "http_status", "x")] * 6)
    old_queued = make_message(webhook_id, MessageStatus.QUEUED, age=timedelta(days=40))
    old_retry = make_message(webhook_id, MessageStatus.SCHEDULED_RETRY, age=timedelta(days=35),
                             attempts=[(False, 500, "http_status", "x")])
    db.session.commit()

    report = prune_log(30, batch_size=1)
    assert (report.messages, report.attempts, report.events) == (2, 7, 2)
    assert report.batches >= 4  # one message per batch, then one event per batch
    remaining = set(db.session.scalars(select(Message.id)))
    assert remaining == {recent, old_queued, old_retry}
    assert old_sent not in remaining and old_failed not in remaining
    assert count(Attempt) == 2 and count(Event) == 3


def test_prune_is_idempotent(app_context):
    """A second prune finds nothing more to delete."""
    webhook_id = make_webhook()
    make_message(webhook_id, MessageStatus.SENT, age=timedelta(days=45))
    db.session.commit()
    assert prune_log(30).messages == 1
    second = prune_log(30)
    assert (second.messages, second.attempts, second.events) == (0, 0, 0)


def test_prune_waits_for_no_one_but_skips_while_another_holds_the_lock(app, app_context):
    """While another process holds the Redis lock, prune_log_once does nothing; after release it prunes."""
    from webhooks_app.services.retention import PRUNE_LOCK_KEY, prune_log_once

    webhook_id = make_webhook()
    make_message(webhook_id, MessageStatus.SENT, age=timedelta(days=45))
    db.session.commit()
    client = app.extensions["dramatiq-dramatiq"].broker.client
    other = client.lock(PRUNE_LOCK_KEY, timeout=60)
    assert other.acquire(blocking=False)
    try:
        assert prune_log_once() is None
        assert count(Message) == 1
    finally:
        other.release()
    report = prune_log_once()
    assert report is not None and report.messages == 1 and count(Message) == 0


def test_prune_log_command(app):
    """`flask --app wsgi prune-log` prunes at once and says what it deleted."""
    with app.app_context():
        webhook_id = make_webhook()
        make_message(webhook_id, MessageStatus.FAILED, age=timedelta(days=60), attempts=[(False, 500, "x", "")])
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["prune-log"])
    assert result.exit_code == 0, result.output
    assert "Deleted 1 messages, 1 attempts and 1 events." in result.output


def test_prune_log_command_says_so_when_redis_is_down(app, fresh_redis):
    """Without Redis (the prune's lock is there) the command says so and exits non-zero, deleting nothing."""
    with app.app_context():
        webhook_id = make_webhook()
        make_message(webhook_id, MessageStatus.FAILED, age=timedelta(days=60), attempts=[(False, 500, "x", "")])
        db.session.commit()
    fresh_redis.stop()
    result = app.test_cli_runner().invoke(args=["prune-log"])
    assert result.exit_code != 0 and "Redis is unavailable" in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    with app.app_context():
        assert count(Message) == 1


def test_nightly_job_has_generous_misfire_grace_and_catches_up(app, app_context, fresh_redis):
    """The nightly prune tolerates late starts, and a scheduler start with no prune in a day enqueues one."""
    from tasks.scheduler import periodic_jobs
    from webhooks_app.services.retention import LAST_PRUNE_KEY, catch_up_prune

    jobs = {job.__name__: trigger for job, trigger in periodic_jobs(app.config)}
    nightly = jobs["enqueue_nightly_prune"]
    assert nightly["trigger"] == "cron" and nightly["misfire_grace_time"] >= 3600 and nightly["coalesce"]
    client = app.extensions["dramatiq-dramatiq"].broker.client
    client.delete(LAST_PRUNE_KEY)
    assert catch_up_prune() is True
    assert client.llen("dramatiq:maintenance") == 1
    client.set(LAST_PRUNE_KEY, 2**31)  # far in the future: pruned "recently"
    assert catch_up_prune() is False


def test_prune_forgets_sign_in_attempts_older_than_a_day(app_context):
    """Sign-in attempts older than a day are deleted by the prune; recent ones stay for the lockout."""
    from webhooks_app.models import LoginAttempt, utcnow

    db.session.add_all([
        LoginAttempt(email="a@example.com", attempted_at=utcnow() - timedelta(days=2)),
        LoginAttempt(email="a@example.com", attempted_at=utcnow() - timedelta(minutes=5)),
    ])
    db.session.commit()
    prune_log(30)
    assert count(LoginAttempt) == 1


def test_prune_forgets_notifications_finished_before_the_retention(app_context):
    """Stored notifications finished over 30 days ago go; recent and unfinished ones stay."""
    from webhooks_app.models import OwedNotification, utcnow

    webhook_id = make_webhook()
    old = utcnow() - timedelta(days=31)
    db.session.add_all([
        OwedNotification(kind="warning", webhook_id=webhook_id, created_at=old, next_enqueue_at=old, finished_at=old),
        OwedNotification(kind="disabled", webhook_id=webhook_id, created_at=old, next_enqueue_at=old,
                         finished_at=utcnow() - timedelta(days=29)),
        OwedNotification(kind="warning", webhook_id=webhook_id, created_at=old, next_enqueue_at=old),
    ])
    db.session.commit()
    prune_log(30)
    assert sorted(db.session.scalars(select(OwedNotification.kind))) == ["disabled", "warning"]
    assert db.session.scalar(select(func.count()).select_from(OwedNotification)
                             .where(OwedNotification.finished_at.is_(None))) == 1


def test_prune_keeps_the_events_a_running_replay_has_yet_to_reach(app_context):
    """An event past 30 days that a running replay still has to look at stays (its replay was asked for while it was
    inside the window), and the replay then sends it."""
    from webhooks_app.models import utcnow
    from webhooks_app.services.replay import create_replay, replay_batch, subscribed_types

    webhook_id = make_webhook()
    now = utcnow()
    make_message(webhook_id, MessageStatus.FAILED, age=timedelta(days=29, hours=23),
                 attempts=[(False, 500, "http_status", "x")] * 6)
    db.session.commit()
    replay = create_replay(webhook_id, now - timedelta(days=29, hours=23, minutes=30), "admin", now=now)
    db.session.commit()

    later = now + timedelta(hours=2)  # the nightly prune runs while the replay waits on the webhook's backlog
    report = prune_log(30, now=later)
    assert (report.messages, report.events) == (1, 0)
    made, finished = replay_batch(replay, subscribed_types(webhook_id), 100, later)
    db.session.commit()
    assert (made, finished) == (1, True)
