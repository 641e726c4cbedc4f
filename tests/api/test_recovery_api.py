"""The outage operations through the API: send again, replay missed events (dry run first) and a secret reset with
an overlap, with the UI's rules, delivered by the real worker to a real HTTPS receiver, and audited."""

from datetime import timedelta

import pytest
import standardwebhooks
from api.helpers import assert_error
from api.management import MESSAGES, WEBHOOKS, audit_entries, call, create, scoped_token
from conftest import wait_for
from factories import build_history
from sqlalchemy import func, select

from webhooks_app.extensions import db
from webhooks_app.models import Event, Message, MessageStatus, Replay, Webhook, utcnow
from webhooks_app.secrets_vault import whsec_form
from webhooks_app.services.intake import emit_event


@pytest.fixture
def token(app) -> str:
    return scoped_token(app, name="Recovery script")


def lowercase(headers: dict) -> dict:
    return {key.lower(): value for key, value in headers.items()}


def uuid_of(app, message_id: int) -> str:
    with app.app_context():
        uuid = db.session.get(Message, message_id).message_uuid
        db.session.remove()
        return uuid


def messages_of_event(app, event_uuid: str) -> list[tuple[str, str]]:
    """(status, replay_of_uuid) of the event's messages, oldest first."""
    with app.app_context():
        rows = db.session.execute(select(Message.status, Message.replay_of_uuid).join(Message.event)
                                  .where(Event.event_uuid == event_uuid).order_by(Message.id)).all()
        db.session.remove()
        return [tuple(row) for row in rows]


def test_send_again_queues_a_copy_delivered_by_the_worker_and_a_second_call_answers_the_pending_one(
        app, client, token, receiver, delivery_processes):
    """POST /messages/{id}/send-again answers 202 with the new messageId and a Location; the worker delivers the
    same event as a new message; the original stays Failed; a call while the copy is pending answers that copy
    (alreadyPending), and the call is in the audit log."""
    history = build_history(app, receiver.url("/again"))
    event_uuid = history.missed[1]
    original = uuid_of(app, history.failed_messages[event_uuid])

    answer = call(client, "POST", f"{MESSAGES}/{original}/send-again", token)
    assert answer.status_code == 202, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["status"] == "queued" and body["replayOf"] == original and body["messageId"] != original
    assert answer.headers["Location"] == f"{MESSAGES}/{body['messageId']}"

    (delivery,) = receiver.wait_for_count(1, "/again")
    assert delivery.json()["messageId"] == body["messageId"]
    assert delivery.json()["event"]["eventId"] == event_uuid
    wait_for(lambda: messages_of_event(app, event_uuid) == [(MessageStatus.FAILED, None),
                                                             (MessageStatus.SENT, original)],
             message="the copy Sent, the original still Failed")
    read = call(client, "GET", answer.headers["Location"], token).get_json()
    assert read["status"] == MessageStatus.SENT and read["attempts"][0]["succeeded"] is True
    assert ("Recovery script", "POST", f"{MESSAGES}/{original}/send-again", 202,
            f"sent message {original} again as {body['messageId']}") in audit_entries(app)


def test_send_again_while_the_copy_is_pending_answers_it_and_the_audit_says_so(app, client, token):
    """A second send-again while the first copy is still Queued answers that copy (alreadyPending) and makes no
    other; its audit entry says nothing was sent, not that it was sent again."""
    history = build_history(app, "https://hooks.example.com/pending-copy")
    event_uuid = history.missed[1]
    original = uuid_of(app, history.failed_messages[event_uuid])
    first = call(client, "POST", f"{MESSAGES}/{original}/send-again", token).get_json()
    second = call(client, "POST", f"{MESSAGES}/{original}/send-again", token).get_json()
    assert (first["alreadyPending"], second["alreadyPending"]) == (False, True)
    assert second["messageId"] == first["messageId"]
    assert len(messages_of_event(app, event_uuid)) == 2
    summaries = [entry[4] for entry in audit_entries(app)]
    assert summaries == [f"sent message {original} again as {first['messageId']}",
                         f"message {original}: its copy {first['messageId']} was already pending, nothing sent"]


