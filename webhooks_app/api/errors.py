"""The API's errors: {"error": {"field", "message"}} JSON for every one, never the HTML error pages."""

import logging

from flask import Blueprint, jsonify, request
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import BadRequest
from werkzeug.http import HTTP_STATUS_CODES

from ..database import UNAVAILABLE_ERRORS
from ..extensions import db
from ..services.intake import IntakeError

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2
ERROR_FIELDS = {404: "path", 405: "method"}


class ApiError(IntakeError):
    """A refused API call: the HTTP status and the field and message of its JSON error."""


def error_response(status: int, field: str, message: str):
    response = jsonify({"error": {"field": field, "message": message}})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="webhooks"'
    return response


def database_unavailable(error):
    """503 with Retry-After: the database is unreachable, restarting, locked or too slow; the client retries."""
    reason = str(getattr(error, "orig", None) or error).splitlines()[0][:200] if str(error) else ""
    logger.warning("events API: database unavailable, answered 503 (%s: %s)", type(error).__name__, reason)
    response = error_response(503, "database", "the database is unavailable or busy; nothing was stored, "
                                               f"try again in {RETRY_AFTER_SECONDS} s")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def register_error_handlers(bp: Blueprint) -> None:
    """Answer database outages with 503, and rewrite any HTML error page under the blueprint's prefix as JSON."""
    for error_class in UNAVAILABLE_ERRORS:
        bp.register_error_handler(error_class, database_unavailable)

    @bp.errorhandler(IntakeError)
    def refused(error: IntakeError):
        db.session.rollback()
        return error_response(error.status, error.field, error.message)

    @bp.errorhandler(IntegrityError)
    def conflict(error: IntegrityError):
        # A row changed or vanished under the call (e.g. deleted by someone else meanwhile): nothing was stored.
        db.session.rollback()
        logger.info("API call conflicted with stored data: %s", str(error.orig).splitlines()[0][:200])
        return error_response(409, "request", "the call conflicts with a change made meanwhile; nothing was "
                                              "stored: read the data again and retry")

    @bp.errorhandler(BadRequest)
    def bad_request(error: BadRequest):
        # The app-wide guards (a NUL in the query string) explain themselves in the description.
        return error_response(400, "request", error.description or HTTP_STATUS_CODES[400])

    @bp.after_app_request
    def errors_as_json(response):
        # The app's HTML error pages answer every 404, 405 and 500, also those of URLs no API view
        # matched; under the API's prefix they become the API's JSON (an unexpected error is already logged).
        if response.status_code < 400 or response.is_json or not (request.path + "/").startswith(bp.url_prefix + "/"):
            return response
        status = response.status_code
        field = ERROR_FIELDS.get(status, "server" if status >= 500 else "request")
        message = HTTP_STATUS_CODES.get(status, "error")
        if status >= 500:
            message = "an unexpected error occurred; it was logged"
        json_response = error_response(status, field, message)
        valid_methods = getattr(request.routing_exception, "valid_methods", None)
        if status == 405 and valid_methods:
            json_response.headers["Allow"] = ", ".join(method for method in valid_methods if method != "OPTIONS")
        return json_response
