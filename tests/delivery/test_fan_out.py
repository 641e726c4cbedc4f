"""A batch's messages are made by the worker's fan-out: through a real worker to a real HTTPS receiver, again by
the sweeper when its queue entry is lost, once however many run it, and never for a deleted webhook."""

import threading
import uuid
from datetime import timedelta

from conftest import wait_for
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from webhooks_app.extensions import db, queue_redis
from webhooks_app.models import Event, FanOut, Message, MessageStatus, Webhook, utcnow
from webhooks_app.services import fan_out as fan_out_module
from webhooks_app.services.activity import log_page
from webhooks_app.services.batch_intake import store_batch, validate_batch
from webhooks_app.services.dispatch import batch_request_key
from webhooks_app.services.fan_out import fan_out_messages, make_fan_out_messages
from webhooks_app.services.intake import accept_event
from webhooks_app.services.log_filters import LogFilter, first_message_id_since
from webhooks_app.services.retention import prune_log
from webhooks_app.services.webhooks import WebhookFields, create_webhook


def add_webhook(app, url: str, name: str = "Receiver") -> int:
    with app.app_context():
        webhook, _ = create_webhook(WebhookFields(name, url, ("asset.create",), True))
        db.session.commit()
        webhook_id = webhook.id
        db.session.remove()
        return webhook_id


def assets(count: int, first: int = 1) -> list[dict]:
    return [{"type": "asset.create", "assetId": asset_id, "userId": 1} for asset_id in range(first, first + count)]


def store_without_asking(app, items: list[dict]) -> int:
    """Store a batch as the intake does but send no queue entry for its fan-out (as if Redis lost it)."""
    with app.app_context():
        accepted = store_batch(validate_batch(items), "local")
        db.session.commit()
        db.session.remove()
    return accepted[0].fan_out_id


def counts(app) -> dict[str, int]:
    with app.app_context():
        found = {"fan_outs": db.session.scalar(select(func.count()).select_from(FanOut)),
                 "messages": db.session.scalar(select(func.count()).select_from(Message)),
                 "sent": db.session.scalar(select(func.count()).select_from(Message).where(
                     Message.status == MessageStatus.SENT))}
        db.session.remove()
        return found


def message_pairs(app) -> list[tuple[int, int]]:
    with app.app_context():
        pairs = db.session.execute(select(Message.webhook_id, Message.event_id).order_by(Message.id)).all()
        db.session.remove()
        return sorted(tuple(pair) for pair in pairs)


def test_a_batch_reaches_every_subscribed_webhook_once_through_the_worker(app, client, api_token, receiver,
                                                                         delivery_processes):
    """A batch of 25 events to two webhooks: the 202 counts 50 messages, the worker makes and sends all 50, each
    event reaches each endpoint once, and no fan-out is left."""
    add_webhook(app, receiver.url("/ok/first"))
    add_webhook(app, receiver.url("/ok/second"))
    response = client.post("/api/v1/events", json=assets(25), headers={"Authorization": f"Bearer {api_token}"})
    assert response.status_code == 202 and response.get_json()["messages"] == 50
    wait_for(lambda: counts(app)["sent"] == 50, timeout=30, message="all fifty messages to be Sent")
    received = receiver.received
    for path in ("/ok/first", "/ok/second"):
        sent = sorted(delivery.json()["event"]["assetId"] for delivery in received if delivery.path == path)
        assert sent == list(range(1, 26))
    assert counts(app) == {"fan_outs": 0, "messages": 50, "sent": 50}


