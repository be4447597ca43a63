"""GenericProvider: per-account classes, auth schemes, errors and try_operation."""

from __future__ import annotations

import base64
import copy
import json

import jwt
import pytest

from providers.errors import ProviderConfigurationError
from providers.generic.provider import GenericProvider
from providers.generic.worked import load_example
from providers.http import REDACTED
from providers.models import AccessToken, ProviderAccount
from providers.registry import EMULATORS, get_provider_class, kind_choices
from tickets import pull
from tickets.models import Ticket

pytestmark = pytest.mark.django_db
SIGNING_KEY = "signing-key-of-at-least-32-bytes-0123"

MINIMAL = {
    "label": "Helpdesk",
    "operations": {
        "create": {
            "method": "POST",
            "path": "/tickets",
            "body": {"s": "{{ ticket.title }}"},
            "response": {"remote_id": "id"},
        },
    },
}


def account(api_config, credentials=None, **fields) -> ProviderAccount:
    made = ProviderAccount(
        name=fields.pop("name", "Generic"),
        kind="generic",
        base_url=fields.pop("base_url", "https://helpdesk.example.com/api"),
        api_config=api_config,
        **fields,
    )
    made.set_credentials(credentials or {})
    made.save()
    return made


def ticket_of(account, **fields) -> Ticket:
    values = {"title": "Printer on fire", "description": "Room 301", "requester_email": "tim@acme.com"}
    return Ticket.objects.create(account=account, **{**values, **fields})


def with_auth(auth: dict) -> dict:
    config = copy.deepcopy(MINIMAL)
    config["auth"] = auth
    return config


# --- the kind and its per-account classes ----------------------------------------------------------
def test_the_kind_is_listed_without_an_emulator():
    assert ("generic", "Generic REST API") in kind_choices()
    assert "generic" not in EMULATORS
    plain = get_provider_class("generic")
    assert plain is GenericProvider
    assert set(plain.credential_fields) == {
        "token",
        "username",
        "password",
        "client_id",
        "client_secret",
        "api_key",
        "signing_key",
    }


def test_an_accounts_class_is_built_from_its_configuration_and_cached():
    stored = account(load_example("kapture"))
    provider_class = stored.provider_class
    assert issubclass(provider_class, GenericProvider) and provider_class is not GenericProvider
    assert (
        provider_class is ProviderAccount(kind="generic", api_config=load_example("kapture")).provider_class
    )
    assert provider_class.label == "Kapture CX (generic)"
    assert provider_class.capabilities == {"create", "update", "fetch", "reply", "test"}
    assert provider_class.updatable_fields == {"status", "extra"}
    assert provider_class.fetch_batch_size == 50
    assert provider_class.default_status_map["outbound"]["resolved"] == "RS"
    assert provider_class.fields_kept_here(["title", "status"]) == ["title"]
    assert provider_class.reason_kept_here(["title"]) == (
        "Kapture CX (generic) cannot change the title of a ticket after it is created."
    )


def test_an_operation_left_out_is_missing_with_a_reason():
    provider_class = account(MINIMAL).provider_class
    assert provider_class.capabilities == {"create"}
    assert provider_class.reason_unsupported("update") == "Helpdesk is configured without an update request."
    assert provider_class.reason_unsupported("fetch") == "Helpdesk is configured without a fetch request."
    unlabelled = {"operations": MINIMAL["operations"]}
    assert account(unlabelled, name="Unlabelled").provider_class.reason_unsupported("reply") == (
        "The provider is configured without a reply request."
    )


def test_a_token_scheme_makes_the_token_call_the_test():
    config = with_auth({"scheme": "oauth2", "grant": "client_credentials", "token_url": "/oauth/token"})
    assert "test" in account(config).provider_class.capabilities


def test_an_account_without_a_usable_configuration_sends_nothing():
    with pytest.raises(ProviderConfigurationError, match="has no API configuration"):
        account({}).get_provider()
    broken = copy.deepcopy(MINIMAL)
    broken["operations"]["create"]["body"] = {"s": "{{ secrets.token }}"}
    with pytest.raises(ProviderConfigurationError, match="only inside 'auth'"):
        account(broken, name="Broken").get_provider()


