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

# How long a send waits for a busy endpoint's slot before its message is deferred: long enough for
# a quick endpoint's sends to finish, short enough that a hung endpoint's backlog costs little.
WAIT_SECONDS = 0.05


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

    def try_acquire(self, endpoint: str, holder: str) -> bool:
        now = time.time()
        granted = self.acquire_script(
            keys=[self.redis_key(endpoint)],
            args=[now, now + self.lease_seconds, self.limit, holder, math.ceil(self.lease_seconds) + 1],
        )
        return bool(granted)

    def acquire(self, endpoint: str, holder: str, wait_seconds: float = WAIT_SECONDS) -> bool:
        """Take a slot, waiting up to `wait_seconds` for one to be released; False when none came free."""
        deadline = time.monotonic() + wait_seconds
        while not self.try_acquire(endpoint, holder):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # Woken by the next release; a stale wake-up token only costs another try.
            self.client.blpop([self.freed_key(endpoint)], timeout=min(max(remaining, 0.01), 0.1))
        return True

    def release(self, endpoint: str, holder: str) -> None:
        freed = self.freed_key(endpoint)
        pipeline = self.client.pipeline(transaction=False)
        pipeline.zrem(self.redis_key(endpoint), holder)
        pipeline.lpush(freed, 1)
        pipeline.ltrim(freed, 0, self.limit - 1)
        pipeline.expire(freed, 60)
        pipeline.execute()
