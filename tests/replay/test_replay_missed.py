"""Replay missed events: the dialog's default Since and dry-run count, then a replay made by the real worker in
batches, delivered to a real HTTPS receiver oldest first, shown in the log and in /metrics, never twice."""

import time
from datetime import datetime, timedelta

import pytest
from conftest import DeliveryProcesses, delivery_environment, wait_for
from factories import build_history, make_event
from markup import named, select_one, text_of
from sqlalchemy import func, insert, select, update

from webhooks_app.extensions import db
from webhooks_app.models import Event, Message, MessageStatus, Replay, ReplayStatus, Webhook, utcnow
from webhooks_app.services.replay import create_replay, start_replay
from webhooks_app.services.webhooks import WebhookFields, create_webhook

BASE = "/system/integrations/api/webhooks"
HTMX = {"HX-Request": "true"}


def minute(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M")


def replay_form(admin_client, since: str, tz_offset: str = "0") -> dict:
    return {"since": since, "tz_offset": tz_offset, "csrf_token": admin_client.csrf_token}


def event_ids(deliveries) -> list[str]:
    return [delivery.json()["event"]["eventId"] for delivery in deliveries]


def count_messages(app, *conditions) -> int:
    """Messages matching the conditions, read in a short transaction of its own (SQLite's writers must not wait)."""
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Message).where(*conditions))


def replay_rows(app) -> list[Replay]:
    with app.app_context():
        rows = list(db.session.scalars(select(Replay).order_by(Replay.id)))
        db.session.expunge_all()
        return rows


def test_the_dialog_offers_since_from_when_failures_began_and_counts_before_sending(app, admin_client):
    """The row menu has "Replay missed events…"; its dialog's Since (datetime-local) starts when the current failures
    began and the dialog says how many events a replay would send (failed ones and those missed while disabled,
    not the Sent, pending or unsubscribed ones); the count is a fragment refreshed as Since changes, read in the
    viewer's time zone (tz_offset); nothing is created by looking."""
    history = build_history(app, "https://hooks.example.com/replay")
    webhooks_page = admin_client.get(BASE)
    link = named(webhooks_page, f"#webhook-menu-{history.webhook_id} a", "Replay missed events…")
    assert link["href"] == f"{BASE}/{history.webhook_id}/replay"

    dialog = admin_client.get(link["href"], headers=HTMX)
    assert dialog.status_code == 200
    since = select_one(dialog, "dialog#webhook-replay-dialog input#since")
    assert since["type"] == "datetime-local"
    assert since["value"] == minute(history.streak_started)
    assert since["data-utc"] == minute(history.streak_started) + "Z"
    count = select_one(dialog, "#replay-count")
    assert count["role"] == "status" and text_of(count) == "3 events will be sent, oldest first."
    assert "change" in since["hx-trigger"] and since["hx-target"] == "#replay-count"
    assert since["hx-include"] == "closest form"

    six_hours_ago = utcnow() - timedelta(hours=6)
    wider = admin_client.get(since["hx-get"], query_string={"since": minute(six_hours_ago), "tz_offset": "0"},
                             headers=HTMX)
    assert text_of(wider) == "4 events will be sent, oldest first."
    assert select_one(wider, "#replay-count")  # the fragment alone, to swap
    # The same instant typed on a clock two hours ahead of UTC (getTimezoneOffset() = -120).
    local = admin_client.get(since["hx-get"], headers=HTMX, query_string={
        "since": minute(six_hours_ago + timedelta(hours=2)), "tz_offset": "-120"})
    assert text_of(local) == "4 events will be sent, oldest first."
    later = admin_client.get(since["hx-get"], headers=HTMX,
                             query_string={"since": minute(utcnow() - timedelta(minutes=20)), "tz_offset": "0"})
    assert text_of(later) == "No missed events since then: nothing would be sent."
    assert replay_rows(app) == []


