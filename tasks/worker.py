"""The worker process: runs the app's actors with Dramatiq's Worker (the Procfile's `worker`).

    python -m tasks.worker [--processes N] [--threads M] [--shutdown-timeout SECONDS] [--poll-ms MS]

N processes, each with M worker threads. SIGTERM (or SIGINT) stops taking messages and lets the sends in
flight finish (each bounded by the delivery deadline) within the shutdown timeout. A repeated signal changes
nothing: Heroku signals every process of a dyno, and the main process passes the signal on. A worker process
whose main process is gone (killed outright) stops by itself.
"""

import argparse
import logging
import multiprocessing
import os
import signal
import sys
import threading

from dramatiq import Worker

from webhooks_app import create_app
from webhooks_app.extensions import task_queue

logger = logging.getLogger("tasks.worker")

# The longest an idle consumer waits before it looks at its queue again: a new message, or a delayed one
# that came due, waits at most about this long for a worker.
DEFAULT_POLL_MILLISECONDS = 100
PARENT_CHECK_SECONDS = 1.0
AUTOGROUP = "/proc/self/autogroup"


def serve(threads: int, shutdown_seconds: float, poll_milliseconds: int, parent_pid: int | None = None) -> None:
    """Run one worker process until SIGTERM or SIGINT, or until its main process `parent_pid` is gone."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda received, frame: stop.set())
    create_app()
    broker = task_queue.broker
    broker.emit_after("process_boot")  # middleware that starts threads per process (time limits, shutdown)
    worker = Worker(broker, worker_threads=threads, worker_timeout=poll_milliseconds)
    worker.start()
    if parent_pid is not None:
        threading.Thread(target=stop_when_orphaned, args=(parent_pid, stop), name="parent-watch", daemon=True).start()
    logger.info("Worker process is ready for action.")
    stop.wait()
    logger.info("Stopping: no new messages; the sends in flight finish (at most %g s)", shutdown_seconds)
    worker.stop(timeout=int(shutdown_seconds * 1000))
    broker.close()


def stop_when_orphaned(parent_pid: int, stop: threading.Event) -> None:
    """Stop this worker process when its main process is gone: nobody else would tell it to."""
    while not stop.wait(PARENT_CHECK_SECONDS):
        if os.getppid() != parent_pid:
            logger.warning("the worker's main process %s is gone: stopping this worker process", parent_pid)
            stop.set()


def supervise(arguments: argparse.Namespace) -> int:
    """Start the worker processes, pass a stop signal on once, and stop all when one exits unexpectedly."""
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=serve, name=f"worker-{number}",
                        args=(arguments.threads, arguments.shutdown_timeout, arguments.poll_ms, os.getpid()))
        for number in range(arguments.processes)
    ]
    stopping = threading.Event()

    def stop_children(signum: int = signal.SIGTERM) -> None:
        if stopping.is_set():
            return
        stopping.set()
        for child in children:
            if child.pid is not None and child.exitcode is None:
                os.kill(child.pid, signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda received, frame: stop_children())
    for child in children:
        child.start()
    exit_code = 0
    while any(child.exitcode is None for child in children):
        for child in children:
            child.join(timeout=PARENT_CHECK_SECONDS)
            if child.exitcode not in (None, 0) and not stopping.is_set():
                logger.critical("worker process %s exited unexpectedly (code %s): stopping the others",
                                child.pid, child.exitcode)
                exit_code = child.exitcode
                stop_children()
    return exit_code


def nice_the_session() -> bool:
    """Give the worker's session (on Linux, its autogroup) the worker's nice value; True when it was set.

    With kernel.sched_autogroup_enabled the scheduler first shares the CPU between sessions, so the Procfile's
    `nice -n 10` only ranked the worker's threads among themselves: started in a session of its own (as process
    managers do) the worker took as much CPU as the web. Only a session leader does this, so no other program
    of its session (a shell running the web too) is slowed down.
    """
    niceness = os.nice(0)
    if niceness <= 0 or os.getsid(0) != os.getpid():
        return False
    try:
        with open(AUTOGROUP, "w") as autogroup:
            autogroup.write(str(niceness))
    except OSError:  # not Linux, autogroup scheduling off, or not allowed: the process nice stays as it is
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--threads", type=int, default=8, help="worker threads per process (default 8)")
    parser.add_argument("--shutdown-timeout", type=float, default=25.0,
                        help="seconds the sends in flight may take to finish after SIGTERM (default 25)")
    parser.add_argument("--poll-ms", type=int, default=DEFAULT_POLL_MILLISECONDS,
                        help="longest idle wait in ms before a queue is looked at again (default %(default)s)")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")
    if nice_the_session():
        logger.info("the worker's session runs at nice %d (autogroup scheduling)", os.nice(0))
    if arguments.processes == 1:
        serve(arguments.threads, arguments.shutdown_timeout, arguments.poll_ms)
        return 0
    return supervise(arguments)


if __name__ == "__main__":
    sys.exit(main())
