"""The worker entry point: `dramatiq tasks.worker` builds the app, whose broker carries every actor."""

from webhooks_app import create_app

app = create_app()
broker = app.extensions["dramatiq_broker"]
