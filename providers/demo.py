"""Demo accounts: one per provider kind with a sandbox emulator, pointing at the local sandbox,
and generic accounts configured with a worked example against that example's sandbox."""

from django.contrib.admin.models import CHANGE, LogEntry

from providers.forms import CREDENTIALS_LABEL
from providers.generic.worked import generic_credentials, load_example
from providers.models import ProviderAccount
from providers.registry import EMULATORS, get_provider_class
from providers.sandbox.credentials import load_or_create

#: The worked configurations (providers/generic/examples/) that get a generic demo account,
#: each speaking to its own kind's sandbox: a user trying the console sees a generic account work.
GENERIC_DEMOS = ("kapture",)


def ensure_demo_accounts(sandbox_url: str, *, acting_user=None) -> list[str]:
    """Create the demo accounts, or bring their credentials in step with the sandbox's file.

    Credentials that already match are left alone (no new timestamp, the cached token kept).
    Ones that differ — the file was regenerated, or someone changed them — are set to the
    sandbox's, and the change is written to the account's history like an admin's edit
    ("credentials", never values), as `acting_user`.
    """
    credentials = load_or_create()
    demos = [(kind, kind, {}, credentials.get(kind, {})) for kind in EMULATORS]
    demos += [
        (
            "generic",
            example,
            load_example(example),
            generic_credentials(example, credentials.get(example, {})),
        )
        for example in GENERIC_DEMOS
        if example in EMULATORS
    ]
    names = []
    for kind, vendor, api_config, wanted in demos:
        provider_class = ProviderAccount(kind=kind, api_config=api_config).provider_class
        name = f"Sandbox {provider_class.label}"
        account, created = ProviderAccount.objects.get_or_create(
            name=name,
            defaults={
                "kind": kind,
                "base_url": f"{sandbox_url.rstrip('/')}/{vendor}",
                "api_config": api_config,
                "settings": dict(get_provider_class(vendor).demo_settings),
                "rate_limit": provider_class.default_rate_limit,
                "rate_burst": provider_class.default_rate_burst,
                "status_map": provider_class.default_status_map,
                "priority_map": provider_class.default_priority_map,
            },
        )
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
