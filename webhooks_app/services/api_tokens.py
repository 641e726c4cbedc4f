"""Bearer tokens for the API: shown once, stored as SHA-256, each with its scopes; callers commit."""

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, select, update

from ..database import session_in_transaction
from ..direct_sql import direct
from ..extensions import db
from ..models import ApiToken, utcnow

TOKEN_PREFIX = "whk_"  # noqa: S105 - a public marker, not a secret
LAST_USED_RESOLUTION = timedelta(minutes=1)

EVENTS_WRITE = "events:write"
WEBHOOKS_READ = "webhooks:read"
WEBHOOKS_WRITE = "webhooks:write"
# What each scope lets a token do, in the order the API tokens page and the CLI list them.
SCOPES = {
    EVENTS_WRITE: "Post events (POST /api/v1/events)",
    WEBHOOKS_READ: "Read webhooks and their activity log",
    WEBHOOKS_WRITE: "Create, change, delete and test webhooks, reset their secrets",
}
DEFAULT_SCOPES = (EVENTS_WRITE,)


class ApiTokenNotFound(LookupError):
    """No API token has that id."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def scope_problem(scopes) -> str | None:
    """Why these scopes cannot be given to a token (none, or one that does not exist), or None."""
    if not scopes:
        return "a token needs at least one scope"
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        return f"unknown scope {unknown[0][:64]!r}; the scopes are {', '.join(SCOPES)}"
    return None


def create_api_token(name: str, scopes=DEFAULT_SCOPES) -> tuple[ApiToken, str]:
    """Make a token with these scopes; returns the row and the plaintext, which is never retrievable again."""
    name = name.strip()
    if not name or len(name) > 255:
        raise ValueError("a token needs a name of 1 to 255 characters")
    problem = scope_problem(scopes)
    if problem:
        raise ValueError(problem)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    ordered = " ".join(scope for scope in SCOPES if scope in set(scopes))
    row = ApiToken(name=name, token_hash=hash_token(token), token_prefix=token[:10], scopes=ordered)
    db.session.add(row)
    db.session.flush()
    return row, token


def list_api_tokens() -> list[ApiToken]:
    """All tokens, newest first."""
    return list(db.session.scalars(select(ApiToken).order_by(ApiToken.id.desc())))


def revoke_api_token(token_id: int) -> ApiToken:
    """Stop a token working at once."""
    row = db.session.get(ApiToken, token_id)
    if row is None:
        raise ApiTokenNotFound(token_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    db.session.flush()
    return row


@dataclass(frozen=True)
class TokenUse:
    """A live token presented to the API; `noted` when its last use was written (the caller commits)."""

    token_id: int
    noted: bool
    name: str = ""
    scopes: frozenset[str] = frozenset(DEFAULT_SCOPES)


@functools.cache
def _token_by_hash():
    # Built once: the intake checks a token on every event.
    tokens = ApiToken.__table__
    return select(tokens.c.id, tokens.c.name, tokens.c.scopes, tokens.c.revoked_at, tokens.c.last_used_at).where(
        tokens.c.token_hash == bindparam("token_hash"))


def authenticate_api_token(token: str) -> TokenUse | None:
    """The live token matching this bearer value, or None; notes when it was last used (once a minute).

    At the start of a request the look-up is a read of its own: one round trip on PostgreSQL, and no
    SQLite write lock; only the once-a-minute note of its use writes (the caller commits it).
    """
    if not token.startswith(TOKEN_PREFIX):
        return None
    parameters = {"token_hash": hash_token(token)}
    if session_in_transaction():
        row = db.session.connection().execute(_token_by_hash(), parameters).one_or_none()
    else:
        with direct(write=False) as run:
            rows = run(_token_by_hash(), parameters)
        row = rows[0] if rows else None
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    scopes = frozenset(row.scopes.split())
    if row.last_used_at is not None and now - row.last_used_at <= LAST_USED_RESOLUTION:
        return TokenUse(row.id, noted=False, name=row.name, scopes=scopes)
    db.session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now)
                       .execution_options(synchronize_session=False))
    return TokenUse(row.id, noted=True, name=row.name, scopes=scopes)
