"""The create-admin and ensure-admin commands."""

from sqlalchemy import select

from webhooks_app.extensions import db
from webhooks_app.models import User


def users(app):
    with app.app_context():
        return {u.email: u.is_admin for u in db.session.scalars(select(User))}


def test_create_admin_creates_an_administrator(app):
    """`create-admin EMAIL --password PW` makes an administrator who can sign in."""
    result = app.test_cli_runner().invoke(args=["create-admin", "Ops@Example.com", "--password", "s3cret-pass"])
    assert result.exit_code == 0, result.output
    assert users(app) == {"ops@example.com": True}


def test_create_admin_no_admin_creates_a_plain_user(app):
    """`--no-admin` creates a user without admin rights."""
    result = app.test_cli_runner().invoke(
        args=["create-admin", "viewer@example.com", "--password", "s3cret-pass", "--no-admin"]
    )
    assert result.exit_code == 0, result.output
    assert users(app) == {"viewer@example.com": False}


def test_create_admin_refuses_duplicates_and_short_passwords(app):
    """A second user with the same email, a short or blank password, or an address email cannot reach (notifications
    go to every administrator) is refused with a message."""
    runner = app.test_cli_runner()
    runner.invoke(args=["create-admin", "ops@example.com", "--password", "s3cret-pass"])
    duplicate = runner.invoke(args=["create-admin", "OPS@example.com", "--password", "s3cret-pass"])
    assert duplicate.exit_code != 0
    assert "already exists" in duplicate.output
    short = runner.invoke(args=["create-admin", "new@example.com", "--password", "short"])
    assert short.exit_code != 0
    assert "at least 8 characters" in short.output
    blank = runner.invoke(args=["create-admin", "new@example.com", "--password", " " * 12])
    assert blank.exit_code != 0 and "not only spaces" in blank.output
    for address in ("@", "ops@", "a\x00b@example.com", "two words@example.com"):
        refused = runner.invoke(args=["create-admin", address, "--password", "s3cret-pass"])
        assert refused.exit_code != 0 and "is not an email address" in refused.output, (address, refused.output)
    assert users(app) == {"ops@example.com": True}


def test_ensure_admin_creates_one_only_on_first_run(app):
    """`ensure-admin` prints a generated login once, and nothing when an administrator exists."""
    runner = app.test_cli_runner()
    first = runner.invoke(args=["ensure-admin"])
    assert "admin@example.com" in first.output and "Password:" in first.output
    second = runner.invoke(args=["ensure-admin"])
    assert second.output == ""
    assert users(app) == {"admin@example.com": True}


def test_set_password_refuses_unknown_users_and_short_passwords(app):
    """`set-password` names the problem for an unknown email or a short password and changes nothing."""
    runner = app.test_cli_runner()
    runner.invoke(args=["create-admin", "ops@example.com", "--password", "s3cret-pass"])
    unknown = runner.invoke(args=["set-password", "nobody@example.com", "--password", "long enough"])
    assert unknown.exit_code != 0 and "no user with email nobody@example.com" in unknown.output
    short = runner.invoke(args=["set-password", "ops@example.com", "--password", "short"])
    assert short.exit_code != 0 and "at least 8 characters" in short.output


def test_remove_user_refuses_unknown_users_and_the_last_administrator(app):
    """`remove-user` refuses an unknown email, and the last administrator (nobody could sign in to manage)."""
    runner = app.test_cli_runner()
    runner.invoke(args=["create-admin", "ops@example.com", "--password", "s3cret-pass"])
    runner.invoke(args=["create-admin", "viewer@example.com", "--password", "s3cret-pass", "--no-admin"])
    unknown = runner.invoke(args=["remove-user", "nobody@example.com"])
    assert unknown.exit_code != 0 and "no user with email nobody@example.com" in unknown.output
    last = runner.invoke(args=["remove-user", "OPS@example.com"])
    assert last.exit_code != 0 and "last administrator" in last.output
    removed = runner.invoke(args=["remove-user", "viewer@example.com"])
    assert removed.exit_code == 0 and "Removed viewer@example.com" in removed.output
    assert users(app) == {"ops@example.com": True}
