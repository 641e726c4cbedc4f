"""Whether the Redis server that carries webhook messages answers."""

import logging

import redis
from flask import current_app

logger = logging.getLogger(__name__)


def _check_client() -> redis.Redis:
    """One short-timeout client per Redis URL and app, so each check reuses a pooled connection."""
    url = current_app.config["REDIS_URL"]
    clients = current_app.extensions.setdefault("redis_check_clients", {})
    if url not in clients:
        timeout = current_app.config["REDIS_CHECK_TIMEOUT_SECONDS"]
        clients[url] = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    return clients[url]


def redis_is_available() -> bool:
    """Ping Redis with a short timeout; log when it does not answer."""
    try:
        return bool(_check_client().ping())
    except redis.RedisError as error:
        logger.error("Redis unavailable: webhook messages are not being processed (%s)", error)
        return False
