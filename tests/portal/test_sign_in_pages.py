"""Sign-in pages in the admin's look, with nothing to sign up for; refusals logged in one line."""

from __future__ import annotations

import io
import logging
import sys

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse

from portal.logfilters import ExpectedRefusals
from portal.roles import BILLING_STAFF


def test_the_sign_in_page_has_the_admin_look_and_no_sign_up(client, db):
    response = client.get(reverse("account_login") + "?next=/admin/")
    page = response.content.decode()
    assert response.status_code == 200
    # The admin's stylesheets, header and sign-in box.
    assert "admin/css/base.css" in page and "admin/css/login.css" in page
    assert '<div id="site-name"><a href="/admin/">Ledgerlink</a></div>' in page
    assert "login ll-entrance" in page  # the body class of the admin's own sign-in page
    assert "<title>Sign In | Ledgerlink</title>" in " ".join(page.split()).replace("> ", ">")
    assert 'name="login"' in page and 'name="password"' in page
    # Sign-up is closed: no link to it, no invitation.
    assert reverse("account_signup") not in page
    assert "sign up" not in page.lower()
    assert "Staff accounts are made by an administrator." in page


def test_the_closed_sign_up_page_says_how_accounts_are_made(client, db):
    page = client.get(reverse("account_signup")).content.decode()
    assert "Sign Up Closed" in page
    assert "staff accounts are made by an administrator" in page
    assert f'href="{reverse("account_login")}"' in page
    assert "<form" not in page


def test_account_pages_have_the_admin_header_and_a_way_back(client, user_factory):
    client.force_login(user_factory(role=BILLING_STAFF, username="hana"))
    page = client.get(reverse("mfa_index")).content.decode()
    assert '<div class="breadcrumbs"><a href="/admin/">Home</a> &rsaquo; Account</div>' in page
    assert "Welcome, <strong>hana</strong>." in page
    assert 'action="/admin/logout/"' in page
    # And the admin links to two-factor set-up from every page.
    admin = client.get(reverse("admin:index")).content.decode()
    assert f'<a href="{reverse("mfa_index")}">Two-factor authentication</a>' in admin


@pytest.fixture
def console():
    """What the configured console handler prints (settings.LOGGING), line by line."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        yield lambda: stream.getvalue().splitlines()
    finally:
        handler.setStream(previous)


def test_a_permission_refusal_is_logged_in_one_line(client, user_factory, console):
    client.force_login(user_factory(role=None, username="ivan"))
    response = client.get(reverse("admin:portal_item_defaults", args=[1]))
    assert response.status_code == 403
    lines = console()
    assert len(lines) == 1, lines
    assert (
        "WARNING django.request Forbidden (Permission denied): /admin/portal/item/1/defaults/"
        in (lines[0])
    )
    assert lines[0].endswith(" - You may not view items. (user ivan)")


def test_a_csrf_failure_is_logged_in_one_line(db, console):
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(reverse("account_login"), {"login": "x", "password": "y"})
    assert response.status_code == 403
    lines = console()
    assert len(lines) == 1, lines
    assert (
        "WARNING django.security.csrf Forbidden (CSRF cookie not set.): /accounts/login/"
        in (lines[0])
    )


def test_an_unexpected_error_keeps_its_traceback():
    def record_for(exc: Exception) -> logging.LogRecord:
        try:
            raise exc
        except Exception:
            return logging.LogRecord(
                "django.request", logging.ERROR, __file__, 1, "boom", (), sys.exc_info()
            )

    refusal, crash = record_for(PermissionDenied("No.")), record_for(RuntimeError("bug"))
    keep = ExpectedRefusals()
    assert keep.filter(refusal) and keep.filter(crash)
    assert refusal.exc_info is None and refusal.getMessage() == "boom - No."
    assert crash.exc_info is not None
    assert "Traceback" in logging.Formatter().format(crash)