@pytest.mark.parametrize(
    "garbage",
    [
        [],
        {"operations": []},
        {"operations": {"create": "POST /t"}, "priority_map": ["high"], "status_map": {"outbound": "x"}},
        {"operations": {"fetch": {"batch_size": True}}, "updatable_fields": [{"a": 1}], "auth": "basic"},
    ],
)
def test_any_stored_configuration_makes_a_class_and_a_bad_one_sends_nothing(garbage):
    stored = account(garbage)
    provider_class = stored.provider_class
    assert "create" not in provider_class.capabilities
    assert provider_class.reason_unsupported("create")
    with pytest.raises(ProviderConfigurationError):
        stored.get_provider()


def test_credentials_needed_are_those_the_auth_names():
    provider_class = account(with_auth({"scheme": "basic"})).provider_class
    assert set(provider_class.validate_credentials({})) == {"username", "password"}
    assert provider_class.validate_credentials({"username": "u", "password": "p"}) == {}
    assert account(MINIMAL, name="No auth").provider_class.validate_credentials({}) == {}


# --- requests and auth schemes (built and signed, nothing sent) ---------------------------------
def signed(config, credentials, **ticket_fields):
    stored = account(config, credentials, name=f"Generic {ProviderAccount.objects.count()}")
    provider = stored.get_provider()
    request = provider.build_create(ticket_of(stored, **ticket_fields))
    provider.authorize(request)
    return provider, request


def test_bearer_basic_header_and_api_key_schemes():
    _, request = signed(with_auth({"scheme": "bearer"}), {"token": "tok-123456"})
    assert request.headers["Authorization"] == "Bearer tok-123456"
    _, request = signed(with_auth({"scheme": "basic"}), {"username": "ann", "password": "s3cret-pw"})
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"ann:s3cret-pw").decode()
    header = {"scheme": "header", "headers": {"X-Key": "k={{ secrets.api_key }}"}}
    _, request = signed(with_auth(header), {"api_key": "key-98765"})
    assert request.headers["X-Key"] == "k=key-98765"
    query = {"scheme": "api_key", "in": "query", "name": "key"}
    provider, request = signed(with_auth(query), {"api_key": "a b/c+d"})
    assert request.path == "/tickets?key=a%20b%2Fc%2Bd"
    url, _, _ = provider.http.describe(request)
    assert "a%20b" not in url and REDACTED in url


def test_jwt_claims_sign_the_rendered_body():
    config = with_auth(
        {
            "scheme": "jwt_hs256",
            "header": "X-Token",
            "claims": {
                "sub": "{{ settings.source_id }}",
                "title": "{{ body.s }}",
                "cb": "{{ body.cb|optional }}",
            },
            "headers": {"X-Source": "{{ settings.source_id }}"},
        }
    )
    stored = account(config, {"signing_key": SIGNING_KEY}, settings={"source_id": "src-7"})
    provider = stored.get_provider()
    request = provider.build_create(ticket_of(stored))
    provider.authorize(request)
    claims = jwt.decode(request.headers["X-Token"], SIGNING_KEY, algorithms=["HS256"])
    assert claims == {"sub": "src-7", "title": "Printer on fire"}
    assert request.headers["X-Source"] == "src-7"
    _, headers, _ = provider.http.describe(request)
    assert headers["X-Token"] == REDACTED


def test_paths_and_queries_are_url_quoted_and_optional_keys_left_out():
    config = copy.deepcopy(MINIMAL)
    config["operations"]["create"].update(
        path="/queues/{{ ticket.extra.queue }}/tickets",
        query={
            "ref": "{{ ticket.reference }}",
            "tags": "{{ ticket.tags }}",
            "due": "{{ ticket.due_at|optional }}",
        },
        body={"s": "{{ ticket.title }}", "email": "{{ ticket.requester_name|optional }}"},
    )
    stored = account(config)
    ticket = ticket_of(stored, extra={"queue": "L2/EU"}, tags=["a b", "c"])
    request = stored.get_provider().build_create(ticket)
    assert request.path == f"/queues/L2%2FEU/tickets?ref={ticket.reference}&tags=a%20b&tags=c"
    assert request.json == {"s": "Printer on fire"}


def test_an_unmapped_status_is_a_configuration_error_only_where_it_is_sent():
    config = copy.deepcopy(MINIMAL)
    config["operations"]["update"] = {"method": "PUT", "path": "/t/1", "body": {"st": "{{ remote.status }}"}}
    stored = account(config)
    provider = stored.get_provider()
    ticket = ticket_of(stored)
    provider.build_create(ticket)  # does not send the status: fine
    with pytest.raises(ProviderConfigurationError, match="has no the provider value|no Helpdesk value"):
        provider.build_update(ticket)


