"""Who may see which provider accounts and tickets in the staff UI.

An account whose `settings` has `allowed_groups` (a list of group names) is visible only to
members of those groups (and to superusers). Every UI view and the ticket form's account
choices go through these helpers, so the rule lives in one place.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from providers.models import ProviderAccount
from tickets.models import Ticket


def allowed_groups(account: ProviderAccount) -> set[str]:
    """The group names an account is restricted to; empty means every agent may use it."""
    value = (account.settings or {}).get("allowed_groups") or []
    if isinstance(value, str):
        value = [value]
    return {str(name).strip() for name in value if str(name).strip()}


def visible_accounts(user: AbstractBaseUser | AnonymousUser) -> QuerySet[ProviderAccount]:
    """The accounts `user` may see and use (disabled ones included: their tickets stay visible)."""
    accounts = ProviderAccount.objects.all()
    if not user.is_authenticated:
        return accounts.none()
    if user.is_superuser:
        return accounts
    member_of = set(user.groups.values_list("name", flat=True))
    # Accounts are few and the restriction lives in JSON: decide in Python, portably
    # across SQLite and PostgreSQL, and hand back a queryset for filtering.
    restricted = {pk: groups for pk, groups in (
        (account.pk, allowed_groups(account)) for account in accounts.only("pk", "settings")
    ) if groups}
    hidden = [pk for pk, groups in restricted.items() if not groups & member_of]
    return accounts.exclude(pk__in=hidden)


def usable_accounts(user: AbstractBaseUser | AnonymousUser) -> QuerySet[ProviderAccount]:
    """The accounts `user` may create tickets in: visible and enabled."""
    return visible_accounts(user).filter(enabled=True)


def visible_tickets(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Ticket]:
    """The tickets `user` may see: those of accounts they may see."""
    return Ticket.objects.filter(account__in=visible_accounts(user)).select_related("account")
