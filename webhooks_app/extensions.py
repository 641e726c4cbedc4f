"""Flask extensions, created once and bound to the app in create_app."""

import redis
from flask_dramatiq import Dramatiq
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
csrf = CSRFProtect()
login_manager = LoginManager()

# Dramatiq on Redis (flask-dramatiq): actors are declared at import with task_queue.actor and bound to the
# broker init_app builds from DRAMATIQ_BROKER_URL; each message runs inside a fresh app context.
task_queue = Dramatiq(broker_cls="dramatiq.brokers.redis:RedisBroker")


def actor(**options):
    """Declare an actor of the app; its options must set max_retries and time_limit explicitly."""
    if "max_retries" not in options or "time_limit" not in options:
        raise TypeError("actors set max_retries and time_limit explicitly")
    return task_queue.actor(**options)


def queue_redis() -> redis.Redis:
    """The Redis client of the queue's broker, for the app's own keys (batch requests, send slots, locks)."""
    return task_queue.broker.client
