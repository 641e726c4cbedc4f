"""The worker entry point: `dramatiq tasks.worker` builds the app, whose broker carries every actor."""

from tasks import delivery  # noqa: F401  (declares the delivery actors)
from webhooks_app import create_app

app = create_app()
broker = app.extensions["dramatiq_broker"]
