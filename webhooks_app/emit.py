"""emit_event: the event intake as one Python call, for host apps, the API and the CLI."""

from .extensions import db
from .services.intake import AcceptedEvent, accept_event


def emit_event(data: dict) -> AcceptedEvent:
    """Validate and store an event with its messages, commit, then enqueue them (raises IntakeError)."""
    from tasks.delivery import enqueue_messages

    accepted = accept_event(data)
    db.session.commit()
    if accepted.message_ids and not accepted.duplicate:
        enqueue_messages(accepted.message_ids)
    return accepted
