"""The database layer: migrations match the models, concurrent writers wait, dead idle connections are replaced."""

import threading
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from databases import suite_postgres_url
from servers import wait_for
from sqlalchemy import create_engine, exc, func, select, text
from sqlalchemy.pool import NullPool

from webhooks_app.database import ping_idle_connections
from webhooks_app.extensions import db
from webhooks_app.models import Event, Webhook
from webhooks_app.services.intake import emit_event
from webhooks_app.services.webhooks import WebhookFields, create_webhook, list_webhooks


def test_migrations_match_the_models(app):
    """`flask db upgrade` builds exactly the schema the models describe (no migration is missing)."""
    with app.app_context(), db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), db.metadata)
    assert differences == []


def test_events_stored_before_scoped_event_ids_get_the_legacy_scope(app):
    """Migration 0007 puts existing events in the "legacy" scope, without digest: no sender's new event repeats them."""
    from flask_migrate import downgrade, upgrade

    event_uuid = str(uuid.uuid4())
    with app.app_context():
        db.session.remove()
        downgrade(revision="0005_webhook_backlog_index")
        try:
            with db.engine.begin() as connection:
                connection.execute(text("INSERT INTO events (event_uuid, event_type, payload, created_at) "
                                        "VALUES (:event_uuid, 'asset.create', '{}', CURRENT_TIMESTAMP)"),
                                   {"event_uuid": event_uuid})
        finally:
            upgrade()
        assert db.session.execute(select(Event.event_uuid, Event.scope, Event.body_digest)).all() == [
            (event_uuid, "legacy", None)]
        accepted = emit_event({"type": "asset.create", "assetId": 1, "userId": 1, "eventId": event_uuid})
        assert not accepted.duplicate
        assert db.session.scalars(select(Event.scope).order_by(Event.id)).all() == ["legacy", "local"]
        db.session.remove()


def test_concurrent_read_then_write_transactions_all_succeed(app):
    """Eight threads that each read and then write at the same moment all commit: none fails as locked."""
    start = threading.Barrier(8)
    errors = []

    def read_then_write(number: int) -> None:
        with app.app_context():
            try:
                start.wait(timeout=10)
                list_webhooks()
                create_webhook(WebhookFields(f"hook {number}", "https://hooks.example.com/", ("asset.create",), True))
                db.session.commit()
            except Exception as error:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(error))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=read_then_write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Webhook)) == 8


# The suite's PostgreSQL database when it runs on one, else TEST_POSTGRES_URL, else CI's `test` (per xdist worker).
POSTGRES_URL = suite_postgres_url()


def _terminate_pooled_backend(engine) -> int:
    """Check a connection out and back in, then kill its PostgreSQL backend; returns the dead backend's pid."""
    with engine.connect() as connection:
        dead_pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    # Autocommit: inside one transaction pg_stat_activity would keep showing its first snapshot.
    killer_engine = create_engine(POSTGRES_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with killer_engine.connect() as killer:
        killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dead_pid})
        wait_for(lambda: not killer.execute(text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"),
                                            {"pid": dead_pid}).first(), message="the backend to exit")
    return dead_pid


@pytest.mark.parametrize("pinged", [True, False])
def test_an_idle_connection_whose_server_side_died_is_replaced(pinged):
    """A pooled PostgreSQL connection killed while idle is replaced on checkout; without the ping it fails."""
    engine = create_engine(POSTGRES_URL, pool_size=1, max_overflow=0)
    if pinged:
        ping_idle_connections(engine, idle_seconds=0)
    try:
        dead_pid = _terminate_pooled_backend(engine)
        with engine.connect() as connection:
            if not pinged:
                with pytest.raises(exc.OperationalError):
                    connection.execute(text("SELECT pg_backend_pid()"))
                return
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() != dead_pid
    finally:
        engine.dispose()


def test_migration_0012_backfills_each_events_subject_for_the_logs_search(app):
    """Migration 0012 stores what each existing event is about (assetId, folderId or targetUserId; the asset of
    asset.addToFolder; nothing for a test event) in the indexed subject_id column the log's search reads."""
    from flask_migrate import downgrade, upgrade

    events = [("asset.create", '{"assetId": 101, "userId": 1}', 101),
              ("asset.addToFolder", '{"assetId": 7, "folderId": 9, "userId": 1}', 7),
              ("folder.update", '{"folderId": 55, "userId": 1}', 55),
              ("user.expire", '{"targetUserId": 8, "userId": 1}', 8),
              ("webhook.test", '{"userId": 1}', None)]
    with app.app_context():
        db.session.remove()
        downgrade(revision="0010_replays_and_secret_overlap")
        try:
            with db.engine.begin() as connection:
                for event_type, payload, _ in events:
                    connection.execute(text("INSERT INTO events (event_uuid, event_type, payload, created_at) "
                                            "VALUES (:uuid, :type, :payload, CURRENT_TIMESTAMP)"),
                                       {"uuid": str(uuid.uuid4()), "type": event_type, "payload": payload})
        finally:
            upgrade()
        stored = db.session.execute(select(Event.event_type, Event.subject_id).order_by(Event.id)).all()
        assert stored == [(event_type, subject) for event_type, _, subject in events]
        db.session.remove()


def test_migration_0014_fills_in_the_subject_of_events_the_batch_intake_stored_without_it(app):
    """Migration 0014 sets the subject id the batch intake had left empty (the log's search missed those events),
    and leaves events that have one, and test events, as they are."""
    from flask_migrate import downgrade, upgrade

    events = [("asset.create", '{"assetId": 101, "userId": 1}', None, 101),
              ("folder.create", '{"folderId": 55, "userId": 1}', None, 55),
              ("user.update", '{"targetUserId": 8, "userId": 1}', 8, 8),
              ("webhook.test", '{"userId": 1}', None, None)]
    with app.app_context():
        db.session.remove()
        downgrade(revision="0013_owed_notifications")
        try:
            with db.engine.begin() as connection:
                for event_type, payload, subject, _ in events:
                    connection.execute(text("INSERT INTO events (event_uuid, event_type, payload, subject_id, "
                                            "created_at) VALUES (:uuid, :type, :payload, :subject, CURRENT_TIMESTAMP)"),
                                       {"uuid": str(uuid.uuid4()), "type": event_type, "payload": payload,
                                        "subject": subject})
        finally:
            upgrade()
        stored = db.session.execute(select(Event.event_type, Event.subject_id).order_by(Event.id)).all()
        assert stored == [(event_type, subject) for event_type, _, _, subject in events]
        db.session.remove()
