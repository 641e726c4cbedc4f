"""Administrator accounts and rate-limited sign-in; callers commit."""

import functools
import hashlib
import secrets
from datetime import timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select, text
from werkzeug.security import check_password_hash, generate_password_hash

from ..database import dialect_name
from ..extensions import db
from ..models import LoginAttempt, User, utcnow
from .user_sessions import end_sessions

MIN_PASSWORD_LENGTH = 8


class UserError(ValueError):
    """A user could not be created; the message says why."""


class TooManyAttempts(Exception):
    """Sign-in is locked for this email for retry_after_seconds."""

    def __init__(self, retry_after_seconds: int):
        super().__init__(retry_after_seconds)
        self.retry_after_seconds = retry_after_seconds


def normalize_email(email: str) -> str:
    return email.strip().lower()


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH or not password.strip():
        raise UserError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters, not only spaces")


def check_email(email: str) -> str:
    """The address normalized, or UserError: administrators receive the notification email at it."""
    email = normalize_email(email)
    try:
        validate_email(email, check_deliverability=False, globally_deliverable=False)
    except EmailNotValidError as error:
        raise UserError(f"{email[:254]!r} is not an email address ({error})") from None
    if len(email) > 254:
        raise UserError(f"{email[:254]!r}… is not an email address (longer than 254 characters)")
    return email


def create_user(email: str, password: str, is_admin: bool = True) -> User:
    """Create a user with a hashed password."""
    email = check_email(email)
    check_password(password)
    if db.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise UserError(f"a user with email {email} already exists")
    user = User(email=email, password_hash=generate_password_hash(password), is_admin=is_admin)
    db.session.add(user)
    db.session.flush()
    return user


def create_first_admin() -> tuple[User, str] | None:
    """Create admin@example.com with a generated password when no administrator exists."""
    if db.session.scalar(select(User.id).where(User.is_admin.is_(True)).limit(1)) is not None:
        return None
    password = secrets.token_urlsafe(12)
    return create_user("admin@example.com", password, is_admin=True), password


def find_user(email: str) -> User:
    """The user with this email, or UserError."""
    user = db.session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None:
        raise UserError(f"there is no user with email {normalize_email(email)}")
    return user


def set_password(email: str, password: str, keep_session_token: str | None = None) -> User:
    """Give a user a new password and end their other sessions (all of them without `keep_session_token`)."""
    check_password(password)
    user = find_user(email)
    user.password_hash = generate_password_hash(password)
    end_sessions(user.id, keep_token=keep_session_token)
    db.session.flush()
    return user


def remove_user(email: str) -> None:
    """Delete a user; their sessions go with them. The last administrator is kept, or nobody could manage webhooks."""
    user = find_user(email)
    if user.is_admin and db.session.scalar(
            select(func.count()).select_from(User).where(User.is_admin.is_(True))) == 1:
        raise UserError(f"{user.email} is the last administrator; create another one before removing it")
    db.session.delete(user)
    db.session.flush()


@functools.cache
def _dummy_password_hash() -> str:
    # Checked when the email is unknown, so a wrong password costs the same whether or not the account exists.
    return generate_password_hash(secrets.token_urlsafe(16))


def _lock_sign_in(email: str) -> None:
    """Serialize sign-in attempts for one email until the transaction ends, so counting the recent failures
    and recording this attempt are one step. (SQLite writers already begin IMMEDIATE and take turns.)"""
    if dialect_name() == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"sign-in:{email}".encode()).digest()[:8], "big", signed=True)
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def authenticate(email: str, password: str, remote_address: str | None, max_failures: int,
                 lockout_seconds: int) -> User | None:
    """Check credentials, recording the attempt; raises TooManyAttempts while locked out.

    The caller's commit ends the per-email lock taken here.
    """
    email = normalize_email(email)
    _lock_sign_in(email)
    window_start = utcnow() - timedelta(seconds=lockout_seconds)
    failures = db.session.execute(
        select(func.count(), func.min(LoginAttempt.attempted_at)).where(
            LoginAttempt.email == email,
            LoginAttempt.succeeded.is_(False),
            LoginAttempt.attempted_at >= window_start,
        )
    ).one()
    if failures[0] >= max_failures:
        unlock_at = failures[1] + timedelta(seconds=lockout_seconds)
        raise TooManyAttempts(max(1, int((unlock_at - utcnow()).total_seconds())))
    user = db.session.scalar(select(User).where(User.email == email))
    password_matches = check_password_hash(user.password_hash if user else _dummy_password_hash(), password)
    succeeded = user is not None and password_matches
    db.session.add(LoginAttempt(email=email, remote_address=remote_address, succeeded=succeeded))
    db.session.flush()
    return user if succeeded else None
