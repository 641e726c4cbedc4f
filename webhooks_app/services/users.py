"""Administrator accounts and rate-limited sign-in; callers commit."""

import secrets
from datetime import timedelta

from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from ..models import LoginAttempt, User, utcnow

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


def create_user(email: str, password: str, is_admin: bool = True) -> User:
    """Create a user with a hashed password."""
    email = normalize_email(email)
    if "@" not in email or len(email) > 254:
        raise UserError(f"{email!r} is not an email address")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
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


def authenticate(email: str, password: str, remote_address: str | None, max_failures: int,
                 lockout_seconds: int) -> User | None:
    """Check credentials, recording the attempt; raises TooManyAttempts while locked out."""
    email = normalize_email(email)
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
    succeeded = user is not None and check_password_hash(user.password_hash, password)
    db.session.add(LoginAttempt(email=email, remote_address=remote_address, succeeded=succeeded))
    db.session.flush()
    return user if succeeded else None
