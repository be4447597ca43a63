"""One contract every registered provider keeps, checked against its sandbox emulator over HTTP.

Parametrised over the registry's emulator kinds (providers/registry.py plus the test settings'
EXTRA_PROVIDERS), so a new provider runs these tests with no line here, and over "generic-<kind>"
for each worked configuration in providers/generic/examples/: a generic account configured to
speak <kind>'s API, against <kind>'s emulator. What a provider must do:

- each operation it supports round-trips, and the sandbox holds the result; each one it does
  not support is refused before any call, with the class's own reason;
- wrong credentials are an auth error; what the provider refuses is a validation error in the
  provider's words (each emulator declares how to provoke it: `refused_create`);
- a 429 is "rate limited" with its Retry-After; a 503 is transient and nothing was applied; a
  lost answer, a dropped connection, a 500 or a body that is not JSON may have been applied;
- no credential or issued token appears in any recorded exchange or in any error's text.
"""

from __future__ import annotations

import pytest

from providers.base import CREATE, FETCH, REPLY, TEST, UPDATE
from providers.errors import (
    ProviderAuthError,
    ProviderConfigurationError,
    ProviderRateLimited,
    ProviderTransientError,
    ProviderValidationError,
)
from providers.generic.worked import example_names, load_example
from providers.models import AccessToken
from providers.registry import EMULATORS, get_provider_class, load
from tickets.models import Ticket

pytestmark = pytest.mark.django_db
GENERIC = "generic-"
#: Per worked configuration: generic credential key -> the emulator's credential key (each
#: example's "description" says the same in words, for an admin).
PASSWORD_GRANT = {"client_id": "client_id", "client_secret": "client_secret", "username": "username"}
GENERIC_CREDENTIALS = {
    "kapture": {"token": "token"},
    "particlespace": {"client_id": "publish_key", "client_secret": "secret_key"},
    "keliweb": {**PASSWORD_GRANT, "password": "password"},
    "motadata": {**PASSWORD_GRANT, "password": "password"},
    "knight": {"signing_key": "source_token"},
}
KINDS = sorted(EMULATORS) + [GENERIC + name for name in example_names()]
OPERATIONS = (CREATE, UPDATE, FETCH, REPLY, TEST)


def vendor_of(name: str) -> str:
    """The sandbox kind a contract runs against: "generic-kapture" runs against Kapture's."""
    return name.removeprefix(GENERIC)


def generic_credentials(vendor: str, values: dict[str, str]) -> dict[str, str]:
    return {generic: values[own] for generic, own in GENERIC_CREDENTIALS[vendor].items() if own in values}


def contract_account(sandbox, account_factory, name: str, *, credentials=None):
    """The account a contract runs: of the kind itself, or generic configured as the vendor."""
    if not name.startswith(GENERIC):
        return account_factory(name, credentials=credentials)
    vendor = vendor_of(name)
    return account_factory(
        "generic",
        name=f"Sandbox {name}",
        base_url=sandbox.base_url(vendor),
        api_config=load_example(vendor),
        settings=dict(get_provider_class(vendor).demo_settings),
        credentials=generic_credentials(
            vendor, sandbox.credentials[vendor] if credentials is None else credentials
        ),
    )


def emulator_class(kind: str):
    return load(EMULATORS[kind])


class Contract:
    """One provider account on the sandbox, with every exchange and error it produced."""

    def __init__(self, sandbox, account, kind: str = "") -> None:
        self.sandbox = sandbox
        self.account = account
        #: The sandbox's kind (the vendor a generic account speaks to).
        self.kind = kind or account.kind
        self.emulator = emulator_class(self.kind)
        self.exchanges = []
        self.errors: list[Exception] = []
        self.provider = account.provider_class(account, on_exchange=self.exchanges.append)

    def ticket(self, **fields) -> Ticket:
        values = {
            "title": f"Printer on fire ({self.kind})",
            "description": "Third floor, room 301.",
            "requester_email": "tim@acme.com",
            "requester_name": "Tim",
            "priority": "high",
        }
        return Ticket.objects.create(account=self.account, **{**values, **fields})

    def created(self, **fields) -> Ticket:
        ticket = self.ticket(**fields)
        ref = self.provider.create(ticket)
        ticket.remote_id, ticket.remote_number = ref.remote_id, ref.remote_number
        ticket.save()
        return ticket

    def held(self) -> list[dict]:
        return self.emulator.held_tickets(self.sandbox.state(self.kind))

    def held_ticket(self, remote_id: str) -> dict:
        found = [held for held in self.held() if self.emulator.held_id(held) == remote_id]
        assert len(found) == 1, f"the sandbox holds {len(found)} tickets with id {remote_id}"
        return found[0]

    def failing(self, error_class, call, *args):
        with pytest.raises(error_class) as caught:
            call(*args)
        self.errors.append(caught.value)
        return caught.value

    def secrets(self) -> set[str]:
        """Every credential value and every token the provider was issued."""
        values = {str(v) for v in self.sandbox.credentials[self.kind].values() if v}
        for row in AccessToken.objects.filter(account=self.account):
            values |= {str(v) for v in row.secret.reveal().values() if v}
        return values


