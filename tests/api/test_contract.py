"""The API's contract: schemathesis (pinned) generates valid and invalid requests for every operation of
/api/v1/openapi.json and sends them to the live app over HTTP with a token holding every scope. No answer may be a
5xx, and every answer's status code, content type, headers and body must be what the document says."""

from dataclasses import dataclass
from datetime import timedelta

import pytest
import requests
import schemathesis
from api.helpers import ASSET_CREATE
from api.management import ALL_SCOPES, GOOD_WEBHOOK, scoped_token
from factories import make_message
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from webhooks_app.extensions import db
from webhooks_app.models import Message, MessageStatus, Webhook, utcnow
from webhooks_app.services.replay import create_replay
from webhooks_app.services.webhooks import WebhookFields, create_webhook

MAX_EXAMPLES = 15  # per operation and generation mode: the run stays around half a minute
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


@dataclass
class ContractWorld:
    """A live app, a token with every scope, and rows for generated ids to be swapped for (so that calls on
    existing webhooks and messages are exercised, not only 404s)."""

    app: object
    base_url: str
    token: str
    message_uuid: str
    replay_id: int

    def webhook_id(self) -> int:
        """An existing webhook's id (a new webhook when the run deleted them all)."""
        with self.app.app_context():
            webhook_id = db.session.scalar(select(Webhook.id).order_by(Webhook.id).limit(1))
            if webhook_id is None:
                webhook, _ = create_webhook(WebhookFields("Contract", "https://hooks.example.com/c", ("asset.create",),
                                                          True))
                db.session.commit()
                webhook_id = webhook.id
            db.session.remove()
            return webhook_id


@pytest.fixture
def contract_world(app, live_server) -> ContractWorld:
    with app.app_context():
        webhook, _ = create_webhook(WebhookFields("Contract", "https://hooks.example.com/c", ("asset.create",), True))
        db.session.flush()
        message_id = make_message(webhook.id, MessageStatus.FAILED, attempts=[(False, 500, "http_status", "no")])
        replay_id = create_replay(webhook.id, utcnow() - timedelta(hours=1), "contract").id
        db.session.commit()
        message_uuid = db.session.get(Message, message_id).message_uuid
        db.session.remove()
    return ContractWorld(app, live_server.url, scoped_token(app, ALL_SCOPES, name="contract"), message_uuid,
                         replay_id)


def aim_at_existing_rows(case, world: ContractWorld) -> None:
    """Point half the generated ids at an existing webhook or message, and some PATCHes at its current version."""
    webhook_id = case.path_parameters.get("webhook_id")
    if isinstance(webhook_id, int) and webhook_id % 2 == 0:
        case.path_parameters["webhook_id"] = world.webhook_id()
        if_match = case.headers.get("If-Match") if isinstance(case.headers, dict) else None
        if case.method == "PATCH" and isinstance(if_match, str) and len(if_match) % 2:
            case.headers["If-Match"] = "*"
    message_uuid = case.path_parameters.get("message_uuid")
    if isinstance(message_uuid, str) and message_uuid[:1] in "02468ace":
        case.path_parameters["message_uuid"] = world.message_uuid
    replay_id = case.path_parameters.get("replay_id")
    if isinstance(replay_id, int) and replay_id % 2 == 0:
        case.path_parameters["replay_id"] = world.replay_id


def valid_cases(operation, world: ContractWorld) -> list:
    """Hand-made valid requests, so the success answers (201 with its secret, 200 with an ETag) are checked too."""
    path = {"webhook_id": world.webhook_id()} if "{webhook_id}" in operation.path else {}
    if "{message_uuid}" in operation.path:
        path = {"message_uuid": world.message_uuid}
    if "{replay_id}" in operation.path:
        path["replay_id"] = world.replay_id
    body = {
        ("POST", "/api/v1/webhooks"): GOOD_WEBHOOK,
        ("PATCH", "/api/v1/webhooks/{webhook_id}"): {"name": "Renamed"},
        ("POST", "/api/v1/events"): ASSET_CREATE,
        ("POST", "/api/v1/webhooks/{webhook_id}/replays"): {"dryRun": True},
        ("POST", "/api/v1/webhooks/{webhook_id}/reset-secret"): {"oldSecretValidFor": 3600},
    }.get((operation.method.upper(), operation.path))
    headers = {"If-Match": "*"} if operation.method.upper() == "PATCH" else None
    kwargs = {"path_parameters": path, "headers": headers, **({"body": body, "media_type": "application/json"}
                                                               if body is not None else {})}
    return [operation.Case(**kwargs)]


def test_every_answer_matches_the_document(contract_world):
    """For each operation of the document: hand-made valid requests, then generated ones (valid, and with invalid
    bodies, queries and headers), never get a 5xx, and each answer's status code, content type, documented headers
    (ETag, Location, …) and JSON body conform to the document."""
    world = contract_world
    config = SchemathesisConfig.from_dict({"generation": {"max-examples": MAX_EXAMPLES}})
    schema = schemathesis.openapi.from_url(f"{world.base_url}/api/v1/openapi.json", config=config)
    auth = {"Authorization": f"Bearer {world.token}"}
    session = requests.Session()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:
        for case in valid_cases(operation, world):
            case.call_and_validate(base_url=world.base_url, session=session, headers=auth, checks=CHECKS)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            def conforms(case):
                aim_at_existing_rows(case, world)
                case.call_and_validate(base_url=world.base_url, session=session, headers=auth, checks=CHECKS)

            conforms()
