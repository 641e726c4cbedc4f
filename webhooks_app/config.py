"""All configuration, read from environment variables with documented defaults."""

import math
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cryptography.fernet import Fernet
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.engine import make_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_PATH = PROJECT_ROOT / "instance"

DEFAULT_RETRY_DELAYS = (300, 1800, 1800, 43200, 86400)
MIN_SECRET_KEY_LENGTH = 32


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
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"WEBHOOKS_RETRY_DELAYS: {part!r} is not a finite, non-negative number of seconds")
        delays.append(value)
    if not delays:
        raise ValueError("WEBHOOKS_RETRY_DELAYS must list at least one delay")
    return tuple(delays)


def parse_bool(text: str | None, default: bool = False) -> bool:
    """Read a yes/no environment value."""
    if text is None or text.strip() == "":
        return default
    return text.strip().lower() in {"1", "true", "yes", "on"}


def ensure_private_directory(path: Path) -> None:
    """Create `path` (and missing parents) readable by this user only; an existing folder is left alone."""
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        return
    os.chmod(path, 0o700)  # mkdir's mode is reduced by the umask


def number_setting(environ, name: str, default: float, low: float, high: float, whole: bool = False):
    """A numeric setting between low and high (inclusive); a clear ValueError naming the variable otherwise."""
    text = (environ.get(name) or "").strip()
    if not text:
        return default
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        raise ValueError(f"{name} must be {'a whole number' if whole else 'a number'}, not {text[:40]!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{name} must be from {low:g} to {high:g}, not {text[:40]}")
    return value