@pytest.fixture(params=KINDS)
def contract(request, sandbox, account_factory):
    return Contract(
        sandbox, contract_account(sandbox, account_factory, request.param), vendor_of(request.param)
    )


def test_a_created_ticket_is_held_by_the_provider_as_sent(contract):
    ticket = contract.created()
    held = contract.held_ticket(ticket.remote_id)
    assert contract.emulator.references(held) == {ticket.reference}
    stored = contract.emulator.stored_fields(held)
    assert stored["title"] == ticket.title
    assert stored["description"] == contract.provider.description_with_marker(ticket)


def test_an_update_reaches_the_provider_or_is_refused_with_its_reason(contract):
    provider = contract.provider
    if not provider.supports(UPDATE):
        ticket = contract.ticket(remote_id="1")
        error = contract.failing(ProviderConfigurationError, provider.update, ticket)
        assert str(error) == provider.reason_unsupported(UPDATE)
        assert contract.exchanges == []  # refused before any call
        return
    ticket = contract.created()
    changes = {"status": "resolved"}
    if not provider.fields_kept_here(["title"]):
        changes["title"] = "Printer fixed"
    Ticket.objects.filter(pk=ticket.pk).update(**changes)
    ticket.refresh_from_db()
    provider.update(ticket)
    stored = contract.emulator.stored_fields(contract.held_ticket(ticket.remote_id))
    assert stored["status"] == provider.remote_status_for("resolved")
    assert stored["title"] == ticket.title
    assert len(contract.held()) == 1


def test_a_fetch_reads_the_ticket_back_or_is_refused_with_its_reason(contract):
    provider = contract.provider
    ticket = contract.created()
    if not provider.supports(FETCH):
        error = contract.failing(ProviderConfigurationError, provider.fetch, [ticket])
        assert str(error) == provider.reason_unsupported(FETCH)
        return
    [state] = provider.fetch([ticket])
    assert state.remote_id == ticket.remote_id
    stored = contract.emulator.stored_fields(contract.held_ticket(ticket.remote_id))
    assert state.remote_status == stored["status"]


def test_a_reply_reaches_the_provider_or_is_refused_with_its_reason(contract):
    provider = contract.provider
    ticket = contract.created()
    text = f"Replaced the toner of {ticket.reference}."
    if not provider.supports(REPLY):
        error = contract.failing(ProviderConfigurationError, provider.reply, ticket, text)
        assert str(error) == provider.reason_unsupported(REPLY)
        return
    provider.reply(ticket, text)
    assert text in str(contract.held_ticket(ticket.remote_id))
    if provider.reads_conversation:
        [state] = provider.fetch([ticket])
        assert text in [reply.body for reply in state.replies]


def test_the_connection_test_answers_or_is_refused_with_its_reason(contract):
    provider = contract.provider
    if not provider.supports(TEST):
        error = contract.failing(ProviderConfigurationError, provider.test_connection)
        assert str(error) == provider.reason_unsupported(TEST)
        return
    assert provider.test_connection().strip()
    assert contract.held() == []  # testing creates nothing


