"""Demo accounts: one per provider kind with a sandbox emulator, pointing at the local sandbox."""

from django.contrib.admin.models import CHANGE, LogEntry

from providers.forms import CREDENTIALS_LABEL
from providers.models import ProviderAccount
from providers.registry import EMULATORS, get_provider_class
from providers.sandbox.credentials import load_or_create


def ensure_demo_accounts(sandbox_url: str, *, acting_user=None) -> list[str]:
    """Create the demo accounts, or bring their credentials in step with the sandbox's file.

    Credentials that already match are left alone (no new timestamp, the cached token kept).
    Ones that differ — the file was regenerated, or someone changed them — are set to the
    sandbox's, and the change is written to the account's history like an admin's edit
    ("credentials", never values), as `acting_user`.
    """
    credentials = load_or_create()
    names = []
    for kind in EMULATORS:
        provider_class = get_provider_class(kind)
        name = f"Sandbox {provider_class.label}"
        account, created = ProviderAccount.objects.get_or_create(
            name=name,
            defaults={
                "kind": kind,
                "base_url": f"{sandbox_url.rstrip('/')}/{kind}",
                "settings": dict(provider_class.demo_settings),
                "rate_limit": provider_class.default_rate_limit,
                "rate_burst": provider_class.default_rate_burst,
                "status_map": provider_class.default_status_map,
                "priority_map": provider_class.default_priority_map,
            },
        )
        wanted = credentials.get(kind, {})
        if created:
            account.set_credentials(wanted)
            account.save()
        elif account.base_url.startswith(sandbox_url.rstrip("/")) and account.get_credentials() != wanted:
            account.set_credentials(wanted)
            account.save()
            record_credentials_change(account, acting_user)
        names.append(name)
    return names


def record_credentials_change(account: ProviderAccount, user) -> None:
    if user is None:
        return
    LogEntry.objects.log_actions(
        user_id=user.pk,
        queryset=[account],
        action_flag=CHANGE,
        change_message=f"Changed {CREDENTIALS_LABEL}: reset to the sandbox's by ./scripts/run.",
        single_object=True,
    )
