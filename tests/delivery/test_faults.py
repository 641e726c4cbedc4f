"""Delivery under database faults, with the real worker on PostgreSQL: terminated backends cause no second POST."""

import os
import threading
from collections import Counter

import psycopg
import pytest
from databases import create_database_if_missing, faults_postgres_url
from processes import project_environment
from servers import wait_for
from sqlalchemy import select, text

from webhooks_app.extensions import db
from webhooks_app.models import Message, MessageStatus

# This test needs PostgreSQL in both passes of the suite (SQLite's has no backends to terminate): it uses a
# database of its own, whatever TEST_DATABASE_URL is.
FAULTS_DATABASE_URL = faults_postgres_url()
WORKER_APPLICATION_NAME = "webhooks-test-worker"
EVENTS = 60



@pytest.fixture(scope="module")
def postgres_app(app, redis_url, certificates):
    """An app of this module's own on a freshly migrated PostgreSQL database."""
    from conftest import TEST_DELIVERY_SETTINGS
    from flask_migrate import upgrade

    from webhooks_app import create_app
    from webhooks_app.config import normalize_database_url, settings_from_environment
    from webhooks_app.extensions import task_queue

    try:
        create_database_if_missing(FAULTS_DATABASE_URL)
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL at {FAULTS_DATABASE_URL} is needed for the fault tests: {error}")
    delivery = settings_from_environment({**os.environ, **TEST_DELIVERY_SETTINGS,
                                          "WEBHOOKS_CA_BUNDLE": certificates.ca_path})
    application = create_app({"TESTING": True, "REDIS_URL": redis_url,
                              "SQLALCHEMY_DATABASE_URI": normalize_database_url(FAULTS_DATABASE_URL),
                              **{key: value for key, value in delivery.items()
                                 if key.startswith("WEBHOOKS_") and key != "WEBHOOKS_ENCRYPTION_KEY"}})
    task_queue.init_app(app)  # create_app bound the actors to the new app's broker: give them back
    with application.app_context():
        with db.engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        upgrade()
    yield application
    with application.app_context():
        db.engine.dispose()


def terminate_worker_backends(stop: threading.Event, every_seconds: float, counted: list[int]) -> None:
    with psycopg.connect(FAULTS_DATABASE_URL, autocommit=True) as killer:
        while not stop.wait(every_seconds):
            rows = killer.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE application_name = %s", [WORKER_APPLICATION_NAME]).fetchall()
            counted.append(len(rows))


def test_terminated_backends_while_delivering_send_nothing_twice(postgres_app, fresh_redis, certificates, receiver):
    """The worker's PostgreSQL backends are terminated every second during a stream: all Sent, none delivered twice."""
    from conftest import TEST_DELIVERY_SETTINGS, stop_kept_processes
    from processes import scheduler, worker

    from webhooks_app.services.api_tokens import create_api_token
    from webhooks_app.services.webhooks import WebhookFields, create_webhook

    with postgres_app.app_context():
        # A slow endpoint keeps the worker's database connection idle between claim and record: the moment
        # a terminated backend used to cost a second POST of the whole batch.
        create_webhook(WebhookFields("Healthy", receiver.url("/slow/0.2"), ("asset.create",), True))
        _, token = create_api_token("faults")
        db.session.commit()
    environment = project_environment(f"{FAULTS_DATABASE_URL}?application_name={WORKER_APPLICATION_NAME}",
                                      fresh_redis.url, **TEST_DELIVERY_SETTINGS,
                                      WEBHOOKS_CA_BUNDLE=certificates.ca_path)
    stop_kept_processes()
    processes = [worker(environment).start(), scheduler(environment).start()]
    stop, terminated = threading.Event(), []
    killer = threading.Thread(target=terminate_worker_backends, args=(stop, 1.0, terminated))
    client = postgres_app.test_client()
    try:
        wait_for(lambda: "Worker process is ready" in processes[0].output(), timeout=60, message="the worker")
        killer.start()
        for asset_id in range(1, EVENTS + 1):
            response = client.post("/api/v1/events", json={"type": "asset.create", "assetId": asset_id, "userId": 1},
                                   headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 202
            if asset_id % 10 == 0:
                receiver.wait_for_count(asset_id - 5, timeout=30)  # a stream, not one burst
        stop.set()
        killer.join(timeout=10)

        def all_sent():
            with postgres_app.app_context():
                statuses = list(db.session.scalars(select(Message.status)))
                db.session.remove()
            return len(statuses) == EVENTS and set(statuses) == {MessageStatus.SENT}

        wait_for(all_sent, timeout=90, message="every message to be Sent")
    finally:
        stop.set()
        for process in processes:
            process.stop()
        logs = "\n".join(process.output()[-3000:] for process in processes)
    assert sum(terminated) >= 3, f"too few backends terminated to prove anything: {terminated}"
    deliveries = Counter(delivery.json()["messageId"] for delivery in receiver.received)
    assert len(deliveries) == EVENTS
    assert [message_id for message_id, count in deliveries.items() if count > 1] == [], logs
