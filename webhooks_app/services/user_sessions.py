"""Server-side sessions: a random token per signed-in browser, checked on every request; callers commit.

The cookie is only a bearer of the token: deleting the row (sign-out, a password change, the user's
removal, or idleness) signs that browser out however the cookie was kept.
"""

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from ..extensions import db
from ..models import User, UserSession, utcnow

# last_seen_at is written at most this often per session, so page loads and live polls do not all write.
TOUCH_INTERVAL = timedelta(minutes=1)


def hash_session_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(user_id: int) -> str:
    """Record a new session for the user; returns its token, for the (signed) session cookie."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(UserSession(user_id=user_id, token_hash=hash_session_token(token), created_at=now,
                               last_seen_at=now))
    db.session.flush()
    return token


def session_user(user_id: int, token: str, idle_timeout: timedelta) -> tuple[User, datetime] | None:
    """The user of a live session (this user's, used within `idle_timeout`) and when it was last seen; else None."""
    row = db.session.execute(
        select(User, UserSession.last_seen_at).join(UserSession, UserSession.user_id == User.id)
        .where(UserSession.token_hash == hash_session_token(token), User.id == user_id,
               UserSession.last_seen_at > utcnow() - idle_timeout)
    ).one_or_none()
    return (row[0], row[1]) if row else None


def touch_due(last_seen_at: datetime) -> bool:
    return utcnow() - last_seen_at >= TOUCH_INTERVAL


def touch_session(token: str) -> None:
    """Note that the session was used now, in a transaction of its own (committed here)."""
    with db.engine.begin() as connection:
        connection.execute(update(UserSession).where(UserSession.token_hash == hash_session_token(token))
                           .values(last_seen_at=utcnow()))


def end_session(token: str) -> None:
    """Sign one browser out."""
    db.session.execute(delete(UserSession).where(UserSession.token_hash == hash_session_token(token)))


def end_sessions(user_id: int, keep_token: str | None = None) -> int:
    """Sign the user out everywhere (except the session holding `keep_token`); returns how many ended."""
    statement = delete(UserSession).where(UserSession.user_id == user_id)
    if keep_token:
        statement = statement.where(UserSession.token_hash != hash_session_token(keep_token))
    return db.session.execute(statement).rowcount


def end_idle_sessions(idle_timeout: timedelta) -> int:
    """Forget sessions nobody used within `idle_timeout` (they are refused anyway); returns how many."""
    return db.session.execute(delete(UserSession).where(UserSession.last_seen_at <= utcnow() - idle_timeout)).rowcount
