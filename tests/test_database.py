"""The database layer: migrations match the models, and concurrent writers wait instead of failing."""

import threading

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from webhooks_app.extensions import db
from webhooks_app.models import Webhook
from webhooks_app.services.webhooks import WebhookFields, create_webhook, list_webhooks


def test_migrations_match_the_models(app):
    """`flask db upgrade` builds exactly the schema the models describe (no migration is missing)."""
    with app.app_context(), db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), db.metadata)
    assert differences == []


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
