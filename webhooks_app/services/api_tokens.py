"""Bearer tokens for the events API: shown once, stored as SHA-256; callers commit."""

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select

from ..extensions import db
from ..models import ApiToken, utcnow

TOKEN_PREFIX = "whk_"  # noqa: S105 - a public marker, not a secret
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiTokenNotFound(LookupError):
    """No API token has that id."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_api_token(name: str) -> tuple[ApiToken, str]:
    """Make a token; returns the row and the plaintext, which is never retrievable again."""
    name = name.strip()
    if not name or len(name) > 255:
        raise ValueError("a token needs a name of 1 to 255 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name, token_hash=hash_token(token), token_prefix=token[:10])
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


def authenticate_api_token(token: str) -> ApiToken | None:
    """The live token matching this bearer value, or None; notes when it was last used."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now
    return row
