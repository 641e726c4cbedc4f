"""POST /api/v1/events: the JSON event intake, authenticated with a bearer API token with the events:write scope.

The management API's views live beside it (webhooks.py, messages.py) on the same blueprint.
"""

from flask import jsonify, request

from ..database import retry_once_on_disconnect
from ..extensions import db
from ..services.api_tokens import EVENTS_WRITE
from ..services.batch_intake import BatchRefused, emit_batch, messages_queued
from ..services.intake import MAX_EVENT_BYTES, IntakeError, emit_event, token_scope
from . import messages, recovery, webhooks  # noqa: F401  (their views join the blueprint)
from .auth import bearer_value, check_token, missing_scope, read_body
from .blueprint import bp
from .body import BodyError, check_content_type, parse_json
from .errors import error_response
from .openapi import BODY_ERRORS, responses, spec
from .schemas import EventsAccepted, EventsBody

__all__ = ["bp"]
MAX_BATCH_BYTES = 1024 * 1024


def refusal(error: IntakeError):
    """The error answer; for a refused batch it also lists every bad event by index."""
    response = error_response(error.status, error.field, error.message)
    if isinstance(error, BatchRefused):
        body = response.get_json()
        body["error"]["invalid"] = [{"index": index, "field": problem.field, "message": problem.message}
                                    for index, problem in error.problems]
        response.set_data(jsonify(body).get_data())
    return response


@bp.post("/events")
@spec.validate(json=EventsBody, resp=responses(409, *BODY_ERRORS, HTTP_202=EventsAccepted), tags=["events"],
               skip_validation=True)
def create_event():
    """Accept one event, or a batch of up to 500, and answer 202 with the eventIds and messages queued.

    Sending the same event again with the same eventId answers with the first acceptance and stores nothing; a
    different event with that eventId is refused with 409. A batch (a JSON array) is all or nothing: when any
    event is bad none is stored, and the error names the first by index ([3].assetId) and lists every one in
    `invalid`. An event is at most 64 KiB, a batch 1 MiB. A batch's messages are made by the worker moments after
    the answer (they appear in the log then); a single event's before it.
    """
    # Read before the token check: no transaction (on SQLite, the write lock) waits on a slow client.
    raw = read_body(limit=MAX_BATCH_BYTES)
    token = bearer_value()
    use = retry_once_on_disconnect(lambda: check_token(token), "API token check") if token else None
    if use is None:
        return error_response(401, "Authorization", "a valid bearer API token is required")
    if EVENTS_WRITE not in use.scopes:
        error = missing_scope(EVENTS_WRITE)
        return error_response(error.status, error.field, error.message)
    try:
        check_content_type(request)
        if raw is None:
            return error_response(413, "body", f"the body is larger than {MAX_BATCH_BYTES // 1024} KiB (an event "
                                               f"is at most {MAX_EVENT_BYTES // 1024} KiB, a batch "
                                               f"{MAX_BATCH_BYTES // 1024} KiB)")
        if len(raw) > MAX_EVENT_BYTES and not raw.lstrip()[:1] == b"[":
            return error_response(413, "body", f"the event is larger than {MAX_EVENT_BYTES // 1024} KiB")
        data = parse_json(raw, batch=True)
    except BodyError as error:
        return error_response(error.status, error.field, error.message)
    except BatchRefused as error:
        return refusal(error)
    try:
        if isinstance(data, list):
            batch = emit_batch(data, scope=token_scope(use.token_id))
            return jsonify({"events": [{"eventId": accepted.event_uuid, "messages": accepted.messages}
                                       for accepted in batch],
                            "messages": messages_queued(batch)}), 202
        accepted = emit_event(data, scope=token_scope(use.token_id))
    except IntakeError as error:
        db.session.rollback()
        return refusal(error)
    return jsonify({"eventId": accepted.event_uuid, "messages": accepted.messages}), 202


create_event.required_scope = EVENTS_WRITE
