"""The people and things the access tests share: six roles, an "EU only" account with a
ticket, a sync attempt and another user's finished export, and an open account beside it."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group, Permission, User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from providers.models import ProviderAccount
from tickets.models import BulkJob, SyncAttempt, Ticket

ROLES = ("anonymous", "agent", "agent_outside", "staff_outside", "provider_admin", "superuser")
EU_GROUP = "EU only"
AGENT_PERMISSIONS = ("view_ticket", "add_ticket", "change_ticket", "view_syncattempt")


@dataclass
class World:
    users: dict[str, User | None]
    eu_account: ProviderAccount
    open_account: ProviderAccount
    eu_ticket: Ticket
    open_ticket: Ticket
    eu_attempt: SyncAttempt
    eu_job: BulkJob
    eu_group: Group

    def client(self, role: str) -> Client:
        client = Client()
        user = self.users[role]
        if user is not None:
            client.force_login(user)
        return client


def make_user(name: str, *, staff: bool = False, superuser: bool = False, groups=(), permissions=()) -> User:
    user = User.objects.create_user(
        name, f"{name}@example.com", "a-long-password-1", is_staff=staff or superuser, is_superuser=superuser
    )
    user.groups.set(groups)
    user.user_permissions.set(Permission.objects.filter(codename__in=permissions))
    return user


def make_world(account_factory) -> World:
    eu_group = Group.objects.create(name=EU_GROUP)
    eu_account = account_factory("kapture", name="Kapture EU", settings={"allowed_groups": [EU_GROUP]})
    open_account = account_factory("particlespace", name="Particle Space open")
    superuser = make_user("root", superuser=True)
    users = {
        "anonymous": None,
        "agent": make_user("eu-agent", groups=[eu_group], permissions=AGENT_PERMISSIONS),
        "agent_outside": make_user("us-agent", permissions=AGENT_PERMISSIONS),
        "staff_outside": make_user("us-staff", staff=True, permissions=AGENT_PERMISSIONS),
        "provider_admin": make_user(
            "provider-admin", staff=True, permissions=("manage_provider_accounts", "view_ticket")
        ),
        "superuser": superuser,
    }
    eu_ticket = Ticket.objects.create(
        account=eu_account,
        title="EU outage",
        description="Frankfurt",
        requester_email="eu.customer@example.com",
        requester_name="EU Customer",
        created_by=superuser,
    )
    open_ticket = Ticket.objects.create(
        account=open_account,
        title="Open printer jam",
        requester_email="us.customer@example.com",
        created_by=superuser,
    )
    eu_attempt = SyncAttempt.objects.create(
        ticket=eu_ticket,
        account=eu_account,
        operation="create",
        outcome="failed",
        error="EU attempt error",
        started_at=timezone.now(),
    )
    export = default_storage.save(
        "exports/job-access/tickets.csv", ContentFile(b"reference,title\nTC-EU,EU outage\n")
    )
    eu_job = BulkJob.objects.create(
        action="export_csv",
        selection={"ids": [eu_ticket.pk]},
        state=BulkJob.State.DONE,
        total=1,
        processed=1,
        succeeded=1,
        results={"file": export},
        created_by=superuser,
    )
    return World(
        users=users,
        eu_account=eu_account,
        open_account=open_account,
        eu_ticket=eu_ticket,
        open_ticket=open_ticket,
        eu_attempt=eu_attempt,
        eu_job=eu_job,
        eu_group=eu_group,
    )
