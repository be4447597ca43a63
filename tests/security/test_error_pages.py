"""A typed credential never reaches an error page, not even DEBUG's technical 500 page."""

from __future__ import annotations

import secrets
import sys

import pytest
from django.test import RequestFactory
from django.views.debug import technical_500_response

from providers.kapture import KaptureProvider
from tests.providers.test_admin import ADD_URL, account_form

pytestmark = pytest.mark.django_db

# Made at run time: the page shows source lines around each frame, and a literal in this
# file would be found there.
TYPED_TOKEN = f"typed-{secrets.token_hex(12)}"


def explode(*args, **kwargs):
    raise RuntimeError("an unexpected fault while checking the account")


@pytest.fixture
def debug_client(superuser_client, settings, monkeypatch):
    settings.DEBUG = True
    superuser_client.raise_request_exception = False  # answer like the server: the error page
    # The fault happens where the typed credentials are in hand (the form's clean).
    monkeypatch.setattr(KaptureProvider, "validate_credentials", classmethod(explode))
    return superuser_client


def test_the_debug_page_of_a_failed_account_save_does_not_show_the_typed_token(debug_client, sandbox):
    response = debug_client.post(ADD_URL, account_form(sandbox, cred__kapture__token=TYPED_TOKEN))
    assert response.status_code == 500
    page = response.content.decode()
    assert "an unexpected fault while checking the account" in page  # it is the technical page
    assert "cred__kapture__token" in page and "********************" in page  # POST, starred
    assert TYPED_TOKEN not in page


def test_the_debug_page_of_a_failed_change_or_action_does_not_show_it(debug_client, sandbox, account_factory):
    account = account_factory("kapture")
    from django.urls import reverse

    change = reverse("admin:providers_provideraccount_change", args=[account.pk])
    response = debug_client.post(
        change, account_form(sandbox, name=account.name, cred__kapture__token=TYPED_TOKEN)
    )
    assert response.status_code == 500 and TYPED_TOKEN not in response.content.decode()


def test_a_variable_holding_a_typed_password_is_hidden_whatever_its_name(settings):
    settings.DEBUG = True
    request = RequestFactory().post("/accounts/login/", {"username": "ann", "password": TYPED_TOKEN})

    def handler(request):
        whatever_name = {"pw": request.POST["password"]}  # noqa: F841 - shown on the page
        raise ValueError("sign-in broke")

    try:
        handler(request)
    except ValueError:
        page = technical_500_response(request, *sys.exc_info()).content.decode()
    assert "sign-in broke" in page and "whatever_name" in page
    assert TYPED_TOKEN not in page
