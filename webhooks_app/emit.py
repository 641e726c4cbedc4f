"""emit_event: the event intake as one Python call, for host apps, the API and the CLI."""

from .extensions import db
from .services.intake import LOCAL_SCOPE, AcceptedEvent, accept_event


def emit_event(data: dict, scope: str = LOCAL_SCOPE) -> AcceptedEvent:
    """Validate and store an event with its messages, commit, then ask for their sending (raises IntakeError).

    `scope` is the sender whose eventIds must be unique: "local" for host apps and the CLI.
    """
    from tasks.delivery import request_backlog_delivery

    accepted = accept_event(data, scope)
    db.session.commit()
    if accepted.webhook_ids and not accepted.duplicate:
        request_backlog_delivery(accepted.webhook_ids)
    return accepted
