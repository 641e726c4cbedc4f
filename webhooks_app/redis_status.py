"""Whether the Redis server that carries webhook messages answers."""

import logging

import redis
from flask import current_app

logger = logging.getLogger(__name__)


def redis_is_available() -> bool:
    """Ping Redis with a short timeout; log when it does not answer."""
    client = redis.Redis.from_url(
        current_app.config["REDIS_URL"],
        socket_timeout=current_app.config["REDIS_CHECK_TIMEOUT_SECONDS"],
        socket_connect_timeout=current_app.config["REDIS_CHECK_TIMEOUT_SECONDS"],
    )
    try:
        return bool(client.ping())
    except redis.RedisError as error:
        logger.error("Redis unavailable: webhook messages are not being processed (%s)", error)
        return False
    finally:
        client.close()
