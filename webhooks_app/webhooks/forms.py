"""The webhook form; the endpoint URL rules live in services/endpoint_urls.py."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from ..events import EVENT_TYPES
from ..services.endpoint_urls import endpoint_url_problem
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
