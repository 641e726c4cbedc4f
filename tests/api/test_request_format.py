"""POST /api/v1/events takes UTF-8 JSON sent as application/json, and a JSON object with each key once."""

import json

import pytest
from api.helpers import ASSET_CREATE, URL, add_webhook, assert_error, bearer, post_event, stored_counts

DUPLICATE_KEYS = [
    pytest.param(b'{"type": "asset.delete", "assetId": 101, "userId": 1, "type": "asset.create"}', "type",
                 id="type-twice"),
    pytest.param(b'{"type": "asset.create", "assetId": 101, "userId": 1, "userId": 1}', "userId",
                 id="same-value-twice"),
    pytest.param(b'{"type": "asset.create", "assetId": 101, "userId": 1, "\\u0074ype": "asset.create"}', "type",
                 id="escaped-spelling"),
    pytest.param(b'{"type": "folder.update", "folderId": 9, "userId": 1, "changed": ["name"], '
                 b'"extra": {"deep": {"key": 1, "key": 2}}}', "key", id="nested-object"),
    pytest.param(b'{"type": "folder.update", "folderId": 9, "userId": 1, "changed": [{"name": 1, "name": 2}]}',
                 "name", id="object-in-a-list"),
]


@pytest.mark.parametrize(("raw", "key"), DUPLICATE_KEYS)
def test_a_key_sent_twice_is_refused_naming_the_key(app, client, api_token, raw, key):
    """A JSON object naming a key twice, at any depth, gets 400 naming that key instead of keeping the last one."""
    add_webhook(app)
    message = assert_error(post_event(client, api_token, raw=raw), 400, key)
    assert f'"{key}"' in message
    assert stored_counts(app) == (0, 0)


ACCEPTED_CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8",
                          "Application/JSON"]


@pytest.mark.parametrize("content_type", ACCEPTED_CONTENT_TYPES)
def test_json_with_or_without_a_utf8_charset_is_accepted(app, client, api_token, content_type):
    """application/json, with a utf-8 charset or none, in any letter case, is accepted."""
    add_webhook(app, events=("asset.create",))
    response = post_event(client, api_token, ASSET_CREATE, content_type=content_type)
    assert response.status_code == 202, response.get_data(as_text=True)
    assert stored_counts(app) == (1, 1)


REFUSED_CONTENT_TYPES = [
    pytest.param("text/plain", id="text-plain"),
    pytest.param("application/x-www-form-urlencoded", id="form-urlencoded"),
    pytest.param("application/json; charset=latin-1", id="latin-1-charset"),
    pytest.param("application/json; charset=utf-16", id="utf-16-charset"),
    pytest.param("application/jsonp", id="jsonp"),
]


@pytest.mark.parametrize("content_type", REFUSED_CONTENT_TYPES)
def test_another_content_type_gets_415(app, client, api_token, content_type):
    """A Content-Type other than application/json (or with a charset other than utf-8) gets 415 naming it."""
    add_webhook(app)
    response = post_event(client, api_token, ASSET_CREATE, content_type=content_type)
    message = assert_error(response, 415, "Content-Type")
    assert "application/json" in message
    assert stored_counts(app) == (0, 0)


def test_a_missing_content_type_gets_415(app, client, api_token):
    """A body sent without any Content-Type gets 415."""
    add_webhook(app)
    response = client.post(URL, data=json.dumps(ASSET_CREATE), headers=bearer(api_token))
    assert "Content-Type" not in response.request.headers
    assert_error(response, 415, "Content-Type")
    assert stored_counts(app) == (0, 0)


NOT_UTF8 = [
    pytest.param(b'\xff{"type": "asset.create"}', id="invalid-byte"),
    pytest.param(json.dumps(ASSET_CREATE).encode("utf-16"), id="utf-16"),
    pytest.param(json.dumps(ASSET_CREATE).encode("utf-16-le"), id="utf-16-without-bom"),
    pytest.param(json.dumps(ASSET_CREATE).encode("utf-32-le"), id="utf-32"),
    pytest.param(b'{"type": "asset.create", "assetId": 101, "userId": 1, "source": "upl\xe9ad"}', id="latin-1"),
]


@pytest.mark.parametrize("raw", NOT_UTF8)
def test_a_body_that_is_not_utf8_gets_415(app, client, api_token, raw):
    """JSON in another encoding (UTF-16 and UTF-32 included, which Python's json would guess) gets 415."""
    add_webhook(app)
    message = assert_error(post_event(client, api_token, raw=raw), 415, "body")
    assert "UTF-8" in message
    assert stored_counts(app) == (0, 0)


def test_authentication_is_still_checked_first(app, client):
    """Without a token, a wrong Content-Type or encoding still gets 401, revealing nothing else."""
    for content_type, data in (("text/plain", b"{}"), ("application/json", "{}".encode("utf-16"))):
        assert_error(client.post(URL, data=data, content_type=content_type), 401, "Authorization")
    assert stored_counts(app) == (0, 0)
