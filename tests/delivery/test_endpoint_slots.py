"""The per-endpoint send cap in Redis: a limit, a short wait for a freed slot, and expiry of a dead holder's slot."""

import threading
import time

from servers import wait_for

from webhooks_app.services.endpoint_slots import EndpointSlots


def test_no_more_than_the_limit_hold_slots_at_once(fresh_redis):
    """With a limit of two, a third holder is refused until one of the two releases."""
    slots = EndpointSlots(fresh_redis.client(), limit=2, lease_seconds=30)
    assert slots.acquire("a:443", "one", wait_seconds=0) and slots.acquire("a:443", "two", wait_seconds=0)
    assert not slots.acquire("a:443", "three", wait_seconds=0)
    assert slots.acquire("b:443", "other endpoint", wait_seconds=0)
    slots.release("a:443", "one")
    assert slots.acquire("a:443", "three", wait_seconds=0)


def test_a_waiting_send_gets_the_slot_as_soon_as_it_is_released(fresh_redis):
    """A send that finds the endpoint full waits for the release instead of being deferred at once."""
    slots = EndpointSlots(fresh_redis.client(), limit=1, lease_seconds=30)
    assert slots.acquire("a:443", "holder", wait_seconds=0)
    waiting = threading.Event()
    outcome = {}

    def wait_for_slot():
        waiting.set()
        outcome["granted"] = slots.acquire("a:443", "waiter", wait_seconds=10)

    waiter = threading.Thread(target=wait_for_slot)
    waiter.start()
    waiting.wait(timeout=5)
    slots.release("a:443", "holder")
    waiter.join(timeout=10)
    assert outcome == {"granted": True}


def test_a_full_endpoint_refuses_after_the_wait(fresh_redis):
    """When nothing is released, acquire gives up after its wait (and the caller defers the message)."""
    slots = EndpointSlots(fresh_redis.client(), limit=1, lease_seconds=30)
    assert slots.acquire("a:443", "holder", wait_seconds=0)
    started = time.monotonic()
    assert not slots.acquire("a:443", "waiter", wait_seconds=0.1)
    assert time.monotonic() - started >= 0.1


def test_a_dead_holders_slot_expires_with_its_lease(fresh_redis):
    """A slot taken by a worker that was killed mid-send is free again once its lease has passed."""
    slots = EndpointSlots(fresh_redis.client(), limit=1, lease_seconds=0.2)
    assert slots.acquire("a:443", "killed worker", wait_seconds=0)
    assert not slots.acquire("a:443", "next", wait_seconds=0)
    wait_for(lambda: slots.acquire("a:443", "next", wait_seconds=0), timeout=5, message="the lease to end")


def test_a_slow_endpoints_backlog_does_not_wait(fresh_redis):
    """When the send in flight has run longer than a quick endpoint's would, a new send is refused without waiting."""
    slots = EndpointSlots(fresh_redis.client(), limit=1, lease_seconds=30)
    client = fresh_redis.client()
    assert slots.acquire("a:443", "hung send", wait_seconds=0)
    # Make the holder look as if it started two seconds ago (its lease ends 28 s from now).
    client.zadd(slots.redis_key("a:443"), {"hung send": time.time() + 28})
    started = time.monotonic()
    assert not slots.acquire("a:443", "waiter", wait_seconds=5)
    assert time.monotonic() - started < 1
