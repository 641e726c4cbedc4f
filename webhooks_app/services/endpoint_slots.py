"""A cap on concurrent sends per endpoint, shared by every worker through Redis."""

import math
import time

import redis

ACQUIRE_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""


class EndpointSlots:
    """At most `limit` sends in flight to one host:port; a slot left by a killed worker expires with its lease."""

    def __init__(self, client: redis.Redis, limit: int, lease_seconds: float):
        self.client = client
        self.limit = limit
        self.lease_seconds = lease_seconds
        self.acquire_script = client.register_script(ACQUIRE_SCRIPT)

    @staticmethod
    def redis_key(endpoint: str) -> str:
        return f"webhooks:endpoint-slots:{endpoint}"

    def acquire(self, endpoint: str, holder: str) -> bool:
        now = time.time()
        granted = self.acquire_script(
            keys=[self.redis_key(endpoint)],
            args=[now, now + self.lease_seconds, self.limit, holder, math.ceil(self.lease_seconds) + 1],
        )
        return bool(granted)

    def release(self, endpoint: str, holder: str) -> None:
        self.client.zrem(self.redis_key(endpoint), holder)
