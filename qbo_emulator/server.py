"""The HTTP server: one ``Emulator`` application behind a threading ``http.server``.

Standard library only, and no Django import, so the emulator runs standalone.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import errors
from .api import V3Api
from .clock import Clock
from .control import Control
from .faults import FaultInjector
from .oauth import ROTATION_SECONDS, OAuthServer
from .rules import Company
from .store import Realm, read_json, write_json_atomic
from .throttle import BATCH_PER_MINUTE, CONCURRENT, PER_MINUTE, Throttle
from .wire import Request, Response, new_tid

logger = logging.getLogger("qbo_emulator")

DISCOVERY_PATHS = (
    "/.well-known/openid_sandbox_configuration",
    "/.well-known/openid_configuration",
)
STATE_VERSION = 1
REQUEST_LOG_SIZE = 10000


@dataclass
class EmulatorConfig:
    """Everything the emulator can be started with; the mutable levers live in Options."""

    host: str = "127.0.0.1"
    port: int = 0
    client_id: str = "qbo-emulator-client"
    client_secret: str = "qbo-emulator-secret"
    redirect_uris: list[str] = field(default_factory=list)
    webhook_url: str | None = None
    webhook_verifier: str = "qbo-emulator-verifier"
    cloudevents: bool = False
    latency_ms: int = 0
    fault_rate: float = 0.0
    # A further chance that a write's answer is lost after it is applied (faults.py).
    lost_rate: float = 0.0
    seed: int | None = None
    throttle: bool = True
    state_file: str | None = None
    refresh_rotation_seconds: float = ROTATION_SECONDS
    per_minute: int = PER_MINUTE
    concurrent: int = CONCURRENT
    batch_per_minute: int = BATCH_PER_MINUTE
    realms: list[tuple[str, str]] | None = None
    webhook_batch_window: float | None = None
    webhook_retry_delays: list[float] | None = None
    # Intuit only notifies companies that are connected to the app.
    webhooks_require_connection: bool = True
    public_url: str | None = None


@dataclass
class Options:
    """Levers a running emulator lets tests change through ``/_emulator/options``."""

    latency_ms: int = 0
    webhooks_require_connection: bool = True
    # A write (a request carrying a requestid) is saved at once and its answer held this long,
    # or until the lever is set back to 0: the window in which a client that dies cannot know
    # its write was saved.
    hold_answers_ms: int = 0


class Emulator:
    """The application: routes requests and owns companies, OAuth, throttle and levers."""

    def __init__(self, config: EmulatorConfig) -> None:
        from .sandbox import DEFAULT_REALMS

        self.config = config
        self.clock = Clock()
        self.companies = list(config.realms or DEFAULT_REALMS)
        self.realms: dict[str, Realm] = {}
        # State changes counted against the ones the state file holds; see persist().
        self._changes = 0
        self._saved_changes = 0
        self._change_lock = threading.Lock()
        self._save_lock = threading.Lock()
        self.options = Options(
            latency_ms=config.latency_ms,
            webhooks_require_connection=config.webhooks_require_connection,
        )
        self.oauth = OAuthServer(
            clock=self.clock,
            client_id=config.client_id,
            client_secret=config.client_secret,
            redirect_uris=config.redirect_uris,
            companies=self.companies,
            rotation_seconds=config.refresh_rotation_seconds,
            on_change=self.mark_dirty,
        )
        self.throttle = Throttle(
            self.clock,
            enabled=config.throttle,
            per_minute=config.per_minute,
            concurrent=config.concurrent,
            batch_per_minute=config.batch_per_minute,
        )
        self.faults = FaultInjector(config.fault_rate, config.seed, config.lost_rate)
        self.dispatcher = self._make_dispatcher()
        self.api = V3Api(self)
        self.control = Control(self)
        self.base_url = ""
        self._log: deque[dict] = deque(maxlen=REQUEST_LOG_SIZE)
        self._log_seq = 0
        self._log_lock = threading.Lock()
        self._answers_released = threading.Condition()
        if not self._load_state():
            for realm_id, name in self.companies:
                self.realms[realm_id] = self._build_realm(realm_id, name)

    def _make_dispatcher(self):
        from .webhooks import WebhookDispatcher

        kwargs: dict = {"cloudevents": self.config.cloudevents, "clock": self.clock.time}
        if self.config.webhook_batch_window is not None:
            kwargs["batch_window"] = self.config.webhook_batch_window
        if self.config.webhook_retry_delays is not None:
            kwargs["retry_delays"] = self.config.webhook_retry_delays
        return WebhookDispatcher(self.config.webhook_url, self.config.webhook_verifier, **kwargs)

    # -- companies --------------------------------------------------------------------

    def _build_realm(self, realm_id: str, name: str) -> Realm:
        from .sandbox import build_company, build_extras

        now = self.clock.now()
        company = build_company(realm_id, company_name=name, now=now)
        extras = build_extras(now=now)
        company["Item"] = [*company["Item"], *extras["Item"]]
        for key in ("ExchangeRate", "Vendor", "Employee"):
            company[key] = extras[key]
        realm = Realm(realm_id, name)
        realm.load_company(company)
        return realm

    def reset_realm(self, realm_id: str) -> None:
        """Rebuild one realm's sandbox company, forgetting changes and requestids."""
        name = dict(self.companies)[realm_id]
        fresh = self._build_realm(realm_id, name)
        realm = self.realms[realm_id]
        with realm.lock:
            realm.objects = fresh.objects
            realm.tombstones = fresh.tombstones
            realm.next_ids = fresh.next_ids
            realm.next_doc_number = fresh.next_doc_number
            realm.requestids = {}
            realm.rates = fresh.rates
        self.mark_dirty()
        self.persist()

    def company(self, realm: Realm) -> Company:
        return Company(realm, self.clock)

    def publish(self, realm_id: str, events: list[tuple[str, str, str, str, str | None]]) -> None:
        """Send a batch of change events to the webhook dispatcher and note the change."""
        if not events:
            return
        self.mark_dirty()
        if self.options.webhooks_require_connection and (
            realm_id not in self.oauth.connected_realms()
        ):
            events.clear()
            return
        for entity, obj_id, operation, updated, deleted_id in events:
            self.dispatcher.notify(
                realm_id, entity, obj_id, operation, updated, deleted_id=deleted_id
            )
        events.clear()

    # -- persistence ------------------------------------------------------------------

    def mark_dirty(self) -> None:
        """Note a change of saved state (companies, rates, requestids, OAuth, the clock).

        Called after the change is made, possibly under a realm's or OAuth's lock, so it
        only counts; ``persist()`` writes.
        """
        with self._change_lock:
            self._changes += 1

    def persist(self) -> None:
        """Write the state file if anything changed since it was last written.

        Runs after every request (and after in-process changes), outside every realm lock,
        so a change is on disk before its answer leaves. Concurrent requests share a write
        that already holds their changes. A failed write is logged and tried again after the
        next request.
        """
        if not self.config.state_file:
            return
        with self._save_lock:
            with self._change_lock:
                changes = self._changes
            if changes == self._saved_changes:
                return
            try:
                self._write_state()
            except OSError:
                logger.exception("qbo_emulator.state.save_failed")
                return
            self._saved_changes = changes

    def save_state(self) -> None:
        """Write companies, rates, tokens and the clock offset to the state file, if one is
        set, changed or not. Raises OSError when the file cannot be written."""
        if not self.config.state_file:
            return
        with self._save_lock:
            with self._change_lock:
                changes = self._changes
            self._write_state()
            self._saved_changes = changes

    def _write_state(self) -> None:
        # Each realm is copied under its own lock; the file is replaced atomically.
        realms = {}
        for realm_id, realm in self.realms.items():
            with realm.lock:
                realms[realm_id] = realm.to_json()
        payload = {
            "version": STATE_VERSION,
            "clock_offset": self.clock.offset,
            "realms": realms,
            "oauth": self.oauth.to_json(),
        }
        write_json_atomic(self.config.state_file, payload)

    def _load_state(self) -> bool:
        data = read_json(self.config.state_file) if self.config.state_file else None
        if not data or data.get("version") != STATE_VERSION:
            return False
        self.clock.set_offset(data.get("clock_offset", 0.0))
        for realm_id, name in self.companies:
            saved = data["realms"].get(realm_id)
            realm = Realm.from_json(saved) if saved else self._build_realm(realm_id, name)
            if saved and "rates" not in saved:
                # A state file written before the rate table existed gets the seeded rates.
                realm.rates = self._build_realm(realm_id, name).rates
            self.realms[realm_id] = realm
        self.oauth.load_json(data.get("oauth", {}))
        return True

    def start_background(self) -> None:
        self.dispatcher.start()

    def stop_background(self) -> None:
        self.dispatcher.stop()
        self.save_state()

    # -- held answers -----------------------------------------------------------------

    def hold_answer(self) -> None:
        """Wait ``hold_answers_ms``, or until the lever is set back to 0."""
        deadline = time.monotonic() + self.options.hold_answers_ms / 1000.0
        with self._answers_released:
            while self.options.hold_answers_ms and (left := deadline - time.monotonic()) > 0:
                self._answers_released.wait(left)

    def set_hold_answers(self, milliseconds: int) -> None:
        """Set the lever; answers held longer than the new value go out now."""
        with self._answers_released:
            self.options.hold_answers_ms = max(0, milliseconds)
            self._answers_released.notify_all()

    # -- request log ------------------------------------------------------------------

    def requests_log(self, since: int = 0, realm_id: str | None = None) -> list[dict]:
        with self._log_lock:
            return [
                entry
                for entry in self._log
                if entry["seq"] > since and (realm_id is None or entry["realm_id"] == realm_id)
            ]

    def clear_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    def _record(self, request: Request, response: Response, tid: str, note: dict, took: float):
        with self._log_lock:
            self._log_seq += 1
            self._log.append(
                {
                    "seq": self._log_seq,
                    "time": self.clock.time(),
                    "method": request.method,
                    "path": request.path,
                    "query": {k: v[0] for k, v in request.query.items()},
                    "status": None if response.drop else response.status,
                    "dropped": response.drop,
                    "intuit_tid": tid,
                    "realm_id": note.get("realm_id"),
                    "fault": note.get("fault"),
                    "requestid": note.get("requestid"),
                    "replayed": note.get("replayed", False),
                    "held": note.get("held", False),
                    "minorversion": note.get("minorversion"),
                    "duration_ms": round(took * 1000, 3),
                }
            )

    # -- routing ----------------------------------------------------------------------

    def request_base_url(self, request: Request) -> str:
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        host = request.header("host")
        return f"http://{host}" if host else self.base_url

    def handle(self, request: Request) -> Response:
        """Answer one request; every answer carries an ``intuit_tid`` header."""
        tid = new_tid()
        started = time.perf_counter()
        note: dict = {}
        path = request.path
        control = path == "/_emulator" or path.startswith("/_emulator/")
        try:
            if control:
                response = self.control.handle(request)
            elif path.startswith("/v3/"):
                response = self.api.handle(request, note)
            else:
                response = self._oauth_route(request)
        except Exception:
            logger.error("qbo_emulator.request.crashed\n%s", traceback.format_exc())
            exc = errors.system_fault()
            response = Response.json(
                {"Fault": exc.fault(), "time": self.api.now_text()}, status=exc.status
            )
        response.headers.append(("intuit_tid", tid))
        if not control:
            self._record(request, response, tid, note, time.perf_counter() - started)
        self.persist()
        return response

    def _oauth_route(self, request: Request) -> Response:
        path = request.path
        method = request.method
        if path.rstrip("/") in DISCOVERY_PATHS and method == "GET":
            return Response.json(self.oauth.discovery(self.request_base_url(request)))
        if path == "/op/v1/jwks" and method == "GET":
            return Response.json({"keys": [self.oauth.signing_key.jwk()]})
        if path == "/connect/oauth2" and method in ("GET", "POST"):
            return self.oauth.authorize(request)
        if path == "/oauth2/v1/tokens/bearer" and method == "POST":
            return self.oauth.token(request)
        if path == "/v2/oauth2/tokens/revoke" and method == "POST":
            return self.oauth.revoke(request)
        if path == "/v1/openid_connect/userinfo" and method == "GET":
            return self.oauth.userinfo(request)
        if path == "/app/invoice" and method == "GET":
            from .webui import invoice_page

            return invoice_page(self, request)
        return Response(status=404, body=b"Not Found", content_type="text/plain")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus the
    # client's delayed ACK would add ~40 ms to every keep-alive request.
    disable_nagle_algorithm = True
    server_version = "qbo-emulator"
    sys_version = ""

    def log_message(self, format: str, *args) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        body = self._read_body()
        request = Request(
            method=self.command,
            target=self.path,
            headers=dict(self.headers.items()),
            body=body,
            client=self.client_address[0],
        )
        response = self.server.app.handle(request)
        if response.drop:
            # Close without a byte of answer: the client sees a dropped connection.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: Emulator) -> None:
        self.app = app
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address) -> None:
        # A client that went away before its answer (killed, timed out) is no fault here.
        if isinstance(sys.exc_info()[1], ConnectionError):
            logger.debug("qbo_emulator.client.gone %s", client_address)
            return
        super().handle_error(request, client_address)


