"""SMART App Launch 2.2 standalone launch in a real browser (Debian's chromium, driven
by Playwright) against a real server process: the login and consent pages work
without script, their CSP lets the consent form's redirect reach the app, and the
code the app receives buys a token that reads the patient's record.

The app's redirect URI is served by a tiny ``http.server`` on loopback, so the
browser really navigates there. A screenshot of the login page is left in /tmp for
a human to look at.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Browser, Frame, Page, sync_playwright
from smart_flow import PATIENT_SCOPES, Flow, Smart, query, read_patient

from conftest import ServerProcess
from rempart.config import Settings, StorageSettings

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path("/tmp/rempart-smart-login.png")
PATIENT_ID = "browser-pat-1"
CLIENT_ID = "browser-app"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} absent: install Debian's chromium (apt-get install chromium)",
)


class _Callback(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>app</title><p>back in the app</p>"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the URL from the browser, not from this log."""


@pytest.fixture(scope="module")
def redirect_uri() -> Iterator[str]:
    """The app's redirect URI, served on loopback for the length of the module."""
    app = ThreadingHTTPServer(("127.0.0.1", 0), _Callback)
    thread = threading.Thread(target=app.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{app.server_address[1]}/callback"
    finally:
        app.shutdown()
        app.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def smart(tmp_path_factory: pytest.TempPathFactory, redirect_uri: str) -> Iterator[Smart]:
    """A server with the app registered and its patient's record."""
    data = tmp_path_factory.mktemp("smart-browser") / "data"
    server = ServerProcess(Settings(storage=StorageSettings(data_dir=data))).start()
    try:
        smart = Smart(server)
        smart.add_public_client(CLIENT_ID, redirect_uri, PATIENT_SCOPES)
        smart.create_patient(PATIENT_ID)
        yield smart
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def authorize_url(smart: Smart, flow: Flow) -> str:
    return f"{smart.auth('authorize')}?{urlencode(flow.params())}"


def test_standalone_launch_in_chromium(smart: Smart, redirect_uri: str, page: Page) -> None:
    user = smart.add_user("paula", fhir_user=f"Patient/{PATIENT_ID}")
    flow = Flow(smart, CLIENT_ID, redirect_uri)
    flow.close()  # the browser runs the front channel; flow keeps PKCE and state
    login = page.goto(authorize_url(smart, flow))
    assert login is not None and login.status == 200
    assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
    assert login.headers["x-frame-options"] == "DENY"
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", user.password)
    page.fill("input[name=totp]", user.totp())
    page.click("button[name=login]")
    page.wait_for_selector("button[name=approve]")
    assert "patient/*.rs" in page.inner_text("main")
    # The consent form posts to the server, which redirects to the app: the page's CSP
    # (form-action) must allow that redirect, or the browser stops here.
    page.click("button[name=approve]")
    page.wait_for_url(f"{redirect_uri}?**")
    assert page.inner_text("p") == "back in the app"
    back = query(page.url)
    assert (back["state"], back["iss"]) == (flow.state, smart.base)
    answer = flow.exchange(back["code"])
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert tokens["patient"] == PATIENT_ID
    own = read_patient(smart, PATIENT_ID, tokens["access_token"])
    assert own.status_code == 200
    assert own.json()["id"] == PATIENT_ID
    assert SCREENSHOT.stat().st_size > 1000


def _framed(page: Page, url: str) -> Frame:
    """The frame that ``url`` loads in, once loaded, inside ``page``."""
    page.set_content(f'<iframe id="f" src="{escape(url)}"></iframe>')
    element = page.wait_for_selector("#f")
    assert element is not None
    frame = element.content_frame()
    assert frame is not None
    frame.wait_for_load_state()
    return frame


def test_login_page_cannot_be_framed(smart: Smart, redirect_uri: str, page: Page) -> None:
    """Chromium itself refuses to show the login form in a frame (clickjacking)."""
    flow = Flow(smart, CLIENT_ID, redirect_uri)
    flow.close()
    page.goto(redirect_uri)  # a page of another origin, that tries to frame the login
    control = _framed(page, redirect_uri)
    assert control.inner_text("p") == "back in the app"
    login = _framed(page, authorize_url(smart, flow))
    assert login.url.startswith("chrome-error://")
    assert login.query_selector("input[name=password]") is None
