"""A replay batch waits for whoever holds its webhook's row and then sees what they committed, so two replays of
one webhook never both make a copy of an event (on PostgreSQL a copy made, sent and no longer pending while the
other's INSERT ran on an older snapshot was made twice)."""

import threading
import uuid
from datetime import timedelta

from conftest import wait_for
from sqlalchemy import insert, select, text

from webhooks_app.extensions import db
from webhooks_app.models import Event, Message, MessageStatus, Replay, ReplayStatus, Webhook, utcnow
from webhooks_app.services.replay import create_replay, run_replay
from webhooks_app.services.webhooks import WebhookFields, create_webhook

EVENTS = 5


def waiting_on_a_lock(connection) -> bool:
    """Another PostgreSQL session of this database is waiting for a row lock."""
    waiting = connection.execute(text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )).scalar_one()
    connection.rollback()  # pg_stat_activity is read once per transaction
    return waiting > 0


def test_a_replay_batch_waits_for_the_webhook_row_and_copies_nothing_already_sent(app):
    """While another transaction holds the webhook's row and stores Sent copies of its events, a replay's batch
    waits; once that commits, the batch finds every event Sent and makes no message."""
    with app.app_context():
        fields = WebhookFields("Locked", "https://hooks.example.com/locked", ("asset.create",), True)
        webhook, _ = create_webhook(fields)
        since = utcnow() - timedelta(hours=1)
        event_ids = [db.session.execute(insert(Event).returning(Event.id), {
            "event_uuid": str(uuid.uuid4()), "scope": "local", "event_type": "asset.create",
            "created_at": since + timedelta(seconds=1), "payload": {"assetId": number}}).scalar_one()
            for number in range(EVENTS)]
        replay_id = create_replay(webhook.id, since, "test").id
        webhook_id = webhook.id
        db.session.commit()
        engine = db.engine

    outcome = {}
    started = threading.Event()

    def replay_in_a_thread():
        with app.app_context():
            started.set()
            outcome["run"] = run_replay(replay_id)

    holder = engine.connect()
    observer = engine.connect() if engine.dialect.name == "postgresql" else None
    try:
        holder.begin()
        holder.execute(select(Webhook.id).where(Webhook.id == webhook_id).with_for_update())
        now = utcnow()
        holder.execute(insert(Message), [{
            "message_uuid": str(uuid.uuid4()), "webhook_id": webhook_id, "event_id": event_id,
            "event_type": "asset.create", "is_test": False, "status": MessageStatus.SENT, "attempts_made": 1,
            "next_attempt_at": None, "enqueued_at": now, "created_at": now, "updated_at": now}
            for event_id in event_ids])
        thread = threading.Thread(target=replay_in_a_thread, daemon=True)
        thread.start()
        # On PostgreSQL the batch is seen waiting for the row; SQLite's BEGIN IMMEDIATE makes every writer wait.
        wait_for(lambda: not thread.is_alive() or (
            waiting_on_a_lock(observer) if observer is not None else started.is_set()),
            message="the replay to wait for the webhook's row")
        holder.commit()
    finally:
        holder.close()
        if observer is not None:
            observer.close()
    thread.join(timeout=30)
    assert not thread.is_alive()

    assert outcome["run"].created == 0
    with app.app_context():
        replay = db.session.get(Replay, replay_id)
        assert replay.status == ReplayStatus.DONE and replay.messages_created == 0
        assert db.session.scalar(select(db.func.count()).select_from(Message)) == EVENTS
