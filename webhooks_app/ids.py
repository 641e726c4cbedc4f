"""Database ids in URLs and query strings: positive integers no larger than the id columns hold."""

import re

from werkzeug.routing import IntegerConverter

# The id columns are INTEGER: 32-bit on PostgreSQL (SQLite's hold more, but no row there gets a larger id
# from this app). A larger id names no row, so it is refused before it reaches the database.
MAX_DATABASE_ID = 2**31 - 1
ID_LIST = re.compile(r"[0-9]+(?:,[0-9]+)*", re.ASCII)


class DatabaseIdConverter(IntegerConverter):
    """`<id:name>`: 1 to MAX_DATABASE_ID in ASCII digits; anything else matches no route (404)."""

    regex = r"[0-9]+"

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
