"""Database ids in URLs and query strings: positive integers no larger than the id columns hold."""

import re

from werkzeug.routing import IntegerConverter

# The id columns are INTEGER: 32-bit on PostgreSQL (SQLite's hold more, but no row there gets a larger id
# from this app). A larger id names no row, so it is refused before it reaches the database.
MAX_DATABASE_ID = 2**31 - 1
ID_LIST = re.compile(r"[0-9]+(?:,[0-9]+)*", re.ASCII)


class DatabaseIdConverter(IntegerConverter):
    """`<id:name>`: 1 to MAX_DATABASE_ID in ASCII digits; anything else matches no route (404)."""

    # The range is in the pattern itself: werkzeug checks a rule's methods before converting its values, so a
    # number refused only by `max` would make a wrong method answer 405 instead of 404.
    regex = (r"0*(?:[1-9][0-9]{0,8}|1[0-9]{9}|20[0-9]{8}|21[0-3][0-9]{7}|214[0-6][0-9]{6}|2147[0-3][0-9]{5}"
             r"|21474[0-7][0-9]{4}|214748[0-2][0-9]{3}|2147483[0-5][0-9]{2}|21474836[0-3][0-9]|214748364[0-7])")

    def __init__(self, map, *args, **kwargs):
        super().__init__(map, min=1, max=MAX_DATABASE_ID)


def parse_id_list(text: str | None, limit: int) -> list[int] | None:
    """"1,2,3" as ids (at most `limit` of them); "" as none; None when malformed or out of range."""
    if not text:
        return []
    if not ID_LIST.fullmatch(text):
        return None
    ids = [int(part) for part in text.split(",")[:limit]]
    return ids if all(1 <= value <= MAX_DATABASE_ID for value in ids) else None
