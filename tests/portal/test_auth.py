import pytest
from django.core import mail
from django.urls import reverse

from portal.roles import BILLING_STAFF
from tests.conftest import totp_code

ADMIN = "/admin/"


def test_admin_login_goes_through_allauth(client, db):
    response = client.get(reverse("admin:login") + "?next=/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert client.get(ADMIN)["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("identifier", ["username", "email"])
def test_staff_signs_in_with_username_or_email(client, user_factory, identifier):
    user = user_factory(role=BILLING_STAFF, username="alice", email="Alice@Example.com")
    login = "alice" if identifier == "username" else "alice@example.com"
    response = client.post(
        reverse("account_login") + "?next=/admin/",
        {"login": login, "password": user.plain_password},
    )
    assert response.status_code == 302
    assert response["Location"] == ADMIN
    assert client.get(ADMIN).status_code == 200


def test_wrong_password_is_refused_with_a_message(client, user_factory):
    user_factory(username="alice")
    response = client.post(reverse("account_login"), {"login": "alice", "password": "nope"})
    assert response.status_code == 200
    assert (
        "The username and/or password you specified are not correct." in response.content.decode()
    )
    assert client.get(ADMIN).status_code == 302


def test_login_with_totp_needs_the_code(client, user_factory):
    user = user_factory(role=BILLING_STAFF, username="bob", with_totp=True)
    response = client.post(
        reverse("account_login") + "?next=/admin/",
        {"login": "bob", "password": user.plain_password},
    )
    assert response["Location"] == reverse("mfa_authenticate")
    # Password alone is not enough.
    assert client.get(ADMIN).status_code == 302
    wrong = client.post(reverse("mfa_authenticate"), {"code": "000000"})
    assert "Incorrect code." in wrong.content.decode()
    assert client.get(ADMIN).status_code == 302
    response = client.post(reverse("mfa_authenticate"), {"code": totp_code(user.totp_secret)})
    assert response.status_code == 302
    assert response["Location"] == ADMIN
    assert client.get(ADMIN).status_code == 200


def test_recovery_code_signs_in_when_the_phone_is_lost(client, user_factory):
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes

    user = user_factory(username="carol", with_totp=True)
    codes = RecoveryCodes.activate(user).get_unused_codes()
    client.post(reverse("account_login"), {"login": "carol", "password": user.plain_password})
    response = client.post(reverse("mfa_authenticate"), {"code": codes[0]})
    assert response.status_code == 302
    assert client.get(ADMIN).status_code == 200


def test_failed_logins_are_rate_limited(client, user_factory):
    user = user_factory(username="dave")
    for _ in range(5):
        client.post(reverse("account_login"), {"login": "dave", "password": "wrong"})
    response = client.post(
        reverse("account_login"), {"login": "dave", "password": user.plain_password}
    )
    assert response.status_code == 200
    assert "Too many failed login attempts. Try again later." in response.content.decode()
    assert client.get(ADMIN).status_code == 302


def test_there_is_no_public_sign_up(client, db):
    response = client.get(reverse("account_signup"))
    assert "Sign Up Closed" in response.content.decode()
    client.post(
        reverse("account_signup"),
        {
            "username": "mallory",
            "email": "m@example.com",
            "password1": "a long enough pass 123",
            "password2": "a long enough pass 123",
        },
    )
    from django.contrib.auth import get_user_model

    assert not get_user_model().objects.filter(username="mallory").exists()


def test_password_reset_sends_an_email(client, user_factory):
    user_factory(username="erin", email="erin@example.com")
    response = client.post(reverse("account_reset_password"), {"email": "erin@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["erin@example.com"]
    assert "/accounts/password/reset/key/" in mail.outbox[0].body


def test_non_staff_cannot_use_the_admin(client, user_factory):
    user = user_factory(username="frank", staff=False)
    client.post(reverse("account_login"), {"login": "frank", "password": user.plain_password})
    assert client.get(ADMIN).status_code == 302
    assert client.get(reverse("admin:login")).status_code == 403


def test_required_two_factor_sends_staff_to_set_it_up_first(client, user_factory, settings):
    settings.STAFF_REQUIRE_MFA = True
    user = user_factory(role=BILLING_STAFF, username="gina")
    client.post(reverse("account_login"), {"login": "gina", "password": user.plain_password})
    response = client.get(reverse("admin:portal_invoice_changelist"))
    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_activate_totp")
    # allauth asks for the password again before an authenticator is added.
    page = client.get(response["Location"], follow=True)
    assert "Two-factor authentication is required for staff." in page.content.decode()
    client.post(page.redirect_chain[-1][0], {"password": user.plain_password})
    activate = client.get(reverse("mfa_activate_totp"))
    assert activate.status_code == 200
    secret = client.session["mfa.totp.secret"]
    done = client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
    assert done.status_code == 302
    assert client.get(reverse("admin:portal_invoice_changelist")).status_code == 200


def test_required_two_factor_lets_staff_with_totp_in(client, user_factory, settings):
    settings.STAFF_REQUIRE_MFA = True
    client.force_login(user_factory(role=BILLING_STAFF, with_totp=True))
    assert client.get(reverse("admin:portal_invoice_changelist")).status_code == 200
