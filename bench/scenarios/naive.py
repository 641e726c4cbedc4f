"""naive: a bare Dramatiq actor POSTing with requests (a keep-alive Session per thread), writing nothing but one
Redis INCR; cores processes x 8 threads; N messages timed until all are done."""

import os
import time

from clients import sample_body
from cpu_meter import cpu_per_unit
from harness import BENCH, WORKER_THREADS, Bench, Table, log, summarize_log
from servers import wait_for
from stack import BIN, ProcfileProcess


def run(bench: Bench) -> dict:
    sizes = bench.sizes
    redis_server = bench.redis
    client = redis_server.client()
    client.flushall()
    os.environ["BENCH_NAIVE_REDIS_URL"] = redis_server.url
    environment = {**os.environ, "PYTHONPATH": str(BENCH), "BENCH_NAIVE_REDIS_URL": redis_server.url,
                   "BENCH_NAIVE_TARGET_URL": bench.nginx.url("/naive"), "BENCH_NAIVE_CA_BUNDLE": bench.tls.ca_path,
                   "PYTHONUNBUFFERED": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = (f"{BIN / 'dramatiq'} naive_worker --processes {bench.cores} --threads {WORKER_THREADS} "
               "--worker-shutdown-timeout 5000")
    import naive_worker

    # Fill the queue first, so the bench's own enqueueing takes no CPU from the measured window; the first
    # `warmup` completions absorb the worker's start, the clock runs from then until the last completion.
    body = sample_body().decode()
    warmup = 200
    fill_started = time.time()
    for _ in range(warmup + sizes.naive_messages):
        naive_worker.post.send(body)
    enqueue_seconds = time.time() - fill_started

    def finished() -> int:
        return int(client.get(naive_worker.DONE_KEY) or 0) + int(client.get(naive_worker.FAILED_KEY) or 0)

    worker = ProcfileProcess("naive-worker", command, environment, bench.log_dir).start()
    try:
        wait_for(lambda: finished() >= warmup or not worker.alive(), timeout=60, interval=0.002,
                   message="the naive warm-up")
        meter = bench.cpu_meter(extra={"worker": ([worker.pid], True)}).start()
        started = time.time()
        done_at_start = finished()
        target = warmup + sizes.naive_messages
        wait_for(lambda: finished() >= target or not worker.alive(), timeout=sizes.wait_seconds, interval=0.01,
                   message="the naive messages")
        ended = time.time()
        cpu = meter.stop()
        measured = finished() - done_at_start
        failed = int(client.get(naive_worker.FAILED_KEY) or 0)
    finally:
        worker.stop(timeout=20, group=False)
        bench.logs["naive-worker"] = summarize_log(worker.output())
    rate = measured / (ended - started)
    log(f"naive: {measured} messages in {ended - started:.2f} s: {rate:.0f}/s "
        f"(queue filled beforehand in {enqueue_seconds:.2f} s; {failed} failed)")
    return {"processes": bench.cores, "threads": WORKER_THREADS, "messages": measured,
            "seconds": round(ended - started, 3), "enqueue_seconds": round(enqueue_seconds, 3), "failed": failed,
            "deliveries_per_s": round(rate, 1), "cpu": cpu, "cpu_ms_per_delivery": cpu_per_unit(cpu, measured)}


def rows(bench: Bench, table: Table) -> None:
    r = bench.results
    raw = r.get("raw", {}).get("requests_per_s")
    naive = r["naive"]["deliveries_per_s"]
    table.add("naive", f"deliveries/s, {r['naive']['processes']}x{WORKER_THREADS} (context)", naive)
    table.add("naive", "naive/raw", round(naive / raw, 2) if raw else None)