@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_missing_operation_has_a_reason_in_words(operation, contract):
    provider_class = contract.account.provider_class
    if provider_class.supports(operation):
        assert operation not in provider_class.unsupported_reasons  # no stale reasons
    else:
        assert provider_class.label in provider_class.reason_unsupported(operation) or (
            operation in provider_class.unsupported_reasons
        )


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_credentials_are_an_auth_error(kind, sandbox, account_factory):
    wrong = emulator_class(vendor_of(kind)).generate_credentials()
    account = contract_account(sandbox, account_factory, kind, credentials=wrong)
    contract = Contract(sandbox, account, vendor_of(kind))
    error = contract.failing(ProviderAuthError, contract.provider.create, contract.ticket())
    assert error.message.strip()
    assert contract.held() == []
    assert_nothing_secret(contract, extra=set(wrong.values()))


def test_what_the_provider_refuses_is_a_validation_error_in_its_words(contract):
    recipe = contract.emulator.refused_create
    if recipe["settings"]:
        contract.account.settings = {**contract.account.settings, **recipe["settings"]}
        contract.account.save()
        contract.provider = contract.account.provider_class(
            contract.account, on_exchange=contract.exchanges.append
        )
    ticket = contract.ticket(**recipe["ticket"])
    error = contract.failing(ProviderValidationError, contract.provider.create, ticket)
    assert recipe["words"] and recipe["words"] in error.message
    assert contract.held() == []


def test_a_429_is_rate_limited_with_its_retry_after(contract):
    contract.created()  # authenticated: the fault lands on a ticket call
    contract.sandbox.faults(script=["429"], retry_after=7, vendors=[contract.kind])
    error = contract.failing(ProviderRateLimited, contract.provider.create, contract.ticket())
    assert error.retry_after == 7
    assert len(contract.held()) == 1


def test_a_503_is_transient_and_nothing_was_applied(contract):
    contract.created()
    contract.sandbox.faults(script=["503"], vendors=[contract.kind])
    error = contract.failing(ProviderTransientError, contract.provider.create, contract.ticket())
    assert error.may_have_applied is False
    assert len(contract.held()) == 1


@pytest.mark.parametrize("fault", ["lost", "garbage", "500"])
def test_an_applied_call_without_a_readable_answer_may_have_applied(fault, contract):
    contract.created()
    contract.sandbox.faults(script=[fault], vendors=[contract.kind])
    error = contract.failing(ProviderTransientError, contract.provider.create, contract.ticket())
    assert error.may_have_applied is True
    # "lost" and "garbage" were applied: the provider holds the second ticket; a 500 was not.
    assert len(contract.held()) == (1 if fault == "500" else 2)


def test_a_dropped_connection_is_an_unknown_outcome(contract):
    contract.created()
    contract.sandbox.faults(script=["drop"], vendors=[contract.kind])
    error = contract.failing(ProviderTransientError, contract.provider.create, contract.ticket())
    # Dropped after connecting: the client cannot tell whether the request was read.
    assert error.may_have_applied is True
    assert len(contract.held()) == 1


def test_no_secret_is_recorded_or_shown(contract):
    """A whole working life — every operation, then faults and a refused token — leaves no
    credential or token in any recorded exchange or error text."""
    provider = contract.provider
    ticket = contract.created()
    for operation, call, args in (
        (UPDATE, provider.update, (ticket,)),
        (FETCH, provider.fetch, ([ticket],)),
        (REPLY, provider.reply, (ticket, "Any news?")),
        (TEST, provider.test_connection, ()),
    ):
        if provider.supports(operation):
            call(*args)
    for fault in ("500", "garbage", "429"):
        contract.sandbox.faults(script=[fault], vendors=[contract.kind])
        contract.failing(Exception, provider.create, contract.ticket())
    contract.sandbox.control("expire-tokens", {})
    provider.create(contract.ticket())  # a renewed token (token providers) is redacted too
    assert contract.exchanges
    assert_nothing_secret(contract)


def assert_nothing_secret(contract: Contract, extra: set[str] = frozenset()) -> None:
    secrets = contract.secrets() | set(extra)
    assert secrets
    recorded = [repr(exchange) for exchange in contract.exchanges] + [
        f"{error} {getattr(error, 'message', '')}" for error in contract.errors
    ]
    for text in recorded:
        leaked = [secret[:6] + "…" for secret in secrets if secret in text]
        assert not leaked, f"{contract.kind}: {leaked} in {text[:300]}"
