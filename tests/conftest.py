"""Fixtures shared by the whole suite."""

from __future__ import annotations

import ipaddress
import socket

import pytest

LOOPBACK_NAMES = {"localhost", "testserver", ""}


def _is_loopback(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _block_internet(monkeypatch):
    """Refuse any connection that leaves the machine: tests talk to loopback services only."""
    real_connect = socket.socket.connect

    def guarded_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise RuntimeError(f"Tests may not reach the network (tried {address[0]!r}).")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


@pytest.fixture(autouse=True)
def _clear_cache():
    # Django is imported lazily so the emulator's tests also run with `-p no:django`.
    from django.conf import settings

    if not settings.configured:
        yield
        return
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def user_factory(db, django_user_model):
    """Make staff users: ``user_factory(role="Billing staff", with_totp=True)``."""
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
    from django.contrib.auth.models import Group

    counter = {"n": 0}

    def make(
        *,
        username: str | None = None,
        password: str = "correct horse battery staple",
        role: str | None = None,
        superuser: bool = False,
        staff: bool = True,
        with_totp: bool = False,
        email: str | None = None,
    ):
        counter["n"] += 1
        username = username or f"staff{counter['n']}"
        user = django_user_model.objects.create_user(
            username=username,
            email=email or f"{username}@ledgerlink.example",
            password=password,
            is_staff=staff,
            is_superuser=superuser,
        )
        if role:
            user.groups.add(Group.objects.get(name=role))
        user.plain_password = password
        user.totp_secret = None
        if with_totp:
            user.totp_secret = generate_totp_secret()
            TOTP.activate(user, user.totp_secret)
        return user

    return make


def totp_code(secret: str) -> str:
    """The current TOTP code for ``secret``, as an authenticator app would show it."""
    from allauth.mfa.totp.internal.auth import (
        format_hotp_value,
        hotp_value,
        yield_hotp_counters_from_time,
    )

    counters = list(yield_hotp_counters_from_time())
    return format_hotp_value(hotp_value(secret, counters[len(counters) // 2]))


# --- QuickBooks emulator ---------------------------------------------------------------------

EMULATOR_CLIENT_ID = "ledgerlink-test-client"
EMULATOR_CLIENT_SECRET = "ledgerlink-test-secret"
EMULATOR_REDIRECT_URI = "http://testserver/integrations/quickbooks/callback/"
EMULATOR_VERIFIER = "ledgerlink-test-verifier"


@pytest.fixture(scope="session")
def qbo_emulator():
    """The QBO emulator over real HTTP on a loopback port, for the whole session."""
    from qbo_emulator import start_emulator

    try:
        emulator = start_emulator(
            client_id=EMULATOR_CLIENT_ID,
            client_secret=EMULATOR_CLIENT_SECRET,
            redirect_uris=[EMULATOR_REDIRECT_URI],
            webhook_verifier=EMULATOR_VERIFIER,
            throttle=False,
        )
    except OSError as exc:  # pragma: no cover - only when loopback is unusable
        pytest.fail(f"The QBO emulator could not start on 127.0.0.1: {exc}")
    yield emulator
    emulator.stop()


@pytest.fixture
def qbo(qbo_emulator, settings):
    """Point the portal at the emulator, with a fresh sandbox company for this test."""
    settings.QBO_ENVIRONMENT = "emulator"
    settings.QBO_EMULATOR_URL = qbo_emulator.base_url
    settings.QBO_CLIENT_ID = EMULATOR_CLIENT_ID
    settings.QBO_CLIENT_SECRET = EMULATOR_CLIENT_SECRET
    settings.QBO_REDIRECT_URI = EMULATOR_REDIRECT_URI
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = EMULATOR_VERIFIER
    realm_id = qbo_emulator.realm_ids[0]
    qbo_emulator.app.reset_realm(realm_id)
    qbo_emulator.app.clear_log()
    return qbo_emulator


@pytest.fixture
def qbo_ui(qbo):
    from tests.qbo import EmulatorUI

    return EmulatorUI(qbo, qbo.realm_ids[0])


@pytest.fixture
def connection_factory(db, qbo):
    """A connected company with real emulator tokens (as after the Connect flow)."""
    from integrations.models import Connection

    def make(realm_id: str | None = None, **fields):
        from tests.qbo import connect_with_tokens

        connection = connect_with_tokens(qbo, realm_id)
        if fields:
            Connection.objects.filter(pk=connection.pk).update(**fields)
            connection.refresh_from_db()
        return connection

    return make
