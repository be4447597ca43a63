"""Sign-in throttling (django-axes): a username is locked out from one address after
AXES_FAILURE_LIMIT wrong passwords, on the staff UI's sign-in page and the admin's alike."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.urls import reverse

pytestmark = pytest.mark.django_db

LOCKED_OUT = "Too many failed sign-in attempts for this account from your address. Try again in 15 minutes."


@pytest.fixture
def users(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, for 25 tries
    ann = User.objects.create_user("ann", password="ann-right-pass", is_staff=True, is_superuser=True)
    bob = User.objects.create_user("bob", password="bob-right-pass", is_staff=True, is_superuser=True)
    return ann, bob


def sign_in(client, url: str, username: str, password: str, **extra):
    return client.post(url, {"username": username, "password": password}, **extra)


@pytest.mark.parametrize("login_url", [reverse("login"), reverse("admin:login")])
def test_twenty_five_wrong_passwords_lock_the_user_out_with_a_message(client, users, login_url):
    answers = [sign_in(client, login_url, "ann", f"wrong-{n}") for n in range(25)]
    assert [a.status_code for a in answers[:9]] == [200] * 9  # "wrong password", try again
    assert {a.status_code for a in answers[10:]} == {429}

    right = sign_in(client, login_url, "ann", "ann-right-pass")
    assert right.status_code == 429
    html = right.content.decode()
    assert LOCKED_OUT in html
    assert 'value="ann"' in html  # the sign-in page itself, the username kept
    assert "_auth_user_id" not in client.session

    # Another user at the same address is not affected.
    assert sign_in(client, login_url, "bob", "bob-right-pass").status_code == 302
    assert client.session["_auth_user_id"] == str(users[1].pk)


def test_the_same_user_from_another_address_can_still_sign_in(client, users):
    for n in range(12):
        sign_in(client, reverse("login"), "ann", f"wrong-{n}", REMOTE_ADDR="10.0.0.1")
    same_address = sign_in(client, reverse("login"), "ann", "ann-right-pass", REMOTE_ADDR="10.0.0.1")
    other_address = sign_in(client, reverse("login"), "ann", "ann-right-pass", REMOTE_ADDR="10.0.0.2")
    assert (same_address.status_code, other_address.status_code) == (429, 302)


def test_axes_reset_unlocks_and_a_success_before_the_limit_starts_the_count_again(client, users):
    for n in range(10):
        sign_in(client, reverse("login"), "ann", f"wrong-{n}")
    assert sign_in(client, reverse("login"), "ann", "ann-right-pass").status_code == 429
    call_command("axes_reset", verbosity=0)
    assert sign_in(client, reverse("login"), "ann", "ann-right-pass").status_code == 302
    client.logout()
    for n in range(9):  # under the limit again after the success
        sign_in(client, reverse("login"), "ann", f"wrong-{n}")
    assert sign_in(client, reverse("login"), "ann", "ann-right-pass").status_code == 302
