"""The broker: pipelined bulk enqueue and idle consumers woken by new work instead of sleeping."""

import threading

from webhooks_app.queue import wake_key


def test_enqueue_many_puts_every_message_on_the_queue_in_one_go(app, fresh_redis):
    """enqueue_many stores each message on its queue and leaves wake-up tokens for idle consumers."""
    from tasks.delivery import deliver

    broker = app.extensions["dramatiq_broker"]
    broker.enqueue_many([deliver.message(message_id) for message_id in (1, 2, 3)])
    client = fresh_redis.client()
    assert client.llen("dramatiq:deliveries") == 3
    stored = sorted(client.hvals("dramatiq:deliveries.msgs"))
    assert len(stored) == 3 and all(b'"actor_name":"deliver"' in body for body in stored)
    assert client.llen(wake_key("deliveries")) == 3
    consumer = broker.consume("deliveries", prefetch=3, timeout=1_000)
    try:
        received = [next(consumer) for _ in range(3)]
        assert [message.args for message in received] == [(1,), (2,), (3,)]  # in order, each readable
        for message in received:
            consumer.ack(message)
    finally:
        consumer.close()
    assert client.hlen("dramatiq:deliveries.msgs") == 0


def test_an_idle_consumer_wakes_when_work_arrives(app, fresh_redis):
    """An idle consumer (waiting up to 4 s) returns a message enqueued meanwhile before that wait ends."""
    from tasks.delivery import deliver

    broker = app.extensions["dramatiq_broker"]
    consumer = broker.consume("deliveries", prefetch=1, timeout=4_000)
    consumer.misses = 30  # long idle: Dramatiq's own consumer would now back off for the whole 4 s
    received = []
    waiting = threading.Thread(target=lambda: received.append(next(consumer) or next(consumer)))
    waiting.start()
    deliver.send(42)
    waiting.join(timeout=3)
    assert not waiting.is_alive(), "the consumer slept through the wake-up"
    assert received and received[0].args == (42,)
    consumer.close()
