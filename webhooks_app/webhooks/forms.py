"""The webhook form and its endpoint URL rules."""

import re
from urllib.parse import urlsplit

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from ..events import EVENT_TYPES
from ..services.webhooks import WebhookFields

MAX_URL_LENGTH = 2048
# RFC 3986: unreserved and reserved characters, plus "%" for percent-encoded octets.
LEGAL_URL_CHARACTER = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]")
PERCENT_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def describe_character(character: str) -> str:
    if character == " ":
        return "a space"
    if character in "\t\r\n":
        return "a line break or tab"
    if character.isprintable():
        return f"“{character}”"
    return f"the character U+{ord(character):04X}"


def endpoint_url_problem(url: str) -> str | None:
    """Explain what is wrong with an endpoint URL, or return None when it is acceptable."""
    if len(url) > MAX_URL_LENGTH:
        return f"The URL is {len(url):,} characters long; the limit is {MAX_URL_LENGTH:,}."
    for position, character in enumerate(url, start=1):
        if not LEGAL_URL_CHARACTER.fullmatch(character):
            return (
                f"The URL contains {describe_character(character)} at position {position}. "
                "Special characters must be percent-encoded (a space is %20)."
            )
    if PERCENT_ESCAPE.search(url):
        return "The URL has a “%” that is not followed by two hexadecimal digits; write a literal % as %25."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as error:
        return f"The URL cannot be read: {error}."
    if parts.scheme.lower() != "https":
        return "HTTPS is required: the endpoint URL must start with https://."
    if not parts.hostname:
        return "The URL has no host name: write it as https://host.example/path."
    return None


def validate_endpoint_url(form, field) -> None:
    problem = endpoint_url_problem(field.data or "")
    if problem:
        raise ValidationError(problem)


def strip_whitespace(value):
    return value.strip() if isinstance(value, str) else value


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class WebhookForm(FlaskForm):
    name = StringField(
        "Name",
        filters=[strip_whitespace],
        validators=[
            DataRequired("Enter a name for the webhook."),
            Length(max=255, message="The name can be at most 255 characters."),
        ],
        description="Shown only in the webhooks table.",
    )
    url = StringField(
        "Endpoint URL",
        filters=[strip_whitespace],
        validators=[DataRequired("Enter the endpoint URL."), validate_endpoint_url],
        description="Where webhook messages are sent. HTTPS is required; percent-encode special characters.",
    )
    events = MultiCheckboxField(
        "Events",
        choices=[event.name for event in EVENT_TYPES],
        validate_choice=True,
    )
    enabled = BooleanField("Enabled", default=True)

    def validate_events(self, field) -> None:
        if not field.data:
            raise ValidationError("Select at least one event.")

    def to_fields(self) -> WebhookFields:
        return WebhookFields(
            name=self.name.data,
            url=self.url.data,
            event_types=tuple(self.events.data),
            enabled=bool(self.enabled.data),
        )


class ConfirmForm(FlaskForm):
    """An empty form whose only job is to carry the CSRF token of a confirmation."""


class EnabledForm(FlaskForm):
    """The Status toggle's request: the state the administrator wants."""

    enabled = BooleanField("Enabled", false_values=("0", "false", "off", ""))
