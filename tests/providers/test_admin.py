"""Configuring accounts in the admin: write-only credentials, provider admins only."""

from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from providers.models import ProviderAccount

ADD_URL = reverse("admin:providers_provideraccount_add")


def account_form(sandbox, **overrides) -> dict:
    data = {
        "name": "Kapture EU",
        "kind": "kapture",
        "base_url": sandbox.base_url("kapture"),
        "enabled": "on",
        "rate_limit": "5",
        "timeout": "5",
        "settings": "{}",
        "status_map": "{}",
        "priority_map": "{}",
        "paused_until": "",
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
        page = superuser_client.post(url, follow=True).content.decode()
        assert expected in page and " ms)" in page
    assert superuser_client.get(url).status_code == 405  # it records an attempt: never on a GET


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


# --- the form as a person uses it: tables, clearing, pause/resume, history -------------------
class FormFields(HTMLParser):
    """The values a browser would post for the page's change form (buttons excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self.select: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        name = attrs.get("name")
        if tag == "input" and name and attrs.get("type") not in ("submit", "button"):
            if attrs.get("type") == "checkbox":
                if "checked" in attrs:
                    self.values[name] = attrs.get("value") or "on"
            else:
                self.values[name] = attrs.get("value") or ""
        elif tag == "select" and name:
            self.select = name
            self.values.setdefault(name, "")
        elif tag == "option" and self.select and "selected" in attrs:
            self.values[self.select] = attrs.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "select":
            self.select = None


def posted_form(client, url: str) -> dict[str, str]:
    parser = FormFields()
    parser.feed(client.get(url).content.decode())
    return parser.values


def change_url(account) -> str:
    return reverse("admin:providers_provideraccount_change", args=[account.pk])


def table_row(values: dict, prefix: str, key: str) -> str:
    """The value input's name of the row whose key is `key` in the table `prefix`."""
    for name, value in values.items():
        if name.startswith(f"{prefix}__key__") and value == key:
            return name.replace("__key__", "__value__")
    raise AssertionError(f"no row {key} in {prefix}")


@pytest.mark.django_db
def test_maps_and_defaults_round_trip_through_the_tables_unchanged(superuser_client, account_factory):
    account = account_factory("knight")  # numeric priorities, a list-valued setting
    before = (account.settings, account.status_map, account.priority_map)
    values = posted_form(superuser_client, change_url(account))
    assert table_row(values, "status_map__outbound", "resolved")  # rows, not raw JSON
    response = superuser_client.post(change_url(account), values)
    assert response.status_code == 302, response.content.decode()[:3000]
    account.refresh_from_db()
    assert (account.settings, account.status_map, account.priority_map) == before
    assert "No fields changed" in LogEntry.objects.latest("action_time").get_change_message()


@pytest.mark.django_db
def test_editing_a_map_row_changes_that_mapping_and_the_history_names_it(superuser_client, account_factory):
    account = account_factory("knight")
    values = posted_form(superuser_client, change_url(account))
    values[table_row(values, "status_map__outbound", "resolved")] = "CLOSE"
    values[table_row(values, "priority_map__all", "low")] = "3"
    values[table_row(values, "settings__all", "environment")] = "Prod"
    blank_inbound = next(n for n, v in values.items() if n.startswith("status_map__inbound__key__") and not v)
    values[blank_inbound] = "TRIAGE"
    values[blank_inbound.replace("__key__", "__value__")] = "open"
    assert superuser_client.post(change_url(account), values).status_code == 302
    account.refresh_from_db()
    assert account.status_map["outbound"]["resolved"] == "CLOSE"
    assert account.status_map["inbound"]["TRIAGE"] == "open"
    assert account.priority_map["low"] == 3  # Knight speaks numbers: kept a number
    assert account.settings["environment"] == "Prod"
    assert account.settings["account_code_locators"][0]["SearchKey"] == "accountCode"
    message = LogEntry.objects.latest("action_time").get_change_message()
    assert "Status map" in message and "Priority map" in message and "Settings" in message
    assert "credentials" not in message


@pytest.mark.django_db
def test_a_map_pointing_at_an_unknown_console_status_is_refused(superuser_client, account_factory):
    account = account_factory("kapture")
    values = posted_form(superuser_client, change_url(account))
    values["status_map__inbound__value__0"] = "archived"  # not a console status
    response = superuser_client.post(change_url(account), values)
    assert response.status_code == 200
    assert "is not a console status" in response.content.decode()


@pytest.mark.django_db
def test_sync_engine_settings_of_the_wrong_type_are_refused_on_the_defaults_table(
    superuser_client, account_factory
):
    account = account_factory("kapture")
    values = posted_form(superuser_client, change_url(account))
    blank_keys = [n for n, v in values.items() if n.startswith("settings__all__key__") and not v]
    typed = [("breaker_threshold", "five"), ("retry_unknown_creates", "yes")]
    for name, (key, value) in zip(blank_keys[:2], typed, strict=True):
        values[name], values[name.replace("__key__", "__value__")] = key, value
    response = superuser_client.post(change_url(account), values)
    assert response.status_code == 200
    page = response.content.decode()
    assert "&#x27;breaker_threshold&#x27; must be a whole number from 1 to 1000" in page
    assert "&#x27;retry_unknown_creates&#x27; must be true or false" in page
    assert 'value="five"' in page  # what was typed is kept for correcting
    account.refresh_from_db()
    assert "breaker_threshold" not in account.settings  # nothing saved


@pytest.mark.parametrize(
    ("setting", "value", "refused"),
    [
        ("breaker_cooldown", 1e12, True),  # would overflow the pause time on every failure
        ("breaker_cooldown", float("inf"), True),  # JSON's Infinity
        ("breaker_threshold", float("inf"), True),
        ("breaker_threshold", 2.5, True),
        ("breaker_threshold", 5, False),
        ("retry_unknown_creates", "no", True),  # a non-empty string would read as "yes"
        ("retry_unknown_creates", False, False),
        ("allowed_groups", "Support EU", False),  # one name, as tickets/access.py reads it
        ("allowed_groups", ["Support EU", ""], True),
    ],
)
def test_sync_engine_settings_are_checked_by_value(setting, value, refused):
    from providers.forms import mapping_errors

    errors = mapping_errors(settings={setting: value}, status_map={}, priority_map={})
    assert bool(errors.get("settings")) is refused, errors


@pytest.mark.django_db
def test_an_optional_credential_can_be_cleared(superuser_client, account_factory, sandbox):
    grant = sandbox.credentials["motadata"]
    account = account_factory("motadata", credentials={**grant, "access_token": "tok-to-forget-123"})
    values = posted_form(superuser_client, change_url(account))
    assert "clear__motadata__access_token" in values or "clear__motadata__access_token" in (
        superuser_client.get(change_url(account)).content.decode()
    )
    values["clear__motadata__access_token"] = "on"
    assert superuser_client.post(change_url(account), values).status_code == 302
    account.refresh_from_db()
    assert "access_token" not in account.get_credentials()
    assert account.get_credentials()["username"] == grant["username"]
    message = LogEntry.objects.latest("action_time").get_change_message()
    assert message == "Changed credentials."


@pytest.mark.django_db
def test_clearing_a_credential_the_account_needs_is_refused(superuser_client, account_factory):
    account = account_factory("motadata", credentials={"access_token": "only-token-456"})
    values = posted_form(superuser_client, change_url(account))
    values["clear__motadata__access_token"] = "on"
    response = superuser_client.post(change_url(account), values)
    assert response.status_code == 200
    account.refresh_from_db()
    assert account.get_credentials() == {"access_token": "only-token-456"}


@pytest.mark.django_db
def test_pause_and_resume_from_the_account_page(superuser_client, account_factory):
    account = account_factory("kapture")
    pause_url = reverse("admin:providers_provideraccount_pause", args=[account.pk])
    assert superuser_client.get(pause_url).status_code == 405  # a state change needs a POST
    page = superuser_client.post(pause_url, follow=True).content.decode()
    account.refresh_from_db()
    assert account.paused_until > timezone.now() + timedelta(days=300)
    assert "Paused until resumed" in page and "Resume</button>" in page

    resume_url = reverse("admin:providers_provideraccount_resume", args=[account.pk])
    page = superuser_client.post(resume_url, follow=True).content.decode()
    account.refresh_from_db()
    assert account.paused_until is None
    assert "Pause</button>" in page
    history = superuser_client.get(reverse("admin:providers_provideraccount_history", args=[account.pk]))
    assert "Paused sync" in history.content.decode() and "Resumed sync" in history.content.decode()


@pytest.mark.django_db
def test_credential_changes_are_logged_without_values_and_no_page_shows_a_secret(
    superuser_client, account_factory
):
    secret = "kapture-secret-token-0042"
    account = account_factory("kapture", credentials={"token": "first-token-value-0041"})
    values = posted_form(superuser_client, change_url(account))
    values["cred__kapture__token"] = secret
    values["timeout"] = "7"
    assert superuser_client.post(change_url(account), values).status_code == 302
    account.refresh_from_db()
    assert account.get_credentials() == {"token": secret}
    message = LogEntry.objects.latest("action_time").get_change_message()
    assert "credentials" in message and "Timeout" in message

    pages = [
        change_url(account),
        reverse("admin:providers_provideraccount_changelist"),
        reverse("admin:providers_provideraccount_history", args=[account.pk]),
        reverse("admin:index"),
        reverse("sync_dashboard"),
    ]
    for url in pages:
        html = superuser_client.get(url).content.decode()
        assert secret not in html and "first-token-value-0041" not in html, url
    assert "Changed Timeout and credentials." in superuser_client.get(pages[2]).content.decode()
    assert "Changed Timeout and credentials." in superuser_client.get(pages[0]).content.decode()


@pytest.mark.django_db
def test_a_support_agent_cannot_pause_test_or_configure_an_account(client, account_factory):
    account = account_factory("kapture")
    agent = User.objects.create_user("agent", "agent@example.com", "pw", is_staff=True)
    agent.user_permissions.add(*Permission.objects.filter(content_type__app_label="tickets"))
    client.force_login(agent)
    client.post(reverse("admin:providers_provideraccount_pause", args=[account.pk]))
    client.post(reverse("admin:providers_provideraccount_test", args=[account.pk]))
    account.refresh_from_db()
    assert account.paused_until is None and account.last_ok_at is None
    history = reverse("admin:providers_provideraccount_history", args=[account.pk])
    assert client.get(history).status_code == 403
    dashboard = client.get(reverse("sync_dashboard")).content.decode()
    assert account.name in dashboard
    assert change_url(account) not in dashboard


@pytest.mark.django_db
def test_adding_an_account_through_the_page_leaves_blank_maps_to_the_provider_defaults(
    superuser_client, sandbox
):
    values = posted_form(superuser_client, ADD_URL)
    assert "status_map__outbound__rows" in values
    values.update(
        {
            "name": "Keliweb IT",
            "kind": "keliweb",
            "base_url": sandbox.base_url("keliweb"),
            **{f"cred__keliweb__{key}": value for key, value in sandbox.credentials["keliweb"].items()},
        }
    )
    blank_setting = next(n for n, v in values.items() if n.startswith("settings__all__key__") and not v)
    values[blank_setting] = "deptid"
    values[blank_setting.replace("__key__", "__value__")] = "1"
    response = superuser_client.post(ADD_URL, values)
    assert response.status_code == 302, response.content.decode()[:3000]
    account = ProviderAccount.objects.get(name="Keliweb IT")
    assert account.settings == {"deptid": 1}
    assert account.status_map == account.provider_class.default_status_map
    assert account.priority_map == account.provider_class.default_priority_map
    assert account.get_credentials() == sandbox.credentials["keliweb"]


# --- the inbound callback secret: never shown, rotated by provider admins ---------------------
def set_blank_setting(values: dict, key: str, value: str) -> None:
    blank = next(n for n, v in values.items() if n.startswith("settings__all__key__") and not v)
    values[blank], values[blank.replace("__key__", "__value__")] = key, value


def admin_pages(account) -> list[str]:
    return [
        change_url(account),
        reverse("admin:providers_provideraccount_changelist"),
        reverse("admin:providers_provideraccount_history", args=[account.pk]),
    ]


@pytest.mark.django_db
def test_a_callback_base_url_gives_the_account_a_secret_no_admin_page_shows(
    superuser_client, account_factory
):
    account = account_factory("knight")
    values = posted_form(superuser_client, change_url(account))
    set_blank_setting(values, "callback_base_url", "https://console.example.com")
    assert superuser_client.post(change_url(account), values).status_code == 302
    account.refresh_from_db()
    secret = account.get_callback_secrets()["current"]
    assert len(secret) >= 40 and secret not in str(account.settings)
    page = superuser_client.get(change_url(account)).content.decode()
    assert "Set on" in page and "Rotate callback secret</button>" in page
    for url in admin_pages(account):
        assert secret not in superuser_client.get(url).content.decode(), url


@pytest.mark.django_db
def test_rotating_from_the_account_page_says_until_when_the_old_secret_works(
    superuser_client, account_factory
):
    account = account_factory("knight", settings={"callback_base_url": "https://console.example.com"})
    old = account.get_callback_secrets()["current"]
    url = reverse("admin:providers_provideraccount_rotate_callback_secret", args=[account.pk])
    assert superuser_client.get(url).status_code == 405  # a state change needs a POST
    page = superuser_client.post(url, follow=True).content.decode()
    account.refresh_from_db()
    new = account.get_callback_secrets()["current"]
    assert new != old
    assert "tickets created from now on carry the new callback address" in page
    assert "The old secret keeps working until" in page
    assert "The previous secret is accepted until" in page  # on the account's page too
    history = superuser_client.get(admin_pages(account)[2]).content.decode()
    assert "Rotated the callback secret." in history
    for page_url in admin_pages(account):
        html = superuser_client.get(page_url).content.decode()
        assert old not in html and new not in html, page_url


@pytest.mark.django_db
def test_the_rotate_action_rotates_accounts_that_call_back_and_says_which_do_not(
    superuser_client, account_factory
):
    knight = account_factory("knight", settings={"callback_base_url": "https://console.example.com"})
    kapture = account_factory("kapture")
    old = knight.get_callback_secrets()["current"]
    page = superuser_client.post(
        reverse("admin:providers_provideraccount_changelist"),
        {
            "action": "rotate_callback_secrets",
            "_selected_action": [knight.pk, kapture.pk],
        },
        follow=True,
    ).content.decode()
    knight.refresh_from_db()
    assert knight.get_callback_secrets()["current"] != old
    assert "Sandbox kapture: Kapture CX does not call back." in page
    assert "The old secret keeps working until" in page


@pytest.mark.django_db
def test_a_support_agent_cannot_rotate_a_callback_secret(client, account_factory):
    account = account_factory("knight", settings={"callback_base_url": "https://console.example.com"})
    before = account.get_callback_secrets()
    agent = User.objects.create_user("agent", "agent@example.com", "pw", is_staff=True)
    agent.user_permissions.add(*Permission.objects.filter(content_type__app_label="tickets"))
    client.force_login(agent)
    client.post(reverse("admin:providers_provideraccount_rotate_callback_secret", args=[account.pk]))
    client.post(
        reverse("admin:providers_provideraccount_changelist"),
        {
            "action": "rotate_callback_secrets",
            "_selected_action": [account.pk],
        },
    )
    account.refresh_from_db()
    assert account.get_callback_secrets() == before


@pytest.mark.django_db
def test_a_callback_secret_typed_into_the_defaults_is_refused(superuser_client, account_factory):
    account = account_factory("knight")
    values = posted_form(superuser_client, change_url(account))
    set_blank_setting(values, "callback_secret", "typed-by-hand-0001")
    response = superuser_client.post(change_url(account), values)
    assert response.status_code == 200
    assert "is not a setting: the callback secret is kept encrypted" in response.content.decode()
    account.refresh_from_db()
    assert "callback_secret" not in account.settings


@pytest.mark.django_db
def test_a_loopback_base_url_is_refused_on_the_field_naming_the_allow_list(
    superuser_client, sandbox, settings
):
    settings.PROVIDER_PRIVATE_HOSTS = []  # the sandbox, on 127.0.0.1, is not allow-listed here
    response = superuser_client.post(ADD_URL, account_form(sandbox))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["base_url"] == [
        "127.0.0.1 resolves to a loopback address; provider accounts may only reach public hosts. "
        "To allow a host on your own network, add it to PROVIDER_PRIVATE_HOSTS."
    ]
    assert "add it to PROVIDER_PRIVATE_HOSTS" in response.content.decode()
    assert not ProviderAccount.objects.exists()


@pytest.mark.django_db
def test_the_allow_listed_sandbox_address_saves_and_another_port_on_it_does_not(
    superuser_client, sandbox, settings
):
    host, port = sandbox.server.server_address[:2]
    settings.PROVIDER_PRIVATE_HOSTS = [f"{host}:{port}"]
    assert superuser_client.post(ADD_URL, account_form(sandbox)).status_code == 302
    other = account_form(sandbox, name="Elsewhere", base_url=f"http://{host}:{port + 1}/kapture")
    response = superuser_client.post(ADD_URL, other)
    assert "loopback address" in response.context["adminform"].form.errors["base_url"][0]
