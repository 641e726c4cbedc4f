"""The activity log's query string: status filter, keyset cursors and the live poller's state."""

from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import NumberRange, Optional

STATUS_CHOICES = [SelectChoice(value, label) for value, label in (
    ("", "All"), ("sent", "Sent"), ("queued", "Queued"), ("scheduled_retry", "Scheduled retry"), ("failed", "Failed"),
)]


class LogQueryForm(FlaskForm):
    """Read from the URL (GET), so it carries no CSRF token."""

    class Meta:
        csrf = False

    status = SelectField("Status", choices=STATUS_CHOICES, default="", validate_choice=True)
    before = IntegerField(validators=[Optional(), NumberRange(min=1)])
    after = IntegerField(validators=[Optional(), NumberRange(min=0)])
    oldest = StringField(validators=[Optional()])


class PollForm(LogQueryForm):
    newest = IntegerField(validators=[Optional(), NumberRange(min=0)], default=0)
    pending = StringField(validators=[Optional()])
    since = StringField(validators=[Optional()])
    live = StringField(validators=[Optional()])
