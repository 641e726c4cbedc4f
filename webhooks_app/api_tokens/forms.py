"""The API token form: a name and the scopes the token gets."""

from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from ..services.api_tokens import DEFAULT_SCOPES, SCOPES


class ScopesField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ApiTokenForm(FlaskForm):
    name = StringField(
        "Token name",
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        validators=[DataRequired("Enter a name for the token."),
                    Length(max=255, message="The name can be at most 255 characters.")],
        description="Say which system uses it, e.g. “DAM production”.",
    )
    scopes = ScopesField("Scopes", choices=[SelectChoice(scope, meaning) for scope, meaning in SCOPES.items()],
                         default=list(DEFAULT_SCOPES), validate_choice=True)

    def validate_scopes(self, field) -> None:
        if not field.data:
            raise ValidationError("Choose at least one scope.")