class RunningEmulator:
    """An emulator serving in a background thread; ``stop()`` ends it."""

    def __init__(self, app: Emulator, server: _Server, thread: threading.Thread) -> None:
        self.app = app
        self._server = server
        self._thread = thread
        host, port = server.server_address[:2]
        self.host = host
        self.port = port
        self.base_url = f"http://{host}:{port}"
        app.base_url = self.base_url

    @property
    def clock(self) -> Clock:
        return self.app.clock

    @property
    def realm_ids(self) -> list[str]:
        return [realm_id for realm_id, _ in self.app.companies]

    def realm(self, realm_id: str) -> Realm:
        return self.app.realms[realm_id]

    def advance_clock(self, seconds: float) -> None:
        """Move emulator time forward, e.g. past a token's expiry."""
        self.app.clock.advance(seconds)
        self.app.mark_dirty()
        self.app.persist()

    def tokens(self, realm_id: str, scopes: str = "com.intuit.quickbooks.accounting") -> dict:
        """Mint a token pair for a realm without the consent page."""
        tokens = self.app.oauth.mint(realm_id, scopes.split())
        self.app.persist()
        return tokens

    def serve_forever(self) -> None:
        """Block until the server thread ends (used by the management command)."""
        while self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        """Stop serving, stop webhook delivery and write the state file."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self.app.stop_background()

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start_emulator(host: str = "127.0.0.1", port: int = 0, **settings) -> RunningEmulator:
    """Start a QBO emulator in a background thread and return it once it accepts requests.

    ``port=0`` picks a free port; ``settings`` are the fields of EmulatorConfig
    (client_id, client_secret, redirect_uris, webhook_url, webhook_verifier, cloudevents,
    latency_ms, fault_rate, lost_rate, seed, throttle, state_file, refresh_rotation_seconds, ...).
    Raises OSError when the address cannot be bound.
    """
    config = EmulatorConfig(host=host, port=port, **settings)
    app = Emulator(config)
    server = _Server((host, port), app)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.2},
        daemon=True,
        name=f"qbo-emulator-{server.server_address[1]}",
    )
    thread.start()
    app.start_background()
    return RunningEmulator(app, server, thread)


def config_summary(config: EmulatorConfig) -> dict:
    """The configuration without secrets, for the control endpoint."""
    data = asdict(config)
    for key in ("client_secret", "webhook_verifier"):
        data[key] = "***"
    return data
