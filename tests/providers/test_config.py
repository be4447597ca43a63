"""Accounts as code: export writes env references, import is idempotent and all-or-nothing."""

import json

import pytest
import yaml
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from providers.config import ConfigError, import_accounts
from providers.models import ProviderAccount

FIELDS = ("kind", "base_url", "enabled", "rate_limit", "timeout", "settings", "status_map", "priority_map")


def snapshot() -> dict:
    return {
        a.name: ({f: getattr(a, f) for f in FIELDS}, a.get_credentials())
        for a in ProviderAccount.objects.all()
    }


def export(tmp_path, fmt: str) -> tuple[str, dict]:
    path = tmp_path / f"accounts.{fmt}"
    call_command("export_accounts", "--output", str(path))
    text = path.read_text()
    return str(path), (yaml.safe_load(text) if fmt == "yaml" else json.loads(text))


def run_import(path: str, *args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("import_accounts", path, *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def configured(account_factory, sandbox):
    knight = account_factory("knight", name="Knight prod", rate_limit=2.5)
    outbound = {**knight.status_map["outbound"], "resolved": "CLOSE"}
    knight.status_map = {**knight.status_map, "outbound": outbound}  # a copy: never the class's default
    knight.save()
    account_factory("kapture", name="Kapture EU")
    return sandbox


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_export_then_import_recreates_the_accounts_and_a_second_import_changes_nothing(
    tmp_path, monkeypatch, configured, fmt
):
    before = snapshot()
    path, document = export(tmp_path, fmt)
    text = open(path).read()
    for _fields, credentials in before.values():
        assert all(value not in text for value in credentials.values()), "a secret was exported"
    kapture = next(a for a in document["accounts"] if a["name"] == "Kapture EU")
    assert kapture["credentials"] == {"token": {"env": "KAPTURE_EU_TOKEN"}}

    monkeypatch.setenv("KAPTURE_EU_TOKEN", configured.credentials["kapture"]["token"])
    monkeypatch.setenv("KNIGHT_PROD_SOURCE_TOKEN", configured.credentials["knight"]["source_token"])
    ProviderAccount.objects.all().delete()
    output = run_import(path)
    assert "created: Kapture EU" in output and "2 created, 0 updated, 0 unchanged" in output
    assert snapshot() == before

    entries = LogEntry.objects.count()
    stamps = list(ProviderAccount.objects.values_list("credentials_updated_at", "updated_at"))
    output = run_import(path)
    assert "0 created, 0 updated, 2 unchanged" in output
    assert LogEntry.objects.count() == entries
    assert list(ProviderAccount.objects.values_list("credentials_updated_at", "updated_at")) == stamps


@pytest.mark.django_db
def test_the_callback_secret_is_never_exported_and_a_re_import_keeps_it(tmp_path, monkeypatch, configured):
    knight = ProviderAccount.objects.get(name="Knight prod")
    knight.settings = {**knight.settings, "callback_base_url": "https://console.example.com"}
    knight.save()
    secret = knight.get_callback_secrets()["current"]
    # Written by hand (a shell), past the form's check: still never exported.
    ProviderAccount.objects.filter(pk=knight.pk).update(
        settings={**knight.settings, "callback_secret": "hand-written-secret-1"}
    )
    for fmt in ("yaml", "json"):
        path, document = export(tmp_path, fmt)
        text = open(path).read()
        assert secret not in text and "hand-written-secret-1" not in text and "callback_secret" not in text
    ProviderAccount.objects.filter(pk=knight.pk).update(settings=knight.settings)

    monkeypatch.setenv("KAPTURE_EU_TOKEN", configured.credentials["kapture"]["token"])
    monkeypatch.setenv("KNIGHT_PROD_SOURCE_TOKEN", configured.credentials["knight"]["source_token"])
    assert "0 created, 0 updated, 2 unchanged" in run_import(path)
    assert ProviderAccount.objects.get(pk=knight.pk).get_callback_secrets()["current"] == secret


@pytest.mark.django_db
def test_an_import_reports_and_records_what_it_changed(tmp_path, monkeypatch, configured):
    path, document = export(tmp_path, "yaml")
    monkeypatch.setenv("KAPTURE_EU_TOKEN", "a-rotated-token-777")
    knight = next(a for a in document["accounts"] if a["name"] == "Knight prod")
    knight["timeout"] = 9.0
    del knight["credentials"]  # left out: the stored source token is kept
    (tmp_path / "accounts.yaml").write_text(yaml.safe_dump(document))
    User.objects.create_user("ops", "ops@example.com", "pw")

    output = run_import(path, "--user", "ops")
    assert "updated: Knight prod (timeout)" in output
    assert "updated: Kapture EU (credentials)" in output
    kapture = ProviderAccount.objects.get(name="Kapture EU")
    assert kapture.get_credentials() == {"token": "a-rotated-token-777"}
    knight_account = ProviderAccount.objects.get(name="Knight prod")
    assert knight_account.get_credentials() == configured.credentials["knight"]
    entry = LogEntry.objects.filter(object_repr="Kapture EU").latest("action_time")
    assert entry.user.username == "ops" and entry.get_change_message() == "Changed credentials."
    assert "a-rotated-token-777" not in entry.change_message


@pytest.mark.django_db
def test_without_user_the_import_is_recorded_as_the_system_user(monkeypatch, sandbox):
    monkeypatch.setenv("KAPTURE_TOKEN", "tok-123")
    document = {
        "accounts": [
            {
                "name": "K",
                "kind": "kapture",
                "base_url": sandbox.base_url("kapture"),
                "credentials": {"token": {"env": "KAPTURE_TOKEN"}},
            }
        ]
    }
    report = import_accounts(document)
    assert report.created == ["K"]
    entry = LogEntry.objects.get(object_repr="K")
    assert entry.is_addition() and entry.user.username == "config-import" and not entry.user.is_active
    account = ProviderAccount.objects.get(name="K")
    assert account.status_map["outbound"]["resolved"] == "RS"  # provider defaults when not given


@pytest.mark.django_db
def test_a_missing_environment_variable_is_named_and_nothing_is_applied(tmp_path, monkeypatch, sandbox):
    monkeypatch.setenv("GOOD_TOKEN", "tok-1")
    monkeypatch.delenv("MISSING_TOKEN", raising=False)
    document = {
        "accounts": [
            {
                "name": "Good",
                "kind": "kapture",
                "base_url": sandbox.base_url("kapture"),
                "credentials": {"token": {"env": "GOOD_TOKEN"}},
            },
            {
                "name": "Bad",
                "kind": "kapture",
                "base_url": sandbox.base_url("kapture"),
                "credentials": {"token": {"env": "MISSING_TOKEN"}},
            },
        ]
    }
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps(document))
    with pytest.raises(CommandError, match="MISSING_TOKEN is not set"):
        run_import(str(path))
    assert not ProviderAccount.objects.exists()
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "zendesk"}, "kind 'zendesk' is not one of"),
        ({"base_url": "ftp://example.com"}, "is not an http(s) URL"),
        ({"status_map": {"outbound": {"archived": "X"}}}, "'archived' is not a console status"),
        (
            {"status_map": {"inbound": {"X": "gone"}}},
            "'gone' (for provider value 'X') is not a console status",
        ),
        ({"priority_map": {"critical": "P1"}}, "'critical' is not a console priority"),
        ({"credentials": {"token": "pasted-secret"}}, "must be given as {env: VARIABLE}"),
        ({"credentials": {"password": {"env": "T"}}}, "has no credential 'password'"),
        ({"timeout": "soon"}, "timeout must be a number"),
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"settings": {"callback_secret": "pasted-secret"}}, "'callback_secret' is not a setting"),
    ],
)
def test_invalid_documents_are_refused_with_the_reason(monkeypatch, sandbox, change, message):
    monkeypatch.setenv("T", "tok-1")
    entry = {
        "name": "K",
        "kind": "kapture",
        "base_url": sandbox.base_url("kapture"),
        "credentials": {"token": {"env": "T"}},
        **change,
    }
    with pytest.raises(ConfigError) as refused:
        import_accounts({"accounts": [entry]})
    assert any(message in problem for problem in refused.value.problems), refused.value.problems
    assert "pasted-secret" not in str(refused.value)
    assert not ProviderAccount.objects.exists()


