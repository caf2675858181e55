"""`make demo`'s login: the same password on every start, and where QuickBooks stands."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.utils import timezone

from portal import bootstrap_env

PASSWORD = "demo-password-from-env"


def load(**options) -> list[str]:
    out = io.StringIO()
    call_command("load_demo_data", stdout=out, **options)
    return out.getvalue().splitlines()


@pytest.fixture
def demo_password(settings):
    settings.DEMO_PASSWORD = PASSWORD
    return PASSWORD


def test_the_demo_login_keeps_its_password_across_starts(db, demo_password):
    first = load()
    assert f"Login: demo   Password: {PASSWORD}   (set now)" in first
    second = load()
    assert f"Login: demo   Password: {PASSWORD}   (unchanged since the last start)" in second
    user = authenticate(username="demo", password=PASSWORD)
    assert user is not None and user.is_staff
    # Loading again keeps the records too.
    assert "Demo data: created 0 tax rates, 0 customers, 0 items, 0 invoices" in second[0]


def test_a_password_changed_since_is_reset_and_says_so(db, demo_password, django_user_model):
    load()
    user = django_user_model.objects.get(username="demo")
    user.set_password("something else entirely")
    user.save()
    lines = load()
    assert any(
        line.startswith(f"Login: demo   Password: {PASSWORD}   (CHANGED:") for line in lines
    ), lines
    assert authenticate(username="demo", password=PASSWORD) is not None


def test_without_demo_password_each_start_makes_a_new_one_and_says_how_to_keep_it(db, settings):
    settings.DEMO_PASSWORD = ""
    first = next(line for line in load() if line.startswith("Login:"))
    second = next(line for line in load() if line.startswith("Login:"))
    assert first != second
    assert "set DEMO_PASSWORD in .env to keep it across starts" in second
    password = second.split("Password: ")[1].split()[0]
    assert authenticate(username="demo", password=password) is not None


def test_the_command_says_to_press_connect_until_a_company_is_connected(db, demo_password):
    from integrations.models import Connection

    assert load()[-1] == (
        "QuickBooks: not connected. Sign in, open QuickBooks (top right) and press Connect "
        "to QuickBooks."
    )
    now = timezone.now()
    connection = Connection.objects.create(
        environment="emulator",
        realm_id="9130000000000001",
        company_name="Sandbox Company",
        status=Connection.Status.CONNECTED,
        connected_at=now,
        access_token_expires_at=now + timedelta(hours=1),
        refresh_token_expires_at=now + timedelta(days=100),
    )
    assert load()[-1] == (
        "QuickBooks: connected to Sandbox Company (realm 9130000000000001). Sign in and press "
        "Sync now on the QuickBooks page."
    )
    Connection.objects.filter(pk=connection.pk).update(
        status=Connection.Status.NEEDS_RECONNECT, last_error="The authorization was revoked."
    )
    assert load()[-1].startswith(
        "QuickBooks: Sandbox Company needs reconnecting (The authorization was revoked.)"
    )


def test_the_demo_env_gets_a_demo_password_once(tmp_path):
    env_file = tmp_path / ".env"
    bootstrap_env.main(env_file)
    bootstrap_env.main(env_file)
    passwords = [
        line.split("=", 1)[1]
        for line in env_file.read_text().splitlines()
        if line.startswith("DEMO_PASSWORD=")
    ]
    assert len(passwords) == 1 and len(passwords[0]) >= 12
