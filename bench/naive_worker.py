"""The `naive` baseline: a bare Dramatiq actor that POSTs its body with requests and records nothing.

Run by the benchmark as `dramatiq naive_worker --processes N --threads 8` with the bench folder on
PYTHONPATH. It counts completions with one Redis INCR (the only write) so the benchmark can time them.
"""

import os
import threading

import dramatiq
import requests
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=os.environ["BENCH_NAIVE_REDIS_URL"])
dramatiq.set_broker(broker)

TARGET_URL = os.environ.get("BENCH_NAIVE_TARGET_URL", "")
CA_BUNDLE = os.environ.get("BENCH_NAIVE_CA_BUNDLE") or True
DONE_KEY = "bench:naive:done"
FAILED_KEY = "bench:naive:failed"
HEADERS = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "bench-naive"}

_local = threading.local()


def session() -> requests.Session:
    current = getattr(_local, "session", None)
    if current is None:
        current = requests.Session()
        current.trust_env = False
        current.verify = CA_BUNDLE
        _local.session = current
    return current


@dramatiq.actor(queue_name="naive", max_retries=0, time_limit=60_000)
def post(body: str) -> None:
    try:
        response = session().post(TARGET_URL, data=body.encode(), headers=HEADERS, timeout=10)
        response.content  # noqa: B018  (read the whole answer, as the product does)
        succeeded = 200 <= response.status_code < 300
    except requests.RequestException:
        succeeded = False
    broker.client.incr(DONE_KEY if succeeded else FAILED_KEY)
