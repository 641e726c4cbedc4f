"""Stored notifications: a warning or Disabled email is a row written with the delivery that decided it, so an
email whose queue entry was lost (Redis down at that moment, or restarted empty) is still sent, once."""

from datetime import timedelta

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_user
from notifications.test_emails import FAST_LADDER, add_webhook, emit, kinds, start
from servers import wait_for
from sqlalchemy import select

from webhooks_app.extensions import db
from webhooks_app.models import OwedNotification, Webhook, utcnow
from webhooks_app.services.notifications import DISABLED, WARNING


def owed_rows(app) -> list[tuple[str, bool]]:
    """(kind, finished) of every stored notification, oldest first."""
    with app.app_context():
        rows = [(row.kind, row.finished_at is not None)
                for row in db.session.scalars(select(OwedNotification).order_by(OwedNotification.id))]
        db.session.remove()
        return rows


def test_each_email_is_stored_with_its_delivery_and_finished_once_sent(app, fresh_redis, certificates, receiver,
                                                                      smtp_server, processes_holder):
    """The warning and the Disabled email each leave one stored row, finished once the mail server took it; the
    scheduler's sweeps send neither again."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    add_webhook(app, receiver.url("/status/500/owed"))
    processes_holder.append(start(fresh_redis, certificates, smtp_server.url, FAST_LADDER))
    emit(app, 3)
    wait_for(lambda: owed_rows(app) == [(WARNING, True), (DISABLED, True)], timeout=60,
             message="both notifications stored and finished")
    assert sorted(kinds(smtp_server.received)) == ["disabled", "warning"]


def test_a_notification_whose_queue_entry_was_lost_is_sent_by_the_scheduler(app, fresh_redis, certificates,
                                                                          receiver, smtp_server, processes_holder):
    """A stored, unfinished notification with no queue entry (as after Redis was down when it was decided) is
    emailed once its lease runs out, and only once; a finished one is never sent again."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    webhook_id, _ = add_webhook(app, receiver.url("/status/500/lost"), name="Lost entry")
    with app.app_context():
        past = utcnow() - timedelta(minutes=2)
        webhook = db.session.get(Webhook, webhook_id)
        webhook.enabled, webhook.disabled_at, webhook.disabled_reason = False, past, "All 6 delivery attempts failed."
        db.session.add_all([
            OwedNotification(kind=DISABLED, webhook_id=webhook_id, created_at=past, next_enqueue_at=past),
            OwedNotification(kind=WARNING, webhook_id=webhook_id, created_at=past, next_enqueue_at=past,
                             finished_at=past),
        ])
        db.session.commit()
    processes_holder.append(start(fresh_redis, certificates, smtp_server.url, FAST_LADDER))
    wait_for(lambda: owed_rows(app) == [(DISABLED, True), (WARNING, True)], timeout=30,
             message="the lost notification sent and finished")
    wait_for(lambda: "Lost entry" in " ".join(mail.subject for mail in smtp_server.received), timeout=30,
             message="the email of the lost notification")
    assert kinds(smtp_server.received) == ["disabled"]


def test_the_sweep_gives_up_a_notification_unsent_for_two_days_and_queues_the_others(app, fresh_redis):
    """A notification decided over two days ago and still unsent is finished (given up, logged) instead of being
    queued for another round; one whose lease ran out is queued again with a new lease; one within it is left."""
    from webhooks_app.services.notifications import ENQUEUE_LEASE, requeue_owed_notifications

    webhook_id, _ = add_webhook(app, "https://hooks.example.com/given-up", name="Given up")
    with app.app_context():
        now = utcnow()
        db.session.add_all([
            OwedNotification(kind=WARNING, webhook_id=webhook_id, created_at=now - timedelta(days=3),
                             next_enqueue_at=now - timedelta(minutes=1)),
            OwedNotification(kind=DISABLED, webhook_id=webhook_id, created_at=now - timedelta(hours=2),
                             next_enqueue_at=now - timedelta(minutes=1)),
            OwedNotification(kind=WARNING, webhook_id=webhook_id, created_at=now, next_enqueue_at=now + ENQUEUE_LEASE),
        ])
        db.session.commit()
        assert requeue_owed_notifications() == 1
        rows = list(db.session.scalars(select(OwedNotification).order_by(OwedNotification.id)))
        assert rows[0].finished_at is not None
        assert rows[1].finished_at is None and rows[1].next_enqueue_at > now
        assert rows[2].finished_at is None
        assert requeue_owed_notifications() == 0  # the re-queued one has a new lease


def test_only_the_newest_queue_entry_of_a_notification_sends_it(app, fresh_redis, smtp_server, monkeypatch):
    """When the sweep puts a notification back on the queue while its first entry still waits (a busy worker), the
    first entry finds another token and sends nothing; the newest sends it once, and running it again sends no more."""
    from webhooks_app.services.notifications import requeue_owed_notifications, send_notification

    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    for name, value in {"MAIL_URL": smtp_server.url, "MAIL_FROM": "webhooks@example.com",
                        "WEBHOOKS_NOTIFY_EMAILS": ("ops@example.com",)}.items():
        monkeypatch.setitem(app.config, name, value)
    webhook_id, _ = add_webhook(app, "https://hooks.example.com/twice", name="Twice")
    with app.app_context():
        past = utcnow() - timedelta(minutes=2)
        webhook = db.session.get(Webhook, webhook_id)
        webhook.enabled, webhook.disabled_at, webhook.disabled_reason = False, past, "All 6 delivery attempts failed."
        owed = OwedNotification(kind=DISABLED, webhook_id=webhook_id, created_at=past, next_enqueue_at=past,
                                queue_token="first-entry")
        db.session.add(owed)
        db.session.commit()
        owed_id = owed.id
        assert requeue_owed_notifications() == 1  # the first entry's lease ran out: a second entry
        newest = db.session.get(OwedNotification, owed_id).queue_token
        db.session.remove()
    assert newest != "first-entry"
    for token in ("first-entry", newest, newest, "first-entry"):
        with app.app_context():
            send_notification.fn(owed_id, token)
            db.session.remove()
    assert [mail.subject for mail in smtp_server.received] == ["Webhook “Twice” was disabled"]
    assert owed_rows(app) == [(DISABLED, True)]
