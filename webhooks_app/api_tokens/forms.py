"""The API token form."""

from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length


class ApiTokenForm(FlaskForm):
    name = StringField(
        "Token name",
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        validators=[DataRequired("Enter a name for the token."),
                    Length(max=255, message="The name can be at most 255 characters.")],
        description="Say which system uses it, e.g. “DAM production”.",
    )
