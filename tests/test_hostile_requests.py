"""Every route of the app, with hostile path and query values, bodies and methods, never answers 500.

The walk takes the rules from `app.url_map`, so a route added later is walked too. It runs as an
anonymous visitor, a signed-in non-administrator and an administrator, on SQLite and PostgreSQL.
"""

import itertools
import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, csrf_token_from, make_user, sign_in
from factories import make_message
from sqlalchemy import select

from webhooks_app.extensions import db
from webhooks_app.models import Message, MessageStatus, utcnow
from webhooks_app.services.api_tokens import create_api_token
from webhooks_app.services.replay import create_replay
from webhooks_app.services.test_messages import create_test_message
from webhooks_app.services.webhooks import WebhookFields, create_webhook

VIEWER_EMAIL, VIEWER_PASSWORD = "viewer@example.com", "viewer password"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]
# Values as they appear in a URL (already percent-encoded where needed).
HOSTILE_NUMBERS = [
    "0", "-1", "007", "2147483648", "9223372036854775807", "9223372036854775808", "9" * 20, "1e3", "abc",
    "%0D%0AX:%201", "%C3%A9", "%D9%A1%D9%A2", "%C2%B2", "%00", "%ED%A0%80", "%F0%9F%92%A5",
]
HOSTILE_TEXT = [
    "", "%0D%0AX:%201", "%00", "%C3%A9%E2%80%AE", "x" * 3000, "%ED%A0%80", "..%2F..%2Fetc%2Fpasswd",
    "//evil.example/", "/%5Cevil.example", "%3Cscript%3Ealert(1)%3C/script%3E", "1,2,%C2%B2", "1,99999999999999999999",
    "9999-12-31T23:59:59", "0001-01-01", "2024-01-01T00:00:00%2B14:00", "nan", "-0", "/%C3%A9t%C3%A9",
]
# One value of each kind, for the walk of every query parameter of every route.
QUERY_VALUES = [
    "", "-1", "2147483648", "9223372036854775808", "9" * 20, "abc", "%C2%B2", "%D9%A1%D9%A2", "%0D%0AX:%201", "%00",
    "%C3%A9%E2%80%AE", "x" * 3000, "%ED%A0%80", "/%5Cevil.example", "1,99999999999999999999", "1,,2",
    "9999-12-31T23:59:59", "2024-01-01T00:00:00%2B14:00", "nan",
]
STATIC_NAMES = ["app.css", "..%2F..%2FREADME.md", "%00", "vendor/..%2F..%2Fconfig.py", "a%0D%0Ab", "%C3%A9.css",
                "x" * 300, "vendor/"]
# Every query parameter a view, form or API schema reads (the API's: MessageQuery's fields).
QUERY_NAMES = ["before", "after", "oldest", "status", "newest", "pending", "since", "live", "webhook", "columns",
               "state", "next", "q", "type", "range", "all", "summary", "redis", "audit_before", "eventType",
               "until", "search", "limit", "cursor"]
# Visitors who are not administrators are turned away before a view reads its arguments: fewer values suffice.
VISITOR_NUMBERS = ["-1", "9" * 20, "abc", "%0D%0AX:%201", "%00", "%C2%B2"]
FORM_FIELDS = ["name", "url", "events", "enabled", "email", "password"]
# Form values as they appear in an urlencoded body: %ED%A0%80 and %FF are not UTF-8.
FORM_VALUES = ["", "%0D%0AX:%201", "%00", "%C3%A9%E2%80%AE", "x" * 3000, "%ED%A0%80", "%FF", "1" * 30, "-1",
               "https://%00/", "https://hooks.example.com/%2500", "asset.create%00", "%3Cscript%3E"]
ARGUMENT = re.compile(r"<(?:(?P<converter>[a-z]+)(?:\([^)]*\))?:)?(?P<name>\w+)>")


@dataclass
class World:
    """Rows for the walk to find: a webhook with a logged message and a test message, and an API token."""

    webhook_id: int
    message_id: int
    test_message_id: int
    token_id: int
    token: str
    message_uuid: str = ""
    replay_id: int = 0

    def valid(self, name: str) -> str:
        """An existing row's id for a path argument (a new argument name fails here, to be added)."""
        return str({"webhook_id": self.webhook_id, "message_id": self.message_id, "token_id": self.token_id,
                    "message_uuid": self.message_uuid, "replay_id": self.replay_id}[name])


