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
-- Refused: the oldest holder's lease end, as text (Lua numbers would come back truncated to integers).
return redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
"""

# How long a send waits for a busy endpoint's slot before its message is deferred: long enough for
# a quick endpoint's sends to finish. It only waits while every send in flight there started less
# than BUSY_NOT_SLOW_SECONDS ago: a slow or hung endpoint's backlog is deferred at once.
WAIT_SECONDS = 0.05
BUSY_NOT_SLOW_SECONDS = 0.1


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

    @staticmethod
    def freed_key(endpoint: str) -> str:
        return f"webhooks:endpoint-slot-freed:{endpoint}"

    def try_acquire(self, endpoint: str, holder: str) -> tuple[bool, float]:
        """Take a slot if one is free; returns (granted, seconds since the oldest send in flight started)."""
        now = time.time()
        answer = self.acquire_script(
            keys=[self.redis_key(endpoint)],
            args=[now, now + self.lease_seconds, self.limit, holder, math.ceil(self.lease_seconds) + 1],
        )
        if answer == 1:
            return True, 0.0
        return False, now - (float(answer) - self.lease_seconds)

    def acquire(self, endpoint: str, holder: str, wait_seconds: float = WAIT_SECONDS,
                young_seconds: float = BUSY_NOT_SLOW_SECONDS) -> bool:
        """Take a slot, waiting up to `wait_seconds` while every holder there is younger than `young_seconds`."""
        deadline = time.monotonic() + wait_seconds
        while True:
            granted, oldest_age = self.try_acquire(endpoint, holder)
            if granted:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or oldest_age > young_seconds:
                return False
            # Woken by the next release; a stale wake-up token only costs another try.
            self.client.blpop([self.freed_key(endpoint)], timeout=min(max(remaining, 0.01), 0.1))

    def release(self, endpoint: str, holder: str) -> None:
        freed = self.freed_key(endpoint)
        pipeline = self.client.pipeline(transaction=False)
        pipeline.zrem(self.redis_key(endpoint), holder)
        pipeline.lpush(freed, 1)
        pipeline.ltrim(freed, 0, self.limit - 1)
        pipeline.expire(freed, 60)
        pipeline.execute()
