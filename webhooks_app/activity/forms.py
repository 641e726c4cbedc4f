"""The activity log's query string: search, filters, keyset cursors and the live poller's state."""

from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, NumberRange, Optional, ValidationError

from ..events import EVENT_NAMES
from ..ids import MAX_DATABASE_ID, parse_id_list
from ..services.activity import PAGE_SIZE
from ..services.log_filters import Search, SearchNotUnderstood
from ..services.test_messages import TEST_EVENT_TYPE

# Every number the log reads from its URL is a database id (or 0 for "none yet"): bounded, so a huge one
# is a 400 here instead of an overflow in the database.
ID_RANGE = NumberRange(min=1, max=MAX_DATABASE_ID)

STATUS_CHOICES = [SelectChoice(value, label) for value, label in (
    ("", "All"), ("sent", "Sent"), ("queued", "Queued"), ("scheduled_retry", "Scheduled retry"), ("failed", "Failed"),
)]
TYPE_CHOICES = [SelectChoice("", "All events")] + [SelectChoice(name, name) for name in (*EVENT_NAMES, TEST_EVENT_TYPE)]
RANGE_CHOICES = [SelectChoice(value, label) for value, label in (
    ("", "Any time"), ("1h", "Last hour"), ("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days"),
)]
# The filters an administrator sets; the other fields are the pager's and the poller's.
FILTER_FIELDS = ("q", "type", "webhook", "status", "range")


def strip_whitespace(value):
    return value.strip() if isinstance(value, str) else value


class ChoiceField(SelectField):
    """A select whose refused value is named in its error, in the log's words."""

    def __init__(self, label, what: str, **kwargs):
        super().__init__(label, validate_choice=True, **kwargs)
        self.what = what

    def pre_validate(self, form) -> None:
        if self.data in (None, ""):
            return
        if not any(str(choice[0]) == str(self.data) for choice in self.iter_choices()):
            raise ValidationError(f"“{str(self.data)[:40]}” is not {self.what}; choose one from the list.")


class LogQueryForm(FlaskForm):
    """Read from the URL (GET), so it carries no CSRF token."""

    class Meta:
        csrf = False

    q = StringField("Search", filters=[strip_whitespace],
                    validators=[Optional(), Length(max=100, message="The search can be at most 100 characters.")],
                    description="A messageId or eventId, or an asset, folder or user id.")
    type = ChoiceField("Event", "an event type", choices=TYPE_CHOICES, default="")
    status = ChoiceField("Status", "a status", choices=STATUS_CHOICES, default="")
    range = ChoiceField("Time", "a time range", choices=RANGE_CHOICES, default="")
    before = IntegerField(validators=[Optional(), ID_RANGE])
    after = IntegerField(validators=[Optional(), NumberRange(min=0, max=MAX_DATABASE_ID)])
    oldest = StringField(validators=[Optional()])

    def validate_q(self, field) -> None:
        try:
            Search.parse(field.data)
        except SearchNotUnderstood as problem:
            raise ValidationError(str(problem)) from None

    def search(self) -> Search | None:
        return Search.parse(self.q.data)

    def filter_errors(self) -> bool:
        """True when only the administrator's filters were refused (shown beside them), not the pager's values."""
        return bool(self.errors) and set(self.errors) <= set(FILTER_FIELDS)

    def filters(self) -> dict:
        """The filters set, for the pager's and poller's URLs."""
        return {name: self[name].data for name in FILTER_FIELDS if name in self and self[name].data not in (None, "")}


class AllActivityForm(LogQueryForm):
    """All activity also filters by webhook (its choices are the webhooks, set by the view)."""

    webhook = ChoiceField("Webhook", "a webhook", choices=[], default="", coerce=str)


def validate_id_list(form, field) -> None:
    if parse_id_list(field.data, PAGE_SIZE) is None:
        raise ValidationError("a comma-separated list of message ids")


class PollForm(LogQueryForm):
    webhook = IntegerField(validators=[Optional(), ID_RANGE])
    all = StringField(validators=[Optional()])  # the poll of All activity (with or without its webhook filter)
    newest = IntegerField(validators=[Optional(), NumberRange(min=0, max=MAX_DATABASE_ID)], default=0)
    pending = StringField(validators=[Optional(), validate_id_list])
    since = StringField(validators=[Optional()])
    live = StringField(validators=[Optional()])
    summary = StringField(validators=[Optional(), Length(max=100)])
    redis = StringField(validators=[Optional()])

    def pending_ids(self) -> list[int]:
        return parse_id_list(self.pending.data, PAGE_SIZE) or []
