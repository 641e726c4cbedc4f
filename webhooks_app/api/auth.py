"""Who calls the API: bearer tokens and their scopes. Management calls are audited in the transaction of what they
change, and refusals on their own."""

import functools

from flask import current_app, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..database import retry_once_on_disconnect
from ..extensions import db
from ..services.api_audit import record_call
from ..services.api_tokens import TokenUse, authenticate_api_token
from ..services.intake import IntakeError
from .body import BodyError, check_content_type, parse_json
from .errors import ApiError, error_response

MAX_BODY_BYTES = 64 * 1024
AUDITED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def bearer_value() -> str:
    """The token of an `Authorization: Bearer …` header, or ""."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def check_token(token: str) -> TokenUse | None:
    """The live token's use, its last use committed when it moved (kept even if the call is refused)."""
    use = authenticate_api_token(token)
    if use is not None and use.noted:
        db.session.commit()
    elif db.session.registry.has():
        # End a read made in the session too: a POST's transaction begins IMMEDIATE on SQLite, and must not hold
        # the write lock while the body is parsed and validated. (Usually the look-up had a connection of its own
        # and no session was made: none is made here either.)
        db.session.rollback()
    return use


def token_use() -> TokenUse | None:
    """The presented token's use, or None when it is missing, unknown or revoked."""
    token = bearer_value()
    return retry_once_on_disconnect(lambda: check_token(token), "API token check") if token else None


def missing_scope(scope: str) -> ApiError:
    return ApiError(403, "scope", f"this API token does not have the {scope} scope; create a token with it on "
                                  f"the API tokens page or with `flask create-api-token --scope {scope}`")


def read_body(cache: bool = False, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """The body, or None when it is over `limit` bytes (read at most one byte past it)."""
    if (request.content_length or 0) > limit:
        return None
    # One byte over the limit tells a too-long chunked body (no Content-Length) from one that fits.
    request.max_content_length = limit + 1
    try:
        raw = request.get_data(cache=cache)
    except RequestEntityTooLarge:
        return None
    return raw if len(raw) <= limit else None


def check_text(value, where: str = "body") -> None:
    """422 for a string no database column can hold: a NUL character, or a lone UTF-16 surrogate."""
    if isinstance(value, dict):
        for key, item in value.items():
            check_text(key, where)
            check_text(item, key if where == "body" else where)
    elif isinstance(value, list):
        for item in value:
            check_text(item, where)
    elif isinstance(value, str):
        if "\x00" in value:
            raise ApiError(422, where[:64], f"{where[:64]} contains a NUL character, which is not allowed")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(422, where[:64], f"{where[:64]} contains a lone surrogate, which is not text") from None


OPTIONAL_BODY = "optional"


def read_json_body():
    """The request's JSON: 415 for another media type, 413 over 64 KiB, 400 when malformed, 422 for unstorable text."""
    check_content_type(request)
    raw = read_body(cache=True)  # cached: the schema check reads it again
    if raw is None:
        raise BodyError(413, "body", f"the body is larger than {MAX_BODY_BYTES // 1024} KiB")
    data = parse_json(raw)
    check_text(data)
    return data


def note(summary: str) -> None:
    """Say what this management call did, for its audit entry."""
    g.api_summary = summary


def after_commit(action) -> None:
    """Run `action` once the call's transaction is committed (e.g. put a message on the queue)."""
    g.setdefault("api_after_commit", []).append(action)


def _refusal_summary(response) -> str:
    body = response.get_json(silent=True) or {}
    error = body.get("error") if isinstance(body, dict) else None
    return f"refused: {error.get('message', '')}" if isinstance(error, dict) else "refused"


def request_has_body() -> bool:
    return bool(request.content_length) or "Transfer-Encoding" in request.headers


def management(scope: str, body: bool | str = False):
    """A management view: 401 without a live token, 403 without `scope`, the JSON body read strictly when `body`
    (when one is sent, for OPTIONAL_BODY);
    writes and refusals of scope are audited, and the call's work is committed with its audit entry."""
    def decorate(view):
        @functools.wraps(view)
        def call(*args, **kwargs):
            use = token_use()
            if use is None:
                raise ApiError(401, "Authorization", "a valid bearer API token is required")
            g.api_token = use
            try:
                if scope not in use.scopes:
                    raise missing_scope(scope)
                if body is True or (body == OPTIONAL_BODY and request_has_body()):
                    read_json_body()
                response = current_app.make_response(view(*args, **kwargs))
            except IntakeError as error:
                db.session.rollback()
                response = error_response(error.status, error.field, error.message)
            except HTTPException as error:  # a refusal written as a response (the schema check's)
                db.session.rollback()
                response = error.get_response()
            if request.method in AUDITED_METHODS or response.status_code == 403:
                summary = g.get("api_summary") if response.status_code < 400 else _refusal_summary(response)
                record_call(use.token_id, use.name, request.method, request.path, response.status_code,
                            summary or "")
            db.session.commit()
            for action in g.pop("api_after_commit", []) if response.status_code < 400 else []:
                action()
            return response
        call.required_scope = scope
        return call
    return decorate
