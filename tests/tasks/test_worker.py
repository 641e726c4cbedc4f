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


def test_the_procfiles_nice_applies_across_sessions(app, fresh_redis, certificates):
    """Started as the Procfile starts it (`nice -n 10`, a session of its own), the worker gives its session (its
    autogroup on Linux) nice 10 too, so the web in another session gets the CPU first; its worker processes share
    that session. Without it the scheduler shared the CPU between the two sessions evenly, whatever the nice."""
    import sys

    from conftest import delivery_environment, stop_kept_processes
    from processes import ProjectProcess

    stop_kept_processes()
    with open("/proc/self/autogroup") as autogroup:
        own_autogroup = autogroup.read()  # empty when the tests run in the root group (no autogroup of their own)
    argv = ["nice", "-n", "10", sys.executable, "-m", "tasks.worker", "--processes", "2", "--threads", "2",
            "--shutdown-timeout", "5"]
    process = ProjectProcess("worker", argv, delivery_environment(fresh_redis.url, certificates)).start()
    try:
        wait_for(lambda: process.output().count("Worker process is ready for action.") == 2, timeout=60,
                 message="two worker processes to be ready")
        assert "the worker's session runs at nice 10" in process.output()
        tree = [psutil.Process(process.process.pid), *psutil.Process(process.process.pid).children()]
        for member in tree:
            with open(f"/proc/{member.pid}/autogroup") as autogroup:
                assert autogroup.read().split()[-1] == "10", member
            assert member.nice() == 10
        with open("/proc/self/autogroup") as autogroup:
            assert autogroup.read() == own_autogroup  # the tests' own session is left as it was
    finally:
        process.stop()
