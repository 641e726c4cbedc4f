"""The Dramatiq broker on Redis, bound to an app, with an app context pushed per message."""

import threading

import dramatiq
from dramatiq.brokers.redis import RedisBroker
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


def init_broker(app: Flask) -> RedisBroker:
    """Build the app's Redis broker, make it Dramatiq's global broker and bind every actor to it."""
    broker = RedisBroker(url=app.config["REDIS_URL"], heartbeat_timeout=60_000)
    broker.add_middleware(AppContextMiddleware(app))
    dramatiq.set_broker(broker)
    _state["broker"] = broker
    for lazy in _actors:
        lazy.bind(broker)
    app.extensions["dramatiq_broker"] = broker
    return broker