def check_encryption_key(key: str | None) -> str | None:
    """Refuse a WEBHOOKS_ENCRYPTION_KEY that is not a Fernet key at start-up, not at the first secret stored."""
    if key:
        try:
            Fernet(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise ValueError("WEBHOOKS_ENCRYPTION_KEY must be a Fernet key (32 url-safe base64-encoded bytes); make "
                             "one with: python -c 'from cryptography.fernet import Fernet; "
                             "print(Fernet.generate_key().decode())'") from None
    return key or None


def check_secret_key(key: str | None, source: str = "SECRET_KEY") -> str:
    """Refuse a missing or short key: sessions and CSRF tokens signed with it could be forged."""
    if not key or len(key) < MIN_SECRET_KEY_LENGTH:
        raise ValueError(
            f"{source} must be at least {MIN_SECRET_KEY_LENGTH} characters long (it has {len(key or '')}); "
            "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    return key


def send_caps(environ) -> dict:
    """Concurrent sends per webhook, and per host:port (higher, so one hung webhook cannot fill a host's share)."""
    per_webhook = number_setting(environ, "WEBHOOKS_MAX_SENDS_PER_WEBHOOK", 4, 1, 1000, whole=True)
    per_host = number_setting(environ, "WEBHOOKS_MAX_SENDS_PER_HOST", 4 * per_webhook, 1, 10000, whole=True)
    if per_host <= per_webhook:
        raise ValueError(f"WEBHOOKS_MAX_SENDS_PER_HOST ({per_host}) must be higher than "
                         f"WEBHOOKS_MAX_SENDS_PER_WEBHOOK ({per_webhook}): one webhook must not fill a host's share")
    return {"WEBHOOKS_MAX_SENDS_PER_WEBHOOK": per_webhook, "WEBHOOKS_MAX_SENDS_PER_HOST": per_host}


MAIL_SCHEMES = {"smtp": ("plain", 25), "smtp+starttls": ("starttls", 587), "smtps": ("tls", 465)}


@dataclass(frozen=True)
class MailServer:
    """Where notification email goes: MAIL_URL read into its parts (`security` is plain, starttls or tls)."""

    security: str
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_mail_url(text: str) -> MailServer:
    """Read MAIL_URL: smtp://, smtp+starttls:// or smtps://, an optional user:password@, a host and a port."""
    problem = "MAIL_URL must look like smtp://host:25, smtp+starttls://user:password@host:587 or smtps://host:465"
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as error:
        raise ValueError(f"{problem} ({error})") from None
    if parts.scheme.lower() not in MAIL_SCHEMES:
        raise ValueError(f"{problem}; the scheme {parts.scheme or '(none)'!r} is not one of them")
    if not parts.hostname:
        raise ValueError(f"{problem}; it names no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{problem}; it has a path or query, which mean nothing for SMTP")
    security, default_port = MAIL_SCHEMES[parts.scheme.lower()]
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and security == "plain":
        raise ValueError("MAIL_URL: a password is only sent over TLS: use smtp+starttls:// or smtps://")
    return MailServer(security, parts.hostname, port or default_port, username, password)


def parse_email_address(text: str, source: str) -> str:
    """One email address, normalized; a clear error naming the variable and the address otherwise."""
    try:
        return validate_email(text.strip(), check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ValueError(f"{source}: {text.strip()!r} is not an email address ({error})") from None


def parse_notify_emails(text: str) -> tuple[str, ...]:
    """WEBHOOKS_NOTIFY_EMAILS: comma-separated addresses that receive notifications besides administrators."""
    return tuple(parse_email_address(part, "WEBHOOKS_NOTIFY_EMAILS") for part in text.split(",") if part.strip())


def parse_public_url(text: str) -> str | None:
    """WEBHOOKS_PUBLIC_URL: the http(s) base URL administrators open the service at (links in emails)."""
    text = text.strip().rstrip("/")
    if not text:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"WEBHOOKS_PUBLIC_URL must be an http(s) base URL such as https://webhooks.example.com, "
                         f"not {text!r}")
    return text


def mail_settings(environ) -> dict:
    """MAIL_URL (checked), MAIL_FROM (required with it), WEBHOOKS_NOTIFY_EMAILS and WEBHOOKS_PUBLIC_URL."""
    mail_url = (environ.get("MAIL_URL") or "").strip() or None
    mail_from = (environ.get("MAIL_FROM") or "").strip() or None
    if mail_url:
        parse_mail_url(mail_url)
        if not mail_from:
            raise ValueError("MAIL_FROM is required with MAIL_URL: the sender address of notification email")
    if mail_from:
        parse_email_address(mail_from, "MAIL_FROM")
    return {
        "MAIL_URL": mail_url,
        "MAIL_FROM": mail_from,
        "MAIL_CA_BUNDLE": environ.get("MAIL_CA_BUNDLE") or None,
        "MAIL_RETRY_SECONDS": number_setting(environ, "MAIL_RETRY_SECONDS", 30.0, 0.1, 3600),
        "WEBHOOKS_NOTIFY_EMAILS": parse_notify_emails(environ.get("WEBHOOKS_NOTIFY_EMAILS", "")),
        "WEBHOOKS_PUBLIC_URL": parse_public_url(environ.get("WEBHOOKS_PUBLIC_URL", "")),
    }


def load_or_create_secret_key(instance_path: Path) -> str:
    """Return the SECRET_KEY kept in instance/secret_key, creating it once for all local processes.

    The key is written to a temporary file beside it and linked into place, so processes starting
    together never read a half-written key: one link wins and every process reads the winner's file.
    """
    ensure_private_directory(instance_path)
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        descriptor, temporary = tempfile.mkstemp(dir=instance_path, prefix=".secret_key-")  # mode 0600
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, key_file)
            except FileExistsError:
                pass  # another process linked its key first: use that one
        finally:
            os.unlink(temporary)
    return check_secret_key(key_file.read_text().strip(), f"The key in {key_file}")


def prepare_sqlite_files(database_uri: str, instance_path: Path) -> None:
    """Make a SQLite database file 0600 before SQLite opens it (its -wal and -shm files copy that mode).

    A new file is created empty (an empty file is an empty database); existing files of ours are
    tightened. Other databases are left alone. A relative path is in the instance folder, as
    Flask-SQLAlchemy resolves it.
    """
    url = make_url(database_uri)
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:") or url.query.get("uri"):
        return
    database = Path(instance_path) / url.database  # an absolute url.database replaces instance_path
    ensure_private_directory(database.parent)
    try:
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        try:
            status = path.stat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(status.st_mode) and status.st_uid == os.getuid():
            os.chmod(path, 0o600)


def settings_from_environment(environ=os.environ) -> dict:
    """Build the Flask config mapping from the process environment."""
    instance_path = Path(environ.get("WEBHOOKS_INSTANCE_PATH", INSTANCE_PATH))
    database_url = environ.get("DATABASE_URL") or f"sqlite:///{instance_path / 'webhooks.sqlite3'}"
    secret_key = environ.get("SECRET_KEY") or load_or_create_secret_key(instance_path)
    return {
        "SECRET_KEY": secret_key,
        "WEBHOOKS_ENCRYPTION_KEY": check_encryption_key(environ.get("WEBHOOKS_ENCRYPTION_KEY")),
        "SQLALCHEMY_DATABASE_URI": normalize_database_url(database_url),
        # No pool_pre_ping: database.ping_idle_connections pings only connections that sat idle.
        "SQLALCHEMY_ENGINE_OPTIONS": {},
        "REDIS_URL": environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
        "PORT": number_setting(environ, "PORT", 5000, 1, 65535, whole=True),
        "WEBHOOKS_RETRY_DELAYS": parse_retry_delays(
            environ.get("WEBHOOKS_RETRY_DELAYS", ",".join(map(str, DEFAULT_RETRY_DELAYS)))
        ),
        # Below the delivery actors' 120 s time limit, with room for a batch's other sends.
        "WEBHOOKS_TIMEOUT_SECONDS": number_setting(environ, "WEBHOOKS_TIMEOUT_SECONDS", 10.0, 0.1, 60),
        "WEBHOOKS_ALLOW_PRIVATE_TARGETS": parse_bool(environ.get("WEBHOOKS_ALLOW_PRIVATE_TARGETS")),
        "WEBHOOKS_CA_BUNDLE": environ.get("WEBHOOKS_CA_BUNDLE") or None,
        "WEBHOOKS_LOG_RETENTION_DAYS": number_setting(environ, "WEBHOOKS_LOG_RETENTION_DAYS", 30, 1, 3650, whole=True),
        "WEBHOOKS_SWEEP_INTERVAL_SECONDS": number_setting(environ, "WEBHOOKS_SWEEP_INTERVAL_SECONDS", 5.0, 0.1, 86400),
        "WEBHOOKS_REQUEUE_AFTER_SECONDS": number_setting(environ, "WEBHOOKS_REQUEUE_AFTER_SECONDS", 60.0, 1, 86400),
        "WEBHOOKS_CLAIM_MARGIN_SECONDS": number_setting(environ, "WEBHOOKS_CLAIM_MARGIN_SECONDS", 30.0, 1, 3600),
        **send_caps(environ),
        "WEBHOOKS_METRICS_TOKEN": environ.get("WEBHOOKS_METRICS_TOKEN") or None,
        "WEBHOOKS_INTAKE_LOCK_TIMEOUT_SECONDS": number_setting(environ, "WEBHOOKS_INTAKE_LOCK_TIMEOUT_SECONDS", 3.0,
                                                               0, 60),
        "WEBHOOKS_METRICS_PUBLIC": parse_bool(environ.get("WEBHOOKS_METRICS_PUBLIC")),
        **mail_settings(environ),
        "WEBHOOKS_SUPPORT_CONTACT": (environ.get("WEBHOOKS_SUPPORT_CONTACT") or "").strip() or None,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": parse_bool(environ.get("SESSION_COOKIE_SECURE")),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "WTF_CSRF_TIME_LIMIT": None,
        "LOGIN_MAX_FAILURES": number_setting(environ, "LOGIN_MAX_FAILURES", 5, 1, 1000, whole=True),
        # At most a day: the prune keeps a day of sign-in attempts.
        "LOGIN_LOCKOUT_SECONDS": number_setting(environ, "LOGIN_LOCKOUT_SECONDS", 900, 1, 86400, whole=True),
        "SESSION_IDLE_TIMEOUT_HOURS": number_setting(environ, "SESSION_IDLE_TIMEOUT_HOURS", 12.0, 0.01, 8760),
        "REDIS_CHECK_TIMEOUT_SECONDS": 0.5,
    }