@pytest.fixture
def world(app) -> World:
    with app.app_context():
        webhook, _ = create_webhook(WebhookFields("Walked", "https://hooks.example.com/walk", ("asset.create",), True))
        db.session.flush()
        message_id = make_message(webhook.id, MessageStatus.FAILED, age=timedelta(hours=1),
                                  attempts=[(False, 500, "http_status", "<b>no</b>")])
        test_message_id = create_test_message(webhook.id, 1)
        token_row, token = create_api_token("walk")
        replay_id = create_replay(webhook.id, utcnow() - timedelta(hours=2), "walk").id
        db.session.commit()
        return World(webhook.id, message_id, test_message_id, token_row.id, token,
                     db.session.get(Message, message_id).message_uuid, replay_id)


def path_variants(rule, world: World, hostile_numbers: list[str] = HOSTILE_NUMBERS) -> list[str]:
    """The rule's path with valid values, then with each argument in turn given every hostile value."""
    arguments = [(m.group("name"), m.group("converter") or "default") for m in ARGUMENT.finditer(rule.rule)]
    valid = []
    for name, converter in arguments:
        if converter == "path":
            valid.append(STATIC_NAMES[0])
        elif name == "message_id" and "/test/" in rule.rule:
            valid.append(str(world.test_message_id))
        else:
            valid.append(world.valid(name))
    combinations = [valid]
    for position, (_, converter) in enumerate(arguments):
        for value in STATIC_NAMES[1:] if converter == "path" else hostile_numbers:
            combinations.append([*valid[:position], value, *valid[position + 1:]])
    paths = []
    for combination in combinations:
        values = iter(combination)
        paths.append(ARGUMENT.sub(lambda _match, values=values: next(values), rule.rule))
    return paths


def destructive_last(rules):
    """Walk deleting and signing-out routes after the others, so the world stays in place for them."""
    return sorted(rules, key=lambda rule: rule.endpoint in {"webhooks.delete", "auth.logout"})


class Walker:
    """Sends requests as one visitor and collects every 5xx answer or exception."""

    def __init__(self, app, client, who: str, credentials: tuple[str, str] | None):
        self.app, self.client, self.who, self.credentials = app, client, who, credentials
        self.failures: list[str] = []
        self.sent = 0
        self.sign_in()

    def sign_in(self) -> None:
        if self.credentials:
            assert sign_in(self.client, *self.credentials).status_code == 302
        self.csrf = csrf_token_from(self.client, "/login")

    def send(self, method: str, url: str, **options) -> None:
        self.sent += 1
        try:
            status = self.client.open(url, method=method, **options).status_code
        except Exception as error:  # noqa: BLE001 - an exception is the 500 this walk looks for
            self.failures.append(f"{self.who} {method} {url:.160} {options.get('data')!r:.100}: {error!r:.200}")
            return
        if status >= 500:
            self.failures.append(f"{self.who} {method} {url:.160} {options.get('data')!r:.100}: HTTP {status}")
        if url.startswith("/logout") and method == "POST":
            self.sign_in()

    def report(self) -> str:
        """The first failures, one a line, and how many there were."""
        return "\n".join([f"{len(self.failures)} requests failed:", *self.failures[:40]])


