"""Clients of the delivery benchmarks: the `raw` keep-alive loop and the pool that posts events to the intake."""

import http.client
import json
import random
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import requests

BODY_BYTES = 400


def sample_body(size: int = BODY_BYTES) -> bytes:
    """A body shaped like the product's message (event, token, messageTime, messageId, subscriptionId), padded."""
    now = int(time.time())
    document = {
        "event": {"assetId": 101, "systemEventType": "ASSET_CREATE", "eventId": str(uuid.uuid4()),
                  "eventTime": now, "userId": 1},
        "token": "6od7VUynjVQbDgLUdzeNvc5KuRs",
        "messageTime": now,
        "messageId": str(uuid.uuid4()),
        "subscriptionId": 201,
        "padding": "",
    }
    body = json.dumps(document, separators=(",", ":"))
    document["padding"] = "x" * max(0, size - len(body))
    return json.dumps(document, separators=(",", ":")).encode()


# Headers of the same size as the product's (Content-Type, User-Agent and the Standard Webhooks trio).
SAMPLE_HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "User-Agent": "Webhooks/0.1.0 (+webhook delivery)",
    "webhook-id": "78480073-b8d2-4494-85a9-638f5a15e409",
    "webhook-timestamp": "1674076946",
    "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
}


def raw_client(url: str, ca_path: str, body: bytes, start_at: float, duration: float, results) -> None:
    """One process of `raw`: a plain requests.Session keep-alive loop for `duration` seconds from `start_at`."""
    session = requests.Session()
    session.trust_env = False
    session.verify = ca_path
    session.post(url, data=body, headers=SAMPLE_HEADERS, timeout=10).close()  # connect before the clock starts
    while time.time() < start_at:
        time.sleep(0.001)
    done = failed = 0
    cpu_started = time.process_time()
    end = start_at + duration
    while True:
        now = time.time()
        if now >= end:
            break
        response = session.post(url, data=body, headers=SAMPLE_HEADERS, timeout=10)
        response.content  # noqa: B018
        if 200 <= response.status_code < 300:
            done += 1
        else:
            failed += 1
    results.put({"done": done, "failed": failed, "seconds": time.time() - start_at,
                 "cpu_s": time.process_time() - cpu_started})


@dataclass
class Posted:
    """One intake call: its eventId, when it left and returned (time.time()), and the answer."""

    event_id: str
    started: float
    returned: float
    status: int | None
    messages: int = 0
    error: str | None = None
    retried: bool = False

    @property
    def round_trip_ms(self) -> float:
        return (self.returned - self.started) * 1000


def asset_event(event_type: str = "asset.create") -> dict:
    """A valid event of this type (asset.*, folder.* or user.*) with a fresh eventId."""
    family = event_type.split(".")[0]
    keys = {"asset": ("assetId",), "folder": ("folderId",), "user": ("targetUserId",)}[family]
    if event_type == "asset.addToFolder":
        keys = ("assetId", "folderId")
    event = {"type": event_type, "userId": 1, "eventId": str(uuid.uuid4())}
    event.update({key: random.randint(1, 10**9) for key in keys})
    return event


class EventClient:
    """A pool of threads posting events to POST /api/v1/events, one keep-alive requests.Session per thread."""

    def __init__(self, base_url: str, token: str, threads: int = 8):
        self.url = f"{base_url}/api/v1/events"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="events")

    def session(self) -> requests.Session:
        current = getattr(self.local, "session", None)
        if current is None:
            current = requests.Session()
            current.trust_env = False
            self.local.session = current
        return current

    def post(self, event: dict) -> Posted:
        """POST one event; a connection the server closed while idle is retried once with the same eventId,
        which the intake accepts only once (gunicorn closes kept-alive connections after 2 s idle)."""
        started = time.time()
        for attempt in range(2):
            try:
                response = self.session().post(self.url, json=event, headers=self.headers, timeout=30)
                returned = time.time()
                messages = response.json().get("messages", 0) if response.status_code == 202 else 0
                error = None if response.status_code == 202 else response.text[:200]
                return Posted(event["eventId"], started, returned, response.status_code, messages, error, attempt > 0)
            except requests.ConnectionError as caught:
                if attempt == 0:
                    continue
                return Posted(event["eventId"], started, time.time(), None, 0, repr(caught)[:200], True)
            except (requests.RequestException, ValueError) as caught:
                return Posted(event["eventId"], started, time.time(), None, 0, repr(caught)[:200], attempt > 0)
        raise AssertionError("unreachable")

    def submit(self, event: dict) -> Future:
        return self.pool.submit(self.post, event)

    def post_all(self, events: list[dict]) -> list[Posted]:
        return [future.result() for future in [self.submit(event) for event in events]]

    def post_paced(self, rate: float, duration: float, make_event, stop: threading.Event | None = None) -> list[Posted]:
        """Submit `rate` events a second for `duration` seconds on a fixed schedule (open loop)."""
        total = int(rate * duration)
        futures = []
        start = time.monotonic() + 0.05
        for index in range(total):
            if stop is not None and stop.is_set():
                break
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(self.submit(make_event()))
        return [future.result() for future in futures]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class LoadResult:
    """A closed-loop load: requests and events completed within the measured window, their round trips."""

    requests: int
    events: int
    failed: int
    seconds: float
    round_trips_ms: list[float]
    statuses: dict[int, int]
    first_error: str | None

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def closed_loop(base_url: str, path: str, token: str, threads: int, seconds: float, make_body,
                events_per_body: int = 1, warmup_seconds: float = 1.0) -> LoadResult:
    """`threads` threads, each POSTing a new body from `make_body()` as soon as the last one is answered, on a
    kept-alive http.client connection (a lighter client than requests, so the server is what is measured).

    The first `warmup_seconds` are not counted; then requests that start and end within `seconds` are.
    """
    split = urllib.parse.urlsplit(base_url)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    start = threading.Barrier(threads + 1)
    lock = threading.Lock()
    window: list[float] = []
    totals = {"requests": 0, "failed": 0}
    round_trips: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []

    def worker() -> None:
        connection = http.client.HTTPConnection(split.hostname, split.port, timeout=60)
        mine, failed, codes, first = [], 0, {}, None
        start.wait()
        begin, end = window
        while True:
            body = make_body()
            sent = time.monotonic()
            if sent >= end:
                break
            try:
                connection.request("POST", path, body, headers)
                response = connection.getresponse()
                answer = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                connection = http.client.HTTPConnection(split.hostname, split.port, timeout=60)
                status, answer = None, repr(error).encode()
            done = time.monotonic()
            if sent < begin or done > end:
                continue
            codes[status] = codes.get(status, 0) + 1
            if status == 202:
                mine.append((done - sent) * 1000)
            else:
                failed += 1
                first = first or f"{status} {answer[:200].decode(errors='replace')}"
        connection.close()
        with lock:
            round_trips.extend(mine)
            totals["requests"] += len(mine)
            totals["failed"] += failed
            for code, count in codes.items():
                statuses[code] = statuses.get(code, 0) + count
            if first:
                errors.append(first)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    now = time.monotonic()
    window.extend([now + warmup_seconds, now + warmup_seconds + seconds])
    start.wait()
    for thread in pool:
        thread.join(timeout=seconds + warmup_seconds + 120)
    return LoadResult(totals["requests"], totals["requests"] * events_per_body, totals["failed"], seconds,
                      round_trips, statuses, errors[0] if errors else None)