def test_send_again_refusals_name_the_problem(app, client, token):
    """Unknown message: 404; a test message or a disabled webhook's: 409 with the UI's words; a read-only token:
    403 naming webhooks:write. Nothing is stored by a refusal."""
    history = build_history(app, "https://hooks.example.com/refused")
    original = uuid_of(app, history.failed_messages[history.missed[0]])
    assert_error(call(client, "POST", f"{MESSAGES}/00000000-0000-4000-8000-000000000000/send-again", token),
                 404, "messageId")
    with app.app_context():
        db.session.get(Webhook, history.webhook_id).enabled = False
        db.session.commit()
    refused = call(client, "POST", f"{MESSAGES}/{original}/send-again", token)
    assert_error(refused, 409, "messageId")
    assert "disabled" in refused.get_json()["error"]["message"]
    reader = scoped_token(app, ("webhooks:read",), name="reader")
    assert_error(call(client, "POST", f"{MESSAGES}/{original}/send-again", reader), 403, "scope")
    with app.app_context():
        copies = select(func.count()).select_from(Message).where(Message.replay_of_id.is_not(None))
        assert db.session.scalar(copies) == 0


def test_replay_dry_run_counts_then_the_replay_sends_each_missed_event_once(app, client, token, receiver,
                                                                           delivery_processes):
    """dryRun answers the count the dialog shows and stores nothing; the replay answers 202 with a Location that
    reports progress until done; the worker sends the four missed events oldest first; requestedBy names the token."""
    history = build_history(app, receiver.url("/replayed"))
    since = (utcnow() - timedelta(hours=6)).replace(microsecond=0)
    url = f"{WEBHOOKS}/{history.webhook_id}/replays"

    dry = call(client, "POST", url, token, json={"since": since.isoformat() + "Z", "dryRun": True})
    assert dry.status_code == 200, dry.get_data(as_text=True)
    assert dry.get_json() == {"since": since.isoformat() + "Z", "missedEvents": 4}
    default = call(client, "POST", url, token, json={"dryRun": True}).get_json()
    assert default["since"] == history.streak_started.replace(second=0, microsecond=0).isoformat() + "Z"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Replay)) == 0

    two_hours_east = (since + timedelta(hours=2)).isoformat() + "+02:00"  # the same instant
    started = call(client, "POST", url, token, json={"since": two_hours_east})
    assert started.status_code == 202, started.get_data(as_text=True)
    replay = started.get_json()
    assert (replay["webhookId"], replay["status"], replay["requestedBy"]) == (
        history.webhook_id, "running", "API token “Recovery script”")
    assert started.headers["Location"] == f"{url}/{replay['id']}"

    deliveries = receiver.wait_for_count(4, "/replayed")
    assert [delivery.json()["event"]["eventId"] for delivery in deliveries] == history.missed
    wait_for(lambda: call(client, "GET", started.headers["Location"], token).get_json()["status"] == "done",
             message="the replay to be done")
    done = call(client, "GET", started.headers["Location"], token).get_json()
    assert done["messagesCreated"] == 4 and done["finishedAt"] is not None
    assert call(client, "POST", url, token, json={"since": since.isoformat(), "dryRun": True}).get_json()[
        "missedEvents"] == 0
    summaries = [entry[4] for entry in audit_entries(app)]
    assert f"counted 4 missed events of webhook {history.webhook_id} since {since.isoformat()}Z (dry run)" in summaries
    assert f"replayed the missed events of webhook {history.webhook_id} since {since.isoformat()}Z" in summaries


