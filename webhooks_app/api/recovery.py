"""The outage operations of the UI for scripts: send a message again, replay missed events (with a dry run), and
end a reset secret's overlap. Same services, rules and messages as the UI (services/send_again.py, replay.py,
secret_rotation.py)."""

from flask import g, jsonify, request, url_for

from ..extensions import db
from ..models import Replay
from ..services import replay as replay_service
from ..services.api_tokens import WEBHOOKS_READ, WEBHOOKS_WRITE
from ..services.dispatch import request_batches
from ..services.secret_rotation import expire_previous_secret
from ..services.send_again import SendAgainRefused, send_again
from .auth import after_commit, management, note
from .blueprint import bp
from .errors import ApiError
from .messages import as_utc, message_or_404
from .openapi import BODY_ERRORS, responses, spec
from .schemas import Replay as ReplayBody
from .schemas import ReplayPreview, ReplayRequest, SentAgain
from .webhooks import iso, load

TAGS = ["recovery"]


def replay_json(replay: Replay) -> dict:
    return {"id": replay.id, "webhookId": replay.webhook_id, "since": iso(replay.since), "status": replay.status,
            "messagesCreated": replay.messages_created, "stopReason": replay.stop_reason,
            "requestedBy": replay.requested_by, "createdAt": iso(replay.created_at),
            "finishedAt": iso(replay.finished_at)}


@bp.post("/messages/<uuid:message_uuid>/send-again")
@management(WEBHOOKS_WRITE)
@spec.validate(resp=responses(404, 409, HTTP_202=SentAgain), tags=TAGS)
def send_message_again(message_uuid):
    """Send a message again: a new message for the same event and webhook, tried on the full ladder.

    The original stays as it was. When a copy of the event is already pending for the webhook, that copy is
    answered (`alreadyPending`) instead of a second one. 409 for a test message, a deleted webhook or event, or
    a disabled webhook.
    """
    message = message_or_404(message_uuid)
    try:
        result = send_again(message.id)
    except SendAgainRefused as error:
        raise ApiError(409, "messageId", str(error)) from None
    note(f"message {message_uuid}: its copy {result.message_uuid} was already pending, nothing sent"
         if result.already_pending else f"sent message {message_uuid} again as {result.message_uuid}")
    if not result.already_pending:
        after_commit(lambda: request_batches([result.webhook_id]))
    response = jsonify({"messageId": result.message_uuid, "status": "queued",
                        "alreadyPending": result.already_pending, "replayOf": str(message_uuid)})
    response.status_code = 202
    response.headers["Location"] = url_for("api.read_message", message_uuid=result.message_uuid)
    return response


@bp.post("/webhooks/<id:webhook_id>/replays")
@management(WEBHOOKS_WRITE, body=True)
@spec.validate(json=ReplayRequest, resp=responses(404, 409, *BODY_ERRORS, HTTP_200=ReplayPreview,
                                                  HTTP_202=ReplayBody), tags=TAGS)
def replay_missed_events(webhook_id: int):
    """Replay missed events: send again, oldest first, every stored event the webhook subscribes to since `since`
    that it has no Sent and no pending message for (failed, or missed while it was disabled).

    With `dryRun` only the count is answered (200) and nothing is stored. Otherwise the replay starts (202) and
    runs in the worker in batches; follow it at the Location. 409 for a disabled webhook (enable it first),
    422 for a `since` outside the log's retention or in the future.
    """
    webhook = load(webhook_id, lock=True)
    body = request.context.json
    since = as_utc(body.since, "since") if body.since is not None else replay_service.default_since(webhook)
    try:
        replay_service.check_since(since)
    except replay_service.ReplayError as error:
        raise ApiError(422, "since", str(error)) from None
    if body.dryRun:
        missed = replay_service.missed_event_count(webhook_id, since)
        note(f"counted {missed} missed events of webhook {webhook_id} since {iso(since)} (dry run)")
        return jsonify({"since": iso(since), "missedEvents": missed})
    try:
        replay = replay_service.create_replay(webhook_id, since, f"API token “{g.api_token.name}”")
    except replay_service.ReplayError as error:  # a disabled webhook
        raise ApiError(409, "enabled", str(error)) from None
    note(f"replayed the missed events of webhook {webhook_id} since {iso(since)}")
    replay_id = replay.id
    after_commit(lambda: replay_service.start_replay(replay_id))
    response = jsonify(replay_json(replay))
    response.status_code = 202
    response.headers["Location"] = url_for("api.read_replay", webhook_id=webhook_id, replay_id=replay.id)
    return response


@bp.get("/webhooks/<id:webhook_id>/replays/<id:replay_id>")
@management(WEBHOOKS_READ)
@spec.validate(resp=responses(404, HTTP_200=ReplayBody), tags=TAGS)
def read_replay(webhook_id: int, replay_id: int):
    """A replay's progress: running, done, or stopped (its webhook was disabled), and the messages made so far."""
    replay = db.session.get(Replay, replay_id)
    if replay is None or replay.webhook_id != webhook_id:
        raise ApiError(404, "replay_id", f"webhook {webhook_id} has no replay {replay_id}")
    return jsonify(replay_json(replay))


@bp.delete("/webhooks/<id:webhook_id>/previous-secret")
@management(WEBHOOKS_WRITE)
@spec.validate(resp=responses(404, HTTP_204=None), tags=TAGS)
def expire_old_secret(webhook_id: int):
    """End a reset secret's overlap now: from this call on, messages are signed with the current secret only.

    404 when the webhook has no replaced secret still valid.
    """
    load(webhook_id, lock=True)
    if not expire_previous_secret(webhook_id):
        raise ApiError(404, "previous-secret", f"webhook {webhook_id} has no replaced secret still valid")
    note(f"expired the previous secret of webhook {webhook_id}")
    return "", 204
