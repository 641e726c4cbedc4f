"""The API's request and response bodies as pydantic models: the OpenAPI document's schemas are generated from them.

Webhook bodies are checked here for their JSON shape only (types, known keys); their rules and messages are the
Add webhook form's (webhooks/forms.py), so the schema only documents them (`documented`), never enforces them twice.
"""

from datetime import datetime
from typing import Annotated, Literal, Union
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictBool, StrictStr, create_model

from ..events import EVENT_NAMES
from ..models import MessageStatus
from ..services.batch_intake import MAX_BATCH_EVENTS
from ..services.endpoint_urls import MAX_URL_LENGTH
from ..services.intake import ASSET_SOURCES, MAX_ID, subject_keys
from ..services.secret_rotation import OVERLAP_CHOICES
from ..services.test_messages import TEST_EVENT_TYPE
from ..services.webhooks import NAME_MAX_LENGTH

EVENT_NAME_SCHEMA = {"type": "string", "enum": list(EVENT_NAMES)}
OVERLAP_SECONDS_CHOICES = tuple(seconds for seconds, _ in OVERLAP_CHOICES)
MAX_PAGE_SIZE = 200


def documented(*required: str):
    """A model's JSON schema that lists `required` as required and shows no null defaults.

    The fields default to None in Python so that a missing one reaches the form, which words the message.
    """
    def adjust(schema: dict, _model=None) -> None:
        if required:
            schema["required"] = list(required)
        for prop in schema.get("properties", {}).values():
            if prop.get("default", 0) is None:
                del prop["default"]
    return adjust


class BadEvent(BaseModel):
    index: int = Field(description="The event's position in the batch, from 0.")
    field: str
    message: str


class ErrorDetail(BaseModel):
    model_config = ConfigDict(json_schema_extra=documented())

    field: str = Field(description="The field, header or part of the request that is wrong.")
    message: str = Field(description="What is wrong, in words.")
    invalid: list[BadEvent] = Field(None, description="A refused batch of events: every bad event.")


class ErrorBody(BaseModel):
    """Every refusal, whatever its status."""

    error: ErrorDetail


# --- webhooks ---------------------------------------------------------------------------------------------------

NAME_DOC = {"maxLength": NAME_MAX_LENGTH, "description": "Shown only in the webhooks table; not blank."}
URL_DOC = {"maxLength": MAX_URL_LENGTH, "description": "HTTPS endpoint; special characters percent-encoded; "
                                                       "a DNS name or IP address; no user:password@."}
EVENTS_DOC = {"items": EVENT_NAME_SCHEMA, "minItems": 1, "description": "The events the webhook receives."}


class WebhookCreate(BaseModel):
    """A new webhook: the Add webhook form's fields, rules and messages."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=documented("name", "url", "events"))

    name: StrictStr = Field(None, json_schema_extra=NAME_DOC)
    url: StrictStr = Field(None, json_schema_extra=URL_DOC)
    events: list[StrictStr] = Field(None, json_schema_extra=EVENTS_DOC)
    enabled: StrictBool = Field(True, description="Whether messages are sent.")


class WebhookChange(BaseModel):
    """The fields to change; the others keep their values. The result must pass the Edit form's rules."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=documented())

    name: StrictStr = Field(None, json_schema_extra=NAME_DOC)
    url: StrictStr = Field(None, json_schema_extra=URL_DOC)
    events: list[StrictStr] = Field(None, json_schema_extra=EVENTS_DOC)
    enabled: StrictBool = Field(None, description="Enabling clears an automatic disable's reason.")


class Webhook(BaseModel):
    id: int = Field(description="Also the subscriptionId of its messages.")
    name: str
    url: str
    events: list[str] = Field(json_schema_extra={"items": EVENT_NAME_SCHEMA})
    enabled: bool
    disabledReason: str | None = Field(description="Why deliveries disabled it, when they did.")
    disabledAt: datetime | None
    previousSecretExpiresAt: datetime | None = Field(description="While a reset secret's overlap lasts: until when "
                                                                 "messages are also signed with the old secret.")
    createdAt: datetime
    updatedAt: datetime


