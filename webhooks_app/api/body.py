"""The events API's request body: application/json, UTF-8, a JSON value whose objects name each key once."""

import json

from flask import Request

from ..services.batch_intake import BatchRefused
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


class _RepeatedKeyObject(dict):
    """A JSON object that named `repeated` more than once (refused once its place in the body is known)."""

    repeated = ""


def _repeated_key(value) -> str | None:
    """The first key some object in `value` names twice, or None."""
    if isinstance(value, _RepeatedKeyObject):
        return value.repeated
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for item in items:
        found = _repeated_key(item)
        if found is not None:
            return found
    return None


def _repeated_key_error(key: str) -> BodyError:
    return BodyError(400, key[:64], f'the key "{key[:64]}" appears more than once in a JSON object')


def parse_json(raw: bytes, batch: bool = False):
    """Decode a UTF-8 JSON body (415 for another encoding, 400 for malformed JSON or a key named twice).

    With `batch`, a JSON array whose events name a key twice is refused with BatchRefused, naming each by index.
    """
    try:
        text = raw.decode("utf-8")  # json.loads(bytes) would also guess UTF-16 and UTF-32
    except UnicodeDecodeError as error:
        raise BodyError(415, "body", f"the body must be UTF-8 JSON: {error}") from None
    if "\x00" in text:  # never in JSON text, but in every UTF-16 or UTF-32 encoding of it
        raise BodyError(415, "body", "the body must be UTF-8 JSON: it has NUL bytes, as UTF-16 and UTF-32 do")
    repeats: list[str] = []

    def unique_keys_object(pairs: list[tuple[str, object]]) -> dict:
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        marked, seen = _RepeatedKeyObject(obj), set()
        for key, _ in pairs:
            if key in seen:
                marked.repeated = key
                break
            seen.add(key)
        repeats.append(marked.repeated)
        return marked

    try:
        value = json.loads(text, object_pairs_hook=unique_keys_object)
    except ValueError as error:
        raise BodyError(400, "body", f"the body is not valid JSON: {error}") from None
    except RecursionError:
        raise BodyError(400, "body", "the body is not valid JSON: it is nested too deeply") from None
    if not repeats:
        return value
    if batch and isinstance(value, list):
        problems = [(index, _repeated_key_error(key)) for index, key in
                    ((index, _repeated_key(item)) for index, item in enumerate(value)) if key is not None]
        raise BatchRefused(problems)
    raise _repeated_key_error(repeats[0])
