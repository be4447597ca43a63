"""A new account starts with its provider kind's rate limit and burst (the admin's add form,
an import without them, the demo accounts); a stored account keeps its own; the burst is
bounded wherever it can be written."""

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from providers.config import ConfigError, import_accounts
from providers.demo import ensure_demo_accounts
from providers.kapture import KaptureProvider
from providers.models import ProviderAccount
from providers.motadata import MotadataProvider
from providers.registry import EMULATORS, get_provider_class
from tests.providers.test_admin import ADD_URL, account_form

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def kapture_entry(sandbox, **values) -> dict:
    return {
        "name": "Kapture EU",
        "kind": "kapture",
        "base_url": sandbox.base_url("kapture"),
        "credentials": {"token": {"env": "KAPTURE_TOKEN"}},
        **values,
    }


def test_the_add_form_leaves_rate_and_burst_empty_and_names_each_kinds_default(superuser_client):
    html = superuser_client.get(ADD_URL).content.decode()
    assert 'name="rate_limit" value=' not in html and 'name="rate_burst" value=' not in html
    assert "Kapture CX 5/s, burst 10" in html and "Motadata ServiceOps 10/s, burst 20" in html


def test_an_account_added_with_empty_figures_gets_its_kinds_defaults(superuser_client, sandbox):
    response = superuser_client.post(ADD_URL, account_form(sandbox, rate_limit="", rate_burst=""))
    assert response.status_code == 302, response.content.decode()[:2000]
    account = ProviderAccount.objects.get(name="Kapture EU")
    assert (account.rate_limit, account.rate_burst) == (
        KaptureProvider.default_rate_limit,
        KaptureProvider.default_rate_burst,
    )


def test_typed_figures_win_and_a_burst_out_of_range_is_refused_on_the_field(superuser_client, sandbox):
    response = superuser_client.post(ADD_URL, account_form(sandbox, rate_limit="2", rate_burst="0"))
    assert response.status_code == 200
    assert (
        "The burst must be a whole number of requests from 1 to 10,000."
        in (response.context["adminform"].form.errors["rate_burst"][0])
    )
    superuser_client.post(ADD_URL, account_form(sandbox, rate_limit="2", rate_burst="7"))
    account = ProviderAccount.objects.get(name="Kapture EU")
    assert (account.rate_limit, account.rate_burst) == (2.0, 7)


def test_an_import_without_figures_uses_the_kinds_defaults_for_a_new_account_only(sandbox):
    environ = {"KAPTURE_TOKEN": sandbox.credentials["kapture"]["token"]}
    import_accounts({"accounts": [kapture_entry(sandbox)]}, environ=environ)
    account = ProviderAccount.objects.get(name="Kapture EU")
    assert (account.rate_limit, account.rate_burst) == (5.0, 10)
    ProviderAccount.objects.filter(pk=account.pk).update(rate_limit=1.5, rate_burst=3)
    report = import_accounts({"accounts": [kapture_entry(sandbox)]}, environ=environ)
    assert report.unchanged == ["Kapture EU"]
    account.refresh_from_db()
    assert (account.rate_limit, account.rate_burst) == (1.5, 3)  # the stored figures are kept
    import_accounts({"accounts": [kapture_entry(sandbox, rate_burst=4)]}, environ=environ)
    account.refresh_from_db()
    assert account.rate_burst == 4


@pytest.mark.parametrize("burst", [0, 2.5, 10_001, "5", True])
def test_an_import_refuses_a_burst_out_of_range(sandbox, burst):
    environ = {"KAPTURE_TOKEN": sandbox.credentials["kapture"]["token"]}
    with pytest.raises(ConfigError, match="rate_burst: The burst must be a whole number"):
        import_accounts({"accounts": [kapture_entry(sandbox, rate_burst=burst)]}, environ=environ)
    assert not ProviderAccount.objects.exists()


def test_the_database_refuses_a_burst_out_of_range(account_factory):
    account = account_factory("kapture")
    with pytest.raises(IntegrityError), transaction.atomic():
        ProviderAccount.objects.filter(pk=account.pk).update(rate_burst=0)


def test_demo_accounts_start_with_their_kinds_defaults():
    ensure_demo_accounts("http://127.0.0.1:8100")
    for kind in EMULATORS:  # the kinds with a sandbox emulator have a demo account
        cls = get_provider_class(kind)
        account = ProviderAccount.objects.get(kind=kind)
        assert (account.rate_limit, account.rate_burst) == (cls.default_rate_limit, cls.default_rate_burst)
    assert ProviderAccount.objects.get(kind="motadata").rate_burst == MotadataProvider.default_rate_burst
