"""Configuration read from the environment, the generated secret key and the instance folder's modes."""

import json
import multiprocessing
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from webhooks_app import create_app
from webhooks_app.config import normalize_database_url, parse_retry_delays, settings_from_environment


def test_defaults_follow_the_product_document(tmp_path):
    """Without variables: the documented retry ladder, 10 s timeout, 30-day log, private targets refused."""
    settings = settings_from_environment({"WEBHOOKS_INSTANCE_PATH": str(tmp_path)})
    assert settings["WEBHOOKS_RETRY_DELAYS"] == (300, 1800, 1800, 43200, 86400)
    assert settings["WEBHOOKS_TIMEOUT_SECONDS"] == 10
    assert settings["WEBHOOKS_LOG_RETENTION_DAYS"] == 30
    assert settings["WEBHOOKS_ALLOW_PRIVATE_TARGETS"] is False
    assert settings["WEBHOOKS_CA_BUNDLE"] is None
    assert settings["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'webhooks.sqlite3'}"
    assert settings["WTF_CSRF_TIME_LIMIT"] is None


def test_generated_secret_key_is_shared_by_every_process(tmp_path):
    """Without SECRET_KEY, the first process writes instance/secret_key and later ones read it."""
    first = settings_from_environment({"WEBHOOKS_INSTANCE_PATH": str(tmp_path)})["SECRET_KEY"]
    second = settings_from_environment({"WEBHOOKS_INSTANCE_PATH": str(tmp_path)})["SECRET_KEY"]
    assert first == second and len(first) >= 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_environment_overrides(tmp_path):
    """Every documented variable is read."""
    settings = settings_from_environment({
        "WEBHOOKS_INSTANCE_PATH": str(tmp_path),
        "SECRET_KEY": "k",
        "DATABASE_URL": "postgres://u:p@db:5432/app",
        "REDIS_URL": "redis://cache:6379/2",
        "PORT": "8080",
        "WEBHOOKS_RETRY_DELAYS": "1, 2,3",
        "WEBHOOKS_TIMEOUT_SECONDS": "2.5",
        "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "1",
        "WEBHOOKS_CA_BUNDLE": "/etc/ca.pem",
        "WEBHOOKS_LOG_RETENTION_DAYS": "7",
    })
    assert settings["SECRET_KEY"] == "k"
    assert settings["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@db:5432/app"
    assert settings["REDIS_URL"] == "redis://cache:6379/2"
    assert settings["PORT"] == 8080
    assert settings["WEBHOOKS_RETRY_DELAYS"] == (1, 2, 3)
    assert settings["WEBHOOKS_TIMEOUT_SECONDS"] == 2.5
    assert settings["WEBHOOKS_ALLOW_PRIVATE_TARGETS"] is True
    assert settings["WEBHOOKS_CA_BUNDLE"] == "/etc/ca.pem"
    assert settings["WEBHOOKS_LOG_RETENTION_DAYS"] == 7


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_database_urls_are_rewritten_for_psycopg3(given, expected):
    """Heroku's postgres:// form and plain postgresql:// use the psycopg 3 driver."""
    assert normalize_database_url(given) == expected


@pytest.mark.parametrize("bad", ["", "5,x", "-1", " , ", "300,inf", "nan"])
def test_bad_retry_delays_are_refused_with_a_message(bad):
    """A malformed WEBHOOKS_RETRY_DELAYS stops start-up with a message naming the variable."""
    with pytest.raises(ValueError, match="WEBHOOKS_RETRY_DELAYS"):
        parse_retry_delays(bad)


def _read_key_after_barrier(instance_path: str, barrier, results) -> None:
    barrier.wait(timeout=30)
    try:
        results.put(settings_from_environment({"WEBHOOKS_INSTANCE_PATH": instance_path})["SECRET_KEY"])
    except ValueError as error:
        results.put(f"error: {error}")


@pytest.mark.parametrize(("name", "value", "message"), [
    ("LOGIN_MAX_FAILURES", "abc", "LOGIN_MAX_FAILURES must be a whole number, not 'abc'"),
    ("LOGIN_MAX_FAILURES", "0", "LOGIN_MAX_FAILURES must be from 1 to 1000, not 0"),
    ("LOGIN_LOCKOUT_SECONDS", "172800", "LOGIN_LOCKOUT_SECONDS must be from 1 to 86400"),
    ("SESSION_IDLE_TIMEOUT_HOURS", "1e9", "SESSION_IDLE_TIMEOUT_HOURS must be from 0.01 to 8760"),
    ("PORT", "99999", "PORT must be from 1 to 65535"),
    ("WEBHOOKS_TIMEOUT_SECONDS", "nan", "WEBHOOKS_TIMEOUT_SECONDS must be from 0.1 to 60"),
    ("WEBHOOKS_TIMEOUT_SECONDS", "-1", "WEBHOOKS_TIMEOUT_SECONDS must be from 0.1 to 60"),
    ("WEBHOOKS_LOG_RETENTION_DAYS", "-3", "WEBHOOKS_LOG_RETENTION_DAYS must be from 1 to 3650"),
    ("MAIL_RETRY_SECONDS", "soon", "MAIL_RETRY_SECONDS must be a number, not 'soon'"),
    ("WEBHOOKS_MAX_SENDS_PER_WEBHOOK", "0", "WEBHOOKS_MAX_SENDS_PER_WEBHOOK must be from 1 to 1000"),
    ("WEBHOOKS_ENCRYPTION_KEY", "short", "WEBHOOKS_ENCRYPTION_KEY must be a Fernet key"),
])
def test_a_bad_setting_stops_start_up_naming_it(tmp_path, name, value, message):
    """A setting that is not a number, out of its range, or (the encryption key) not a Fernet key stops start-up
    with a message naming the variable, instead of failing later inside a request."""
    with pytest.raises(ValueError, match=re.escape(message)):
        settings_from_environment({"WEBHOOKS_INSTANCE_PATH": str(tmp_path), name: value})


def test_empty_settings_take_their_defaults(tmp_path):
    """A variable set but empty (REDIS_URL= in an env file) means its default, like one left out."""
    settings = settings_from_environment({"WEBHOOKS_INSTANCE_PATH": str(tmp_path), "REDIS_URL": "",
                                          "LOGIN_MAX_FAILURES": " ", "WEBHOOKS_TIMEOUT_SECONDS": ""})
    assert settings["REDIS_URL"] == "redis://127.0.0.1:6379/0"
    assert (settings["LOGIN_MAX_FAILURES"], settings["WEBHOOKS_TIMEOUT_SECONDS"]) == (5, 10.0)


def test_processes_starting_together_all_get_the_same_complete_key(tmp_path):
    """Eight processes released at once on an empty instance folder (30 rounds) all read one non-empty key."""
    context = multiprocessing.get_context("fork")
    for trial in range(30):
        instance = tmp_path / f"instance-{trial}"
        barrier, results = context.Barrier(8), context.Queue()
        processes = [context.Process(target=_read_key_after_barrier, args=(str(instance), barrier, results))
                     for _ in range(8)]
        for process in processes:
            process.start()
        keys = [results.get(timeout=30) for _ in processes]
        for process in processes:
            process.join(timeout=30)
        assert len(set(keys)) == 1 and len(keys[0]) >= 64, f"round {trial}: {keys}"
        assert sorted(path.name for path in instance.iterdir()) == ["secret_key"]


def test_an_empty_key_file_stops_start_up_with_a_message(tmp_path):
    """A secret_key file left empty (by a crash) is refused with a message naming the file, not used."""
    (tmp_path / "secret_key").write_text("")
    with pytest.raises(ValueError, match="secret_key"):
        settings_from_environment({"WEBHOOKS_INSTANCE_PATH": str(tmp_path)})


@pytest.mark.parametrize("key", ["", "k", "x" * 31])
def test_a_short_secret_key_is_refused(key):
    """create_app refuses to start with a SECRET_KEY shorter than 32 characters, naming the variable."""
    with pytest.raises(ValueError, match="SECRET_KEY must be at least 32 characters"):
        create_app({"SECRET_KEY": key})


PROBE_MODES = """
import json, os, stat
from pathlib import Path
from sqlalchemy import text
from webhooks_app import create_app
from webhooks_app.extensions import db
app = create_app()
with app.app_context(), db.engine.begin() as connection:
    connection.execute(text("CREATE TABLE probe (id INTEGER PRIMARY KEY)"))
    connection.execute(text("INSERT INTO probe DEFAULT VALUES"))
    instance = Path(os.environ["WEBHOOKS_INSTANCE_PATH"])
    database = instance / "webhooks.sqlite3"
    paths = [instance, instance / "secret_key", database, Path(f"{database}-wal"), Path(f"{database}-shm")]
    print(json.dumps({path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in paths}))
"""


def test_instance_folder_and_sqlite_files_are_private(tmp_path, redis_url):
    """A first start (its own process, no SECRET_KEY, the default SQLite database) makes instance/ 0700 and the
    key file, the database and its -wal and -shm files 0600."""
    environment = {key: value for key, value in os.environ.items() if key not in {"SECRET_KEY", "DATABASE_URL"}}
    environment.update(WEBHOOKS_INSTANCE_PATH=str(tmp_path / "instance"), REDIS_URL=redis_url)
    result = subprocess.run([sys.executable, "-c", PROBE_MODES], env=environment, capture_output=True, text=True,
                            timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "instance": "0o700", "secret_key": "0o600", "webhooks.sqlite3": "0o600", "webhooks.sqlite3-wal": "0o600",
        "webhooks.sqlite3-shm": "0o600"}
