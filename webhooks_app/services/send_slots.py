"""Caps on concurrent sends, shared by every worker through Redis: per webhook, and a politeness cap per host.

A webhook whose endpoint hangs fills its own slots only: another webhook, even on the same host and port,
still finds a slot free. The per-host cap is higher than a webhook's, so it only limits many webhooks that
point at one server.
"""

import math
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis

# KEYS: the slot sets to enter together. ARGV: now, lease end, holder, expiry seconds, then one limit per key.
# Granted: {0}. Refused: {index of the full set (1-based), the oldest holder's lease end as text}.
ACQUIRE_SCRIPT = """
for index, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
  if redis.call('ZCARD', key) >= tonumber(ARGV[4 + index]) then
    return {index, redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]}
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, ARGV[2], ARGV[3])
  redis.call('EXPIRE', key, ARGV[4])
end
return {0}
"""

# How long a send waits for a busy webhook's slot before its message is deferred: long enough for a
# quick endpoint's sends to finish. It only waits while every send in flight there started less than
# BUSY_NOT_SLOW_SECONDS ago: a slow or hung endpoint's backlog is deferred at once.
WAIT_SECONDS = 0.05
BUSY_NOT_SLOW_SECONDS = 0.1


def host_key(url: str) -> str:
    """host:port of an endpoint URL (never raises: a URL that no longer parses still gets a key)."""
    parts = urlsplit(url)
    try:
        port = parts.port or 443
    except ValueError:
        port = 443
    return f"{(parts.hostname or '').lower()}:{port}"


@dataclass(frozen=True)
class SlotKeys:
    """The slot sets one send enters: its webhook's and its host's."""

    webhook: str
    host: str


def slot_keys(webhook_id: int, url: str) -> SlotKeys:
    return SlotKeys(f"webhooks:send-slots:webhook:{webhook_id}", f"webhooks:send-slots:host:{host_key(url)}")


class SendSlots:
    """At most `per_webhook` sends in flight per webhook and `per_host` per host:port; a dead worker's slot expires."""

    def __init__(self, client: redis.Redis, per_webhook: int, per_host: int, lease_seconds: float):
        self.client = client
        self.limits = (per_webhook, per_host)
        self.lease_seconds = lease_seconds
        self.acquire_script = client.register_script(ACQUIRE_SCRIPT)

    @staticmethod
    def freed_key(slot_key: str) -> str:
        return f"{slot_key}:freed"

    def try_acquire(self, keys: SlotKeys, holder: str) -> tuple[bool, float, str]:
        """Take a slot in both sets if both have room; returns (granted, age of the oldest send, full set's key)."""
        now = time.time()
        answer = self.acquire_script(
            keys=[keys.webhook, keys.host],
            args=[now, now + self.lease_seconds, holder, math.ceil(self.lease_seconds) + 1, *self.limits],
        )
        if int(answer[0]) == 0:
            return True, 0.0, ""
        full = (keys.webhook, keys.host)[int(answer[0]) - 1]
        return False, now - (float(answer[1]) - self.lease_seconds), full

    def acquire(self, keys: SlotKeys, holder: str, wait_seconds: float = WAIT_SECONDS,
                young_seconds: float = BUSY_NOT_SLOW_SECONDS) -> bool:
        """Take a slot, waiting up to `wait_seconds` while the full set's holders are younger than `young_seconds`."""
        deadline = time.monotonic() + wait_seconds
        while True:
            granted, oldest_age, full = self.try_acquire(keys, holder)
            if granted:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or oldest_age > young_seconds:
                return False
            # Woken by the next release; a stale wake-up token only costs another try.
            self.client.blpop([self.freed_key(full)], timeout=min(max(remaining, 0.01), 0.1))

    def release(self, keys: SlotKeys, holder: str) -> None:
        pipeline = self.client.pipeline(transaction=False)
        for key, limit in zip((keys.webhook, keys.host), self.limits, strict=True):
            freed = self.freed_key(key)
            pipeline.zrem(key, holder)
            pipeline.lpush(freed, 1)
            pipeline.ltrim(freed, 0, limit - 1)
            pipeline.expire(freed, 60)
        pipeline.execute()
