"""The worker process tree as the Procfile starts it: children never outlive their main process."""

import os
import signal

import psutil
from processes import worker
from servers import wait_for


def test_worker_processes_stop_when_their_main_process_is_killed(app, fresh_redis, certificates):
    """SIGKILL to the `dramatiq` main process alone: its worker processes stop by themselves within seconds."""
    from conftest import delivery_environment, stop_kept_processes

    stop_kept_processes()
    process = worker(delivery_environment(fresh_redis.url, certificates), processes=2).start()
    try:
        wait_for(lambda: process.output().count("Worker process is ready for action.") == 2, timeout=60,
                 message="two worker processes to be ready")
        children = psutil.Process(process.process.pid).children()
        assert len(children) >= 2
        os.kill(process.process.pid, signal.SIGKILL)
        process.process.wait(timeout=10)
        _, alive = psutil.wait_procs(children, timeout=20)
        assert alive == [], f"worker processes outlived their main process: {[p.pid for p in alive]}"
    finally:
        process.kill()
