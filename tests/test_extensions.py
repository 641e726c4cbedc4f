"""The extension layer: actors declared at import run on the app's Redis broker, each message in an app context."""

import threading

import pytest
from dramatiq import Worker
from flask import current_app
from servers import wait_for

from webhooks_app.extensions import actor, db, queue_redis, task_queue

RESULT_KEY = "webhooks:test:actor-context"


@actor(queue_name="extension-test", max_retries=0, time_limit=10_000)
def note_app_context(marker: str) -> None:
    """Record, in Redis, which app this message ran under and that the database session works."""
    answer = db.session.execute(db.text("SELECT 1")).scalar()
    queue_redis().set(RESULT_KEY, f"{marker}:{current_app.import_name}:{answer}:{threading.get_ident()}")


def test_a_message_runs_inside_a_fresh_app_context_on_a_real_worker(app, fresh_redis):
    """Dramatiq's Worker, on the app's Redis broker, runs the actor with an app context and a database session."""
    worker = Worker(task_queue.broker, queues=["extension-test"], worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        note_app_context.send("hello")
        value = wait_for(lambda: fresh_redis.client().get(RESULT_KEY), timeout=15, message="the actor to run")
    finally:
        worker.stop(timeout=5_000)
    marker, app_name, answer, thread = value.decode().split(":")
    assert (marker, app_name, answer) == ("hello", "webhooks_app", "1")
    assert int(thread) != threading.get_ident()


def test_an_actor_must_set_its_retries_and_time_limit():
    """Declaring an actor without explicit max_retries and time_limit is refused at import time."""
    with pytest.raises(TypeError, match="max_retries and time_limit"):
        actor(queue_name="x", max_retries=0)(lambda: None)
    with pytest.raises(TypeError, match="max_retries and time_limit"):
        actor(queue_name="x", time_limit=1000)(lambda: None)


def test_every_actor_of_the_app_sets_its_retries_and_time_limit(app):
    """Each actor on the broker has explicit max_retries and time_limit options."""
    actors = task_queue.broker.actors
    assert {"deliver", "deliver_webhook_backlog", "prune_activity_log"} <= set(actors)
    for name, declared in actors.items():
        assert {"max_retries", "time_limit"} <= set(declared.options), name