def test_a_disabled_webhooks_default_is_when_it_was_disabled_and_replay_waits_until_it_is_enabled(app, admin_client):
    """For a webhook disabled with no failures, Since starts when it was disabled; the Replay button is disabled
    with the reason shown, and a POST anyway is refused with that reason and creates nothing."""
    with app.app_context():
        webhook, _ = create_webhook(WebhookFields("Paused", "https://hooks.example.com/p", ("asset.create",), True))
        webhook.created_at = utcnow() - timedelta(days=2)
        webhook.enabled, webhook.disabled_at = False, utcnow() - timedelta(hours=3)
        make_event(age=timedelta(hours=2))
        db.session.commit()
        webhook_id, disabled_at = webhook.id, webhook.disabled_at
    dialog = admin_client.get(f"{BASE}/{webhook_id}/replay", headers=HTMX)
    assert select_one(dialog, "input#since")["value"] == minute(disabled_at)
    assert text_of(select_one(dialog, "#replay-count")) == "1 event will be sent, oldest first."
    button = named(dialog, "button", "Replay")
    assert button.has_attr("disabled")
    reason = select_one(dialog, f"#{button['aria-describedby']}")
    assert "This webhook is disabled." in text_of(reason) and "Enable it first" in text_of(reason)
    refused = admin_client.post(f"{BASE}/{webhook_id}/replay", headers=HTMX,
                                data=replay_form(admin_client, minute(disabled_at)))
    assert refused.status_code == 422
    assert "is disabled: enable it first" in text_of(select_one(refused, "#since-errors"))
    assert replay_rows(app) == []


def test_since_outside_the_retention_window_or_unreadable_is_refused_clearly(app, admin_client):
    """Since must be a date and time within the retention window and not in the future: the count and the Replay
    answer say so (422 beside the field), and nothing is created."""
    history = build_history(app, "https://hooks.example.com/replay")
    url = f"{BASE}/{history.webhook_id}/replay"
    cases = {
        minute(utcnow() - timedelta(days=31)): "Since must be within the last 30 days",
        minute(utcnow() + timedelta(hours=2)): "Since is in the future",
        "yesterday": "Since must be a date and time, such as 2026-11-28T09:30.",
        "": "Enter the date and time to replay from.",
    }
    for since, message in cases.items():
        count = admin_client.get(f"{url}/count", query_string={"since": since}, headers=HTMX)
        assert message in text_of(count), (since, text_of(count))
        assert "has-error" in select_one(count, "#replay-count")["class"]
        answer = admin_client.post(url, data=replay_form(admin_client, since), headers=HTMX)
        assert answer.status_code == 422
        assert message in text_of(select_one(answer, "#since-errors"))
        assert select_one(answer, "input#since").get("aria-invalid") == "true"
    bad_zone = admin_client.post(url, data=replay_form(admin_client, minute(utcnow()), tz_offset="5000"),
                                 headers=HTMX)
    assert bad_zone.status_code == 422 and "time zone offset is not understood" in text_of(bad_zone)
    assert admin_client.post(url, data={"since": minute(utcnow())}, headers=HTMX).status_code == 400  # no CSRF
    out_of_range = "Since is out of range once converted to UTC"
    count = admin_client.get(f"{url}/count", query_string={"since": "9999-12-31T23:59", "tz_offset": "1440"},
                             headers=HTMX)
    assert count.status_code == 200 and out_of_range in text_of(count)
    answer = admin_client.post(url, data=replay_form(admin_client, "9999-12-31T23:59", tz_offset="1440"),
                               headers=HTMX)
    assert answer.status_code == 422 and out_of_range in text_of(select_one(answer, "#since-errors"))
    assert replay_rows(app) == []


