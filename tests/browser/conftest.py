"""Browser tests: Playwright (sync API) driving Debian's chromium against a live portal.

What runs where:
- The portal: pytest-django's ``live_server`` (a threaded server on the test database).
- QuickBooks: the bundled emulator, started once per session *after* the live server, so its
  registered redirect URI is exactly the live server's callback URL.
- Tasks: on PostgreSQL (CI), a real django-q2 worker: ``manage.py qcluster`` in its own
  process on the test database, its scheduler off, taking what the portal queues (the push on
  save, the Sync, Quick Sync and Retry buttons) through the ORM broker. After each click the
  test waits until the queue is empty and no run is going, then reloads the page, as a person
  waits for the result. On SQLite the test database lives in memory, out of another
  process's reach, so there django-q2's sync mode runs each task inline instead.
- Webhooks are off in these tests (the emulator gets no webhook URL): a pull happens when the
  person presses a button, which keeps the walk deterministic.

Chromium is /usr/bin/chromium (``make test`` installs Debian's package; Playwright's own
browser download is not used), launched with the flags this machine needs. Playwright gives
every launch a fresh, empty profile (its own temporary --user-data-dir).

Every page the tests visit is checked: no console error and no uncaught page error (the test
fails on one), no horizontal overflow of the page at 1280x800 nor at 390 px wide, no key
column (``KEY_COLUMNS``) clipped or scrolled out of its table at 1280 px, and at 390 px the
status badges of ``ON_SCREEN_NARROW`` on screen.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pytest

from tests.conftest import totp_code
from tests.sync.conftest import make_invoice  # noqa: F401  (a fixture, re-exported)

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
ARTIFACTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Console errors caused by a bug already reported against the app, by the URL that failed.
# Each entry is a bug to fix, not a rule: remove it once fixed, and the tests hold the line.
KNOWN_APP_BUGS: dict[str, str] = {}
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 390, "height": 844}

CLIENT_ID = "ledgerlink-browser-client"
CLIENT_SECRET = "ledgerlink-browser-secret"
VERIFIER = "ledgerlink-browser-verifier"
PASSWORD = "correct horse battery staple"

# The page may not be wider than the window, but for what sits inside a scrollable box (the
# admin's result tables scroll sideways on a phone). Returns the offenders, if any.
OVERFLOW_JS = """() => {
  const limit = window.innerWidth + 1;
  if (document.documentElement.scrollWidth <= limit) return [];
  const scrolls = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if ((o === 'auto' || o === 'scroll' || o === 'hidden') && p.clientWidth <= limit)
        return true;
    }
    return false;
  };
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.right > limit && r.width > 0 && !scrolls(el)) {
      out.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
               (el.className && typeof el.className === 'string'
                  ? '.' + el.className.trim().split(/\\s+/).join('.') : '') +
               ' right=' + Math.round(r.right));
    }
  }
  return out.length ? out.slice(0, 8) : ['document ' + document.documentElement.scrollWidth];
}"""


# Key columns that must show whole at 1280 px: (page path and query, as a regex; the table;
# its column headers). A key cell may not lie outside the window or outside any box that
# scrolls or clips it (the admin's result tables scroll sideways), and nothing inside it that
# clips (overflow hidden or auto) may be narrower than its content.
KEY_COLUMNS = [
    (r"^/admin/portal/invoice/(\?|$)", "#result_list", ["QuickBooks no.", "Status", "Total"]),
    (r"^/admin/portal/invoice/(add/|\d+/change/)", "#lines-group table", ["Tax rate", "Amount"]),
    (r"^/admin/quickbooks/", "#qbo-runs-table", ["API calls", "Message"]),
]
CLIPPED_JS = """(specs) => {
  const out = [];
  const boxes = (el) => {
    const found = [];
    for (let p = el.parentElement; p && p !== document.documentElement; p = p.parentElement) {
      if (getComputedStyle(p).overflowX !== 'visible') found.push(p);
    }
    return found;
  };
  const shown = (el) => {
    const r = el.getBoundingClientRect();
    if (r.left < -1 || r.right > window.innerWidth + 1) return false;
    return boxes(el).every((box) => {
      const b = box.getBoundingClientRect();
      return r.left >= b.left - 1 && r.right <= b.right + 1;
    });
  };
  const label = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (typeof el.className === 'string' && el.className.trim()
      ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
  const heading = (th) => (th.querySelector('.text') || th).innerText.trim().toLowerCase();
  for (const [pattern, tableSelector, headers] of specs) {
    if (!new RegExp(pattern).test(location.pathname + location.search)) continue;
    for (const table of document.querySelectorAll(tableSelector)) {
      if (!table.getClientRects().length) continue;
      const ths = Array.from(table.querySelectorAll('thead th'));
      for (const header of headers) {
        const th = ths.find((t) => heading(t) === header.toLowerCase());
        if (!th) { out.push(`${tableSelector} has no "${header}" column`); continue; }
        const cells = [th];
        for (const row of table.querySelectorAll('tbody tr')) {
          if (row.cells.length === th.parentElement.cells.length && row.getClientRects().length)
            cells.push(row.cells[th.cellIndex]);
        }
        for (const cell of cells) {
          if (!shown(cell)) { out.push(`"${header}" (${label(cell)}) is out of view`); break; }
          const cut = [cell, ...cell.querySelectorAll('*')].find((el) =>
            getComputedStyle(el).overflowX !== 'visible' && el.getClientRects().length &&
            el.scrollWidth > el.clientWidth + 1);
          if (cut) { out.push(`"${header}" (${label(cut)}) cuts its content`); break; }
        }
      }
    }
  }
  return out;
}"""
# What must be on screen at 390 px, not scrolled away inside its table: (path regex, selector).
ON_SCREEN_NARROW = [
    (r"^/admin/portal/invoice/(\?|$)", "#result_list td.field-qbo_sync_status .ll-badge"),
    (r"^/admin/portal/invoice/\d+/change/", "#qbo-invoice-status"),
    (r"^/admin/sync/syncrecord/(\?|$)", "#result_list td.field-status_badge .ll-badge"),
]
OFF_SCREEN_JS = """(specs) => {
  const out = [];
  for (const [pattern, selector] of specs) {
    if (!new RegExp(pattern).test(location.pathname + location.search)) continue;
    for (const el of document.querySelectorAll(selector)) {
      if (!el.getClientRects().length) continue;
      const r = el.getBoundingClientRect();
      let inside = r.left >= -1 && r.right <= window.innerWidth + 1;
      for (let p = el.parentElement; inside && p && p !== document.documentElement;
           p = p.parentElement) {
        if (getComputedStyle(p).overflowX === 'visible') continue;
        const b = p.getBoundingClientRect();
        inside = r.left >= b.left - 1 && r.right <= b.right + 1;
      }
      if (!inside) { out.push(`${selector} is off screen (right=${Math.round(r.right)})`); break; }
    }
  }
  return out;
}"""


@pytest.fixture(scope="session")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs Debian's chromium "
            "(apt-get install chromium), or set CHROMIUM to a Chromium binary."
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop on this thread while the browser is open;
    # Django would then refuse the ORM in the tests ("async context"). The test code is plain
    # synchronous code, so the check is lifted while the browser is open, and restored after.
    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # this run's screenshots only
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="session")
def qbo_live(live_server):
    """The QBO emulator, its redirect URI registered as the live server's callback URL."""
    from qbo_emulator import start_emulator

    emulator = start_emulator(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[f"{live_server.url}/integrations/quickbooks/callback/"],
        webhook_verifier=VERIFIER,
        throttle=False,
    )
    yield emulator
    emulator.stop()


@pytest.fixture(scope="package")
def task_worker(django_db_setup, django_db_blocker, live_server, qbo_live):
    """A django-q2 worker process on the test database (PostgreSQL), or None (SQLite).

    It stops when the browser tests are done: left running, it would take tasks that later
    tests queue for workers of their own (``tests/sync/test_killed_worker.py``)."""
    import signal
    import subprocess
    import sys

    from django.db import connection

    with django_db_blocker.unblock():
        vendor = connection.vendor
        db = dict(connection.settings_dict)
    if vendor != "postgresql":
        yield None
        return
    from urllib.parse import quote

    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "LEDGERLINK_ENV_FILE": os.devnull,
        "DATABASE_URL": f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        f"/{db['NAME']}",
        "Q_SCHEDULER": "false",
        "Q_WORKERS": "1",
        "QBO_ENVIRONMENT": "emulator",
        "QBO_EMULATOR_URL": qbo_live.base_url,
        "QBO_CLIENT_ID": CLIENT_ID,
        "QBO_CLIENT_SECRET": CLIENT_SECRET,
        "QBO_REDIRECT_URI": f"{live_server.url}/integrations/quickbooks/callback/",
        "QBO_WEBHOOK_VERIFIER_TOKEN": VERIFIER,
    }
    ARTIFACTS.parent.mkdir(parents=True, exist_ok=True)
    log = open(ARTIFACTS.parent / "qcluster.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def tasks_done(worker) -> int:
    """How many tasks the worker has finished (succeeded or failed); 0 with tasks inline."""
    if worker is None:
        return 0
    from django_q.models import Task

    return Task.objects.count()


def wait_for_tasks(worker, timeout: float = 60) -> bool:
    """Block until the worker has taken every queued task and no sync run is going.

    Returns whether there was anything to wait for. With tasks run inline, there never is.
    """
    import time

    if worker is None:
        return False
    from django_q.models import OrmQ

    from sync.models import SyncRun

    waited = False
    deadline = time.monotonic() + timeout
    while (
        OrmQ.objects.exists() or SyncRun.objects.filter(status__in=["queued", "running"]).exists()
    ):
        assert worker.poll() is None, "the django-q2 worker stopped (artifacts/qcluster.log)"
        assert time.monotonic() < deadline, "the worker did not finish the queued tasks in time"
        waited = True
        time.sleep(0.2)
    return waited


@pytest.fixture
def portal(transactional_db, live_server, qbo_live, task_worker, settings, monkeypatch):
    """The live portal pointed at the emulator (fresh sandbox company), and its worker."""
    from django_q.conf import Conf

    settings.QBO_ENVIRONMENT = "emulator"
    settings.QBO_EMULATOR_URL = qbo_live.base_url
    settings.QBO_CLIENT_ID = CLIENT_ID
    settings.QBO_CLIENT_SECRET = CLIENT_SECRET
    settings.QBO_REDIRECT_URI = f"{live_server.url}/integrations/quickbooks/callback/"
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = VERIFIER
    if task_worker is None:
        settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
        # django-q2 reads its configuration once, at import: flip the switch it reads.
        monkeypatch.setattr(Conf, "SYNC", True)
    for realm_id in qbo_live.realm_ids:
        qbo_live.app.reset_realm(realm_id)
    qbo_live.app.clear_log()
    live_server.worker = task_worker
    yield live_server
    # Nothing queued by this test may run against the next one's data.
    wait_for_tasks(task_worker)


@pytest.fixture
def qbo_ui(qbo_live):
    """Changes made in 'QuickBooks' (the emulator's control API), as an accountant would."""
    from tests.qbo import EmulatorUI

    return EmulatorUI(qbo_live, qbo_live.realm_ids[0])


class Screen:
    """One browser tab on the live portal, with the checks every visited page must pass."""

    def __init__(self, page, base_url: str, name: str, worker=None):
        self.page = page
        self.base_url = base_url
        self.worker = worker
        self._messages = ""
        self.name = name
        self.errors: list[str] = []
        self.known: set[str] = set()
        self.layout: list[str] = []
        self.checked: set[str] = set()
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def _console(self, message) -> None:
        if message.type != "error":
            return
        source = (message.location or {}).get("url", "")
        for suffix, why in KNOWN_APP_BUGS.items():
            if source.endswith(suffix):
                self.known.add(f"{suffix}: {why}")
                return
        self.errors.append(f"console error on {self.page.url}: {message.text} ({source})")

    # -- navigation -------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base_url}{path}"

    def visit(self, path: str):
        from playwright.sync_api import Error as PlaywrightError

        try:
            response = self.page.goto(self.url(path))
        except PlaywrightError as exc:
            # The page being left refreshed itself at that moment (Sync history and a tab
            # watching a run do): its own navigation aborted ours, which goes again.
            if "ERR_ABORTED" not in str(exc):
                raise
            response = self.page.goto(self.url(path))
        assert response is not None and response.status < 400, (
            f"{path} answered {response.status if response else 'nothing'}"
        )
        self.check()
        return response

    def click(self, selector: str) -> None:
        """Click something that loads a page (a link or a submit button), then check it.

        What the click queued is waited for (the worker's result), and the page reloaded to
        show it, as a person would; the messages the click produced are kept for reading.
        """
        done_before = tasks_done(self.worker)
        with self.page.expect_navigation():
            self.page.click(selector)
        self.check()
        self._messages = self._read_messages()
        # A fast worker may finish what the click queued before anything is waited for, so
        # the tasks it finished count too.
        if wait_for_tasks(self.worker) or tasks_done(self.worker) != done_before:
            self.page.reload()
            self.check()

    # -- checks -----------------------------------------------------------------------------

    def check(self) -> None:
        """No console errors so far; the page fits at 1280 px and at 390 px wide, its key
        columns show whole at 1280 px and its status badges are on screen at 390 px."""
        self.page.wait_for_load_state("load")
        self.assert_no_errors()
        key = self.page.url.split("#")[0]
        if key in self.checked:
            return
        self.checked.add(key)
        for size in (WIDE, NARROW):
            self.page.set_viewport_size(size)
            offenders = self.page.evaluate(OVERFLOW_JS)
            hidden = self.page.evaluate(
                *((CLIPPED_JS, KEY_COLUMNS) if size is WIDE else (OFF_SCREEN_JS, ON_SCREEN_NARROW))
            )
            if offenders or hidden:
                # Kept, not raised at once: the walk goes on and the test fails at its end
                # with every page that did not fit (a screenshot of each in artifacts/).
                path = self.page.url.split("?")[0].removeprefix(self.base_url).strip("/")
                name = f"too-wide-{size['width']}-{path.replace('/', '_') or 'root'}"
                self.shot(name, docs=False, full_page=True)
                if offenders:
                    self.layout.append(
                        f"{self.page.url} is wider than a {size['width']} px window: {offenders}"
                    )
                if hidden:
                    self.layout.append(
                        f"{self.page.url} at {size['width']} px hides what must show: {hidden}"
                    )
        self.page.set_viewport_size(WIDE)

    def assert_no_errors(self) -> None:
        errors, self.errors = self.errors, []
        assert not errors, "\n".join(errors)

    def shot(
        self, name: str, *, docs: bool = True, full_page: bool = False, narrow: bool = False
    ) -> None:
        """A 1280x800 screenshot: docs/screenshots/ (the README's) and artifacts/ (CI's).

        ``narrow`` takes it 390 px wide instead, for artifacts/ only.
        """
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        docs = docs and not narrow
        target = ARTIFACTS / (f"{name}.png" if docs else f"{self.name}-{name}.png")
        if narrow:
            self.page.set_viewport_size(NARROW)
        try:
            self.page.screenshot(path=str(target), full_page=full_page)
        finally:
            self.page.set_viewport_size(WIDE)
        if docs:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(target, SCREENSHOTS / f"{name}.png")

    # -- people -----------------------------------------------------------------------------

    def sign_in(self, user, *, password: str = PASSWORD) -> None:
        """Sign in through allauth's page, with the TOTP step when the person has one."""
        self.visit("/accounts/login/?next=/admin/")
        self.page.fill("input[name=login]", user.username)
        self.page.fill("input[name=password]", password)
        self.click("form button[type=submit], form input[type=submit]")
        if getattr(user, "totp_secret", None):
            assert "/accounts/2fa/authenticate/" in self.page.url, self.page.url
            self.page.fill("input[name=code]", totp_code(user.totp_secret))
            self.click("form button[type=submit], form input[type=submit]")
        assert self.page.url.rstrip("/").endswith("/admin"), self.page.url

    def sign_in_as(self, user) -> None:
        """Start signed in (a session made server-side): for tests that are not about login."""
        from django.conf import settings
        from django.test import Client

        client = Client()
        client.force_login(user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
        self.page.context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": self.base_url}]
        )

    # -- reading ----------------------------------------------------------------------------

    def text(self, selector: str = "body") -> str:
        return self.page.inner_text(selector)

    def messages(self) -> str:
        """The admin messages on the page, or those the last click showed before a reload."""
        return self._read_messages() or self._messages

    def _read_messages(self) -> str:
        locator = self.page.locator("ul.messagelist")
        return locator.inner_text() if locator.count() else ""


@pytest.fixture
def screen(browser, portal, request):
    context = browser.new_context(viewport=WIDE, base_url=portal.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    current = Screen(page, portal.url, request.node.name, worker=portal.worker)
    yield current
    problems = current.errors + current.layout
    context.close()
    for known in sorted(current.known):
        warnings.warn(f"Console error from a known app bug: {known}", stacklevel=1)
    assert not problems, "\n".join(problems)


@pytest.fixture
def staff(user_factory):
    """Make a staff member of a role: ``staff("Billing staff", with_totp=True)``."""

    def make(role: str, **kwargs):
        return user_factory(role=role, password=PASSWORD, **kwargs)

    return make


@pytest.fixture
def ready(portal, qbo_live):
    """A company connected and set up as a Sync administrator leaves it (made server-side,
    with real emulator tokens): accounts fetched, journals chosen, the tax rate mapped."""
    from tests.qbo import connect_with_tokens, set_up_for_sync

    connection = set_up_for_sync(connect_with_tokens(qbo_live))
    return connection
