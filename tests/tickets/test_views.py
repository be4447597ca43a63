"""The staff UI, through Django's test client: permissions, the ticket form with provider
fields, account restriction to groups, actions and what the pages never show."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from django.urls import reverse

from providers.knight import KnightProvider
from tickets import services
from tickets.models import Status, SyncState, Ticket

pytestmark = pytest.mark.django_db

AGENT_PERMISSIONS = ("view_ticket", "add_ticket", "change_ticket")


def make_agent(
    username: str = "agent", *, groups: tuple[str, ...] = (), staff: bool = False, password: str | None = None
) -> User:
    # No password unless a test signs in with one: hashing is the slowest part of these tests.
    user = User.objects.create_user(username, f"{username}@example.com", password, is_staff=staff)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="tickets", codename__in=AGENT_PERMISSIONS)
    )
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


@pytest.fixture
def agent(client) -> User:
    user = make_agent()
    client.force_login(user)
    return user


def create_data(account, **overrides) -> dict:
    data = {
        "account": account.pk,
        "title": "VPN down in Leeds",
        "description": "Nobody can connect.",
        "requester_email": "ann@acme.test",
        "requester_name": "Ann",
        "priority": "high",
        "impact": "",
        "status": "new",
        "due_at": "",
        "tags": "vpn, outage",
    }
    return {**data, **overrides}


def make_ticket(account, **fields) -> Ticket:
    values = {"title": "Printer jam", "requester_email": "tim@acme.test", **fields}
    return services.create_ticket(account=account, **values)


# --- permissions ----------------------------------------------------------------------------
def test_every_page_asks_an_anonymous_visitor_to_sign_in(client, account_factory):
    ticket = make_ticket(account_factory("kapture"))
    for url in (
        reverse("tickets:list"),
        reverse("tickets:create"),
        reverse("tickets:sync_states"),
        reverse("tickets:detail", args=[ticket.pk]),
        reverse("tickets:edit", args=[ticket.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_a_signed_in_user_without_ticket_permissions_is_refused(client, account_factory):
    ticket = make_ticket(account_factory("kapture"))
    client.force_login(User.objects.create_user("visitor"))
    assert client.get(reverse("tickets:list")).status_code == 403
    assert client.get(reverse("tickets:create")).status_code == 403
    assert client.get(reverse("tickets:detail", args=[ticket.pk])).status_code == 403
    assert client.post(reverse("tickets:status", args=[ticket.pk]), {"status": "closed"}).status_code == 403


def test_a_read_only_agent_sees_tickets_but_cannot_create_or_change_them(client, account_factory):
    ticket = make_ticket(account_factory("kapture"))
    reader = User.objects.create_user("reader")
    reader.user_permissions.add(Permission.objects.get(codename="view_ticket"))
    client.force_login(reader)
    page = client.get(reverse("tickets:list")).content.decode()
    assert ticket.reference in page and "New ticket" not in page
    assert client.get(reverse("tickets:create")).status_code == 403
    assert client.post(reverse("tickets:status", args=[ticket.pk]), {"status": "closed"}).status_code == 403
    detail = client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert "You do not have permission to change tickets." in detail


def test_signing_in_lands_on_the_ticket_list_with_an_obvious_new_ticket_button(client):
    make_agent(password="pw")
    page = client.get(reverse("login"))
    assert 'name="csrfmiddlewaretoken"' in page.content.decode()
    response = client.post(reverse("login"), {"username": "agent", "password": "pw"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("tickets:list")
    html = response.content.decode()
    assert "Create your first ticket" in html and reverse("tickets:create") in html


def test_forms_are_refused_without_the_csrf_token(account_factory):
    ticket = make_ticket(account_factory("kapture"))
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(make_agent())
    response = strict.post(reverse("tickets:status", args=[ticket.pk]), {"status": "closed"})
    assert response.status_code == 403
    ticket.refresh_from_db()
    assert ticket.status == Status.NEW


def test_agents_are_not_linked_to_and_cannot_open_provider_configuration(client, account_factory):
    account = account_factory("kapture")
    client.force_login(make_agent(staff=True))
    page = client.get(reverse("tickets:list")).content.decode()
    assert "Provider accounts" not in page and "/admin/" not in page
    response = client.get(reverse("admin:providers_provideraccount_change", args=[account.pk]))
    assert response.status_code in (302, 403)


def test_provider_admins_get_a_link_to_provider_accounts(client):
    manager = make_agent("manager", staff=True)
    manager.user_permissions.add(Permission.objects.get(codename="manage_provider_accounts"))
    client.force_login(manager)
    page = client.get(reverse("tickets:list")).content.decode()
    assert reverse("admin:providers_provideraccount_changelist") in page


# --- the create form -----------------------------------------------------------------------
def test_choosing_an_account_shows_its_own_fields_with_the_accounts_defaults(client, agent, account_factory):
    knight = account_factory("knight")
    account_factory("motadata")
    page = client.get(reverse("tickets:create"), {"account": knight.pk}).content.decode()
    assert 'name="knight-environment"' in page and 'value="Sandbox"' in page  # account default
    assert 'for="id_knight-environment"' in page  # labelled
    assert "knight-account_code_locators" in page and "SearchKey" in page
    assert "motadata-urgency" not in page


def test_switching_the_account_keeps_what_was_typed(client, agent, account_factory):
    knight = account_factory("knight")
    motadata = account_factory("motadata")
    data = create_data(motadata, title="Typed before switching", knight_environment="x")
    data["switch_account"] = "1"
    response = client.post(reverse("tickets:create"), data)
    html = response.content.decode()
    assert response.status_code == 200 and not Ticket.objects.exists()
    assert 'value="Typed before switching"' in html and 'value="vpn, outage"' in html
    assert 'name="motadata-urgency"' in html and 'name="knight-environment"' not in html
    assert "is-invalid" not in html  # nothing is judged while switching
    assert knight.pk != motadata.pk


def test_creating_a_ticket_goes_through_the_service_and_stores_the_provider_fields(
    client, agent, account_factory
):
    account = account_factory("particlespace")
    data = create_data(
        account,
        **{
            "particlespace-notify": "true",
            "particlespace-type": "email",
            "particlespace-contacts": "ops@acme.test, boss@acme.test",
            "particlespace-column": "",
        },
    )
    response = client.post(reverse("tickets:create"), data)
    ticket = Ticket.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("tickets:detail", args=[ticket.pk])
    assert (ticket.title, ticket.priority, ticket.tags) == ("VPN down in Leeds", "high", ["vpn", "outage"])
    assert ticket.extra["contacts"] == "ops@acme.test,boss@acme.test" and ticket.extra["notify"] is True
    assert (ticket.sync_state, ticket.revision, ticket.created_by) == (SyncState.PENDING, 1, agent)


def test_a_motadata_ticket_without_requester_email_shows_the_error_on_the_field(
    client, agent, account_factory
):
    account = account_factory("motadata")
    data = create_data(account, requester_email="", **{"motadata-urgency": "HIGH"})
    response = client.post(reverse("tickets:create"), data)
    assert response.status_code == 200 and not Ticket.objects.exists()
    form = response.context["form"]
    assert "requester_email" in form.errors
    html = response.content.decode()
    assert 'id="id_requester_email"' in html and "is-invalid" in html
    assert 'value="VPN down in Leeds"' in html and "Nobody can connect." in html
    assert '<option value="HIGH" selected>' in html  # the provider field is kept too


def test_particle_space_notify_without_contacts_shows_the_error_on_contacts(client, agent, account_factory):
    account = account_factory("particlespace")
    data = create_data(account, **{"particlespace-notify": "true", "particlespace-type": "email"})
    response = client.post(reverse("tickets:create"), data)
    assert response.status_code == 200 and not Ticket.objects.exists()
    assert "contacts" in response.context["provider_form"].errors
    html = response.content.decode()
    assert "Particle Space needs contacts to notify." in html
    assert 'value="VPN down in Leeds"' in html


def test_a_bad_json_provider_field_is_kept_as_typed(client, agent, account_factory):
    account = account_factory("kapture")
    data = create_data(account, **{"kapture-extra_keys": '{"order_id": '})
    response = client.post(reverse("tickets:create"), data)
    assert response.status_code == 200 and not Ticket.objects.exists()
    assert "kapture-extra_keys" in response.content.decode()
    assert "{&quot;order_id&quot;: </textarea>" in response.content.decode()


def test_no_credential_value_appears_on_any_page(client, agent, account_factory, sandbox):
    pages = []
    for kind in ("knight", "motadata", "keliweb", "kapture", "particlespace"):
        account = account_factory(kind)
        ticket = make_ticket(account)
        pages += [
            client.get(reverse("tickets:create"), {"account": account.pk}).content.decode(),
            client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode(),
        ]
    pages.append(client.get(reverse("tickets:list")).content.decode())
    secrets = [str(v) for creds in sandbox.credentials.values() for v in creds.values() if len(str(v)) > 5]
    assert secrets
    for html in pages:
        assert not [secret for secret in secrets if secret in html]


def test_the_callback_secret_is_not_in_the_create_form_a_ticket_or_its_page(client, agent, account_factory):
    account = account_factory(
        "knight",
        settings={
            **KnightProvider.demo_settings,
            "callback_base_url": "https://console.example.com",
        },
    )
    secret = account.get_callback_secrets()["current"]
    form_page = client.get(reverse("tickets:create"), {"account": account.pk}).content.decode()
    assert 'name="knight-callback_address"' in form_page and secret not in form_page
    response = client.post(reverse("tickets:create"), create_data(account))
    ticket = Ticket.objects.get()
    assert response.status_code == 302 and "callback_address" not in ticket.extra
    detail = client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert ticket.reference in detail and secret not in detail


# --- account restriction to groups ------------------------------------------------------------
def test_an_account_restricted_to_groups_is_invisible_to_other_agents(client, account_factory):
    open_account = account_factory("kapture", name="Open desk")
    vip = account_factory("kapture", name="VIP desk", settings={"allowed_groups": ["vip"]})
    vip_ticket = make_ticket(vip, title="VIP only")
    make_ticket(open_account, title="Anyone")
    client.force_login(make_agent("outsider", groups=("support",)))
    listing = client.get(reverse("tickets:list")).content.decode()
    assert "Anyone" in listing and "VIP only" not in listing and "VIP desk" not in listing
    assert "VIP desk" not in client.get(reverse("tickets:create")).content.decode()
    assert client.get(reverse("tickets:detail", args=[vip_ticket.pk])).status_code == 404
    refused = client.post(reverse("tickets:status", args=[vip_ticket.pk]), {"status": "closed"})
    assert refused.status_code == 404
    assert client.get(reverse("tickets:sync_states"), {"id": vip_ticket.pk}).json() == {"tickets": []}
    response = client.post(reverse("tickets:create"), create_data(vip))
    assert response.status_code == 200 and "account" in response.context["form"].errors
    assert Ticket.objects.count() == 2

    client.force_login(make_agent("insider", groups=("vip",)))
    assert "VIP only" in client.get(reverse("tickets:list")).content.decode()
    assert client.get(reverse("tickets:detail", args=[vip_ticket.pk])).status_code == 200


# --- list ----------------------------------------------------------------------------------
def test_the_list_filters_searches_and_pages(client, agent, account_factory):
    kapture = account_factory("kapture")
    keliweb = account_factory("keliweb")
    for number in range(27):
        make_ticket(kapture, title=f"Bulk {number}")
    mine = make_ticket(keliweb, title="Mine and urgent", priority="urgent", created_by=agent)
    Ticket.objects.filter(pk=mine.pk).update(
        remote_number="516757", remote_url="https://kw.test/t/516757", sync_state=SyncState.SYNCED
    )
    url = reverse("tickets:list")
    first = client.get(url).content.decode()
    assert "Page 1 of 2" in first and "page=2" in first
    assert "Bulk 0" in client.get(url, {"page": 2}).content.decode()
    only_mine = client.get(url, {"mine": "on"}).content.decode()
    assert "Mine and urgent" in only_mine and "Bulk 3" not in only_mine
    assert 'href="https://kw.test/t/516757"' in only_mine and "Synced" in only_mine
    assert "Mine and urgent" in client.get(url, {"q": "516757"}).content.decode()
    assert "Bulk" not in client.get(url, {"account": keliweb.pk}).content.decode()
    assert "Mine and urgent" not in client.get(url, {"priority": "low"}).content.decode()
    assert "Mine and urgent" in client.get(url, {"sync_state": "synced"}).content.decode()
    paged = client.get(url, {"status": "new", "page": 1}).content.decode()
    assert "status=new&amp;page=2" in paged


def test_a_javascript_remote_url_is_never_linked(client, agent, account_factory):
    ticket = make_ticket(account_factory("kapture"))
    Ticket.objects.filter(pk=ticket.pk).update(remote_number="77", remote_url="javascript:alert(1)")
    page = client.get(reverse("tickets:list")).content.decode()
    assert "javascript:alert" not in page and ">77<" in page


def test_the_sync_state_endpoint_reports_state_and_remote_reference(client, agent, account_factory):
    ticket = make_ticket(account_factory("kapture"))
    answer = client.get(reverse("tickets:sync_states"), {"id": [ticket.pk, "x"]}).json()
    assert answer["tickets"][0]["sync_state"] == "pending" and answer["tickets"][0]["busy"] is True
    Ticket.objects.filter(pk=ticket.pk).update(sync_state=SyncState.SYNCED, remote_number="9")
    summary = client.get(reverse("tickets:sync_states"), {"id": ticket.pk}).json()["tickets"][0]
    assert (summary["label"], summary["remote_number"], summary["busy"]) == ("Synced", "9", False)


# --- detail, edit and actions ----------------------------------------------------------------
def test_the_detail_page_explains_what_the_provider_cannot_do(client, agent, account_factory):
    keliweb = make_ticket(account_factory("keliweb"))
    Ticket.objects.filter(pk=keliweb.pk).update(remote_id="1", remote_number="516757", sync_state="synced")
    page = client.get(reverse("tickets:detail", args=[keliweb.pk])).content.decode()
    assert "Keliweb cannot update a ticket after it is created" in page
    assert reverse("tickets:edit", args=[keliweb.pk]) not in page
    assert client.get(reverse("tickets:edit", args=[keliweb.pk])).status_code == 302

    knight = make_ticket(account_factory("knight"))
    page = client.get(reverse("tickets:detail", args=[knight.pk])).content.decode()
    assert "Knight takes no comments or replies." in page
    assert reverse("tickets:status", args=[knight.pk]) in page


def test_the_detail_page_shows_the_fields_and_the_timeline_in_plain_words(client, agent, account_factory):
    account = account_factory("kapture")
    ticket = make_ticket(account, extra={"queue": "L2"}, description="Line one")
    from django.utils import timezone

    from tickets.models import SyncAttempt

    SyncAttempt.objects.create(
        ticket=ticket,
        account=account,
        operation="create",
        outcome="retry",
        started_at=timezone.now(),
        http_status=503,
        error="Service unavailable",
    )
    SyncAttempt.objects.create(
        ticket=ticket,
        account=account,
        operation="create",
        outcome="success",
        started_at=timezone.now(),
        http_status=200,
    )
    page = client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert "Line one" in page and "L2" in page and "tim@acme.test" in page
    assert "Create hit a passing problem at Kapture CX; it will be retried" in page
    assert "Service unavailable" in page and "Created in Kapture CX" in page
    assert "Waiting for a worker to send it." in page


def test_editing_a_ticket_goes_through_the_update_service(client, agent, account_factory):
    account = account_factory("kapture")
    due = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
    ticket = make_ticket(account, extra={"queue": "L1"}, due_at=due, tags=["printer"])
    Ticket.objects.filter(pk=ticket.pk).update(remote_id="55", sync_state=SyncState.SYNCED, synced_revision=1)
    form_page = client.get(reverse("tickets:edit", args=[ticket.pk])).content.decode()
    assert 'name="kapture-queue"' in form_page and 'value="L1"' in form_page
    assert 'value="2026-11-24T09:30"' in form_page and 'value="printer"' in form_page
    data = create_data(
        account,
        title="Printer jam, now smoking",
        requester_email="tim@acme.test",
        due_at="2026-11-25T10:00",
        **{"kapture-queue": "L2"},
    )
    response = client.post(reverse("tickets:edit", args=[ticket.pk]), data)
    assert response.status_code == 302
    ticket.refresh_from_db()
    assert ticket.title == "Printer jam, now smoking" and ticket.extra == {"queue": "L2"}
    assert ticket.due_at == datetime(2026, 11, 25, 10, 0, tzinfo=UTC) and ticket.tags == ["vpn", "outage"]
    assert (ticket.revision, ticket.sync_state) == (2, SyncState.PENDING)


def test_changing_the_status_queues_an_update(client, agent, account_factory):
    ticket = make_ticket(account_factory("particlespace"))
    response = client.post(reverse("tickets:status", args=[ticket.pk]), {"status": "on_hold"}, follow=True)
    ticket.refresh_from_db()
    assert ticket.status == Status.ON_HOLD and ticket.revision == 2
    assert "is now On hold" in response.content.decode()


def test_retry_is_offered_for_a_failed_ticket_and_requeues_it(client, agent, account_factory):
    ticket = make_ticket(account_factory("motadata"))
    Ticket.objects.filter(pk=ticket.pk).update(sync_state=SyncState.FAILED, last_error="Bad category")
    page = client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert reverse("tickets:retry", args=[ticket.pk]) in page and "Bad category" in page
    client.post(reverse("tickets:retry", args=[ticket.pk]))
    ticket.refresh_from_db()
    assert (ticket.sync_state, ticket.last_error) == (SyncState.PENDING, "")


def test_a_reply_is_queued_where_the_provider_takes_replies(client, agent, account_factory):
    ticket = make_ticket(account_factory("kapture"))
    page = client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert 'for="id_body"' in page
    response = client.post(reverse("tickets:reply", args=[ticket.pk]), {"body": "On our way."}, follow=True)
    assert ticket.replies.get().body == "On our way."
    assert "On our way." in response.content.decode()

    knight = make_ticket(account_factory("knight"))
    response = client.post(reverse("tickets:reply", args=[knight.pk]), {"body": "Hello?"}, follow=True)
    assert not knight.replies.exists() and "Knight takes no comments or replies." in response.content.decode()


def test_an_unknown_create_can_be_linked_to_the_remote_id_found_by_a_person(client, agent, account_factory):
    ticket = make_ticket(account_factory("particlespace"))
    Ticket.objects.filter(pk=ticket.pk).update(sync_state=SyncState.NEEDS_ATTENTION)
    page = client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert reverse("tickets:link", args=[ticket.pk]) in page
    assert reverse("tickets:retry", args=[ticket.pk]) in page
    client.post(reverse("tickets:link", args=[ticket.pk]), {"remote_id": "tic_42"})
    ticket.refresh_from_db()
    assert ticket.remote_id == "tic_42" and ticket.sync_state != SyncState.NEEDS_ATTENTION


def test_cancelling_the_sync_of_a_waiting_ticket(client, agent, account_factory):
    ticket = make_ticket(account_factory("motadata"))
    response = client.post(reverse("tickets:cancel", args=[ticket.pk]), follow=True)
    ticket.refresh_from_db()
    assert ticket.sync_state == SyncState.CANCELLED
    assert "Sync cancelled" in response.content.decode()
    assert reverse("tickets:cancel", args=[ticket.pk]) not in response.content.decode()


def test_files_are_attached_where_the_provider_takes_them_and_too_large_ones_refused(
    client, agent, account_factory, settings
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    keliweb = account_factory("keliweb", settings={"deptid": 1})
    page = client.get(reverse("tickets:create"), {"account": keliweb.pk}).content.decode()
    assert 'enctype="multipart/form-data"' in page and "Attachments" in page
    kapture = account_factory("kapture")
    page = client.get(reverse("tickets:create"), {"account": kapture.pk}).content.decode()
    assert "Attachments" not in page

    files = [SimpleUploadedFile("a.log", b"line 1\n"), SimpleUploadedFile("b.png", b"\x89PNG")]
    response = client.post(reverse("tickets:create"), {**create_data(keliweb), "attachments": files})
    ticket = Ticket.objects.get()
    assert response.status_code == 302
    assert sorted(ticket.attachments.values_list("name", "size")) == [("a.log", 7), ("b.png", 4)]

    settings.ATTACHMENT_MAX_BYTES = 5
    big = SimpleUploadedFile("big.log", b"0123456789")
    data = {**create_data(keliweb, title="Second"), "attachments": [big]}
    response = client.post(reverse("tickets:create"), data)
    assert response.status_code == 200
    assert "Larger than the" in response.content.decode() and "big.log" in response.content.decode()
    assert Ticket.objects.count() == 1
