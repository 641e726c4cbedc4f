"""All configuration, read from environment variables with documented defaults."""

import os
import secrets
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_PATH = PROJECT_ROOT / "instance"

DEFAULT_RETRY_DELAYS = (300, 1800, 1800, 43200, 86400)


def normalize_database_url(url: str) -> str:
    """Rewrite Heroku-style and bare PostgreSQL URLs to the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def parse_retry_delays(text: str) -> tuple[int, ...]:
    """Parse WEBHOOKS_RETRY_DELAYS: comma-separated non-negative seconds before attempts 2..N."""
    delays = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"WEBHOOKS_RETRY_DELAYS: {part!r} is not a number of seconds") from None
        if value < 0:
            raise ValueError(f"WEBHOOKS_RETRY_DELAYS: {part!r} is negative")
        delays.append(value)
    if not delays:
        raise ValueError("WEBHOOKS_RETRY_DELAYS must list at least one delay")
    return tuple(delays)


def parse_bool(text: str | None, default: bool = False) -> bool:
    """Read a yes/no environment value."""
    if text is None or text.strip() == "":
        return default
    return text.strip().lower() in {"1", "true", "yes", "on"}


def load_or_create_secret_key(instance_path: Path) -> str:
    """Return the SECRET_KEY kept in instance/secret_key, creating it once for all local processes."""
    instance_path.mkdir(parents=True, exist_ok=True)
    key_file = instance_path / "secret_key"
    try:
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return key_file.read_text().strip()
    with os.fdopen(descriptor, "w") as handle:
        key = secrets.token_urlsafe(48)
        handle.write(key)
    return key


def send_caps(environ) -> dict:
    """Concurrent sends per webhook, and per host:port (higher, so one hung webhook cannot fill a host's share)."""
    per_webhook = int(environ.get("WEBHOOKS_MAX_SENDS_PER_WEBHOOK", "4"))
    per_host = int(environ.get("WEBHOOKS_MAX_SENDS_PER_HOST", str(4 * per_webhook)))
    if per_webhook < 1:
        raise ValueError("WEBHOOKS_MAX_SENDS_PER_WEBHOOK must be at least 1")
    if per_host <= per_webhook:
        raise ValueError(f"WEBHOOKS_MAX_SENDS_PER_HOST ({per_host}) must be higher than "
                         f"WEBHOOKS_MAX_SENDS_PER_WEBHOOK ({per_webhook}): one webhook must not fill a host's share")
    return {"WEBHOOKS_MAX_SENDS_PER_WEBHOOK": per_webhook, "WEBHOOKS_MAX_SENDS_PER_HOST": per_host}


def settings_from_environment(environ=os.environ) -> dict:
    """Build the Flask config mapping from the process environment."""
    instance_path = Path(environ.get("WEBHOOKS_INSTANCE_PATH", INSTANCE_PATH))
    database_url = environ.get("DATABASE_URL") or f"sqlite:///{instance_path / 'webhooks.sqlite3'}"
    secret_key = environ.get("SECRET_KEY") or load_or_create_secret_key(instance_path)
    return {
        "SECRET_KEY": secret_key,
        "WEBHOOKS_ENCRYPTION_KEY": environ.get("WEBHOOKS_ENCRYPTION_KEY") or None,
        "SQLALCHEMY_DATABASE_URI": normalize_database_url(database_url),
        # No pool_pre_ping: database.ping_idle_connections pings only connections that sat idle.
        "SQLALCHEMY_ENGINE_OPTIONS": {},
        "REDIS_URL": environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "PORT": int(environ.get("PORT", "5000")),
        "WEBHOOKS_RETRY_DELAYS": parse_retry_delays(
            environ.get("WEBHOOKS_RETRY_DELAYS", ",".join(map(str, DEFAULT_RETRY_DELAYS)))
        ),
        "WEBHOOKS_TIMEOUT_SECONDS": float(environ.get("WEBHOOKS_TIMEOUT_SECONDS", "10")),
        "WEBHOOKS_ALLOW_PRIVATE_TARGETS": parse_bool(environ.get("WEBHOOKS_ALLOW_PRIVATE_TARGETS")),
        "WEBHOOKS_CA_BUNDLE": environ.get("WEBHOOKS_CA_BUNDLE") or None,
        "WEBHOOKS_LOG_RETENTION_DAYS": int(environ.get("WEBHOOKS_LOG_RETENTION_DAYS", "30")),
        "WEBHOOKS_SWEEP_INTERVAL_SECONDS": float(environ.get("WEBHOOKS_SWEEP_INTERVAL_SECONDS", "5")),
        "WEBHOOKS_REQUEUE_AFTER_SECONDS": float(environ.get("WEBHOOKS_REQUEUE_AFTER_SECONDS", "60")),
        "WEBHOOKS_CLAIM_MARGIN_SECONDS": float(environ.get("WEBHOOKS_CLAIM_MARGIN_SECONDS", "30")),
        **send_caps(environ),
        "WEBHOOKS_METRICS_TOKEN": environ.get("WEBHOOKS_METRICS_TOKEN") or None,
        "WEBHOOKS_INTAKE_LOCK_TIMEOUT_SECONDS": float(environ.get("WEBHOOKS_INTAKE_LOCK_TIMEOUT_SECONDS", "3")),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": parse_bool(environ.get("SESSION_COOKIE_SECURE")),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "WTF_CSRF_TIME_LIMIT": None,
        "LOGIN_MAX_FAILURES": int(environ.get("LOGIN_MAX_FAILURES", "5")),
        "LOGIN_LOCKOUT_SECONDS": int(environ.get("LOGIN_LOCKOUT_SECONDS", "900")),
        "REDIS_CHECK_TIMEOUT_SECONDS": 0.5,
    }
