"""The intake scenario's reference: a bare Flask app whose POST /api/v1/events parses the JSON body and answers 202.

Started with the Procfile's web command line (gunicorn, 2 workers x 4 threads, access log), `wsgi:app` replaced by
`bench.trivial_app:app`: what this machine's web stack can do at all for an event, with no database, no Redis, no
token and no validation. A JSON array (a batch) is answered with one entry per element, as the batch intake answers.
"""

import uuid

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/healthz")
def healthz():
    return {"status": "ok"}


@app.post("/api/v1/events")
def create_event():
    data = request.get_json()
    if isinstance(data, list):
        return jsonify({"events": [{"eventId": event.get("eventId") or str(uuid.uuid4()), "messages": 0}
                                   for event in data], "messages": 0}), 202
    return jsonify({"eventId": data.get("eventId") or str(uuid.uuid4()), "messages": 0}), 202