def test_since_at_the_retention_windows_edge_is_accepted(app):
    """For a webhook disabled before the retention window, the default Since (the window's start, to the minute)
    passes the window's own check, also when the dialog is sent some minutes later; well before it is refused."""
    from webhooks_app.services.replay import EDGE_GRACE, ReplayError, check_since, default_since, retention_start

    now = utcnow().replace(second=30, microsecond=0)
    with app.app_context():
        webhook, _ = create_webhook(WebhookFields("Old", "https://hooks.example.com/old", ("asset.create",), False))
        webhook.created_at, webhook.disabled_at = now - timedelta(days=50), now - timedelta(days=40)
        db.session.commit()
        since = default_since(webhook, now)
        earliest = retention_start(now)
        assert since.second == 0 and earliest <= since < earliest + timedelta(minutes=1)
        assert check_since(since, now) == since
        assert check_since(since, now + timedelta(minutes=5)) == retention_start(now + timedelta(minutes=5))
        with pytest.raises(ReplayError, match="Since must be within the last 30 days"):
            check_since(earliest - EDGE_GRACE - timedelta(minutes=1), now)
        db.session.remove()


def test_replay_sends_the_missed_events_oldest_first_as_new_messages(app, admin_client, receiver, delivery_processes,
                                                                    monkeypatch):
    """Replay answers at once; the worker makes one new message per missed event (new messageId, same eventId),
    delivered oldest first; the failed originals stay as they were; the new rows say "Replay of <messageId>" (or
    that they replay a missed event) and their details name the replay; /metrics counts them; and a second replay
    of the same window sends nothing twice."""
    monkeypatch.setitem(app.config, "WEBHOOKS_METRICS_PUBLIC", True)
    history = build_history(app, receiver.url("/replay"))
    since = minute(utcnow() - timedelta(hours=6))
    started = time.monotonic()
    answer = admin_client.post(f"{BASE}/{history.webhook_id}/replay", data=replay_form(admin_client, since),
                               headers=HTMX)
    assert answer.status_code == 200 and time.monotonic() - started < 1.0
    assert text_of(select_one(answer, "dialog h2")) == "Replay started"
    assert named(answer, "a", "Open the activity log")["href"] == f"{BASE}/{history.webhook_id}/log"

    deliveries = receiver.wait_for_count(4, "/replay")
    assert event_ids(deliveries) == history.missed
    wait_for(lambda: count_messages(app, Message.replay_id.is_not(None), Message.status == MessageStatus.SENT) == 4,
             message="4 Sent replays")
    with app.app_context():
        replayed = {message.event.event_uuid: message for message in db.session.scalars(
            select(Message).where(Message.replay_id.is_not(None)))}
        assert sorted(delivery.json()["messageId"] for delivery in deliveries) == sorted(
            message.message_uuid for message in replayed.values())
        for event_uuid, failed_id in history.failed_messages.items():
            original = db.session.get(Message, failed_id)
            assert (original.status, original.attempts_made, original.replay_of_id) == (MessageStatus.FAILED, 1, None)
            assert replayed[event_uuid].replay_of_id == failed_id
            assert replayed[event_uuid].replay_of_uuid == original.message_uuid
        assert [replayed[uuid].replay_of_id for uuid in history.missed[2:]] == [None, None]
        (replay,) = db.session.scalars(select(Replay))
        assert (replay.status, replay.messages_created, replay.requested_by) == (
            ReplayStatus.DONE, 4, "admin@example.com")
        failed_replay = replayed[history.missed[1]]
        old_uuid = db.session.get(Message, history.failed_messages[history.missed[1]]).message_uuid
        missed_replay = replayed[history.missed[2]]

    log = admin_client.get(f"{BASE}/{history.webhook_id}/log")
    note = select_one(log, f"#message-row-{failed_replay.id} .replay-note")
    assert text_of(note) == f"Replay of {old_uuid}"
    assert select_one(note, "a")["href"].endswith(f"#message-row-{failed_replay.replay_of_id}")
    assert text_of(select_one(log, f"#message-row-{missed_replay.id} .replay-note")) == "Replay of a missed event"
    details = text_of(admin_client.get(f"/system/integrations/api/activity/messages/{failed_replay.id}"))
    assert f"Replay of {old_uuid}" in details
    assert "Origin Replay missed events since" in details and "by admin@example.com" in details
    original = admin_client.get(f"/system/integrations/api/activity/messages/{failed_replay.replay_of_id}")
    assert f"Sent again as {failed_replay.message_uuid} (Sent)" in text_of(original)
    metrics = admin_client.get("/metrics").get_data(as_text=True)
    assert 'webhooks_replayed_total{origin="replay_missed_events"} 4.0' in metrics
    assert 'webhooks_replayed_total{origin="send_again"} 0.0' in metrics

    again = admin_client.post(f"{BASE}/{history.webhook_id}/replay", data=replay_form(admin_client, since),
                              headers=HTMX)
    assert again.status_code == 200
    wait_for(lambda: [row.status for row in replay_rows(app)] == [ReplayStatus.DONE] * 2, message="replay 2 done")
    assert [row.messages_created for row in replay_rows(app)] == [4, 0]
    assert len(receiver.received) == 4