# --- try it -----------------------------------------------------------------------------------------
def test_try_with_a_sample_answer_sends_nothing_and_masks_the_secret():
    stored = account(load_example("kapture"), {"token": "kapture-token-123"})
    ticket = ticket_of(stored)
    sample = json.dumps({"ticket_id": "77", "ticket": {"id": 5, "substatus": "US"}, "status": "success"})
    tried = stored.get_provider().try_operation("create", ticket, sample_response=sample)
    assert tried["result"] == {
        "remote_id": "77",
        "remote_number": "5",
        "remote_url": "",
        "remote_status": "US",
    }
    request = tried["request"]
    assert request["method"] == "POST" and request["url"].endswith("/add-ticket-from-other-source.html/v.2.0")
    assert request["headers"]["Authorization"] == REDACTED
    assert "kapture-token-123" not in json.dumps(tried)
    assert json.loads(request["body"])[0]["title"] == "Printer on fire"


def test_try_reports_the_providers_refusal_and_a_missing_operation():
    stored = account(load_example("kapture"), {"token": "kapture-token-123"})
    ticket = ticket_of(stored)
    provider = stored.get_provider()
    failed = json.dumps({"status": "failed", "message": "title is missing"})
    tried = provider.try_operation("create", ticket, sample_response=(failed, 200))
    assert tried["error"] == {"class": "validation", "message": "title is missing"}
    tried = provider.try_operation("fetch", ticket, sample_response={"text": "[]", "status": 200})
    assert tried["result"] == []
    missing = account(MINIMAL, name="Create only").get_provider().try_operation("reply", ticket)
    assert missing == {
        "request": None,
        "error": {"class": "configuration", "message": "Helpdesk is configured without a reply request."},
    }


def test_try_calls_the_sandbox_for_real_without_a_sample(sandbox):
    stored = account(
        load_example("particlespace"),
        {
            "client_id": sandbox.credentials["particlespace"]["publish_key"],
            "client_secret": sandbox.credentials["particlespace"]["secret_key"],
        },
        base_url=sandbox.base_url("particlespace"),
        settings={"notify": False, "automated": False},
    )
    ticket = ticket_of(stored)
    provider = stored.get_provider()
    tried = provider.try_operation("create", ticket)
    assert tried["result"]["remote_id"].startswith("tic_")
    assert tried["request"]["headers"]["Authorization"] == REDACTED
    tested = provider.try_operation("test", ticket)
    assert tested["result"] == {"message": "Authenticated: Particle Space issued a token."}
    assert sandbox.credentials["particlespace"]["secret_key"] not in json.dumps(tested)


# --- pull -------------------------------------------------------------------------------------------
def test_only_generic_accounts_configured_with_a_fetch_are_pulled():
    reads = account(load_example("kapture"), name="Reads")
    account(MINIMAL, name="Writes only")
    assert list(pull.fetchable_accounts().filter(kind="generic")) == [reads]


def test_a_changed_auth_configuration_drops_the_cached_token():
    config = with_auth({"scheme": "oauth2", "grant": "client_credentials", "token_url": "/oauth/token"})
    stored = account(config, {"client_id": "id-1234", "client_secret": "secret-1234"})
    AccessToken.objects.create(account=stored, secret={"access_token": "cached-token"})
    stored = ProviderAccount.objects.get(pk=stored.pk)
    stored.settings = {"source_id": "x"}
    stored.save()
    assert AccessToken.objects.filter(account=stored).exists()  # nothing about signing in changed
    stored.api_config = with_auth({**config["auth"], "token_url": "/v2/oauth/token"})
    stored.save()
    assert not AccessToken.objects.filter(account=stored).exists()


def test_ticket_values_are_data_never_templates():
    stored = account(with_auth({"scheme": "bearer"}), {"token": "tok-123456"})
    title = "{{ secrets.token }} {% debug %} ${7*7}"
    request = stored.get_provider().build_create(ticket_of(stored, title=title))
    assert request.json == {"s": title}


def test_a_registered_kind_may_have_no_emulator(settings):
    from providers.registry import registered

    settings.EXTRA_PROVIDERS = {"elsewhere": ("somewhere.Provider", None)}
    assert registered()["elsewhere"] == ("somewhere.Provider", None)
    assert registered()["generic"] == ("providers.generic.provider.GenericProvider", None)


def test_demo_accounts_are_made_only_for_kinds_with_an_emulator():
    from providers.demo import ensure_demo_accounts

    ensure_demo_accounts("http://127.0.0.1:8100")
    assert set(ProviderAccount.objects.values_list("kind", flat=True)) == set(EMULATORS)
