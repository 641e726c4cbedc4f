"""POST /api/v1/events: the JSON event intake, authenticated with a bearer API token."""

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from ..emit import emit_event
from ..extensions import csrf, db
from ..services.api_tokens import authenticate_api_token
from ..services.intake import IntakeError, token_scope
from .body import BodyError, check_content_type, parse_json

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)

MAX_EVENT_BYTES = 64 * 1024


def error_response(status: int, field: str, message: str):
    response = jsonify({"error": {"field": field, "message": message}})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="webhooks"'
    return response


@bp.post("/events")
def create_event():
    """Accept one event and answer 202 with its eventId and how many messages it queued."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    use = authenticate_api_token(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
    if use is None:
        db.session.rollback()
        return error_response(401, "Authorization", "a valid bearer API token is required")
    if use.noted:
        db.session.commit()  # keep the token's last use even if the event is refused
    try:
        check_content_type(request)
    except BodyError as error:
        return error_response(error.status, error.field, error.message)
    if (request.content_length or 0) > MAX_EVENT_BYTES:
        return error_response(413, "body", f"the event is larger than {MAX_EVENT_BYTES // 1024} KiB")
    # One byte over the limit tells a too-long chunked body (no Content-Length) from one that fits.
    request.max_content_length = MAX_EVENT_BYTES + 1
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raw = None
    if raw is None or len(raw) > MAX_EVENT_BYTES:
        return error_response(413, "body", f"the event is larger than {MAX_EVENT_BYTES // 1024} KiB")
    try:
        data = parse_json(raw)
    except BodyError as error:
        return error_response(error.status, error.field, error.message)
    try:
        accepted = emit_event(data, scope=token_scope(use.token_id))
    except IntakeError as error:
        db.session.rollback()
        return error_response(error.status, error.field, error.message)
    return jsonify({"eventId": accepted.event_uuid, "messages": len(accepted.message_ids)}), 202
