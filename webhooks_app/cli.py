"""Command-line tools: `flask --app wsgi create-admin`, `set-password`, `remove-user`, `ensure-admin`,
`create-api-token`, `emit`, `prune-log`, `replay`."""

from datetime import UTC, datetime

import click
import redis
from flask import Flask

from .extensions import db
from .ids import MAX_DATABASE_ID
from .models import Webhook
from .services.api_tokens import DEFAULT_SCOPES, SCOPES, create_api_token
from .services.intake import IntakeError, emit_event
from .services.replay import ReplayError, check_since, create_replay, missed_event_count, start_replay
from .services.retention import prune_log_once
from .services.users import UserError, create_first_admin, create_user, remove_user, set_password


def register_commands(app: Flask) -> None:
    """Attach the project's commands to `flask`."""

    @app.cli.command("create-admin")
    @click.argument("email")
    @click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
                  help="The new user's password (prompted when omitted).")
    @click.option("--admin/--no-admin", default=True, show_default=True,
                  help="Create an administrator, or a user without admin rights.")
    def create_admin_command(email: str, password: str, admin: bool):
        """Create a user who can sign in (an administrator unless --no-admin)."""
        try:
            user = create_user(email, password, is_admin=admin)
        except UserError as error:
            raise click.ClickException(str(error)) from None
        db.session.commit()
        kind = "administrator" if admin else "user (not an administrator)"
        click.echo(f"Created {kind} {user.email}.")

    @app.cli.command("set-password")
    @click.argument("email")
    @click.option("--password", prompt="New password", hide_input=True, confirmation_prompt=True,
                  help="The new password (prompted when omitted).")
    def set_password_command(email: str, password: str):
        """Give a user a new password; every session of theirs ends (they sign in again)."""
        try:
            user = set_password(email, password)
        except UserError as error:
            raise click.ClickException(str(error)) from None
        db.session.commit()
        click.echo(f"New password set for {user.email}; their sessions have ended.")

    @app.cli.command("remove-user")
    @click.argument("email")
    def remove_user_command(email: str):
        """Delete a user; their sessions end at once. The last administrator cannot be removed."""
        try:
            remove_user(email)
        except UserError as error:
            raise click.ClickException(str(error)) from None
        db.session.commit()
        click.echo(f"Removed {email.strip().lower()}; their sessions have ended.")

    @app.cli.command("ensure-admin")
    def ensure_admin_command():
        """Create a first administrator with a generated password when none exists."""
        created = create_first_admin()
        if created is None:
            return
        db.session.commit()
        user, password = created
        click.echo("")
        click.echo("  First run: an administrator was created. Sign in with")
        click.echo(f"    Email:    {user.email}")
        click.echo(f"    Password: {password}")
        click.echo("  (shown once; add more with `flask --app wsgi create-admin EMAIL`)")
        click.echo("")

    @app.cli.command("create-api-token")
    @click.argument("name")
    @click.option("--scope", "scopes", multiple=True, type=click.Choice(list(SCOPES)),
                  help=f"What the token may do (repeatable; default {' '.join(DEFAULT_SCOPES)}).")
    def create_api_token_command(name: str, scopes: tuple[str, ...]):
        """Create a bearer API token with its scopes and print it once."""
        try:
            _, token = create_api_token(name, scopes or DEFAULT_SCOPES)
        except ValueError as error:
            raise click.ClickException(str(error)) from None
        db.session.commit()
        click.echo(token)

    @app.cli.command("emit")
    @click.argument("event_type")
    @click.option("--user-id", type=int, required=True, help="The user who caused the event.")
    @click.option("--asset-id", type=int, help="asset.* events: the asset.")
    @click.option("--folder-id", type=int, help="folder.* and asset.addToFolder events: the folder.")
    @click.option("--target-user-id", type=int, help="user.* events: the user created, expired or updated.")
    @click.option("--event-id", help="A UUID; sending the same one twice creates no second set of messages.")
    @click.option("--event-time", type=int, help="Epoch seconds (default: now).")
    @click.option("--source", help="asset.create only: upload (default), reimport or resync.")
    @click.option("--changed", multiple=True, help="folder.update/user.update: a changed field (repeatable).")
    def emit_command(event_type, user_id, asset_id, folder_id, target_user_id, event_id, event_time, source,
                     changed):
        """Send an event through the intake, as POST /api/v1/events would."""
        data = {"type": event_type, "userId": user_id}
        optional = {"assetId": asset_id, "folderId": folder_id, "targetUserId": target_user_id,
                    "eventId": event_id, "eventTime": event_time, "source": source,
                    "changed": list(changed) if changed else None}
        data.update({key: value for key, value in optional.items() if value is not None})
        try:
            accepted = emit_event(data)
        except IntakeError as error:
            db.session.rollback()
            raise click.ClickException(f"{error.field}: {error.message}") from None
        note = " (already accepted earlier)" if accepted.duplicate else ""
        click.echo(f"eventId {accepted.event_uuid}: {accepted.messages} message(s){note}")

    @app.cli.command("prune-log")
    def prune_log_command():
        """Delete activity-log rows older than WEBHOOKS_LOG_RETENTION_DAYS now (as the nightly job does)."""
        try:
            report = prune_log_once()
        except redis.RedisError as error:
            raise click.ClickException(f"Redis is unavailable ({error}): the prune takes a lock there so that two "
                                       "prunes never overlap; start Redis or check REDIS_URL") from None
        if report is None:
            raise click.ClickException("another process is pruning the activity log; try again later")
        click.echo(f"Deleted {report.messages} messages, {report.attempts} attempts and {report.events} events.")

    @app.cli.command("replay")
    @click.argument("webhook_id", type=click.IntRange(1, MAX_DATABASE_ID))
    @click.option("--since", "since_text", required=True, metavar="ISO_TIME",
                  help="Replay events since this time (ISO 8601; UTC unless it names an offset).")
    @click.option("--dry-run", is_flag=True, help="Only say how many events would be sent.")
    def replay_command(webhook_id: int, since_text: str, dry_run: bool):
        """Send a webhook again every stored event it missed since a time (no Sent or pending message for it)."""
        try:
            since = datetime.fromisoformat(since_text)
        except ValueError:
            raise click.BadParameter(f"{since_text!r} is not an ISO 8601 time, such as 2026-11-28T09:30:00Z",
                                     param_hint="--since") from None
        if since.tzinfo is not None:
            since = since.astimezone(UTC).replace(tzinfo=None)
        webhook = db.session.get(Webhook, webhook_id)
        if webhook is None:
            raise click.ClickException(f"webhook {webhook_id} does not exist")
        try:
            check_since(since)
            count = missed_event_count(webhook_id, since)
            if dry_run:
                click.echo(f"{count} event(s) since {since:%Y-%m-%d %H:%M:%S} UTC would be sent to "
                           f"webhook {webhook_id} ({webhook.name}); nothing was sent (--dry-run).")
                return
            replay = create_replay(webhook_id, since, "command line")
        except ReplayError as error:
            db.session.rollback()
            raise click.ClickException(str(error)) from None
        db.session.commit()
        queued = start_replay(replay.id)
        note = "" if queued else " Redis is unavailable: it starts when Redis answers (the scheduler starts it)."
        click.echo(f"Replay {replay.id} started: about {count} event(s) since {since:%Y-%m-%d %H:%M:%S} UTC are "
                   f"being queued for webhook {webhook_id} ({webhook.name}), oldest first.{note}")
