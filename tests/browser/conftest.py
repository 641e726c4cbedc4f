"""What the browser tests share: a fresh Chromium context per test on the live server, and signing in."""

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_user

WAIT_MS = 5_000  # actions and expect() assertions, unless a test says otherwise


@pytest.fixture
def page(browser: Browser, live_server):
    """A fresh browser context on the live server (clipboard allowed); fails the test on any uncaught JavaScript
    error."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900},
                                  permissions=["clipboard-read", "clipboard-write"])
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    js_errors: list[str] = []
    tab.on("pageerror", lambda error: js_errors.append(str(error)))
    yield tab
    context.close()
    assert not js_errors, f"uncaught JavaScript errors: {js_errors}"


def sign_in_page(app, page: Page, path: str) -> Page:
    """Open a path on `page` as a new administrator: the sign-in form comes first, then the page itself."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    page.goto(path)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    # Signing in hashes the password (scrypt) and then loads the page: on a busy machine that alone can take
    # longer than an action's usual wait.
    page.get_by_role("button", name="Sign in").click(timeout=WAIT_MS * 4)
    expect(page).to_have_url(re.compile(re.escape(path) + r"$"), timeout=WAIT_MS * 4)
    # The URL changes before the page's scripts have run: a click that early reaches a button with no
    # handler yet (seen once in CI: a row's details never opened).
    page.wait_for_load_state("load", timeout=WAIT_MS * 4)
    return page


@pytest.fixture
def sign_in(app, page: Page):
    """A function that opens a path as a new administrator on the test's page."""

    def sign_in_to(path: str) -> Page:
        return sign_in_page(app, page, path)

    return sign_in_to
