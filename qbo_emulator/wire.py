"""Plain request and response objects passed between the HTTP layer and the handlers."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

JSON_TYPE = "application/json;charset=UTF-8"


@dataclass
class Request:
    """One HTTP request, decoupled from the socket so handlers stay testable."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes = b""
    client: str = ""
    path: str = field(init=False)
    query: dict[str, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.target)
        self.path = parts.path
        self.query = parse_qs(parts.query, keep_blank_values=True)
        self.headers = {k.lower(): v for k, v in self.headers.items()}

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";")[0].strip().lower()

    def form(self) -> dict[str, str]:
        """The url-encoded body, first value of each field."""
        parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}


@dataclass
class Response:
    """What to send back; ``drop`` closes the socket without answering."""

    status: int = 200
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: bool = False
    fault_kind: str | None = None

    @classmethod
    def json(cls, payload: object, status: int = 200, **kwargs) -> Response:
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return cls(status=status, body=data, **kwargs)

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(status=status, body=text.encode("utf-8"), content_type="text/html;charset=UTF-8")

    @classmethod
    def redirect(cls, location: str) -> Response:
        return cls(status=302, content_type="text/plain", headers=[("Location", location)])


def new_tid() -> str:
    """An ``intuit_tid`` in QBO's shape, e.g. ``1-6239ef57-12b393bc6e87cb646d9147e2``."""
    return f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"
