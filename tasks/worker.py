"""The worker entry point: `dramatiq tasks.worker` builds the app, whose broker carries every actor."""

import logging
import multiprocessing
import os
import signal
import threading
import time

from tasks import delivery, maintenance  # noqa: F401  (declare the actors)
from webhooks_app import create_app

logger = logging.getLogger("tasks.worker")


def fold_repeated_sigterm() -> None:
    """In a Dramatiq worker process, treat a second SIGTERM like the first.

    Heroku (and `kill -TERM -<group>`) signals every process of the dyno at once, so each worker
    process gets SIGTERM from the platform and again from Dramatiq's main process; Dramatiq takes
    the second as "exit now" and abandons the sends in flight. Ignoring the repeat lets the worker
    stop gracefully: in-flight sends finish within the delivery deadline, queued ones go back to Redis.
    """
    if multiprocessing.parent_process() is None:
        return
    graceful_stop = signal.getsignal(signal.SIGTERM)
    if not callable(graceful_stop):
        return
    received = False

    def on_sigterm(signum, frame):
        nonlocal received
        if received:
            logger.info("SIGTERM again: still finishing the sends in flight")
            return
        received = True
        graceful_stop(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def stop_with_parent(poll_seconds: float = 1.0) -> None:
    """In a Dramatiq worker process, stop gracefully when the main process dies.

    A main process killed with SIGKILL cannot tell its children; without this they would go on taking
    messages beside the restarted worker. A daemon thread notices the new parent and sends this process
    the SIGTERM the main process would have sent.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        while os.getppid() == parent.pid:
            time.sleep(poll_seconds)
        logger.warning("the worker's main process %s is gone: stopping this worker process", parent.pid)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


fold_repeated_sigterm()
stop_with_parent()
app = create_app()
broker = app.extensions["dramatiq_broker"]