def test_a_fan_out_whose_queue_entry_was_lost_is_sent_again_by_the_sweeper(app, receiver, delivery_processes):
    """A fan-out stored with no queue entry (Redis lost it) is found by the scheduler's sweep once it is older than
    WEBHOOKS_REQUEUE_AFTER_SECONDS (1 s here), and its messages are made and sent."""
    add_webhook(app, receiver.url("/ok/lost"))
    store_without_asking(app, assets(3))
    assert counts(app) == {"fan_outs": 1, "messages": 0, "sent": 0}
    wait_for(lambda: counts(app)["sent"] == 3, timeout=30, message="the lost fan-out's three messages to be Sent")
    assert sorted(delivery.json()["event"]["assetId"] for delivery in receiver.received) == [1, 2, 3]
    assert counts(app)["fan_outs"] == 0


def test_fan_out_skips_deleted_webhooks_and_events_that_have_a_message_already(app):
    """A webhook deleted after the batch was accepted gets nothing (no foreign-key failure), nor another webhook
    made later with its id (SQLite reuses the largest id); an event a replay has already sent to the other webhook
    gets no second message there; running the fan-out again makes nothing."""
    kept = add_webhook(app, "https://hooks.example.com/kept", "Kept")
    deleted = add_webhook(app, "https://hooks.example.com/deleted", "Deleted")
    fan_out_id = store_without_asking(app, assets(3))
    with app.app_context():
        event_ids = db.session.scalars(select(Event.id).order_by(Event.id)).all()
        db.session.delete(db.session.get(Webhook, deleted))
        db.session.flush()
        db.session.add(Webhook(id=deleted, name="Unrelated", url="https://unrelated.example.com/", enabled=True,
                               secret_encrypted="not used", created_at=utcnow() + timedelta(seconds=1)))
        now = utcnow()
        db.session.add(Message(message_uuid=str(uuid.uuid4()), webhook_id=kept, event_id=event_ids[0],
                               event_type="asset.create", status=MessageStatus.SENT, attempts_made=1,
                               next_attempt_at=now, created_at=now, updated_at=now))
        db.session.commit()
        assert fan_out_messages(fan_out_id) == ([kept], False)
        db.session.commit()
        assert fan_out_messages(fan_out_id) == ([], False)
        db.session.commit()
        db.session.remove()
    assert message_pairs(app) == [(kept, event_id) for event_id in event_ids]
    assert counts(app)["fan_outs"] == 0


def test_two_workers_running_one_fan_out_make_each_message_once(app):
    """Two threads run the fan-out actor for the same fan-out at the same moment: one makes the 40 messages (two
    webhooks, 20 events) and the other finds it taken or gone."""
    first = add_webhook(app, "https://hooks.example.com/one", "One")
    second = add_webhook(app, "https://hooks.example.com/two", "Two")
    fan_out_id = store_without_asking(app, assets(20))
    barrier = threading.Barrier(2)
    failures = []

    def run():
        try:
            with app.app_context():
                barrier.wait(timeout=10)
                make_fan_out_messages(fan_out_id)
                db.session.remove()
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            failures.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    pairs = message_pairs(app)
    assert len(pairs) == 40 and len(set(pairs)) == 40
    assert {webhook_id for webhook_id, _ in pairs} == {first, second}


def test_the_prune_keeps_events_that_await_their_fan_out(app):
    """Events accepted 40 days ago whose fan-out has not run (the worker was down) are not pruned as events without
    messages; once the fan-out has made their messages, those are dated when made (the log's time filters rely on
    ids rising with dates), and the events keep their acceptance time."""
    add_webhook(app, "https://hooks.example.com/late")
    fan_out_id = store_without_asking(app, assets(2))
    long_ago = utcnow() - timedelta(days=40)
    with app.app_context():
        db.session.execute(update(Event).values(created_at=long_ago))
        db.session.execute(update(FanOut).values(created_at=long_ago))
        db.session.commit()
        prune_log(30)
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(Event)) == 2
        made_after = utcnow()
        fan_out_messages(fan_out_id)
        db.session.commit()
        dates = db.session.scalars(select(Message.created_at)).all()
        event_dates = db.session.scalars(select(Event.created_at)).all()
        db.session.remove()
    assert len(dates) == 2 and all(date >= made_after for date in dates)
    assert event_dates == [long_ago, long_ago]


