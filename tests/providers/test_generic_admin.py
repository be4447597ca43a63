"""The generic kind in the admin: its API configuration edited by section, "Try it", and
accounts as code (export and import carry the configuration, import checks it)."""

from __future__ import annotations

import copy
import json

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from providers import api_config_form
from providers.config import ConfigError, import_accounts
from providers.models import ProviderAccount
from tests.providers.test_admin import ADD_URL, account_form


def kapture_config() -> dict:
    """The Kapture example the engine ships: a configuration the sandbox's Kapture speaks."""
    return copy.deepcopy(api_config_form.examples()["kapture"])


def generic_form(sandbox, config: dict, **overrides) -> dict:
    """The admin's add form for a generic account speaking Kapture: the Kapture account's form
    (tests/providers/test_admin.py) with the generic kind, its token and the API sections."""
    base = account_form(sandbox, name="Kapture generic", kind="generic", api_example="")
    del base["cred__kapture__token"]
    data = {
        **base,
        "cred__generic__token": sandbox.credentials["kapture"]["token"],
        **api_config_form.split(config),
    }
    return {**data, **overrides}


@pytest.fixture
def superuser_client(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def field_errors(response, field: str) -> list[str]:
    return list(response.context["adminform"].form.errors.get(field, []))


@pytest.mark.django_db
def test_a_generic_account_is_saved_from_its_sections_and_its_token_is_never_shown(superuser_client, sandbox):
    config = kapture_config()
    response = superuser_client.post(ADD_URL, generic_form(sandbox, config))
    assert response.status_code == 302, response.content.decode()[:3000]
    account = ProviderAccount.objects.get(name="Kapture generic")
    assert account.api_config == config
    assert account.get_credentials() == {"token": sandbox.credentials["kapture"]["token"]}
    # The account's maps start from the configuration's.
    assert account.status_map == config["status_map"]

    page = superuser_client.get(reverse("admin:providers_provideraccount_change", args=[account.pk]))
    html = page.content.decode()
    assert sandbox.credentials["kapture"]["token"] not in html
    for section in api_config_form.SECTIONS:
        assert section.title in html
    assert "Try a request" in html


@pytest.mark.django_db
def test_the_secret_the_auth_scheme_names_is_required_and_a_resave_changes_nothing(superuser_client, sandbox):
    config = kapture_config()
    response = superuser_client.post(ADD_URL, generic_form(sandbox, config, cred__generic__token=""))
    assert response.status_code == 200
    assert field_errors(response, "cred__generic__token"), response.context["adminform"].form.errors

    superuser_client.post(ADD_URL, generic_form(sandbox, config))
    account = ProviderAccount.objects.get()
    url = reverse("admin:providers_provideraccount_change", args=[account.pk])
    # The browser posts the sections back laid out as shown, with its own line ends.
    shown = {
        field: text.replace("\n", "\r\n") for field, text in api_config_form.split(account.api_config).items()
    }
    data = {
        **generic_form(sandbox, config, cred__generic__token=""),
        **shown,
        "status_map": json.dumps(account.status_map),
    }
    response = superuser_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    entry = LogEntry.objects.filter(object_id=str(account.pk)).order_by("-action_time").first()
    assert not any(section.label in entry.get_change_message() for section in api_config_form.SECTIONS)
    account.refresh_from_db()
    assert account.api_config == config


@pytest.mark.django_db
def test_a_mistake_is_shown_on_its_section_and_everything_typed_is_kept(superuser_client, sandbox):
    config = kapture_config()
    data = generic_form(sandbox, config)
    broken_update = data["api_update"].replace('"method": "POST"', '"method": "SEND"')
    assert broken_update != data["api_update"]
    bad_json = data["api_fetch"][:-3]  # cut short: not JSON any more
    response = superuser_client.post(ADD_URL, {**data, "api_update": broken_update, "api_fetch": bad_json})
    assert response.status_code == 200
    assert not ProviderAccount.objects.exists()
    assert any("'method'" in message for message in field_errors(response, "api_update"))
    assert any("Not valid JSON" in message for message in field_errors(response, "api_fetch"))
    assert field_errors(response, "api_create") == []
    form = response.context["adminform"].form
    # What was typed comes back as typed, the mistakes too.
    assert form["api_update"].value() == broken_update
    assert form["api_fetch"].value() == bad_json
    assert form["api_create"].value() == data["api_create"]


@pytest.mark.django_db
def test_a_template_error_is_reported_on_the_section_that_holds_it(superuser_client, sandbox):
    config = kapture_config()
    config["operations"]["create"]["path"] = "/add/{{ ticket.nonsense }}"
    response = superuser_client.post(ADD_URL, generic_form(sandbox, config))
    assert response.status_code == 200
    messages = field_errors(response, "api_create")
    assert messages and any("nonsense" in message for message in messages), messages


@pytest.mark.django_db
def test_a_whole_configuration_pasted_in_the_first_section_is_taken_apart(superuser_client, sandbox):
    config = kapture_config()
    data = generic_form(sandbox, {})
    data["api_general"] = json.dumps(config)
    response = superuser_client.post(ADD_URL, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert ProviderAccount.objects.get().api_config == config


@pytest.mark.django_db
def test_an_example_chosen_without_the_pages_script_fills_an_empty_configuration(superuser_client, sandbox):
    response = superuser_client.post(ADD_URL, generic_form(sandbox, {}, api_example="kapture"))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert ProviderAccount.objects.get().api_config == kapture_config()


@pytest.mark.django_db
def test_the_examples_offered_are_the_engines_five(superuser_client):
    html = superuser_client.get(ADD_URL).content.decode()
    assert len(api_config_form.examples()) == 5
    for name in api_config_form.examples():
        assert f'value="{name}"' in html
    assert 'id="api-examples"' in html


@pytest.mark.django_db
def test_a_generic_account_without_a_create_request_is_refused(superuser_client, sandbox):
    config = kapture_config()
    del config["operations"]["create"]
    response = superuser_client.post(ADD_URL, generic_form(sandbox, config))
    assert response.status_code == 200
    assert field_errors(response, "api_create"), response.context["adminform"].form.errors


@pytest.mark.django_db
def test_another_kind_keeps_no_api_configuration(superuser_client, sandbox):
    data = generic_form(sandbox, kapture_config(), kind="kapture")
    data["cred__kapture__token"] = data.pop("cred__generic__token")
    response = superuser_client.post(ADD_URL, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert ProviderAccount.objects.get().api_config == {}


# --- Try it -------------------------------------------------------------------------------------
def try_url(account) -> str:
    return reverse("admin:providers_provideraccount_try", args=[account.pk])


@pytest.fixture
def generic_account(sandbox):
    config = kapture_config()
    account = ProviderAccount(
        name="Kapture generic",
        kind="generic",
        base_url=sandbox.base_url("kapture"),
        api_config=config,
        status_map=config.get("status_map", {}),
        priority_map=config.get("priority_map", {}),
        timeout=3.0,
    )
    account.set_credentials({"token": sandbox.credentials["kapture"]["token"]})
    account.save()
    return account


@pytest.mark.django_db
def test_try_it_reads_a_pasted_http_200_failure_as_the_sync_would(superuser_client, sandbox, generic_account):
    response = superuser_client.post(
        try_url(generic_account),
        {
            "operation": "create",
            "ticket": "",
            "mode": "parse",
            "status": "200",
            "answer": '{"message": "title is missing", "status": "failed"}',
        },
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "The provider refused the request as invalid." in html
    assert "title is missing" in html
    assert "/add-ticket-from-other-source.html/v.2.0" in html
    assert sandbox.credentials["kapture"]["token"] not in html
    assert sandbox.state("kapture")["tickets"] == []  # nothing was sent


@pytest.mark.django_db
def test_try_it_sends_a_create_to_the_base_url_and_masks_the_token(
    superuser_client, sandbox, generic_account
):
    response = superuser_client.post(
        try_url(generic_account),
        {"operation": "create", "ticket": "", "mode": "send", "status": "200", "answer": ""},
    )
    html = response.content.decode()
    assert response.status_code == 200
    held = sandbox.state("kapture")["tickets"]
    assert len(held) == 1 and held[0]["title"] == "Sample ticket from Try it"
    assert held[0]["ticket_id"] in html  # the remote id read from the answer
    assert sandbox.credentials["kapture"]["token"] not in html
    assert "Authorization" in html


@pytest.mark.django_db
def test_try_it_on_another_kind_says_what_it_is_for(superuser_client, account_factory):
    account = account_factory("kapture")
    response = superuser_client.get(try_url(account))
    assert response.status_code == 200
    assert "Try it is for accounts of kind generic" in response.content.decode()


# --- accounts as code ---------------------------------------------------------------------------
@pytest.mark.django_db
def test_export_and_import_carry_the_configuration_and_the_secret_stays_in_the_environment(
    tmp_path, monkeypatch, sandbox, generic_account
):
    path = tmp_path / "accounts.json"
    call_command("export_accounts", "--output", str(path))
    document = json.loads(path.read_text())
    (entry,) = document["accounts"]
    assert entry["api_config"] == kapture_config()
    assert entry["credentials"] == {"token": {"env": "KAPTURE_GENERIC_TOKEN"}}
    assert sandbox.credentials["kapture"]["token"] not in path.read_text()

    # Into a fresh database: the same account, configuration and token.
    ProviderAccount.objects.all().delete()
    monkeypatch.setenv("KAPTURE_GENERIC_TOKEN", sandbox.credentials["kapture"]["token"])
    call_command("import_accounts", str(path))
    account = ProviderAccount.objects.get(name="Kapture generic")
    assert account.kind == "generic"
    assert account.api_config == kapture_config()
    assert account.get_credentials() == {"token": sandbox.credentials["kapture"]["token"]}
    # A second import changes nothing.
    report = import_accounts(json.loads(path.read_text()))
    assert report.unchanged == ["Kapture generic"]


@pytest.mark.django_db
def test_an_import_with_an_invalid_configuration_is_refused_and_names_the_problem(sandbox):
    config = kapture_config()
    config["operations"]["create"]["method"] = "SEND"
    document = {
        "accounts": [
            {
                "name": "Broken generic",
                "kind": "generic",
                "base_url": sandbox.base_url("kapture"),
                "api_config": config,
                "credentials": {"token": {"env": "BROKEN_TOKEN"}},
            }
        ]
    }
    with pytest.raises(ConfigError) as refused:
        import_accounts(document, environ={"BROKEN_TOKEN": "x"})
    problems = refused.value.problems
    assert any(
        problem.startswith("account 'Broken generic': api_config: create:") and "method" in problem
        for problem in problems
    ), problems
    assert not ProviderAccount.objects.exists()

    document["accounts"][0]["api_config"] = {}
    with pytest.raises(ConfigError) as refused:
        import_accounts(document, environ={"BROKEN_TOKEN": "x"})
    assert "needs its API configuration" in "\n".join(refused.value.problems)


@pytest.mark.django_db
def test_an_api_configuration_on_another_kind_is_refused(sandbox):
    document = {
        "accounts": [
            {
                "name": "Kapture EU",
                "kind": "kapture",
                "base_url": sandbox.base_url("kapture"),
                "api_config": kapture_config(),
                "credentials": {"token": {"env": "T"}},
            }
        ]
    }
    with pytest.raises(ConfigError) as refused:
        import_accounts(document, environ={"T": "x"})
    assert "only accounts of kind generic have an API configuration" in "\n".join(refused.value.problems)


@pytest.mark.django_db
def test_try_it_refuses_a_post_without_the_csrf_token(sandbox, generic_account):
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    response = client.post(
        try_url(generic_account),
        {"operation": "create", "ticket": "", "mode": "send", "status": "200", "answer": ""},
    )
    assert response.status_code == 403
    assert sandbox.state("kapture")["tickets"] == []
