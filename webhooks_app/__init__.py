"""The webhook service: a Flask app that pushes system events to subscribed HTTPS endpoints."""

import logging
from pathlib import Path

from flask import Flask, redirect, url_for
from sqlalchemy.engine import Engine

from .config import INSTANCE_PATH, PROJECT_ROOT, check_secret_key, prepare_sqlite_files, settings_from_environment
from .database import configure_sqlite, ping_idle_connections
from .extensions import csrf, db, login_manager, migrate, task_queue
from .hardening import install_hardening
from .htmx import render_error
from .ids import DatabaseIdConverter

PRODUCT_NAME = "Webhooks"
PRODUCT_VERSION = "0.1.0"
DATABASE_CONNECT_TIMEOUT_SECONDS = 5


def create_app(config: dict | None = None) -> Flask:
    """Build the app from the environment, overridden by `config`."""
    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
        instance_path=str(INSTANCE_PATH),
    )
    app.url_map.converters["id"] = DatabaseIdConverter
    app.config.update(settings_from_environment())
    if config:
        app.config.update(config)
    check_secret_key(app.config.get("SECRET_KEY"))
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        # A database host that drops packets must give a fast, retryable 503, not a two-minute TCP wait.
        options = app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
        options.setdefault("connect_args", {}).setdefault("connect_timeout", DATABASE_CONNECT_TIMEOUT_SECONDS)
    prepare_sqlite_files(app.config["SQLALCHEMY_DATABASE_URI"], Path(app.instance_path))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    login_manager.init_app(app)
    install_hardening(app)

    with app.app_context():
        engine: Engine = db.engine
        if engine.dialect.name == "sqlite":
            configure_sqlite(engine)
        else:
            ping_idle_connections(engine)

    from . import models  # noqa: F401  (register the models with the metadata)
    from .activity.routes import bp as activity_bp
    from .api.routes import bp as api_bp
    from .api_reference.routes import bp as api_reference_bp
    from .api_tokens.routes import bp as api_tokens_bp
    from .auth.routes import bp as auth_bp
    from .cli import register_commands
    from .operations.routes import bp as operations_bp
    from .services import dispatch, fan_out, notifications, replay, retention  # noqa: F401  (declare the actors)
    from .webhooks.routes import bp as webhooks_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(webhooks_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(api_tokens_bp)
    app.register_blueprint(api_reference_bp)
    app.register_blueprint(activity_bp)
    app.register_blueprint(operations_bp)
    register_commands(app)
    app.config["DRAMATIQ_BROKER_URL"] = app.config["REDIS_URL"]
    task_queue.init_app(app)
    register_error_pages(app)

    @app.get("/")
    def index():
        """Send visitors to the Webhooks page."""
        return redirect(url_for("webhooks.index"))

    @app.context_processor
    def product_context():
        return {"product_name": PRODUCT_NAME}

    return app


def register_error_pages(app: Flask) -> None:
    """Friendly pages (or, for HTMX requests, fragments) for the errors an administrator can meet."""
    for code in (400, 403, 404, 405, 409, 429, 500):
        app.register_error_handler(code, render_error)
