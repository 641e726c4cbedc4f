"""emit_event: the event intake as one Python call, for host apps, the API and the CLI."""

from .extensions import db
from .services.intake import AcceptedEvent, accept_event


def emit_event(data: dict) -> AcceptedEvent:
    """Validate and store an event with its messages, commit, then ask for their sending (raises IntakeError)."""
    from tasks.delivery import request_backlog_delivery

    accepted = accept_event(data)
    db.session.commit()
    if accepted.webhook_ids and not accepted.duplicate:
        request_backlog_delivery(accepted.webhook_ids)
    return accepted
