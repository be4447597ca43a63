"""The access policy: what each user may see and do. Every entry point asks this module.

Staff UI views, the admin (changelists, searches, change/add pages, account choices, list
filters, actions), bulk jobs and their downloads, the sync dashboard, JSON endpoints and the
management commands all take their querysets and yes/no answers from here, so a rule changes
in one place and a new entry point has one thing to call.

The rules:
- **Accounts.** An account whose `settings` has `allowed_groups` (a list of group names, or one
  name) is visible only to members of those groups and to superusers. Provider admins
  (`providers.manage_provider_accounts`) configure every account, restricted or not — they set
  the restriction — but see the *tickets* of a restricted account only as members.
- **Tickets, replies, sync attempts, dashboard rows** follow their account.
- **Bulk jobs and their exports** belong to whoever started them; superusers and holders of
  `tickets.view_all_bulk_jobs` see every job. A job only ever touches the tickets its starter may
  see *when it runs* (a group membership removed mid-job stops it there).
- **Management commands** run with shell access to the deployment, which is full trust:
  they act as `OPERATOR`, a principal that sees everything (as `manage.py shell` would).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from providers.models import ProviderAccount
from tickets.models import BulkJob, SyncAttempt, Ticket

VIEW_ALL_BULK_JOBS = "tickets.view_all_bulk_jobs"
MANAGE_ACCOUNTS = "providers.manage_provider_accounts"


@dataclass(frozen=True)
class Operator:
    """Whoever runs a management command: trusted with everything the deployment holds."""

    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = True
    is_superuser: bool = True
    pk: None = None

    def has_perm(self, perm: str, obj=None) -> bool:
        return True


OPERATOR = Operator()
Principal = AbstractBaseUser | AnonymousUser | Operator | None


def is_signed_in(user: Principal) -> bool:
    return user is not None and user.is_authenticated and user.is_active


def is_superuser(user: Principal) -> bool:
    return is_signed_in(user) and bool(user.is_superuser)


# --- accounts -------------------------------------------------------------------------------
def allowed_groups(account: ProviderAccount) -> set[str]:
    """The group names an account is restricted to; empty means every agent may use it."""
    value = (account.settings or {}).get("allowed_groups") or []
    if isinstance(value, str):
        value = [value]
    return {str(name).strip() for name in value if str(name).strip()}


def visible_accounts(user: Principal) -> QuerySet[ProviderAccount]:
    """The accounts `user` may see and use (disabled ones included: their tickets stay visible)."""
    accounts = ProviderAccount.objects.all()
    if not is_signed_in(user):
        return accounts.none()
    if user.is_superuser:
        return accounts
    member_of = set(user.groups.values_list("name", flat=True))
    # Accounts are few and the restriction lives in JSON: decide in Python, portably
    # across SQLite and PostgreSQL, and hand back a queryset for filtering.
    restricted = {
        pk: groups
        for pk, groups in (
            (account.pk, allowed_groups(account)) for account in accounts.only("pk", "settings")
        )
        if groups
    }
    hidden = [pk for pk, groups in restricted.items() if not groups & member_of]
    return accounts.exclude(pk__in=hidden)


def usable_accounts(user: Principal) -> QuerySet[ProviderAccount]:
    """The accounts `user` may create tickets in: visible and enabled."""
    return visible_accounts(user).filter(enabled=True)


def can_manage_accounts(user: Principal) -> bool:
    """Provider admins: configure accounts, credentials, maps, and test connections."""
    return is_signed_in(user) and (user.is_superuser or user.has_perm(MANAGE_ACCOUNTS))


def can_try_requests(user: Principal) -> bool:
    """ "Try it" on a generic account (builds, and may send, its configured requests with the
    account's credentials): whoever may configure the account."""
    return can_manage_accounts(user)


# --- tickets and what hangs off them --------------------------------------------------------
def visible_tickets(user: Principal, tickets: QuerySet[Ticket] | None = None) -> QuerySet[Ticket]:
    """The tickets `user` may see (of `tickets`, default all): those of accounts they may see."""
    if tickets is None:
        tickets = Ticket.objects.select_related("account")
    if is_superuser(user):
        return tickets
    return tickets.filter(account__in=visible_accounts(user))


def visible_sync_attempts(
    user: Principal,
    attempts: QuerySet[SyncAttempt] | None = None,
) -> QuerySet[SyncAttempt]:
    """Call records follow their account (a connection test has no ticket, but an account)."""
    if attempts is None:
        attempts = SyncAttempt.objects.all()
    if is_superuser(user):
        return attempts
    return attempts.filter(account__in=visible_accounts(user))


def can_see_dashboard(user: Principal) -> bool:
    return (
        is_signed_in(user)
        and user.is_staff
        and (can_manage_accounts(user) or user.has_perm("tickets.view_ticket"))
    )


def dashboard_accounts(user: Principal) -> QuerySet[ProviderAccount]:
    """The dashboard's rows: the accounts whose tickets the user may see."""
    return visible_accounts(user) if can_see_dashboard(user) else ProviderAccount.objects.none()


def watched_accounts(user: Principal) -> QuerySet[ProviderAccount]:
    """Accounts whose problems (refused credentials, a disabled account, …) the user is shown:
    every account for provider admins, who fix them; else the dashboard's."""
    return ProviderAccount.objects.all() if can_manage_accounts(user) else dashboard_accounts(user)


# --- bulk jobs ------------------------------------------------------------------------------
def can_run_bulk_jobs(user: Principal) -> bool:
    return is_signed_in(user) and user.has_perm("tickets.change_ticket")


def sees_every_bulk_job(user: Principal) -> bool:
    return is_superuser(user) or (is_signed_in(user) and user.has_perm(VIEW_ALL_BULK_JOBS))


def visible_bulk_jobs(user: Principal, jobs: QuerySet[BulkJob] | None = None) -> QuerySet[BulkJob]:
    """A job (its page, progress, results and export file) is its starter's."""
    if jobs is None:
        jobs = BulkJob.objects.all()
    if not can_run_bulk_jobs(user):
        return jobs.none()
    if sees_every_bulk_job(user):
        return jobs
    return jobs.filter(created_by_id=user.pk)


def bulk_job_tickets(job: BulkJob) -> QuerySet[Ticket]:
    """The tickets a job may touch as it runs: those its starter may see now (none when the
    starter's account is gone or deactivated)."""
    return visible_tickets(job.created_by)
