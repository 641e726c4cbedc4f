"""POST /api/v1/events: the JSON event intake, authenticated with a bearer API token."""

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from ..database import limit_lock_wait, retry_once_on_disconnect
from ..extensions import csrf, db
from ..services.api_tokens import TokenUse, authenticate_api_token
from ..services.intake import IntakeError, emit_event, token_scope
from .body import BodyError, check_content_type, parse_json
from .errors import error_response, register_error_handlers

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)
register_error_handlers(bp)

MAX_EVENT_BYTES = 64 * 1024
DEFAULT_INTAKE_LOCK_TIMEOUT_SECONDS = 3.0


@bp.before_request
def bound_the_lock_wait():
    """A locked SQLite database gets a fast, retryable 503 instead of holding a web thread for 15 s."""
    limit_lock_wait(current_app.config.get("WEBHOOKS_INTAKE_LOCK_TIMEOUT_SECONDS",
                                           DEFAULT_INTAKE_LOCK_TIMEOUT_SECONDS))


def read_body() -> bytes | None:
    """The body, or None when it is over the limit (read at most one byte past it)."""
    if (request.content_length or 0) > MAX_EVENT_BYTES:
        return None
    # One byte over the limit tells a too-long chunked body (no Content-Length) from one that fits.
    request.max_content_length = MAX_EVENT_BYTES + 1
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        return None
    return raw if len(raw) <= MAX_EVENT_BYTES else None


def check_token(token: str) -> TokenUse | None:
    """The live token's use, its last use committed when it moved (kept even if the event is refused)."""
    use = authenticate_api_token(token)
    if use is None:
        db.session.rollback()
    elif use.noted:
        db.session.commit()
    return use


@bp.post("/events")
def create_event():
    """Accept one event and answer 202 with its eventId and how many messages it queued."""
    # Read before the token check: no transaction (on SQLite, the write lock) waits on a slow client.
    raw = read_body()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    use = retry_once_on_disconnect(lambda: check_token(token), "API token check") if token else None
    if use is None:
        return error_response(401, "Authorization", "a valid bearer API token is required")
    try:
        check_content_type(request)
        if raw is None:
            return error_response(413, "body", f"the event is larger than {MAX_EVENT_BYTES // 1024} KiB")
        data = parse_json(raw)
    except BodyError as error:
        return error_response(error.status, error.field, error.message)
    try:
        accepted = emit_event(data, scope=token_scope(use.token_id))
    except IntakeError as error:
        db.session.rollback()
        return error_response(error.status, error.field, error.message)
    return jsonify({"eventId": accepted.event_uuid, "messages": len(accepted.message_ids)}), 202
