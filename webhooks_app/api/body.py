"""The events API's request body: application/json, UTF-8, a JSON value whose objects name each key once."""

import json

from flask import Request

from ..services.intake import IntakeError

JSON_MEDIA_TYPE = "application/json"


class BodyError(IntakeError):
    """The body cannot be read as the API's JSON; status is the HTTP answer (400 or 415)."""


def check_content_type(request: Request) -> None:
    """Refuse (415) a Content-Type other than application/json, or one naming a charset other than utf-8."""
    if request.mimetype != JSON_MEDIA_TYPE:
        sent = f"not {request.mimetype[:64]!r}" if request.mimetype else "and it is missing"
        raise BodyError(415, "Content-Type", f"Content-Type must be {JSON_MEDIA_TYPE}, {sent}")
    charset = request.mimetype_params.get("charset")
    if charset is not None and charset.lower() != "utf-8":
        raise BodyError(415, "Content-Type", f"the body must be UTF-8 {JSON_MEDIA_TYPE}, not charset {charset[:32]!r}")


def _object_with_unique_keys(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise BodyError(400, key[:64], f'the key "{key[:64]}" appears more than once in a JSON object')
            seen.add(key)
    return obj


def parse_json(raw: bytes):
    """Decode a UTF-8 JSON body (415 for another encoding, 400 for malformed JSON or a key named twice)."""
    try:
        text = raw.decode("utf-8")  # json.loads(bytes) would also guess UTF-16 and UTF-32
    except UnicodeDecodeError as error:
        raise BodyError(415, "body", f"the body must be UTF-8 JSON: {error}") from None
    if "\x00" in text:  # never in JSON text, but in every UTF-16 or UTF-32 encoding of it
        raise BodyError(415, "body", "the body must be UTF-8 JSON: it has NUL bytes, as UTF-16 and UTF-32 do")
    try:
        return json.loads(text, object_pairs_hook=_object_with_unique_keys)
    except ValueError as error:
        if isinstance(error, BodyError):
            raise
        raise BodyError(400, "body", f"the body is not valid JSON: {error}") from None
    except RecursionError:
        raise BodyError(400, "body", "the body is not valid JSON: it is nested too deeply") from None