def test_two_replays_of_one_window_at_once_send_each_event_once(app, receiver, delivery_processes):
    """Two replays of the same window running at the same time on the worker's threads, over several batches,
    deliver every missed event exactly once: the second finds each event pending or Sent."""
    events = 1100
    with app.app_context():
        webhook, _ = create_webhook(WebhookFields("Busy", receiver.url("/twice"), ("asset.create",), True))
        since = utcnow() - timedelta(hours=1)
        db.session.execute(insert(Event), [
            {"event_uuid": f"00000000-0000-4000-8000-{number:012d}", "scope": "local", "event_type": "asset.create",
             "created_at": since + timedelta(seconds=1), "payload": {
                 "assetId": number + 1, "systemEventType": "ASSET_CREATE",
                 "eventId": f"00000000-0000-4000-8000-{number:012d}", "eventTime": 1, "userId": 1}}
            for number in range(events)])
        first = create_replay(webhook.id, since, "test")
        second = create_replay(webhook.id, since, "test")
        db.session.commit()
        assert start_replay(first.id) and start_replay(second.id)
    deliveries = receiver.wait_for_count(events, "/twice", timeout=120)
    wait_for(lambda: [row.status for row in replay_rows(app)] == [ReplayStatus.DONE] * 2, timeout=60,
             message="both replays to finish")
    wait_for(lambda: count_messages(app, Message.status != MessageStatus.SENT) == 0, timeout=60,
             message="every message Sent")
    assert count_messages(app) == events
    assert sorted(set(event_ids(receiver.received))) == sorted(event_ids(deliveries))
    assert len(receiver.received) == events
    assert sum(row.messages_created for row in replay_rows(app)) == events


def test_a_replay_asked_for_while_redis_is_down_starts_when_it_answers(app, admin_client, receiver, fresh_redis,
                                                                      certificates):
    """With Redis stopped the replay is stored and the dialog says it waits; once Redis answers, the scheduler
    finds the replay nobody works on and puts it on the queue, and the missed events are delivered."""
    history = build_history(app, receiver.url("/later"))
    fresh_redis.stop()
    answer = admin_client.post(f"{BASE}/{history.webhook_id}/replay", headers=HTMX,
                               data=replay_form(admin_client, minute(utcnow() - timedelta(hours=6))))
    assert answer.status_code == 200 and "Redis unavailable." in text_of(answer)
    assert [row.status for row in replay_rows(app)] == [ReplayStatus.RUNNING]
    fresh_redis.start()
    processes = DeliveryProcesses(delivery_environment(fresh_redis.url, certificates))
    try:
        deliveries = receiver.wait_for_count(4, "/later", timeout=45)
    finally:
        processes.stop()
    assert event_ids(deliveries) == history.missed


def test_a_webhook_disabled_during_a_replay_stops_it(app, receiver, fresh_redis):
    """A replay whose webhook is disabled before its next batch stops, saying why, and makes no more messages."""
    from webhooks_app.services.replay import run_replay

    history = build_history(app, receiver.url("/stop"))
    with app.app_context():
        replay = create_replay(history.webhook_id, utcnow() - timedelta(hours=6), "test")
        db.session.execute(update(Webhook).where(Webhook.id == history.webhook_id).values(enabled=False))
        db.session.commit()
        run_replay(replay.id)
        stopped = db.session.get(Replay, replay.id)
        assert stopped.status == ReplayStatus.STOPPED and "the webhook was disabled" in stopped.stop_reason
        assert db.session.scalar(select(func.count()).select_from(Message).where(Message.replay_id.is_not(None))) == 0


