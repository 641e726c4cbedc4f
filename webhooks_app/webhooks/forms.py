"""The webhook form; the endpoint URL rules live in services/endpoint_urls.py."""

from datetime import datetime, timedelta

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateTimeLocalField, IntegerField, RadioField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError
from wtforms.widgets import CheckboxInput, HiddenInput, ListWidget

from ..events import EVENT_TYPES
from ..services.endpoint_urls import endpoint_url_problem
from ..services.replay import ReplayError
from ..services.secret_rotation import OVERLAP_CHOICES, OVERLAP_REFUSED
from ..services.webhooks import NAME_MAX_LENGTH, WebhookFields


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
            Length(max=NAME_MAX_LENGTH, message=f"The name can be at most {NAME_MAX_LENGTH} characters."),
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


class ResetSecretForm(FlaskForm):
    """Reset secret: how long the replaced secret keeps signing deliveries."""

    overlap = RadioField(
        "Old secret stays valid",
        choices=[SelectChoice(str(seconds), label) for seconds, label in OVERLAP_CHOICES],
        default="0",  # Stop at once, also when a form (an older page, a script) does not say
        validate_choice=False,
    )

    def validate_overlap(self, field) -> None:
        if field.data not in {str(seconds) for seconds, _ in OVERLAP_CHOICES}:
            raise ValidationError(OVERLAP_REFUSED)

    def overlap_seconds(self) -> int:
        return int(self.overlap.data)


class ReplayForm(FlaskForm):
    """Replay missed events: since when. The browser's script sends its UTC offset for the local time typed;
    without it the time is UTC."""

    since = DateTimeLocalField(
        "Since", format=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        invalid_value_message="Since must be a date and time, such as 2026-11-28T09:30.",
        validators=[InputRequired("Enter the date and time to replay from.")],
    )
    tz_offset = IntegerField(widget=HiddenInput(), validators=[
        Optional(), NumberRange(min=-1440, max=1440, message="The time zone offset is not understood.")])

    def since_utc(self) -> datetime:
        """The time entered, in UTC (JavaScript's getTimezoneOffset is UTC minus local time, in minutes); ReplayError
        when that falls outside the calendar (year 9999 seen from a time zone behind UTC)."""
        try:
            return self.since.data + timedelta(minutes=self.tz_offset.data or 0)
        except OverflowError:
            raise ReplayError("Since is out of range once converted to UTC: choose a time before now.") from None
