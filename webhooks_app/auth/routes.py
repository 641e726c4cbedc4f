"""Sign-in and sign-out, and the rule that only administrators reach the admin pages."""

from datetime import timedelta
from functools import wraps
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from ..database import READ_ONLY_METHODS
from ..extensions import db, login_manager
from ..htmx import is_htmx_request
from ..models import User
from ..services import user_sessions
from ..services.users import TooManyAttempts, authenticate
from .forms import SignInForm

bp = Blueprint("auth", __name__)

login_manager.login_view = "auth.login"
login_manager.login_message = "Sign in as an administrator to continue."
login_manager.login_message_category = "info"
login_manager.session_protection = "strong"


@login_manager.unauthorized_handler
def send_to_sign_in():
    """Redirect to sign-in; HTMX requests get an HX-Redirect so the whole page navigates."""
    flash(login_manager.login_message, login_manager.login_message_category)
    target = url_for("auth.login", next=request.full_path.rstrip("?") if request.method == "GET" else None)
    if is_htmx_request():
        return "", 401, {"HX-Redirect": url_for("auth.login")}
    return redirect(target)


SESSION_TOKEN_KEY = "session_token"  # noqa: S105 - the name of a session key, not a secret


def idle_timeout() -> timedelta:
    return timedelta(hours=current_app.config["SESSION_IDLE_TIMEOUT_HOURS"])


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The signed-in user, only while the session's row exists (sign-out, a new password or removal delete it)."""
    token = session.get(SESSION_TOKEN_KEY)
    if not token or not user_id.isascii() or not user_id.isdigit():
        return None
    found = user_sessions.session_user(int(user_id), token, idle_timeout())
    if found is None:
        return None
    user, last_seen_at = found
    # Noted on reads only, on a connection of its own: a write request's transaction (SQLite's write lock
    # included) belongs to its view.
    if request.method in READ_ONLY_METHODS and user_sessions.touch_due(last_seen_at):
        user_sessions.touch_session(token)
    return user


def admin_required(view):
    """Redirect anonymous visitors to sign-in and refuse signed-in non-administrators, whatever the method.

    (Flask-Login's login_required lets OPTIONS through; admin pages answer nothing to anonymous visitors.)
    """

    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not current_user.is_admin:
            abort(403, "This page is for administrators only.")
        return view(*args, **kwargs)

    return wrapped


def safe_next_url(target: str | None) -> str:
    """A local path to return to after sign-in, or the Webhooks page.

    Control characters (a CR/LF would split the Location header), backslashes (browsers read `/\\host`
    as `//host`) and anything with a scheme or host are refused.
    """
    if target and target.startswith("/") and not target.startswith("//") and target.isprintable() \
            and "\\" not in target and " " not in target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("webhooks.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign an administrator in, with failed attempts rate-limited per email."""
    form = SignInForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = authenticate(
                form.email.data,
                form.password.data,
                request.remote_addr,
                current_app.config["LOGIN_MAX_FAILURES"],
                current_app.config["LOGIN_LOCKOUT_SECONDS"],
            )
        except TooManyAttempts as locked:
            minutes = max(1, round(locked.retry_after_seconds / 60))
            form.form_errors.append(
                f"Too many failed sign-in attempts. Try again in {minutes} minute"
                f"{'s' if minutes != 1 else ''}."
            )
            return render_template("auth/login.html", form=form), 429
        if user is not None:
            user_sessions.end_idle_sessions(idle_timeout())
            token = user_sessions.start_session(user.id)
        db.session.commit()
        if user is not None:
            # A new session, with a new CSRF token: nothing issued before sign-in carries over.
            session.clear()
            login_user(user)
            session[SESSION_TOKEN_KEY] = token
            return redirect(safe_next_url(request.args.get("next")))
        form.form_errors.append("Email or password is incorrect.")
        status = 401
    elif form.is_submitted():
        status = 400
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
def logout():
    """Sign out: the session ends on the server, so a copy of the cookie opens nothing afterwards."""
    token = session.get(SESSION_TOKEN_KEY)
    if token:
        user_sessions.end_session(token)
        db.session.commit()
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


def _never_cache(response):
    # Admin pages show one-time secrets and second-by-second statuses: no browser or proxy copies.
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("HX-Request")
    return response


def admin_area(blueprint: Blueprint) -> Blueprint:
    """Make every view of a blueprint administrator-only and never cached."""
    blueprint.before_request(admin_required(lambda: None))
    blueprint.after_request(_never_cache)
    return blueprint
