"""The audit log of management calls made with API tokens: who (the token), what, when, and the outcome."""

from sqlalchemy import func, select

from ..extensions import db
from ..models import ApiAuditEntry

AUDIT_PAGE_SIZE = 50
MAX_PATH_LENGTH = 2048
MAX_SUMMARY_LENGTH = 500


def record_call(token_id: int, token_name: str, method: str, path: str, status: int, summary: str) -> None:
    """Add one entry; the caller commits it with the change it describes (or alone, for a refusal)."""
    db.session.add(ApiAuditEntry(token_id=token_id, token_name=token_name[:255], method=method[:10],
                                 path=path[:MAX_PATH_LENGTH], status=status, summary=summary[:MAX_SUMMARY_LENGTH]))


def recent_calls(before: int | None = None, limit: int = AUDIT_PAGE_SIZE) -> list[ApiAuditEntry]:
    """The newest entries (older than entry `before` when given), newest first."""
    query = select(ApiAuditEntry).order_by(ApiAuditEntry.id.desc()).limit(limit)
    if before is not None:
        query = query.where(ApiAuditEntry.id < before)
    return list(db.session.scalars(query))


def count_calls() -> int:
    return db.session.scalar(select(func.count()).select_from(ApiAuditEntry))
