"""`flask --app wsgi replay WEBHOOK_ID --since ISO_TIME [--dry-run]`: the same replay service as the dialog."""

from datetime import UTC, timedelta

from factories import make_event, make_message
from sqlalchemy import func, select

from webhooks_app.extensions import db
from webhooks_app.models import Message, MessageStatus, Replay, utcnow
from webhooks_app.services.webhooks import WebhookFields, create_webhook


def missed_history(app, url: str, enabled: bool = True) -> tuple[int, list[str]]:
    """A webhook that missed two events (one failed 90 min ago, one 30 min ago with no message); returns its id and
    their eventIds, oldest first."""
    with app.app_context():
        webhook, _ = create_webhook(WebhookFields("Cli", url, ("asset.create",), enabled))
        failed = make_event(age=timedelta(minutes=90), asset_id=1)
        make_message(webhook.id, MessageStatus.FAILED, age=timedelta(minutes=90), event=failed,
                     attempts=[(False, 500, "http_status", "")])
        missed = make_event(age=timedelta(minutes=30), asset_id=2)
        db.session.commit()
        return webhook.id, [failed.event_uuid, missed.event_uuid]


def iso(moment) -> str:
    return moment.replace(tzinfo=UTC).isoformat(timespec="seconds")


def invoke(app, *args: str):
    return app.test_cli_runner().invoke(args=["replay", *args])


def counts(app) -> tuple[int, int]:
    with app.app_context():
        return (db.session.scalar(select(func.count()).select_from(Replay)),
                db.session.scalar(select(func.count()).select_from(Message)))


def test_dry_run_says_how_many_events_would_be_sent_and_sends_nothing(app):
    """--dry-run prints the count (an ISO time with an offset is read in that offset) and stores nothing."""
    webhook_id, _ = missed_history(app, "https://hooks.example.com/cli")
    two_hours = invoke(app, str(webhook_id), "--since", iso(utcnow() - timedelta(hours=2)), "--dry-run")
    assert two_hours.exit_code == 0, two_hours.output
    assert "2 event(s) since" in two_hours.output and "nothing was sent (--dry-run)" in two_hours.output
    one_hour_in_paris_summer = (utcnow() - timedelta(hours=1) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")
    one_hour = invoke(app, str(webhook_id), "--since", one_hour_in_paris_summer + "+02:00", "--dry-run")
    assert one_hour.exit_code == 0 and "1 event(s) since" in one_hour.output
    assert counts(app) == (0, 1)


def test_replay_from_the_command_line_is_sent_by_the_worker(app, receiver, delivery_processes):
    """Without --dry-run the command starts a replay that the worker sends, oldest first."""
    webhook_id, missed = missed_history(app, receiver.url("/cli"))
    result = invoke(app, str(webhook_id), "--since", iso(utcnow() - timedelta(hours=2)))
    assert result.exit_code == 0, result.output
    assert "started: about 2 event(s)" in result.output
    deliveries = receiver.wait_for_count(2, "/cli")
    assert [delivery.json()["event"]["eventId"] for delivery in deliveries] == missed
    with app.app_context():
        assert db.session.scalar(select(Replay.requested_by)) == "command line"


def test_the_command_refuses_bad_input_with_a_clear_message(app):
    """An unreadable time, one outside the retention window or in the future, an unknown webhook and (without
    --dry-run) a disabled webhook are refused with a message naming the problem; nothing is stored."""
    webhook_id, _ = missed_history(app, "https://hooks.example.com/cli", enabled=False)
    cases = [
        ((str(webhook_id), "--since", "last tuesday"), "is not an ISO 8601 time"),
        ((str(webhook_id), "--since", iso(utcnow() - timedelta(days=40)), "--dry-run"),
         "Since must be within the last 30 days"),
        ((str(webhook_id), "--since", iso(utcnow() + timedelta(hours=1)), "--dry-run"), "Since is in the future"),
        (("4242", "--since", iso(utcnow()), "--dry-run"), "webhook 4242 does not exist"),
        (("99999999999999999999", "--since", iso(utcnow()), "--dry-run"), "is not in the range 1<=x<="),
        ((str(webhook_id), "--since", iso(utcnow() - timedelta(hours=2))), "is disabled: enable it first"),
    ]
    for args, message in cases:
        result = invoke(app, *args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    assert counts(app) == (0, 1)
