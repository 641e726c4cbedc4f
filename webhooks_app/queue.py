"""The Dramatiq broker on Redis, bound to an app, with an app context pushed per message."""

import threading

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware
from flask import Flask

from .extensions import db

# Actors register here when their module is imported; init_broker binds them to the app's broker.
ACTORS: list[dramatiq.Actor] = []


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


def register_actor(actor: dramatiq.Actor) -> dramatiq.Actor:
    """Remember an actor so every broker the app builds declares it."""
    ACTORS.append(actor)
    return actor


def init_broker(app: Flask) -> RedisBroker:
    """Build the app's Redis broker, make it Dramatiq's global broker and declare the actors on it."""
    broker = RedisBroker(url=app.config["REDIS_URL"])
    broker.add_middleware(AppContextMiddleware(app))
    dramatiq.set_broker(broker)
    for actor in ACTORS:
        actor.broker = broker
        broker.declare_actor(actor)
    app.extensions["dramatiq_broker"] = broker
    return broker