def form_body(csrf: str, fields: dict[str, str]) -> dict:
    """Request options posting `fields` (values already percent-encoded) with the CSRF token."""
    body = "&".join(f"{name}={value}" for name, value in {"csrf_token": csrf, **fields}.items())
    return {"data": body.encode(), "content_type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize("who", ["anonymous", "viewer", "admin"])
def test_every_route_and_method_with_hostile_path_values_never_answers_500(app, client, world, who):
    """Each rule × each path value (valid, huge, negative, non-numeric, CR/LF, NUL, unicode) × each method
    (every method for the valid path; the rule's own and OPTIONS for the hostile ones), with a hostile query
    string and form body in turn, answers without a 5xx."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    make_user(app, VIEWER_EMAIL, VIEWER_PASSWORD, is_admin=False)
    credentials = {"anonymous": None, "viewer": (VIEWER_EMAIL, VIEWER_PASSWORD), "admin": (ADMIN_EMAIL, ADMIN_PASSWORD)}
    walker = Walker(app, client, who, credentials[who])
    counter = itertools.count()
    hostile_numbers = HOSTILE_NUMBERS if who == "admin" else VISITOR_NUMBERS
    for rule in destructive_last(app.url_map.iter_rules()):
        valid_path, *hostile_paths = path_variants(rule, world, hostile_numbers)
        own_methods = [method for method in METHODS if method in rule.methods or method == "OPTIONS"]
        for path, methods in [(valid_path, METHODS), *((path, own_methods) for path in hostile_paths)]:
            for method in methods:
                index = next(counter)
                query = "&".join(f"{name}={HOSTILE_TEXT[(index + n) % len(HOSTILE_TEXT)]}"
                                 for n, name in enumerate(QUERY_NAMES))
                value = FORM_VALUES[index % len(FORM_VALUES)]
                options = (form_body(walker.csrf, {field: value for field in FORM_FIELDS})
                           if method in {"POST", "PUT", "PATCH"} else {})
                walker.send(method, f"{path}?{query}", **options)
    assert walker.sent > 500
    assert walker.failures == [], walker.report()


def test_every_query_parameter_with_every_hostile_value_never_answers_500(app, client, world):
    """As an administrator, every GET route with every query parameter the app reads set to each hostile value
    at once (its forms and schemas check every field, so one bad value does not hide another), then each
    parameter alone with a value that rotates across routes, answers without a 5xx (huge and negative ids,
    malformed lists and times, CR/LF, NUL, unicode), as a page and as a fragment."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    walker = Walker(app, client, "admin", (ADMIN_EMAIL, ADMIN_PASSWORD))
    get_rules = [rule for rule in app.url_map.iter_rules() if "GET" in rule.methods]
    for route_index, rule in enumerate(get_rules):
        path = path_variants(rule, world)[0]
        for index, value in enumerate(QUERY_VALUES):
            query = "&".join(f"{name}={value}" for name in QUERY_NAMES)
            walker.send("GET", f"{path}?{query}", headers={"HX-Request": "true"} if index % 2 else {})
        for index, name in enumerate(QUERY_NAMES):
            value = QUERY_VALUES[(route_index + index) % len(QUERY_VALUES)]
            walker.send("GET", f"{path}?{name}={value}", headers={"HX-Request": "true"} if index % 2 else {})
    assert len(get_rules) * len(QUERY_NAMES) > len(QUERY_VALUES) * len(QUERY_NAMES)  # every pair, on some route
    assert walker.failures == [], walker.report()


def test_every_form_field_with_every_hostile_value_never_answers_500(app, client, world):
    """As an administrator with a valid CSRF token, every POST route × every form field × every hostile
    value (CR/LF, NUL, lone surrogates, 3,000 characters, …) answers without a 5xx."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    walker = Walker(app, client, "admin", (ADMIN_EMAIL, ADMIN_PASSWORD))
    for rule in destructive_last(app.url_map.iter_rules()):
        if "POST" not in rule.methods or rule.endpoint == "auth.logout":
            continue
        path = path_variants(rule, world)[0]
        for field in FORM_FIELDS:
            for value in FORM_VALUES:
                fields = {"name": "Walk", "events": "asset.create", "url": "https://hooks.example.com/x", field: value}
                walker.send("POST", path, headers={"HX-Request": "true"}, **form_body(walker.csrf, fields))
    assert walker.failures == [], walker.report()


def test_sign_in_with_good_credentials_and_a_hostile_next_never_answers_500(app, client):
    """Signing in with the right password and a ?next= holding CR/LF, backslashes or unicode lands on a local
    page (a NUL is refused with 400): never a 500, never another site."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    for value in HOSTILE_TEXT:
        token = csrf_token_from(client, "/login")
        response = client.post(f"/login?next={value}",
                               data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token})
        assert response.status_code in (302, 400), (value, response.status_code)  # 400: a NUL in the query
        if response.status_code == 302:
            assert response.location.startswith("/") and not response.location.startswith(("//", "/\\")), value
        client.post("/logout", data={"csrf_token": csrf_token_from(client, "/login")})


def test_the_api_with_a_live_token_and_hostile_bodies_never_answers_500(app, client, world):
    """POST /api/v1/events with a live token and hostile JSON bodies answers 4xx, never 5xx."""
    bodies = [
        b"", b"{", b"null", b"[]", b'"x"', b"1e999", b'{"type": "asset.create", "assetId": 1e999, "userId": 1}',
        b'{"type": "asset.create", "assetId": 99999999999999999999999, "userId": 1}',
        b'{"type": "asset.create\\u0000", "assetId": 1, "userId": 1}',
        b'{"type": "asset.create", "assetId": 1, "userId": 1, "eventId": "\\u0000"}',
        b'{"type": "asset.create", "assetId": 1, "userId": 1, "eventTime": 99999999999999999999}',
        b'{"type": "asset.create", "assetId": 1, "userId": 1, "eventTime": -99999999999}',
        b'{"type": "folder.update", "folderId": 1, "userId": 1, "changed": ["\\ud800"]}',
        b"\xff\xfe", b"[" * 100000,
    ]
    walker = Walker(app, client, "api", None)
    for body in bodies:
        for content_type in ("application/json", "application/x-www-form-urlencoded", "text/plain"):
            walker.send("POST", "/api/v1/events", data=body, content_type=content_type,
                        headers={"Authorization": f"Bearer {world.token}"})
    assert walker.failures == [], walker.report()
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Message).where(Message.is_test.is_(False))) == 1
