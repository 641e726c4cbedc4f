"""The /api/v1 blueprint: JSON only, no CSRF (bearer tokens, not cookies), a bounded wait for SQLite's lock."""

from flask import Blueprint, current_app

from ..database import limit_lock_wait
from ..extensions import csrf
from .errors import register_error_handlers

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)
register_error_handlers(bp)

DEFAULT_INTAKE_LOCK_TIMEOUT_SECONDS = 3.0


@bp.before_request
def bound_the_lock_wait():
    """A locked SQLite database gets a fast, retryable 503 instead of holding a web thread for 15 s."""
    limit_lock_wait(current_app.config.get("WEBHOOKS_INTAKE_LOCK_TIMEOUT_SECONDS",
                                           DEFAULT_INTAKE_LOCK_TIMEOUT_SECONDS))
