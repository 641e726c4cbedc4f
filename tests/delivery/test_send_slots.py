"""Send caps in Redis: per webhook and, higher, per host; a short wait for a slot; a dead holder's slot expires."""

import threading
import time

import pytest
from servers import wait_for

from webhooks_app.config import send_caps
from webhooks_app.services.send_slots import SendSlots, SlotKeys, slot_keys

A1 = slot_keys(1, "https://a.example/one")
A2 = slot_keys(2, "https://A.example:443/two")  # the same host and port, another webhook
A3 = slot_keys(3, "https://a.example/three")


def test_a_full_webhook_leaves_room_for_another_webhook_on_the_same_host(fresh_redis):
    """Webhook 1 at its cap of two is refused a third slot; webhook 2 on the same host:port still gets one."""
    slots = SendSlots(fresh_redis.client(), per_webhook=2, per_host=8, lease_seconds=30)
    assert A1.host == A2.host == "webhooks:send-slots:host:a.example:443"
    assert slots.acquire(A1, "one", wait_seconds=0) and slots.acquire(A1, "two", wait_seconds=0)
    assert not slots.acquire(A1, "three", wait_seconds=0)
    assert slots.acquire(A2, "other webhook", wait_seconds=0)
    slots.release(A1, "one")
    assert slots.acquire(A1, "three", wait_seconds=0)


def test_the_host_cap_limits_many_webhooks_on_one_host(fresh_redis):
    """With a host cap of three, webhooks 1 and 2 holding three slots leave none for webhook 3 on that host."""
    slots = SendSlots(fresh_redis.client(), per_webhook=2, per_host=3, lease_seconds=30)
    assert slots.acquire(A1, "1a", wait_seconds=0) and slots.acquire(A1, "1b", wait_seconds=0)
    assert slots.acquire(A2, "2a", wait_seconds=0)
    assert not slots.acquire(A3, "3a", wait_seconds=0)
    assert fresh_redis.client().zcard(A3.webhook) == 0  # a refusal enters no set
    assert slots.acquire(slot_keys(3, "https://b.example/"), "elsewhere", wait_seconds=0)
    slots.release(A2, "2a")
    assert slots.acquire(A3, "3a", wait_seconds=0)


def test_a_waiting_send_gets_the_slot_as_soon_as_it_is_released(fresh_redis):
    """A send that finds its webhook full waits for the release instead of being deferred at once."""
    slots = SendSlots(fresh_redis.client(), per_webhook=1, per_host=2, lease_seconds=30)
    assert slots.acquire(A1, "holder", wait_seconds=0)
    waiting = threading.Event()
    outcome = {}

    def wait_for_slot():
        waiting.set()
        # A young_seconds as long as the wait: on a busy machine the thread may start after 0.1 s has passed, and the
        # holder would then count as slow (deferred at once, the rule another test proves).
        outcome["granted"] = slots.acquire(A1, "waiter", wait_seconds=10, young_seconds=10)

    waiter = threading.Thread(target=wait_for_slot)
    waiter.start()
    waiting.wait(timeout=5)
    slots.release(A1, "holder")
    waiter.join(timeout=10)
    assert outcome == {"granted": True}


def test_a_full_webhook_refuses_after_the_wait(fresh_redis):
    """When nothing is released, acquire gives up after its wait (and the caller defers the message)."""
    slots = SendSlots(fresh_redis.client(), per_webhook=1, per_host=2, lease_seconds=30)
    assert slots.acquire(A1, "holder", wait_seconds=0)
    started = time.monotonic()
    assert not slots.acquire(A1, "waiter", wait_seconds=0.1)
    assert time.monotonic() - started >= 0.1


def test_a_dead_holders_slot_expires_with_its_lease(fresh_redis):
    """A slot taken by a worker that was killed mid-send is free again once its lease has passed."""
    slots = SendSlots(fresh_redis.client(), per_webhook=1, per_host=2, lease_seconds=0.2)
    assert slots.acquire(A1, "killed worker", wait_seconds=0)
    assert not slots.acquire(A1, "next", wait_seconds=0)
    wait_for(lambda: slots.acquire(A1, "next", wait_seconds=0), timeout=5, message="the lease to end")


def test_a_slow_webhooks_backlog_does_not_wait(fresh_redis):
    """When the send in flight has run longer than a quick endpoint's would, a new send is refused without waiting."""
    slots = SendSlots(fresh_redis.client(), per_webhook=1, per_host=2, lease_seconds=30)
    assert slots.acquire(A1, "hung send", wait_seconds=0)
    # Make the holder look as if it started two seconds ago (its lease ends 28 s from now).
    fresh_redis.client().zadd(A1.webhook, {"hung send": time.time() + 28})
    started = time.monotonic()
    assert not slots.acquire(A1, "waiter", wait_seconds=5)
    assert time.monotonic() - started < 1


def test_a_url_that_no_longer_parses_still_has_slot_keys():
    """A stored URL with a port that no longer reads gets the default port instead of raising."""
    assert slot_keys(7, "https://a.example:99999999/") == SlotKeys("webhooks:send-slots:webhook:7",
                                                                   "webhooks:send-slots:host:a.example:443")


def test_the_host_cap_must_be_higher_than_a_webhooks():
    """WEBHOOKS_MAX_SENDS_PER_HOST defaults to four webhooks' worth and is refused when not above the webhook cap."""
    assert send_caps({}) == {"WEBHOOKS_MAX_SENDS_PER_WEBHOOK": 4, "WEBHOOKS_MAX_SENDS_PER_HOST": 16}
    assert send_caps({"WEBHOOKS_MAX_SENDS_PER_WEBHOOK": "3"})["WEBHOOKS_MAX_SENDS_PER_HOST"] == 12
    with pytest.raises(ValueError, match="must be higher"):
        send_caps({"WEBHOOKS_MAX_SENDS_PER_WEBHOOK": "4", "WEBHOOKS_MAX_SENDS_PER_HOST": "4"})
