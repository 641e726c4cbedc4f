"""The Dramatiq broker on Redis, bound to an app, with an app context pushed per message."""

import threading
from uuid import uuid4

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import current_millis
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import Middleware
from flask import Flask

from .extensions import db


class AppContextMiddleware(Middleware):
    """Push a fresh Flask app context around every message and release the session after it."""

    def __init__(self, app: Flask):
        self.app = app
        self.contexts = threading.local()

    def before_process_message(self, broker, message):
        context = self.app.app_context()
        context.push()
        self.contexts.current = context

    def after_process_message(self, broker, message, *, result=None, exception=None):
        context = getattr(self.contexts, "current", None)
        if context is None:
            return
        try:
            db.session.remove()
        finally:
            self.contexts.current = None
            context.pop()

    after_skip_message = after_process_message


WAKE_PREFIX = "webhooks:wake:"
MAX_WAKE_TOKENS = 32


def wake_key(queue_name: str) -> str:
    return WAKE_PREFIX + queue_name


class WakeableConsumer(_RedisConsumer):
    """A consumer that waits for work or for room instead of polling with backoff.

    Dramatiq's Redis consumer sleeps with exponential backoff up to the worker timeout (1 s) both
    when its queue is empty and when all its prefetched messages are still being processed, so a
    message could wait a second. Here an empty queue is waited on with BLPOP on a wake-up list that
    every enqueue pushes to, and a full prefetch window waits for the next ack.
    """

    def __init__(self, broker, queue_name, prefetch, timeout):
        super().__init__(broker, queue_name, prefetch, timeout)
        # Stay under redis-py's default 5 s socket timeout, which also bounds blocking reads. Delay
        # queues are also drained by this thread's loop, so they wait briefly.
        idle_ms = 100 if queue_name.endswith(".DQ") else min(max(timeout, 1), 4000)
        self.idle_seconds = idle_ms / 1000
        self.timeout = 1  # the parent's backoff after a miss: at most a millisecond
        self.room = threading.Event()

    def ack(self, message):
        try:
            super().ack(message)
        finally:
            self.room.set()

    def nack(self, message):
        try:
            super().nack(message)
        finally:
            self.room.set()

    def __next__(self):
        self.room.clear()
        had_room = bool(self.message_cache) or self.outstanding_message_count < self.prefetch
        message = super().__next__()
        if message is None and not self.message_cache:
            if not had_room:
                self.room.wait(self.idle_seconds)
                return None
            try:
                self.broker.client.blpop([wake_key(self.queue_name)], timeout=self.idle_seconds)
            except redis.ConnectionError as error:
                raise ConnectionClosed(error) from None
        return message


class WebhooksRedisBroker(RedisBroker):
    """Dramatiq's Redis broker with wake-ups for idle consumers and pipelined bulk enqueues."""

    consumer_class = WakeableConsumer

    def enqueue(self, message, *, delay=None):
        message = super().enqueue(message, delay=delay)
        self.wake(message.queue_name, 1)
        return message

    def enqueue_many(self, messages: list[dramatiq.Message]) -> None:
        """Enqueue many messages in one round trip (used by fan-out and the sweeper).

        The first goes through Dramatiq's dispatch script (which also beats this broker's heart and
        runs queue maintenance); the rest are written as that script writes them, but as one HSET and
        one RPUSH per queue in a MULTI: a thousand script calls cost more than the fan-out's INSERT.
        """
        if not messages:
            return
        enqueued = [message.copy(options={"redis_message_id": str(uuid4())}) for message in messages]
        for message in enqueued:
            self.emit_before("enqueue", message, None)
        first, rest = enqueued[0], enqueued[1:]
        pipeline = self.client.pipeline(transaction=True)
        self.scripts["dispatch"](keys=[self.namespace], args=[
            "enqueue", current_millis(), first.queue_name, self.broker_id, self.heartbeat_timeout,
            self.dead_message_ttl, self._should_do_maintenance("enqueue"), self._max_unpack_size(),
            first.options["redis_message_id"], first.encode(),
        ], client=pipeline)
        by_queue: dict[str, list[dramatiq.Message]] = {}
        for message in rest:
            by_queue.setdefault(message.queue_name, []).append(message)
        for queue_name, queued in by_queue.items():
            queue_key = f"{self.namespace}:{queue_name}"
            pipeline.hset(f"{queue_key}.msgs",
                          mapping={message.options["redis_message_id"]: message.encode() for message in queued})
            pipeline.rpush(queue_key, *(message.options["redis_message_id"] for message in queued))
        pipeline.execute()
        for message in enqueued:
            self.emit_after("enqueue", message, None)
        for queue_name in {message.queue_name for message in enqueued}:
            self.wake(queue_name, len(enqueued))

    def wake(self, queue_name: str, count: int) -> None:
        """Wake up to `count` idle consumers of a queue."""
        key = wake_key(queue_name)
        pipeline = self.client.pipeline(transaction=False)
        pipeline.lpush(key, *(["1"] * min(count, MAX_WAKE_TOKENS)))
        pipeline.ltrim(key, 0, MAX_WAKE_TOKENS - 1)
        pipeline.expire(key, 60)
        pipeline.execute()


class LazyActor:
    """An actor declared at import and bound to whichever broker the app builds (web, worker, tests)."""

    def __init__(self, fn, options: dict):
        self.fn = fn
        self.options = options
        self.actor_name = fn.__name__
        self.actor: dramatiq.Actor | None = None

    def bind(self, broker) -> None:
        options = dict(self.options)
        queue_name = options.pop("queue_name", "default")
        self.actor = dramatiq.Actor(
            self.fn, broker=broker, actor_name=self.actor_name, queue_name=queue_name, priority=0,
            options=options,
        )

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def send(self, *args, **kwargs):
        return self.actor.send(*args, **kwargs)

    def send_with_options(self, **options):
        return self.actor.send_with_options(**options)

    def message(self, *args, **kwargs):
        return self.actor.message(*args, **kwargs)


_actors: list[LazyActor] = []
_state = {"broker": None}


def actor(**options):
    """Declare an actor; options must set max_retries and time_limit explicitly."""
    if "max_retries" not in options or "time_limit" not in options:
        raise TypeError("actors set max_retries and time_limit explicitly")

    def decorate(fn) -> LazyActor:
        lazy = LazyActor(fn, options)
        _actors.append(lazy)
        if _state["broker"] is not None:
            lazy.bind(_state["broker"])
        return lazy

    return decorate


def init_broker(app: Flask) -> WebhooksRedisBroker:
    """Build the app's Redis broker, make it Dramatiq's global broker and bind every actor to it."""
    broker = WebhooksRedisBroker(url=app.config["REDIS_URL"], heartbeat_timeout=60_000)
    broker.add_middleware(AppContextMiddleware(app))
    dramatiq.set_broker(broker)
    _state["broker"] = broker
    for lazy in _actors:
        lazy.bind(broker)
    app.extensions["dramatiq_broker"] = broker
    return broker