class WebhookWithSecret(Webhook):
    """A webhook with its secret: answered once, on create and on reset-secret."""

    secret: str = Field(description="The `token` of every message; shown only in this answer.")
    standardWebhooksSecret: str = Field(description="The same secret in whsec_ form, for Standard Webhooks "
                                                    "libraries verifying the webhook-signature header.")


class WebhookList(BaseModel):
    data: list[Webhook]


class IfMatchRequired(BaseModel):
    model_config = ConfigDict(json_schema_extra=documented("If-Match"))

    if_match: StrictStr = Field(None, alias="If-Match",
                                description="The ETag of the webhook as last read; 428 without it, 412 when the "
                                            "webhook changed since (`*` overwrites whatever is there).")


class IfMatchOptional(BaseModel):
    model_config = ConfigDict(json_schema_extra=documented())

    if_match: StrictStr = Field(None, alias="If-Match",
                                description="When given, the webhook is deleted only if it still has this ETag.")


class ResetSecret(BaseModel):
    """How long the replaced secret keeps working (no body: it stops at once, as before)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    oldSecretValidFor: Literal[OVERLAP_SECONDS_CHOICES] = Field(
        0, description="Seconds the replaced secret stays valid (0, 1 hour, 24 hours or 7 days): meanwhile every "
                       "message is signed with both secrets, so receivers can switch at their own pace.")


class SentAgain(BaseModel):
    messageId: UUID = Field(description="The new message (or the copy of the event already pending).")
    status: Literal["queued"]
    alreadyPending: bool = Field(description="A copy of the event was already pending for the webhook: it is "
                                             "answered instead of a second one.")
    replayOf: UUID = Field(description="The message sent again; it stays as it was.")


class ReplayRequest(BaseModel):
    """Replay missed events: every stored event the webhook has no Sent or pending message for, since a time."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=documented())

    since: datetime = Field(None, description="RFC 3339; UTC when it has no offset. Within the log's retention. "
                                              "Left out: when the webhook's failures began or it was disabled, "
                                              "else 24 hours ago, as the dialog offers.")
    dryRun: StrictBool = Field(False, description="Only count the events a replay would send; store nothing.")


class ReplayPreview(BaseModel):
    since: datetime
    missedEvents: int = Field(description="How many events a replay since `since` would send now.")


class Replay(BaseModel):
    id: int
    webhookId: int
    since: datetime
    status: Literal["running", "done", "stopped"]
    messagesCreated: int = Field(description="Messages made so far, oldest event first.")
    stopReason: str | None = Field(description="Why a stopped replay stopped (its webhook was disabled).")
    requestedBy: str = Field(description="The administrator’s email, or API token “its name”.")
    createdAt: datetime
    finishedAt: datetime | None


class TestQueued(BaseModel):
    messageId: UUID = Field(description="Read its outcome at /api/v1/messages/{messageId}.")
    status: Literal["queued"] = Field(description="Put on the queue, or (with Redis unavailable) left for the "
                                                  "scheduler, which sends it once Redis answers.")


# --- messages ---------------------------------------------------------------------------------------------------

MessageStatusName = Literal[MessageStatus.SENT, MessageStatus.QUEUED, MessageStatus.SCHEDULED_RETRY,
                            MessageStatus.FAILED]
MessageEventType = Literal[(*EVENT_NAMES, TEST_EVENT_TYPE)]