def test_replay_refusals_name_the_field(app, client, token):
    """since in the future or beyond the retention: 422 naming since; a disabled webhook: 409; an unknown key or
    a non-boolean dryRun: 422; an unknown webhook or replay: 404; a read-only token may read but not replay."""
    history = build_history(app, "https://hooks.example.com/refused")
    url = f"{WEBHOOKS}/{history.webhook_id}/replays"
    future = call(client, "POST", url, token, json={"since": (utcnow() + timedelta(days=1)).isoformat()})
    assert_error(future, 422, "since")
    assert "future" in future.get_json()["error"]["message"]
    assert_error(call(client, "POST", url, token, json={"since": (utcnow() - timedelta(days=31)).isoformat()}),
                 422, "since")
    assert call(client, "POST", url, token, json={"dryRun": "yes"}).status_code == 422
    assert call(client, "POST", url, token, json={"sinse": "2026-01-01T00:00:00Z"}).status_code == 422
    assert_error(call(client, "POST", f"{WEBHOOKS}/999999/replays", token, json={}), 404, "webhook_id")
    assert_error(call(client, "GET", f"{url}/999999", token), 404, "replay_id")
    with app.app_context():
        db.session.get(Webhook, history.webhook_id).enabled = False
        db.session.commit()
    disabled = call(client, "POST", url, token, json={})
    assert_error(disabled, 409, "enabled")
    assert "enable it first" in disabled.get_json()["error"]["message"]
    assert call(client, "POST", url, token, json={"dryRun": True}).status_code == 200
    reader = scoped_token(app, ("webhooks:read",), name="reader")
    assert_error(call(client, "POST", url, reader, json={"dryRun": True}), 403, "scope")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Replay)) == 0


def test_reset_secret_with_an_overlap_signs_with_both_until_the_old_one_is_expired(app, client, token, receiver,
                                                                                     delivery_processes):
    """oldSecretValidFor keeps the old secret valid (previousSecretExpiresAt says until when): a message then
    verifies with either secret; DELETE …/previous-secret ends it (204, then 404), and the next message verifies
    with the new secret only. A value the dialog does not offer is refused with 422; no body stops it at once."""
    created = create(client, token, url=receiver.url("/rotated")).get_json()
    webhook_id, old_secret = created["id"], created["secret"]
    assert created["previousSecretExpiresAt"] is None
    refused = call(client, "POST", f"{WEBHOOKS}/{webhook_id}/reset-secret", token, json={"oldSecretValidFor": 60})
    assert refused.status_code == 422 and refused.get_json()["error"] == {
        "field": "oldSecretValidFor", "message": "Choose how long the old secret stays valid: Stop at once, 1 hour, "
                                                 "24 hours, 7 days (in seconds: 0, 3600, 86400, 604800)."}

    reset = call(client, "POST", f"{WEBHOOKS}/{webhook_id}/reset-secret", token, json={"oldSecretValidFor": 3600})
    assert reset.status_code == 200, reset.get_data(as_text=True)
    new_secret = reset.get_json()["secret"]
    assert reset.get_json()["previousSecretExpiresAt"] is not None
    with app.app_context():
        emit_event({"type": "asset.create", "assetId": 1, "userId": 1})
        db.session.commit()
    (first,) = receiver.wait_for_count(1, "/rotated")
    for secret in (old_secret, new_secret):
        standardwebhooks.Webhook(whsec_form(secret)).verify(first.body, lowercase(first.headers))

    assert call(client, "DELETE", f"{WEBHOOKS}/{webhook_id}/previous-secret", token).status_code == 204
    assert_error(call(client, "DELETE", f"{WEBHOOKS}/{webhook_id}/previous-secret", token), 404, "previous-secret")
    assert call(client, "GET", f"{WEBHOOKS}/{webhook_id}", token).get_json()["previousSecretExpiresAt"] is None
    with app.app_context():
        emit_event({"type": "asset.create", "assetId": 2, "userId": 1})
        db.session.commit()
    second = receiver.wait_for_count(2, "/rotated")[1]
    standardwebhooks.Webhook(whsec_form(new_secret)).verify(second.body, lowercase(second.headers))
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(whsec_form(old_secret)).verify(second.body, lowercase(second.headers))

    plain = call(client, "POST", f"{WEBHOOKS}/{webhook_id}/reset-secret", token)
    assert plain.status_code == 200 and plain.get_json()["previousSecretExpiresAt"] is None
    summaries = [entry[4] for entry in audit_entries(app)]
    assert f"reset the secret of webhook {webhook_id} (old one valid for 1 hour)" in summaries
    assert f"expired the previous secret of webhook {webhook_id}" in summaries
