"""What the agent sees is true and addressed to whoever can fix it: a change the provider cannot
take is "kept here only" (never "synced"), and an account's problem names the account, asks for
a provider admin and reaches the provider admins once per incident."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.core import mail
from django.urls import reverse

from tests.helpers import refreshed, wait_for
from tickets import batch, bulk, outbound, pull, services, sync
from tickets.models import BulkJob, Status, SyncState, Ticket

# Tests that push in-process (tickets/batch.py) keep their nudges (the `nudges` fixture) and
# commit their data: the batch's threads read on connections of their own.
KELIWEB_REASON = "Keliweb cannot update a ticket after it is created — add a reply instead."


def make_agent(username: str = "agent") -> User:
    user = User.objects.create_user(username, f"{username}@example.com", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="tickets", codename__in=("view_ticket", "add_ticket", "change_ticket")
        )
    )
    return user


def make_provider_admin(username: str = "padmin", email: str = "padmin@example.com") -> User:
    user = User.objects.create_user(username, email, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="manage_provider_accounts"))
    return user


# --- 1. kept here only ------------------------------------------------------------------------
@pytest.mark.worker
def test_a_bulk_status_keliweb_cannot_take_is_kept_here_only_and_pull_shows_the_difference(
    worker, sandbox, account_factory, client
):
    account = account_factory("keliweb")
    ticket = services.create_ticket(
        account=account, title="Mail bounces", description="Since noon", requester_email="tim@acme.test"
    )
    wait_for(
        lambda: refreshed(ticket).sync_state == SyncState.SYNCED,
        message=f"the create never synced: {refreshed(ticket).sync_state} {ticket.last_error}",
    )
    starter = make_agent()

    job = bulk.start_job(
        action="change_status",
        params={"status": Status.RESOLVED},
        selection={"ids": [ticket.pk]},
        user=starter,
    )
    wait_for(lambda: BulkJob.objects.get(pk=job.pk).state == BulkJob.State.DONE, message="job never finished")
    job.refresh_from_db()
    assert (job.succeeded, job.kept_here, job.failed, job.processed) == (0, 1, 0, 1)
    assert job.results["kept_here"] == {
        f"Changed here only: {KELIWEB_REASON}": {"count": 1, "ids": [ticket.pk]}
    }
    ticket = refreshed(ticket)
    assert (ticket.status, ticket.sync_state) == (Status.RESOLVED, SyncState.LOCAL_ONLY)

    # The pull reads Keliweb's "Open" and keeps the console's "Resolved", showing both.
    result = pull.pull_account(account=account)
    assert (result.fetched, result.applied, result.errors) == (1, 0, [])
    ticket = refreshed(ticket)
    assert (ticket.status, ticket.sync_state, ticket.remote_status) == (
        Status.RESOLVED,
        SyncState.LOCAL_ONLY,
        "Open",
    )

    client.force_login(starter)
    page = client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert "Kept here only" in page and KELIWEB_REASON in page
    assert "Keliweb still has it Open; the console has Resolved." in page
    assert "In step with the provider" not in page
    listed = client.get(reverse("tickets:list"), {"sync_state": SyncState.LOCAL_ONLY}).content.decode()
    assert ticket.reference in listed

    client.force_login(User.objects.create_superuser("root", "root@example.com"))
    dashboard = client.get(reverse("sync_dashboard"))
    [row] = [item for item in dashboard.context["accounts"] if item.account == account]
    assert (row.local_only, row.failed) == (1, 0)


@pytest.mark.django_db(transaction=True)
def test_a_ticket_changed_while_its_keliweb_create_was_in_flight_is_kept_here_not_failed(
    account_factory, sandbox, nudges
):
    account = account_factory("keliweb")
    ticket = services.create_ticket(account=account, title="Disk full")
    Ticket.objects.filter(pk=ticket.pk).update(remote_id="77", revision=2, synced_revision=1)
    assert batch.push_account(sync.TICKETS, account.pk) == {SyncState.LOCAL_ONLY: 1}
    ticket = refreshed(ticket)
    assert (ticket.sync_state, ticket.last_error, ticket.account_problem) == (SyncState.LOCAL_ONLY, "", False)
    assert not ticket.attempts_log.exists()  # nothing was sent
    assert sandbox.control("calls") == {}


# --- 2. problems addressed to whoever can fix them ------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_refused_credential_asks_for_a_provider_admin_and_mails_them_once_per_incident(
    account_factory, sandbox, client, nudges
):
    account = account_factory("kapture", name="Kapture EU", credentials={"token": "wrong-token-value"})
    padmin = make_provider_admin()
    make_provider_admin("nomail", email="")  # a provider admin without an address gets nothing
    agent = make_agent()
    first, second = (services.create_ticket(account=account, title=f"Printer {n}") for n in (1, 2))

    assert batch.push_account(sync.TICKETS, account.pk) == {SyncState.FAILED: 2}
    first = refreshed(first)
    assert first.account_problem
    assert first.last_error.startswith(
        "Kapture EU's credentials were refused by Kapture CX (Kapture CX said: Invalid Auth Key). "
        "A provider admin must update them in the account settings."
    )
    [message] = mail.outbox  # two failing tickets, one incident, one e-mail
    assert message.to == [padmin.email] and "Kapture EU" in message.subject
    assert "Invalid Auth Key" in message.body and "wrong-token-value" not in message.body
    assert f"/admin/providers/provideraccount/{account.pk}/change/" in message.body

    client.force_login(agent)
    page = client.get(reverse("tickets:detail", args=[first.pk])).content.decode()
    assert "A provider admin is needed:" in page and "Kapture EU" in page
    assert "change what it names" not in page

    # The provider admin sees the account on the dashboard and the admin index.
    client.force_login(padmin)
    for url in (reverse("sync_dashboard"), reverse("admin:index")):
        banner = client.get(url).content.decode()
        assert 'id="account-problems"' in banner and "Kapture EU" in banner, url

    # Fixed: a success ends the incident; broken again: a new incident, a second e-mail.
    account.set_credentials(sandbox.credentials["kapture"])
    account.save()
    services.retry_sync(ticket=first)
    assert batch.push_account(sync.TICKETS, account.pk) == {SyncState.SYNCED: 1}
    account.refresh_from_db()
    assert account.problem_since is None
    client.force_login(padmin)
    assert 'id="account-problems"' not in client.get(reverse("sync_dashboard")).content.decode()
    account.set_credentials({"token": "wrong-again"})
    account.save()
    services.retry_sync(ticket=second)
    assert batch.push_account(sync.TICKETS, account.pk) == {SyncState.FAILED: 1}
    assert len(mail.outbox) == 2


@pytest.mark.django_db(transaction=True)
def test_a_disabled_account_and_a_refused_field_are_told_apart(account_factory, sandbox, nudges):
    from providers.errors import ProviderValidationError

    account = account_factory("motadata", name="Motadata HQ")
    ticket = services.create_ticket(account=account, title="No e-mail")
    refusal = ProviderValidationError(
        "Motadata needs the requester's e-mail.", field_errors={"requester_email": ["needed"]}
    )
    decision = outbound.decide(sync.TICKETS, refusal, row=ticket, operation="create", sent=True)
    assert (decision.account_problem, decision.message) == (
        False,
        "Requester email: Motadata needs the requester's e-mail.",
    )

    make_provider_admin()
    account.enabled = False
    account.save()
    assert batch.push_account(sync.TICKETS, account.pk) == {SyncState.FAILED: 1}
    ticket = refreshed(ticket)
    assert ticket.account_problem
    assert ticket.last_error.startswith("The account Motadata HQ is disabled")
    assert "A provider admin must enable it." in ticket.last_error
    assert len(mail.outbox) == 1
    assert sandbox.control("calls") == {}  # a disabled account is never called


@pytest.mark.django_db
def test_a_paused_account_tells_the_waiting_agent_why_and_remote_status_reads_as_a_label(account_factory):
    from tickets import ui

    account = account_factory("kapture", name="Kapture EU")
    ticket = services.create_ticket(account=account, title="Printer")
    services.pause_account(account=account)
    ticket = Ticket.objects.select_related("account").get(pk=ticket.pk)
    sentence = ui.sync_summary(ticket)["sentence"]
    assert sentence.startswith("Waiting: Kapture EU is paused until a provider admin resumes it.")
    ticket.remote_status = "OP"
    assert ui.remote_status_label(ticket) == "Open (OP)"


# --- 3. the admin ticket page reads as words -------------------------------------------------
@pytest.mark.django_db
def test_the_admin_ticket_page_shows_tags_as_text_the_remote_status_by_label_and_no_delete(
    account_factory, client
):
    account = account_factory("kapture")
    ticket = services.create_ticket(account=account, title="Printer", tags=["vpn", "outage"])
    Ticket.objects.filter(pk=ticket.pk).update(remote_id="9", remote_status="OP", sync_state=SyncState.SYNCED)
    client.force_login(User.objects.create_superuser("root", "root@example.com"))
    page = client.get(reverse("admin:tickets_ticket_change", args=[ticket.pk])).content.decode()
    assert 'value="vpn, outage"' in page
    assert "Open (OP)" in page
    assert reverse("admin:tickets_ticket_delete", args=[ticket.pk]) not in page
    assert client.get(reverse("admin:tickets_ticket_delete", args=[ticket.pk])).status_code == 403
    empty = client.get(reverse("admin:tickets_ticket_add") + f"?account={account.pk}").content.decode()
    assert ">null</textarea>" not in empty and 'value="[]"' not in empty


@pytest.mark.django_db(transaction=True)
def test_a_priority_kaptures_update_cannot_carry_is_kept_here_and_a_later_status_still_goes(
    account_factory, nudges
):
    from tickets import ui

    account = account_factory("kapture")
    ticket = services.create_ticket(account=account, title="Printer")
    assert batch.push_account(sync.TICKETS, account.pk) == {SyncState.SYNCED: 1}  # created in Kapture

    ticket = services.update_ticket(ticket=Ticket.objects.get(pk=ticket.pk), changes={"priority": "urgent"})
    assert (ticket.sync_state, ticket.local_only_fields, ticket.revision) == (
        SyncState.LOCAL_ONLY,
        ["priority"],
        2,
    )
    assert ui.sync_summary(ticket)["sentence"] == (
        "Kept here only — Kapture CX cannot change the priority of a ticket after it is created."
    )

    # A status Kapture can take is sent; the ticket still says the priority stayed here.
    ticket = services.update_ticket(ticket=ticket, changes={"status": Status.RESOLVED})
    assert ticket.sync_state == SyncState.PENDING
    assert batch.push_account(sync.TICKETS, account.pk) == {SyncState.SYNCED: 1}  # the call succeeded ...
    ticket = refreshed(ticket)
    assert (ticket.sync_state, ticket.synced_revision) == (SyncState.LOCAL_ONLY, 3)  # ... but not all of it
