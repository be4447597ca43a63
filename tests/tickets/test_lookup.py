"""A create whose outcome is unknown: the page says what to look for at the provider, and
linking a remote id reads it first where the provider can be read."""

from urllib.parse import quote

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import dateformat, timezone

from providers.forms import mapping_errors
from tests.helpers import refreshed, wait_for
from tests.tickets.test_views import make_agent
from tickets import services
from tickets.models import SyncAttempt, SyncState, Ticket

pytestmark = pytest.mark.worker

SEARCH = "https://acme.kapturecrm.example/search?q={query}"


def held_create(sandbox, account) -> Ticket:
    """A create whose answer was lost: it exists in Kapture, the console does not know its id."""
    sandbox.faults(script=["lost"])
    ticket = services.create_ticket(account=account, title="Printer on fire", requester_email="tim@acme.test")
    wait_for(
        lambda: refreshed(ticket).sync_state == SyncState.NEEDS_ATTENTION, message="the create was not held"
    )
    return ticket


@pytest.fixture
def agent_client() -> Client:
    client = Client()
    client.force_login(make_agent())
    return client


def link(client: Client, ticket: Ticket, remote_id: str, **kwargs):
    return client.post(reverse("tickets:link", args=[ticket.pk]), {"remote_id": remote_id}, **kwargs)


def test_the_page_says_what_to_look_for_and_links_to_the_providers_search(
    worker, sandbox, account_factory, agent_client
):
    account = account_factory(
        "kapture", settings={"web_search_url": SEARCH, "web_url": "https://acme.kapturecrm.example/"}
    )
    ticket = held_create(sandbox, account)
    sent = SyncAttempt.objects.get(ticket=ticket, operation="create", outcome="unknown").started_at

    page = agent_client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    marker = f"[Ticket Console {ticket.reference}]"
    assert "Find it in Kapture CX" in page
    assert f'<code id="lookup-marker">{marker}</code>' in page
    assert '<dd class="col-sm-9" id="lookup-title">Printer on fire</dd>' in page
    assert dateformat.format(timezone.localtime(sent), "Y-m-d H:i:s T") in page
    assert SEARCH.replace("{query}", quote(marker, safe="")) in page
    assert SEARCH.replace("{query}", "Printer%20on%20fire") in page
    assert "The console looks the id up in Kapture CX before linking it." in page
    # What Kapture holds carries the marker the page names.
    [remote] = sandbox.state("kapture")["tickets"]
    assert remote["ticket_details"].endswith(marker)


def test_an_id_kapture_does_not_have_is_refused_on_the_field_and_the_right_one_is_linked(
    worker, sandbox, account_factory, agent_client
):
    ticket = held_create(sandbox, account_factory("kapture"))
    refused = link(agent_client, ticket, "999999")
    assert refused.status_code == 422
    page = refused.content.decode()
    assert "Kapture CX has no ticket 999999." in page and 'value="999999"' in page
    assert (refreshed(ticket).sync_state, ticket.remote_id) == (SyncState.NEEDS_ATTENTION, "")
    lookup = SyncAttempt.objects.filter(ticket=ticket, operation="fetch").latest("started_at")
    assert lookup.outcome == "failed" and "999999" in lookup.error

    [remote] = sandbox.state("kapture")["tickets"]
    linked = link(agent_client, ticket, remote["ticket_id"], follow=True)
    assert f"is linked to {remote['ticket_id']}, found in Kapture CX." in linked.content.decode()
    ticket = refreshed(ticket)
    assert (ticket.sync_state, ticket.remote_id, ticket.remote_status) == (
        SyncState.SYNCED,
        remote["ticket_id"],
        remote["substatus"],
    )
    assert ticket.remote_number == str(remote["id"])  # from Kapture's answer: nobody typed it
    assert len(sandbox.state("kapture")["tickets"]) == 1


def test_a_keliweb_id_linked_gets_its_number_and_page_from_the_read(
    worker, sandbox, account_factory, agent_client
):
    account = account_factory("keliweb")
    assert services.test_connection(account=account).ok  # the token first: the create is lost next
    ticket = held_create(sandbox, account)
    [remote] = sandbox.state("keliweb")["tickets"]
    link(agent_client, ticket, str(remote["ticketid"]))
    ticket = refreshed(ticket)
    assert (ticket.sync_state, ticket.remote_number) == ("synced", remote["tid"])
    assert ticket.remote_status == "Open"
    assert ticket.remote_url.endswith(f"/viewticket.php?tid={remote['tid']}&c={remote['c']}")


def test_a_lookup_that_fails_links_nothing(worker, sandbox, account_factory, agent_client):
    ticket = held_create(sandbox, account_factory("kapture"))
    [remote] = sandbox.state("kapture")["tickets"]
    sandbox.faults(script=["503"])
    answer = link(agent_client, ticket, remote["ticket_id"], follow=True).content.decode()
    assert f"{remote['ticket_id']} could not be looked up in Kapture CX" in answer
    assert "Nothing was linked; try again." in answer
    assert (refreshed(ticket).sync_state, ticket.remote_id) == (SyncState.NEEDS_ATTENTION, "")


def test_a_provider_that_cannot_be_read_links_the_id_and_says_it_was_not_checked(
    worker, sandbox, account_factory, agent_client
):
    account = account_factory("particlespace")
    assert services.test_connection(account=account).ok  # the token first: the create is lost next
    ticket = held_create(sandbox, account)
    page = agent_client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert "Particle Space cannot be read: the console cannot check the id" in page
    assert "a provider admin can add <code>web_url</code>" in page

    [remote] = sandbox.state("particlespace")["tickets"]
    answer = link(agent_client, ticket, remote["id"], follow=True).content.decode()
    assert "could not check that this id exists there" in answer
    assert (refreshed(ticket).sync_state, ticket.remote_id) == (SyncState.SYNCED, remote["id"])
    assert not SyncAttempt.objects.filter(ticket=ticket, operation="fetch").exists()  # nothing read


def test_a_create_whose_worker_died_says_its_sending_time_was_not_recorded(
    worker, account_factory, agent_client
):
    account = account_factory("motadata")
    # Held as the sweeper leaves a create whose worker died: no call recorded.
    ticket = Ticket.objects.create(
        account=account, title="Board column", revision=1, sync_state=SyncState.NEEDS_ATTENTION
    )
    page = agent_client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert f"[Ticket Console {ticket.reference}]" in page
    assert "not recorded (the worker stopped while sending)" in page


def test_the_provider_ui_addresses_are_checked_when_an_account_is_saved():
    def errors(settings):
        return mapping_errors(settings=settings, status_map={}, priority_map={}).get("settings", [])

    assert errors({"web_url": "https://acme.kapturecrm.example/", "web_search_url": SEARCH}) == []
    assert (
        "'web_search_url' must be an http(s) address with {query}"
        in errors({"web_search_url": "https://acme.kapturecrm.example/search"})[0]
    )
    assert errors({"web_search_url": "javascript:alert({query})"})
    assert errors({"web_url": "acme.kapturecrm.example"})
