"""POST /api/v1/events: the JSON event intake, authenticated with a bearer API token with the events:write scope.

The management API's views live beside it (webhooks.py, messages.py) on the same blueprint.
"""

from flask import jsonify, request

from ..database import retry_once_on_disconnect
from ..extensions import db
from ..services.api_tokens import EVENTS_WRITE
from ..services.intake import IntakeError, emit_event, token_scope
from . import messages, webhooks  # noqa: F401  (their views join the blueprint)
from .auth import MAX_BODY_BYTES, bearer_value, check_token, missing_scope, read_body
from .blueprint import bp
from .body import BodyError, check_content_type, parse_json
from .errors import error_response
from .openapi import BODY_ERRORS, responses, spec
from .schemas import Event, EventAccepted

__all__ = ["bp"]


@bp.post("/events")
@spec.validate(json=Event, resp=responses(409, *BODY_ERRORS, HTTP_202=EventAccepted), tags=["events"],
               skip_validation=True)
def create_event():
    """Accept one event and answer 202 with its eventId and how many messages it queued.

    Needs the events:write scope. Sending the same event again with the same eventId answers with the first
    acceptance and stores nothing; a different event with that eventId is refused with 409.
    """
    # Read before the token check: no transaction (on SQLite, the write lock) waits on a slow client.
    raw = read_body()
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
            return error_response(413, "body", f"the event is larger than {MAX_BODY_BYTES // 1024} KiB")
        data = parse_json(raw)
    except BodyError as error:
        return error_response(error.status, error.field, error.message)
    try:
        accepted = emit_event(data, scope=token_scope(use.token_id))
    except IntakeError as error:
        db.session.rollback()
        return error_response(error.status, error.field, error.message)
    return jsonify({"eventId": accepted.event_uuid, "messages": len(accepted.message_ids)}), 202


create_event.required_scope = EVENTS_WRITE
