"""Command-line tools: `flask --app wsgi create-admin`, `ensure-admin`."""

import click
from flask import Flask

from .extensions import db
from .services.users import UserError, create_first_admin, create_user


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