@pytest.mark.django_db
def test_a_new_account_needs_its_credentials_and_a_file_must_parse(tmp_path, sandbox):
    with pytest.raises(ConfigError, match="credentials are required"):
        new = {"name": "K", "kind": "kapture", "base_url": sandbox.base_url("kapture")}
        import_accounts({"accounts": [new]}, environ={})
    broken = tmp_path / "accounts.yaml"
    broken.write_text("accounts: [unclosed")
    with pytest.raises(CommandError, match="not valid JSON or YAML"):
        run_import(str(broken))


@pytest.mark.django_db
def test_a_refusal_found_while_writing_rolls_back_the_accounts_already_written(monkeypatch, sandbox):
    monkeypatch.setenv("T", "tok-1")
    good = {
        "name": "A",
        "kind": "kapture",
        "base_url": sandbox.base_url("kapture"),
        "credentials": {"token": {"env": "T"}},
    }
    too_long = {**good, "name": "B" * 150}  # the model's own limit, checked as it is saved
    with pytest.raises(ConfigError, match="name"):
        import_accounts({"accounts": [good, too_long]})
    assert not ProviderAccount.objects.exists() and not LogEntry.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url_template", "refusal"),
    [
        ("http://127.0.0.1:{port}/kapture", "127.0.0.1 resolves to a loopback address"),
        ("http://169.254.169.254/latest", "169.254.169.254 resolves to a link-local address"),
        ("https://operator:secret@93.184.215.14/", "Provider URLs may not carry a user name or password"),
    ],
)
def test_a_base_url_provider_calls_may_not_reach_is_refused_on_the_field(
    monkeypatch, sandbox, settings, url_template, refusal
):
    settings.PROVIDER_PRIVATE_HOSTS = []  # the sandbox, on 127.0.0.1, is not allow-listed here
    monkeypatch.setenv("T", "tok-1")
    url = url_template.format(port=sandbox.server.server_address[1])
    entry = {"name": "K", "kind": "kapture", "base_url": url, "credentials": {"token": {"env": "T"}}}
    with pytest.raises(ConfigError) as refused:
        import_accounts({"accounts": [entry]})
    [problem] = refused.value.problems
    assert problem.startswith(f"account 'K': base_url: {refusal}")
    assert "secret" not in problem
    if "resolves" in refusal:
        assert problem.endswith("To allow a host on your own network, add it to PROVIDER_PRIVATE_HOSTS.")
    assert not ProviderAccount.objects.exists()
