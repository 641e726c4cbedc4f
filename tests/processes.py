"""The project's own processes, started as the Procfile starts them, for integration tests."""

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ProjectProcess:
    """A `worker` or `scheduler` process with the tests' database, Redis and settings."""

    def __init__(self, name: str, argv: list[str], environment: dict[str, str]):
        self.name = name
        self.argv = argv
        self.environment = environment
        self.log_path = Path(tempfile.mkstemp(prefix=f"webhooks-{name}-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    def start(self) -> "ProjectProcess":
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.environment, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crashed dyno would die."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 30) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        finally:
            self.log.close()


def project_environment(database_url: str, redis_url: str, **overrides: str) -> dict[str, str]:
    """The environment of a Procfile process in the tests."""
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "PYTHONUNBUFFERED": "1",
    }
    environment.update({key: str(value) for key, value in overrides.items()})
    return environment


def worker(environment: dict[str, str], processes: int = 1, threads: int = 4) -> ProjectProcess:
    argv = [sys.executable, "-m", "tasks.worker", "--processes", str(processes), "--threads", str(threads),
            "--shutdown-timeout", "5"]
    return ProjectProcess("worker", argv, environment)


def scheduler(environment: dict[str, str]) -> ProjectProcess:
    return ProjectProcess("scheduler", [sys.executable, "-m", "tasks.scheduler"], environment)
