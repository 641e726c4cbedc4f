"""App-wide guards: refuse text no database column can hold."""

from flask import Flask, abort, request

FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def refuse_nul_characters() -> None:
    """400 for a query or form value holding NUL, which PostgreSQL text columns cannot store.

    The events API is left to read its JSON body itself, within its own size limit.
    """
    sources = [("query", request.args)]
    if request.mimetype in FORM_TYPES and request.blueprint != "api":
        sources.append(("form", request.form))
    for where, values in sources:
        for name, items in values.lists():
            if "\x00" in name or any("\x00" in item for item in items):
                abort(400, f"The {where} field “{name.replace(chr(0), '')}” contains a NUL character, "
                           "which is not allowed.")


def install_hardening(app: Flask) -> None:
    """Attach the guards to every request of `app`."""
    app.before_request(refuse_nul_characters)
