"""Recording an attempt the endpoint already answered survives a database connection that drops meanwhile, an
answer no text column can hold, and its webhook being deleted during the send."""

import sqlite3
import threading
from contextlib import contextmanager

import psycopg
from sqlalchemy import event, func, select

from webhooks_app.extensions import db
from webhooks_app.models import Attempt, Message, MessageStatus, utcnow
from webhooks_app.services.dispatch import deliver_backlog, deliver_message
from webhooks_app.services.intake import accept_event
from webhooks_app.services.webhooks import WebhookFields, create_webhook


def owe(url: str, count: int) -> int:
    webhook, _ = create_webhook(WebhookFields("Endpoint", url, ("asset.create",), True))
    for asset_id in range(1, count + 1):
        accept_event({"type": "asset.create", "assetId": asset_id, "userId": 1})
    db.session.commit()
    return webhook.id


@contextmanager
def listening(listener):
    """Run `listener` before each statement the app's engine sends, within the block."""
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        yield
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)


class DropWhileRecording:
    """Breaks the connection the first time attempts are written: a terminated backend, or SQLite's lock error."""

    def __init__(self):
        self.broken = 0

    def __call__(self, connection, cursor, statement, parameters, context, executemany):
        if "INSERT INTO attempts" not in statement or self.broken:
            return
        self.broken += 1
        if connection.dialect.name == "postgresql":
            backend = connection.connection.dbapi_connection.info.backend_pid
            with psycopg.connect(connection.engine.url.set(drivername="postgresql").render_as_string(False),
                                 autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s)", [backend])
        else:
            raise sqlite3.OperationalError("database is locked")


def test_a_dropped_connection_while_recording_is_retried_and_nothing_is_sent_twice(app, app_context, receiver):
    """The connection dies as a batch's three answered attempts are written: they are written again, each sent once."""
    webhook_id = owe(receiver.url("/ok"), 3)
    dropper = DropWhileRecording()
    with listening(dropper):
        outcome = deliver_backlog(webhook_id)
    assert dropper.broken == 1
    assert outcome.sent == 3
    db.session.expire_all()
    assert list(db.session.scalars(select(Message.status))) == [MessageStatus.SENT] * 3
    assert db.session.scalar(select(func.count()).select_from(Attempt)) == 3
    assert len(receiver.received) == 3
    assert deliver_backlog(webhook_id).outcomes == {}  # nothing left to send again


def test_recording_an_attempt_twice_stores_it_once(app, app_context, receiver):
    """Writing the same attempt again (its first commit was not acknowledged) adds no row and keeps the status."""
    from webhooks_app.services.dispatch import claim_message
    from webhooks_app.services.record import attempt_record, record_batch
    from webhooks_app.services.transport import SendResult

    owe(receiver.url("/ok"), 1)
    message_id = db.session.scalar(select(Message.id))
    claimed = claim_message(message_id)
    db.session.commit()
    record = attempt_record(claimed, 1, utcnow(), SendResult(True, 5, 204))
    record_batch([record])
    record_batch([record])
    db.session.expire_all()
    message = db.session.get(Message, message_id)
    assert message.status == MessageStatus.SENT and message.attempts_made == 1
    assert db.session.scalar(select(func.count()).select_from(Attempt)) == 1


def test_a_single_message_survives_the_same_drop(app, app_context, receiver):
    """The batch of one (a test message's path) records through the same retrying write."""
    owe(receiver.url("/ok"), 1)
    message_id = db.session.scalar(select(Message.id))
    dropper = DropWhileRecording()
    with listening(dropper):
        assert deliver_message(message_id) == "sent"
    assert dropper.broken == 1 and len(receiver.received) == 1


def test_an_answer_with_a_nul_is_recorded_and_the_message_sent_once(app, app_context, receiver):
    """An endpoint answering 2xx with a NUL byte and a lone surrogate's bytes (PostgreSQL's text refuses a NUL): the
    attempt is recorded with U+FFFD in their place, the message is Sent, and nothing is sent again."""
    webhook_id = owe(receiver.url("/nul"), 1)
    assert deliver_backlog(webhook_id).sent == 1
    db.session.expire_all()
    assert list(db.session.scalars(select(Message.status))) == [MessageStatus.SENT]
    assert list(db.session.scalars(select(Attempt.response_excerpt))) == ["ok\ufffdok \ufffd\ufffd\ufffd"]
    assert deliver_backlog(webhook_id).outcomes == {}
    assert len(receiver.received) == 1


def test_an_attempt_under_way_when_its_webhook_is_deleted_is_still_recorded(app, receiver):
    """The webhook is deleted while its endpoint is answering: the attempt is recorded (with no webhook) and the
    message is Sent, not left to end as "Not sent" although the endpoint received it."""
    from webhooks_app.services.webhooks import delete_webhook

    with app.app_context():
        webhook_id = owe(receiver.url("/slow/1.5"), 1)
        db.session.remove()
    outcomes = []

    def deliver():
        with app.app_context():
            outcomes.append(deliver_backlog(webhook_id).sent)
            db.session.remove()

    sender = threading.Thread(target=deliver)
    sender.start()
    receiver.wait_for_count(1, "/slow/")
    with app.app_context():
        delete_webhook(webhook_id)
        db.session.commit()
        db.session.remove()
    sender.join(timeout=30)
    assert outcomes == [1]
    with app.app_context():
        assert list(db.session.execute(select(Message.status, Message.webhook_id))) == [(MessageStatus.SENT, None)]
        assert list(db.session.execute(select(Attempt.succeeded, Attempt.webhook_id))) == [(True, None)]
        db.session.remove()


def test_a_successful_batch_of_one_is_recorded_in_one_statement_on_postgresql(app, app_context, receiver):
    """A fan-out's batch of one Sent message is recorded with its streak's end in one autocommitted statement on
    PostgreSQL (BEGIN, record, streak, COMMIT were four round trips); SQLite keeps the general path."""
    webhook_id = owe(receiver.url("/ok"), 1)
    writes = []

    def note(connection, cursor, statement, parameters, context, executemany):
        if "INSERT INTO attempts" in statement or "UPDATE webhooks" in statement:
            autocommit = getattr(connection.connection.dbapi_connection, "autocommit", None)
            writes.append((statement.split()[0], autocommit))

    with listening(note):
        outcome = deliver_backlog(webhook_id)
    assert outcome.sent == 1
    if db.engine.dialect.name == "postgresql":
        assert writes == [("WITH", True)]
    else:
        assert [verb for verb, _ in writes] == ["INSERT", "UPDATE"]
    assert db.session.scalar(select(func.count()).select_from(Attempt)) == 1
    assert db.session.scalar(select(Message.status)) == MessageStatus.SENT
