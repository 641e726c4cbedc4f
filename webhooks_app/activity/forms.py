"""The activity log's query string: status filter, keyset cursors and the live poller's state."""

from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import NumberRange, Optional, ValidationError

from ..ids import MAX_DATABASE_ID, parse_id_list
from ..services.activity import PAGE_SIZE

# Every number the log reads from its URL is a database id (or 0 for "none yet"): bounded, so a huge one
# is a 400 here instead of an overflow in the database.
ID_RANGE = NumberRange(min=1, max=MAX_DATABASE_ID)

STATUS_CHOICES = [SelectChoice(value, label) for value, label in (
    ("", "All"), ("sent", "Sent"), ("queued", "Queued"), ("scheduled_retry", "Scheduled retry"), ("failed", "Failed"),
)]


class LogQueryForm(FlaskForm):
    """Read from the URL (GET), so it carries no CSRF token."""

    class Meta:
        csrf = False

    status = SelectField("Status", choices=STATUS_CHOICES, default="", validate_choice=True)
    before = IntegerField(validators=[Optional(), ID_RANGE])
    after = IntegerField(validators=[Optional(), NumberRange(min=0, max=MAX_DATABASE_ID)])
    oldest = StringField(validators=[Optional()])


def validate_id_list(form, field) -> None:
    if parse_id_list(field.data, PAGE_SIZE) is None:
        raise ValidationError("a comma-separated list of message ids")


class PollForm(LogQueryForm):
    webhook = IntegerField(validators=[Optional(), ID_RANGE])
    newest = IntegerField(validators=[Optional(), NumberRange(min=0, max=MAX_DATABASE_ID)], default=0)
    pending = StringField(validators=[Optional(), validate_id_list])
    since = StringField(validators=[Optional()])
    live = StringField(validators=[Optional()])

    def pending_ids(self) -> list[int]:
        return parse_id_list(self.pending.data, PAGE_SIZE) or []