def test_a_late_fan_out_hides_no_message_from_the_logs_time_range(app):
    """A batch accepted 10 minutes ago is fanned out after a single event's message was made: a time range from 11
    minutes ago (found by the first message created since then) still shows every message."""
    webhook_id = add_webhook(app, "https://hooks.example.com/range")
    fan_out_id = store_without_asking(app, assets(2))
    with app.app_context():
        db.session.execute(update(Event).values(created_at=utcnow() - timedelta(minutes=10)))
        db.session.execute(update(FanOut).values(created_at=utcnow() - timedelta(minutes=10)))
        db.session.commit()
        accept_event({"type": "asset.create", "assetId": 99, "userId": 1})
        db.session.commit()
        fan_out_messages(fan_out_id)
        db.session.commit()
        in_range = LogFilter(webhook_id, first_id=first_message_id_since(utcnow() - timedelta(minutes=11)))
        shown = [message.id for message in log_page(in_range).messages]
        every = db.session.scalars(select(Message.id)).all()
        db.session.remove()
    assert len(every) == 3 and sorted(shown) == sorted(every)


def test_a_commit_whose_answer_was_lost_still_asks_for_the_batches(app, monkeypatch):
    """When the fan-out's COMMIT goes through but its connection dies before the answer, the retry finds the fan-out
    gone; the batches of the webhooks the first try made messages for are still asked for, not left to the sweeper.
    (A unit test of the actor: the lost answer is raised after a real COMMIT.)"""
    webhook_id = add_webhook(app, "https://hooks.example.com/lost-answer")
    fan_out_id = store_without_asking(app, assets(2))
    with app.app_context():
        requests = queue_redis()
        key = batch_request_key(webhook_id)
        requests.delete(key)
        real_commit, commits = db.session.commit, []

        def commit_then_lose_the_answer():
            real_commit()
            commits.append(1)
            if len(commits) == 1:
                raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"),
                                       connection_invalidated=True)

        monkeypatch.setattr(db.session, "commit", commit_then_lose_the_answer)
        make_fan_out_messages(fan_out_id)
        db.session.remove()
    assert len(commits) == 2 and requests.exists(key)
    assert counts(app) == {"fan_outs": 0, "messages": 2, "sent": 0}


def test_a_large_fan_out_is_made_a_chunk_of_whole_events_at_a_time(app, monkeypatch):
    """With chunks of 4 messages, 5 events to two webhooks take three transactions of whole events (4, 4, 2
    messages); after each the fan-out holds only the events still owed (so the prune keeps just those), and the
    actor runs them all and asks for the webhooks' batches."""
    monkeypatch.setattr(fan_out_module, "CHUNK_MESSAGES", 4)
    first = add_webhook(app, "https://hooks.example.com/first", "First")
    second = add_webhook(app, "https://hooks.example.com/second", "Second")
    fan_out_id = store_without_asking(app, assets(5))
    with app.app_context():
        event_ids = db.session.scalars(select(Event.id).order_by(Event.id)).all()
        assert fan_out_messages(fan_out_id) == ([first, second], True)
        db.session.commit()
        fan_out = db.session.get(FanOut, fan_out_id)
        assert (fan_out.event_ids, fan_out.first_event_id) == (event_ids[2:], event_ids[2])
        db.session.remove()
    assert counts(app)["messages"] == 4
    with app.app_context():
        requests = queue_redis()
        for webhook_id in (first, second):
            requests.delete(batch_request_key(webhook_id))
        make_fan_out_messages(fan_out_id)
        db.session.remove()
    assert counts(app) == {"fan_outs": 0, "messages": 10, "sent": 0}
    assert sorted(message_pairs(app)) == sorted((webhook_id, event_id) for event_id in event_ids
                                                for webhook_id in (first, second))
    assert requests.exists(batch_request_key(first)) and requests.exists(batch_request_key(second))