class MessageQuery(BaseModel):
    """The activity log's filters and a page of it."""

    model_config = ConfigDict(json_schema_extra=documented())

    status: MessageStatusName = Field(None, description="Only messages with this status.")
    eventType: MessageEventType = Field(None, description="Only messages of this event type.")
    since: datetime = Field(None, description="Only messages created at or after this time (RFC 3339; UTC when "
                                              "it has no offset).")
    until: datetime = Field(None, description="Only messages created before this time.")
    search: str = Field(None, max_length=64, description="As the log's search: the message with this messageId, the "
                        "messages of the event with this eventId (a UUID), or those of the events about the asset, "
                        "folder or user with this id (a number: its assetId, folderId or targetUserId).")
    limit: int = Field(50, ge=1, le=MAX_PAGE_SIZE, description="Messages per page.")
    cursor: str = Field(None, max_length=64, description="The `next` of the previous page.")


class Message(BaseModel):
    messageId: UUID
    webhookId: int | None = Field(description="Null once its webhook is deleted.")
    eventId: str | None
    eventType: str
    test: bool = Field(description="A Test button or API test message.")
    status: MessageStatusName
    attemptsMade: int
    nextAttemptAt: datetime | None
    failureReason: str | None
    createdAt: datetime
    updatedAt: datetime


class Attempt(BaseModel):
    number: int
    startedAt: datetime
    durationMs: int
    succeeded: bool
    statusCode: int | None = Field(description="The endpoint's HTTP status, if it answered.")
    errorKind: str | None = Field(description="timeout, refused, dns, tls, redirect, http_status, "
                                              "forbidden_address, connection or unexpected.")
    errorDetail: str | None
    responseBody: str | None = Field(description="The first 1 KiB of the answer, the secret removed.")


class MessageDetail(Message):
    payload: dict = Field(description="The body as sent, the secret masked.")
    attempts: list[Attempt]


class MessagePage(BaseModel):
    data: list[Message] = Field(description="Newest first.")
    next: str | None = Field(description="Pass as ?cursor= for the next (older) page; null on the last page.")


# --- events (documentation: services/intake.py validates them) -------------------------------------------------

POSITIVE_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}


def _event_model(event_type: str):
    fields = {
        "type": (Literal[event_type], ...),
        "userId": (int, Field(json_schema_extra=POSITIVE_ID, description="The user who caused the event.")),
        **{key: (int, Field(json_schema_extra=POSITIVE_ID)) for key in subject_keys(event_type)},
        "eventId": (UUID, Field(None, description="Your idempotency key, unique per token.")),
        "eventTime": (int, Field(None, ge=0, le=MAX_ID, description="Epoch seconds; default now.")),
    }
    if event_type == "asset.create":
        fields["source"] = (Literal[ASSET_SOURCES], Field(None, description="reimport and resync trigger nothing."))
    if event_type in ("folder.update", "user.update"):
        fields["changed"] = (list[str], Field(None, description="Changed field names."))
    name = "Event_" + event_type.replace(".", "_")
    return create_model(name, __config__=ConfigDict(extra="forbid", json_schema_extra=documented()), **fields)


EVENT_MODELS = tuple(_event_model(name) for name in EVENT_NAMES)


class Event(RootModel[Annotated[Union[EVENT_MODELS], Field(discriminator="type")]]):  # noqa: UP007
    """One event; its type decides its subject keys."""


class EventsBody(RootModel[Union[Event, Annotated[list[Event], Field(min_length=1, max_length=MAX_BATCH_EVENTS)]]]):  # noqa: UP007
    """One event, or a batch of up to 500 stored all or nothing (a batch's messages are made by the worker)."""


class EventAccepted(BaseModel):
    eventId: str
    messages: int = Field(description="Messages queued, one per enabled webhook subscribed to the event.")


class BatchAccepted(BaseModel):
    events: list[EventAccepted] = Field(description="One per event of the batch, in its order.")
    messages: int = Field(description="The messages of the whole batch, each counted once (an event sent twice "
                                      "in a batch has one set). The worker makes them moments after this answer; "
                                      "they appear in the activity log and at /api/v1/messages then.")


class EventsAccepted(RootModel[Union[EventAccepted, BatchAccepted]]):  # noqa: UP007
    """The answer to one event, or to a batch."""
