"""Problems of a whole provider account, told to whoever can fix them.

A refused credential, an account configured so that nothing can be sent, a disabled account:
no agent can fix these, so the agent is told which account is affected and that a provider
admin is needed, and the provider admins are told too — a banner on the sync dashboard and
the admin index, and one e-mail per incident. An incident starts with the first such failure
(`ProviderAccount.problem_since`, set by a guarded UPDATE: whoever sets it sends the e-mail)
and ends with the account's next successful call (tickets/limits.record_success).

Ticket-level problems (a field the provider refuses) stay with the ticket and name the field.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from console.crypto import CredentialsUnreadable
from providers.errors import ProviderAuthError, ProviderConfigurationError, ProviderValidationError
from providers.models import ProviderAccount
from tickets import limits
from tickets.access import can_manage_accounts
from tickets.models import Ticket

log = logging.getLogger(__name__)

#: Failures only a provider admin can fix: they are the account's, not the ticket's.
ACCOUNT_LEVEL = (ProviderAuthError, ProviderConfigurationError, CredentialsUnreadable)
KEPT = "Your change is kept here; retry it once they have."


def is_account_level(exc: Exception) -> bool:
    return isinstance(exc, ACCOUNT_LEVEL)


def account_message(exc: Exception, *, account: ProviderAccount) -> str:
    """What the agent reads: which account, what is wrong, and that a provider admin must act."""
    label = account.provider_class.label
    if isinstance(exc, ProviderAuthError):
        return (
            f"{account.name}'s credentials were refused by {label} ({label} said: {exc.message}). "
            f"A provider admin must update them in the account settings. {KEPT}"
        )
    if isinstance(exc, CredentialsUnreadable):
        return (
            f"{account.name}'s stored credentials cannot be read with this deployment's encryption "
            f"keys. A provider admin must enter them again in the account settings. {KEPT}"
        )
    return (
        f"{account.name} cannot be used as configured: {exc} "
        f"A provider admin must fix the account settings. {KEPT}"
    )


def disabled_message(account: ProviderAccount) -> str:
    return (
        f"The account {account.name} is disabled, so nothing is sent to "
        f"{account.provider_class.label}. A provider admin must enable it. {KEPT}"
    )


def field_message(exc: ProviderValidationError, *, account: ProviderAccount) -> str:
    """A refusal that names the ticket's fields where the provider said which ones."""
    names = field_labels(account, [key for key in exc.field_errors if key != "__all__"])
    if not names:
        return exc.message
    return f"{', '.join(names)}: {exc.message}"


def field_labels(account: ProviderAccount, keys: list[str]) -> list[str]:
    """Console field names as the forms label them (ticket fields, then the provider's own)."""
    extra_form = account.provider_class.extra_form
    extra_fields = extra_form.base_fields if extra_form else {}
    labels = []
    for key in keys:
        try:
            labels.append(str(Ticket._meta.get_field(key).verbose_name).capitalize())
        except Exception:  # noqa: BLE001 - not a ticket column: the provider's own field, or as named
            field = extra_fields.get(key)
            labels.append(str(field.label) if field is not None and field.label else key)
    return labels


# --- incidents ------------------------------------------------------------------------------
def report(account: ProviderAccount, message: str) -> bool:
    """Record an account-level problem; the first report of an incident e-mails the provider
    admins (after the commit). True when this call started the incident."""
    now = timezone.now()
    started = ProviderAccount.objects.filter(pk=account.pk, problem_since__isnull=True).update(
        problem_since=now,
        last_error=message[:2000],
        last_error_at=now,
    )
    if not started:
        ProviderAccount.objects.filter(pk=account.pk).update(last_error=message[:2000], last_error_at=now)
        return False
    account_id = account.pk
    transaction.on_commit(lambda: notify_admins(account_id=account_id))
    return True


def healthy_again() -> dict:
    """The columns a successful call writes: the incident, if any, is over."""
    return {"problem_since": None}


def admin_recipients() -> list[str]:
    """E-mail addresses of the provider admins (tickets/access.py decides who they are)."""
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    return sorted({user.email for user in users if can_manage_accounts(user)})


def notify_admins(*, account_id: int) -> int:
    """One e-mail to every provider admin about the account's current problem."""
    account = ProviderAccount.objects.filter(pk=account_id).first()
    recipients = admin_recipients()
    if account is None or account.problem_since is None or not recipients:
        return 0
    settings_url = settings.CONSOLE_PUBLIC_URL.rstrip("/") + reverse(
        "admin:providers_provideraccount_change", args=[account.pk]
    )
    body = (
        f"The provider account {account.name} ({account.provider_class.label}) has a problem that "
        f"only a provider admin can fix, since {account.problem_since:%Y-%m-%d %H:%M} UTC:\n\n"
        f"{account.last_error}\n\n"
        f"Tickets of this account are kept in the console and not sent until it is fixed.\n"
        f"Account settings: {settings_url}\n\n"
        "You get this e-mail once per problem; the next one comes only after the account "
        "has worked again.\n"
    )
    try:
        return send_mail(f"[Ticket Console] {account.name} needs a provider admin", body, None, recipients)
    except Exception:  # noqa: BLE001 - a mail server down must not fail the sync; the banner remains
        log.warning("Could not e-mail the provider admins about account %s.", account.pk, exc_info=True)
        return 0


# --- the banner -----------------------------------------------------------------------------
@dataclass(frozen=True)
class AccountProblem:
    account: ProviderAccount
    since: datetime | None
    sentence: str


def current_problems(accounts: QuerySet[ProviderAccount]) -> list[AccountProblem]:
    """Accounts (of `accounts`) with an open incident or a pause in force, with what is wrong."""
    now = timezone.now()
    problems = []
    for account in accounts.filter(Q(problem_since__isnull=False) | Q(paused_until__gt=now)).order_by("name"):
        if account.problem_since is not None:
            sentence = account.last_error or "A call to the provider failed."
            since = account.problem_since
        else:
            sentence = paused_sentence(account)
            since = None
        problems.append(AccountProblem(account, since, sentence))
    return problems


def paused_sentence(account: ProviderAccount) -> str:
    """Why an account's calls are held, for the agent waiting on it and for the admins."""
    until = timezone.localtime(account.paused_until)
    if until - timezone.now() > limits.INDEFINITELY / 2:
        when = "until a provider admin resumes it"
    else:
        when = f"until {until:%H:%M:%S}"
    if account.consecutive_failures >= limits.breaker_threshold(account):
        why = f"after {account.consecutive_failures} failed calls in a row"
        if account.last_error:
            why += f" (last: {account.last_error[:200]})"
        return (
            f"{account.name} is paused {why}, {when}. Changes are kept and sent when the pause "
            "ends; a provider admin can look at the account."
        )
    return (
        f"{account.name} is paused {when}. Changes are kept and sent when the pause ends; "
        "a provider admin can resume it in the account settings."
    )
