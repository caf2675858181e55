"""What a person does during Connect to QuickBooks, step by step, against the emulator."""

from __future__ import annotations

import html
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import requests

QUICKBOOKS_PAGE = "/admin/quickbooks/"
CONNECT_URL = "/admin/quickbooks/connect/"
DISCONNECT_URL = "/admin/quickbooks/disconnect/"
TOKEN_PATH = "/oauth2/v1/tokens/bearer"


class _ConsentForm(HTMLParser):
    """The consent page's form: its action, hidden fields and the company radio buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.hidden: dict[str, str] = {}
        self.companies: list[str] = []
        self.buttons: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.action = attrs.get("action") or ""
        elif tag == "input" and attrs.get("type") == "hidden":
            self.hidden[attrs["name"]] = attrs.get("value") or ""
        elif tag == "input" and attrs.get("type") == "radio" and attrs.get("name") == "realm_id":
            self.companies.append(attrs["value"])
        elif tag == "button":
            self.buttons[attrs.get("id") or ""] = attrs.get("value") or ""


def start_connect(client) -> str:
    """Press Connect to QuickBooks in the admin; returns the authorize URL it redirects to."""
    response = client.get(CONNECT_URL)
    assert response.status_code == 302, response.status_code
    return response["Location"]


def consent(authorize_url: str, *, button: str = "connect", company: int = 0) -> str:
    """On the QuickBooks page: pick a company and press a button; returns the redirect."""
    page = requests.get(authorize_url, timeout=10)
    assert page.status_code == 200, page.text
    form = _ConsentForm()
    form.feed(page.text)
    data = {**form.hidden, "action": form.buttons[button]}
    if form.companies:
        data["realm_id"] = form.companies[company]
    answer = requests.post(
        urljoin(authorize_url, form.action), data=data, allow_redirects=False, timeout=10
    )
    assert answer.status_code in (302, 303), answer.text
    return answer.headers["Location"]


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def with_query(url: str, **changes: str | None) -> str:
    """``url`` as a local path with query parameters changed (None drops one)."""
    params = query_of(url)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return f"{urlsplit(url).path}?{urlencode(params)}"


def follow(client, url: str):
    """Open the callback (or any local URL) in the browser, following redirects."""
    parts = urlsplit(url)
    path = f"{parts.path}?{parts.query}" if parts.query else parts.path
    return client.get(path, follow=True)


def shown_messages(response) -> list[str]:
    """The admin messages on the page the person lands on, checked against the HTML too."""
    assert response.status_code == 200
    found = [str(m.message) for m in response.context["messages"]]
    page = response.content.decode()
    for message in found:
        assert html.escape(message) in page, message
    return found


def landed_on(response) -> str:
    return response.redirect_chain[-1][0] if response.redirect_chain else ""


def token_requests(emulator) -> list[dict]:
    return [e for e in emulator.app.requests_log() if e["path"] == TOKEN_PATH]
