"""Helpers shared by the events-API tests: posting events and reading what the database holds."""

import json
from pathlib import Path

from servers import wait_for
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.pool import NullPool

from webhooks_app.events import EVENT_NAMES
from webhooks_app.extensions import db
from webhooks_app.models import Event, Message
from webhooks_app.services.api_tokens import create_api_token
from webhooks_app.services.webhooks import WebhookFields, create_webhook

URL = "/api/v1/events"
UNUSED_ENDPOINT = "https://hooks.example.com/netx"  # no worker runs in these tests, so nothing is ever sent
ASSET_CREATE = {"type": "asset.create", "assetId": 101, "userId": 1}
EVENT_ID = "5f0c7d2e-3b1a-4c8e-9d6f-2a4b6c8e0f13"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post_event(client, token: str, event=None, raw: bytes | None = None, headers=None,
               content_type: str = "application/json"):
    """POST an event as JSON, or `raw` bytes as they are."""
    data = raw if raw is not None else json.dumps(event).encode()
    return client.post(URL, data=data, content_type=content_type, headers={**bearer(token), **(headers or {})})


def new_token(app, name: str = "tests") -> str:
    """A live bearer token for POST /api/v1/events."""
    with app.app_context():
        _, token = create_api_token(name)
        db.session.commit()
        db.session.remove()
    return token


def add_webhook(app, url: str = UNUSED_ENDPOINT, events=EVENT_NAMES, enabled: bool = True) -> int:
    with app.app_context():
        webhook, _ = create_webhook(WebhookFields("Receiver", url, tuple(events), enabled))
        db.session.commit()
        webhook_id = webhook.id
        db.session.remove()
        return webhook_id


def stored_counts(app) -> tuple[int, int]:
    """How many rows the events and messages tables hold."""
    with app.app_context():
        events = db.session.scalar(select(func.count()).select_from(Event))
        messages = db.session.scalar(select(func.count()).select_from(Message))
        db.session.remove()
        return events, messages


def make_owed_messages(app) -> int:
    """Make the messages of every batch's fan-out as the worker does (no worker runs in these tests); how many."""
    from webhooks_app.models import FanOut
    from webhooks_app.services.fan_out import fan_out_messages

    with app.app_context():
        fan_out_ids = db.session.scalars(select(FanOut.id).order_by(FanOut.id)).all()
        for fan_out_id in fan_out_ids:
            while fan_out_messages(fan_out_id)[1]:
                db.session.commit()
        db.session.commit()
        db.session.remove()
    return len(fan_out_ids)


def stored_events(app) -> list[tuple[str, str, dict]]:
    """(event_uuid, event_type, payload) of every stored event, oldest first."""
    with app.app_context():
        rows = db.session.execute(select(Event.event_uuid, Event.event_type, Event.payload).order_by(Event.id)).all()
        db.session.remove()
        return [tuple(row) for row in rows]


def stored_messages(app) -> list[tuple[int, str, str]]:
    """(webhook_id, event_type, status) of every stored message, oldest first."""
    with app.app_context():
        rows = db.session.execute(
            select(Message.webhook_id, Message.event_type, Message.status).order_by(Message.id)
        ).all()
        db.session.remove()
        return [tuple(row) for row in rows]


def assert_error(response, status: int, field: str) -> str:
    """The answer is `status` with {"error": {"field": field, "message": ...}}; returns the message."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/json"
    body = response.get_json()
    assert list(body) == ["error"]
    assert set(body["error"]) == {"field", "message"}
    assert body["error"]["field"] == field
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["message"]


def sqlite_path(app) -> Path:
    """The file of an app's SQLite database."""
    with app.app_context():
        return Path(db.engine.url.database)


def terminate_backends(app) -> int:
    """Terminate every client backend of the app's PostgreSQL database but this one, as a restart would."""
    with app.app_context():
        url = db.engine.url
    killer = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with killer.connect() as connection:
            # In the select list, not the WHERE clause, so only the rows that pass the WHERE are terminated.
            pids = list(connection.execute(text(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")).scalars())
            wait_for(lambda: not connection.execute(text("SELECT 1 FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                                                    {"pids": pids}).first(),
                     message="the terminated backends to exit")
        return len(pids)
    finally:
        killer.dispose()
