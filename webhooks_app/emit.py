"""emit_event: the event intake as one Python call, for host apps, the API and the CLI."""

from .database import retry_once_on_disconnect
from .extensions import db
from .services.intake import LOCAL_SCOPE, AcceptedEvent, store_valid_event, validate_event


def emit_event(data: dict, scope: str = LOCAL_SCOPE) -> AcceptedEvent:
    """Validate and store an event with its messages, commit, then ask for their sending (raises IntakeError).

    `scope` is the sender whose eventIds must be unique: "local" for host apps and the CLI. A connection
    found dead, even at COMMIT, is replaced and the store retried once: the eventId (a generated one too)
    stays the same, so a retry never stores the event twice.
    """
    from tasks.delivery import request_backlog_delivery

    event = validate_event(data)
    attempts = []

    def store_and_commit() -> AcceptedEvent:
        attempts.append(len(attempts) + 1)
        stored = store_valid_event(event, scope)
        db.session.commit()
        return stored

    accepted = retry_once_on_disconnect(store_and_commit, "event intake")
    # After a retry a "repeat" may be this very event, committed just before the connection died.
    if accepted.webhook_ids and (not accepted.duplicate or len(attempts) > 1):
        request_backlog_delivery(accepted.webhook_ids)
    return accepted
