"""Configuration read from the environment."""

import pytest

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


@pytest.mark.parametrize("bad", ["", "5,x", "-1", " , "])
def test_bad_retry_delays_are_refused_with_a_message(bad):
    """A malformed WEBHOOKS_RETRY_DELAYS stops start-up with a message naming the variable."""
    with pytest.raises(ValueError, match="WEBHOOKS_RETRY_DELAYS"):
        parse_retry_delays(bad)
