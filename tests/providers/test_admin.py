"""Configuring accounts in the admin: write-only credentials, provider admins only."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from providers.models import ProviderAccount

ADD_URL = reverse("admin:providers_provideraccount_add")


def account_form(sandbox, **overrides) -> dict:
    data = {
        "name": "Kapture EU", "kind": "kapture", "base_url": sandbox.base_url("kapture"),
        "enabled": "on", "rate_limit": "5", "timeout": "5", "settings": "{}",
        "status_map": "{}", "priority_map": "{}", "paused_until": "",
        "cred__kapture__token": sandbox.credentials["kapture"]["token"],
    }
    return {**data, **overrides}


@pytest.fixture
def superuser_client(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.mark.django_db
def test_a_provider_admin_adds_an_account_and_the_token_is_never_shown_again(superuser_client, sandbox):
    token = sandbox.credentials["kapture"]["token"]
    response = superuser_client.post(ADD_URL, account_form(sandbox))
    assert response.status_code == 302, response.content.decode()[:2000]
    account = ProviderAccount.objects.get(name="Kapture EU")
    assert account.get_credentials() == {"token": token}
    assert account.status_map["outbound"]["resolved"] == "RS"  # defaults from the provider module

    page = superuser_client.get(reverse("admin:providers_provideraccount_change", args=[account.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert token not in html
    assert "Leave blank to keep it" in html


@pytest.mark.django_db
def test_saving_with_a_blank_credential_keeps_the_stored_one(superuser_client, sandbox):
    superuser_client.post(ADD_URL, account_form(sandbox))
    account = ProviderAccount.objects.get(name="Kapture EU")
    url = reverse("admin:providers_provideraccount_change", args=[account.pk])
    response = superuser_client.post(url, account_form(sandbox, timeout="9", cred__kapture__token=""))
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.timeout == 9
    assert account.get_credentials() == {"token": sandbox.credentials["kapture"]["token"]}


@pytest.mark.django_db
def test_a_new_account_without_its_credential_is_refused_on_the_field(superuser_client, sandbox):
    response = superuser_client.post(ADD_URL, account_form(sandbox, cred__kapture__token=""))
    assert response.status_code == 200
    assert "Kapture CX needs this credential." in response.content.decode()
    assert not ProviderAccount.objects.exists()


@pytest.mark.django_db
def test_test_connection_reports_the_result_and_latency(superuser_client, sandbox, account_factory):
    good = account_factory("kapture")
    bad = account_factory("kapture", name="bad", credentials={"token": "wrong"})
    for account, expected in ((good, "accepted the token"), (bad, "Invalid Auth Key")):
        url = reverse("admin:providers_provideraccount_test", args=[account.pk])
        page = superuser_client.get(url, follow=True).content.decode()
        assert expected in page and " ms)" in page


@pytest.mark.django_db
def test_a_support_agent_cannot_reach_provider_accounts(client, account_factory):
    account = account_factory("kapture")
    agent = User.objects.create_user("agent", "agent@example.com", "pw", is_staff=True)
    agent.user_permissions.add(*Permission.objects.filter(content_type__app_label="tickets"))
    client.force_login(agent)
    for url in (
        reverse("admin:providers_provideraccount_changelist"),
        reverse("admin:providers_provideraccount_change", args=[account.pk]),
        ADD_URL,
    ):
        assert client.get(url).status_code == 403, url
    assert "Provider accounts" not in client.get(reverse("admin:index")).content.decode()