def test_replays_are_made_in_committed_batches_kept_few_ahead_of_the_sends(app, receiver, fresh_redis, monkeypatch):
    """A replay makes its messages a batch per commit, oldest events first, and stops making them while its webhook
    still owes two batches: it comes back for the rest once they are sent (here: a first batch of 4, then batches
    of 10; 25 events)."""
    from webhooks_app.services import replay as replay_service

    monkeypatch.setitem(replay_service.BATCH_SIZE, "sqlite", 10)
    monkeypatch.setitem(replay_service.BATCH_SIZE, "postgresql", 10)
    monkeypatch.setattr(replay_service, "FIRST_BATCH_SIZE", 4)
    with app.app_context():
        webhook, _ = create_webhook(WebhookFields("Paced", receiver.url("/paced"), ("asset.create",), True))
        for number in range(25):
            make_event(age=timedelta(minutes=30 - number), asset_id=number + 1)
        replay = create_replay(webhook.id, utcnow() - timedelta(hours=1), "test")
        db.session.commit()
        first = replay_service.run_replay(replay.id)
        # A small first batch (4), then batches of 10 while the webhook owes at most one batch: 4 + 10.
        assert (first.created, first.again_after_ms) == (14, replay_service.WAIT_MILLISECONDS)
        made = list(db.session.scalars(select(Message).order_by(Message.id)))
        assert [message.event.payload["assetId"] for message in made] == list(range(1, 15))
        assert db.session.get(Replay, replay.id).status == ReplayStatus.RUNNING
        waiting = replay_service.run_replay(replay.id, first.waits, first.owed)
        assert (waiting.created, waiting.waits) == (0, 1)  # nothing sent meanwhile: it waits longer
        assert waiting.again_after_ms == 2 * replay_service.WAIT_MILLISECONDS
        db.session.execute(update(Message).where(Message.id.in_([m.id for m in made]))
                           .values(status=MessageStatus.SENT))
        db.session.commit()
        last = replay_service.run_replay(replay.id, waiting.waits, waiting.owed)
        assert (last.created, last.again_after_ms) == (11, None)
        done = db.session.get(Replay, replay.id)
        assert (done.status, done.messages_created) == (ReplayStatus.DONE, 25)


def test_the_dialog_works_without_javascript(app, admin_client, fresh_redis):
    """Without JavaScript the dialog is a page of its own in UTC: "Count again" (a GET form) shows the count for the
    time typed on the same page, whose form still carries the CSRF token, and Replay starts the replay."""
    history = build_history(app, "https://hooks.example.com/replay")
    page = admin_client.get(f"{BASE}/{history.webhook_id}/replay")
    assert "<html" in page.get_data(as_text=True)
    assert 'formaction="' + f"{BASE}/{history.webhook_id}/replay/count" in select_one(page, "noscript").decode()
    since = minute(utcnow() - timedelta(hours=6))
    counted = admin_client.get(f"{BASE}/{history.webhook_id}/replay/count",
                               query_string={"since": since, "tz_offset": "", "csrf_token": "x"})
    assert counted.status_code == 200 and "<html" in counted.get_data(as_text=True)
    assert text_of(select_one(counted, "#replay-count")) == "4 events will be sent, oldest first."
    assert select_one(counted, "input#since")["value"] == since
    token = select_one(counted, "#webhook-replay-dialog form[method=post] input[name=csrf_token]")["value"]
    started = admin_client.post(f"{BASE}/{history.webhook_id}/replay", data={"since": since, "tz_offset": "",
                                                                             "csrf_token": token})
    assert started.status_code == 200 and "Replay started" in text_of(started)
    assert [row.since for row in replay_rows(app)] == [datetime.strptime(since, "%Y-%m-%dT%H:%M")]
